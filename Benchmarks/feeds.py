"""Feed benchmark, run by Benchmarks/feeds.sh (release build).

1. The feed file posted whole as text/plain, against the same file pulled as a `text` feed from a
   loopback server (Tests/RampartCLITests/Fixtures/feeds/feed_server.py, with ETags): each on a
   fresh daemon, alternating, RUNS times; the time from the request to its answer (the pull's
   answer comes once every item is durable). The ratio pull/post.
2. A second pull of the unchanged feed (a 304): its time, median of 20.
"""
import atexit, json, os, shutil, statistics, subprocess, sys, tempfile, time

from benchdaemon import call, start_daemon

binary, feed, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
work = tempfile.mkdtemp(prefix="rampart-feed-bench-")
atexit.register(shutil.rmtree, work, True)
token = "rmp_bench_token"
site = f"{work}/site"
os.makedirs(site)
server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "../Tests/RampartCLITests/Fixtures/feeds/feed_server.py"), site, "8496"])
atexit.register(server.kill)
body = open(feed, "rb").read()
lines = sum(1 for l in body.split(b"\n") if l.strip() and not l.startswith(b"#"))
daemon = None


def start():
    global daemon
    if os.path.exists(f"{site}/feed.txt"):
        os.remove(f"{site}/feed.txt")
    daemon = start_daemon(binary, work, token, """feeds:
  - {name: bench, kind: text, url: "http://127.0.0.1:8496/feed.txt", interval: 1h, defaults: {source: ipsum}}
""")
    # The pull at start finds no file (404); the measured pull is the one asked for below.
    for _ in range(200):
        feeds = json.loads(call(token, "GET", "/v1/feeds")[1])["feeds"]
        if feeds[0].get("failures", 0) >= 1:
            return
        time.sleep(0.05)
    sys.exit("the feed's first pull did not happen")


def stop():
    daemon.terminate()
    daemon.wait()


def timed(method, path, data=None, content_type="application/json"):
    started = time.perf_counter()
    status, answer = call(token, method, path, data, content_type)
    return time.perf_counter() - started, json.loads(answer)


post, pull = [], []
for run in range(runs):
    start()
    seconds, answer = timed("POST", "/v1/indicators?source=ipsum", body, "text/plain")
    assert answer["accepted"] > 0, answer
    post.append(seconds)
    stop()
    start()
    open(f"{site}/feed.txt", "wb").write(body)
    seconds, answer = timed("POST", "/v1/feeds/bench/pull")
    assert answer["items"] > 0 and answer["failures"] == 0, answer
    pull.append(seconds)
    if run < runs - 1:
        stop()
print(f"1. {lines} lines, fresh daemon each run, {runs} alternating runs")
print(f"   posted as text/plain: median {statistics.median(post):.2f} s  runs: " + " ".join(f"{s:.2f}" for s in post))
print(f"   pulled as a text feed: median {statistics.median(pull):.2f} s  runs: " + " ".join(f"{s:.2f}" for s in pull))
print(f"   ratio pull/post (medians): {statistics.median(pull) / statistics.median(post):.2f}")
unchanged = []
for _ in range(20):
    seconds, answer = timed("POST", "/v1/feeds/bench/pull")
    assert answer["items"] == 0 and answer["failures"] == 0, answer
    unchanged.append(seconds)
requests = open(f"{site}/requests.log").read()
assert " 304" in requests, requests
print(f"2. unchanged second pull (304): median {statistics.median(unchanged) * 1000:.1f} ms, max {max(unchanged) * 1000:.1f} ms over 20")
stop()
