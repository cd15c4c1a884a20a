"""CrowdSec bouncer API benchmark, run by Benchmarks/bouncers.sh (release build), inside a network
namespace of its own when root. CrowdSec's own figures (FACTS.md) are printed beside Rampart's.

1. GET /v1/decisions?ip= with N decisions in force: wrk, 2 threads, 64 connections, 10 s, over
   1,000 addresses (half of them in force).
2. A first pull (`startup=true`) of the N decisions: time to its last byte, and how much the
   daemon's RSS grew while it was written.
3. 100 bouncers (a key each) polling every second while nothing changes, 20 s: answer time p50
   and p99, the daemon's CPU in % of one core; then one new decision: the time until every one has it.
4. 100 long-polling keys (`hold: 30s`): one new decision, the time until every one has it.
5. (First, on an empty store.) With root and Debian's crowdsec-firewall-bouncer (0.0.25, nftables, `update_frequency: 10s`,
   its default): a decision at Rampart to the element in the bouncer's set, median over TRIALS,
   for a key without hold and one with `hold: 10s`.
"""
import atexit, hashlib, http.client, json, os, random, shutil, statistics, subprocess, sys, tempfile, threading, time

from benchdaemon import call as api, feed_addresses, wait_ready
from nftprobe import ElementProbe

binary, feed, count, trials = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
work = tempfile.mkdtemp(prefix="rampart-bouncer-bench-")
atexit.register(shutil.rmtree, work, True)
token = "rmp_bench_token"
POLLERS = 100


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


addresses = feed_addresses(feed, count, ipv4_only=True)

keys = {f"poll{i}": f"rmpbpoll{i:04d}" for i in range(POLLERS)}
held = {f"held{i}": f"rmpbheld{i:04d}" for i in range(POLLERS)}
lines = [f'  - {{name: {name}, key_sha256: "{sha(key)}"}}' for name, key in keys.items()]
lines += [f'  - {{name: {name}, key_sha256: "{sha(key)}", hold: 30s}}' for name, key in held.items()]
lines += [f'  - {{name: bench, key_sha256: "{sha("rmpbbench")}"}}', f'  - {{name: fw, key_sha256: "{sha("rmpbfirewall")}"}}',
          f'  - {{name: fwheld, key_sha256: "{sha("rmpbfwheld")}", hold: 10s}}']
os.makedirs(f"{work}/playbooks")
open(f"{work}/playbooks/block.yaml", "w").write("name: block-feed\nmatch:\n  kind: ipv4\nactions:\n  - block: {duration: 4h}\n")
open(f"{work}/rampart.yaml", "w").write(f"""node: {{id: bench}}
listen: 127.0.0.1:8475
state_dir: state
playbooks: playbooks
firewall: {{backend: dry-run}}
safety: {{max_active_blocks: 5000000, allow_non_global: [198.18.0.0/15]}}
http: {{max_items: 2000000, max_body: 64MiB}}
api_keys:
  - {{name: bench, roles: [ingest, read, admin], token_sha256: "{sha(token)}"}}
log: {{level: warning}}
crowdsec: {{listen: 127.0.0.1:8480}}
bouncers:
""" + "\n".join(lines) + "\n")
log = open(f"{work}/daemon.log", "w")
daemon = subprocess.Popen([binary, "serve", "--config", f"{work}/rampart.yaml"], stdout=log, stderr=log)


def call(method, path, body=None, content_type="application/json"):
    return api(token, method, path, body, content_type)[1]


def rss_kib():
    return int(next(l.split()[1] for l in open(f"/proc/{daemon.pid}/status") if l.startswith("VmRSS")))


def cpu_seconds():
    fields = open(f"/proc/{daemon.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bouncer:
    """One bouncer's keep-alive connection to the bouncer API."""
    def __init__(self, key):
        self.key = key
        self.connection = http.client.HTTPConnection("127.0.0.1", 8480, timeout=60)

    def pull(self, query=""):
        self.connection.request("GET", "/v1/decisions/stream" + query, headers={"X-Api-Key": self.key})
        return self.connection.getresponse().read()


def block(value, duration="1h"):
    call("POST", "/v1/decisions", json.dumps({"value": value, "duration": duration}).encode())


def real_bouncer():
    """5, on a store with no other decisions: the 0.0.25 bouncer re-reads its whole set for every
    200 elements it adds, so a first pull of 100k takes it minutes."""
    if os.getuid() != 0 or not os.path.exists("/usr/bin/crowdsec-firewall-bouncer"):
        print("crowdsec-firewall-bouncer: skipped (needs root and deploy/setup-dev.sh's crowdsec-firewall-bouncer)")
    else:
        for key, label in (("rmpbfirewall", "no hold"), ("rmpbfwheld", "hold: 10s")):
            config = f"{work}/fw-{key}.yaml"
            open(config, "w").write(f"""mode: nftables
update_frequency: 10s
log_mode: file
log_dir: {work}
log_level: info
api_url: http://127.0.0.1:8480/
api_key: {key}
disable_ipv6: true
deny_action: DROP
supported_decisions_types: [ban]
blacklists_ipv4: crowdsec-blacklists
nftables:
  ipv4: {{enabled: true, set-only: false, table: crowdsec, chain: crowdsec-chain}}
  ipv6: {{enabled: false, set-only: false, table: crowdsec6, chain: crowdsec6-chain}}
prometheus: {{enabled: false, listen_addr: 127.0.0.1, listen_port: "60601"}}
""")
            bouncer = subprocess.Popen(["/usr/bin/crowdsec-firewall-bouncer", "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            probe = None
            for _ in range(100):  # until its table is there
                if subprocess.run(["nft", "list", "set", "ip", "crowdsec", "crowdsec-blacklists"], capture_output=True).returncode == 0:
                    probe = ElementProbe("crowdsec", "crowdsec-blacklists", family="ip")
                    break
                time.sleep(0.1)
            if probe is None:
                sys.exit("the bouncer made no nftables set within 10 s")
            delays = []
            for i in range(trials):
                value = f"198.18.{10 + i // 250}.{i % 250 + 1}"
                made = time.monotonic()
                block(value)
                while not probe.contains(value):
                    if time.monotonic() - made > 30:
                        sys.exit(f"{value} not in the bouncer's set after 30 s")
                    time.sleep(0.001)
                delays.append(time.monotonic() - made)
                # The next decision at a random point of the bouncer's 10 s poll cycle.
                time.sleep(random.random() * 10)
            bouncer.terminate()
            bouncer.wait()
            subprocess.run(["nft", "delete", "table", "ip", "crowdsec"], capture_output=True)
            print(f"crowdsec-firewall-bouncer 0.0.25 (update_frequency 10s, {label}): decision to element in its set, median "
                  f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms over {trials} trials "
                  f"(CrowdSec 1.4.6 with its own LAPI: ~5 s)")


try:
    wait_ready(daemon, work)
    real_bouncer()
    accepted = json.loads(call("POST", "/v1/indicators?confidence=90", ("\n".join(addresses) + "\n").encode(), "text/plain"))["accepted"]
    time.sleep(1)

    # 1. Lookups by address.
    probes = random.Random(7).sample(addresses, 500) + [f"11.{250 + i // 250}.{i % 250}.1" for i in range(500)]
    script = f"{work}/lookup.lua"
    open(script, "w").write("local a = {" + ",".join(f'"{p}"' for p in probes) + "}\n"
                            'request = function() return wrk.format("GET", "/v1/decisions?ip=" .. a[math.random(#a)], '
                            '{["X-Api-Key"] = "rmpbbench"}) end\n')
    out = subprocess.run(["wrk", "-t2", "-c64", "-d10s", "-s", script, "http://127.0.0.1:8480"], capture_output=True, text=True).stdout
    rate = next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec"))
    latency = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("Latency"))
    print(f"GET /v1/decisions?ip= with {accepted:,} decisions in force: {float(rate):,.0f} requests/s, mean latency {latency} "
          f"(64 connections; CrowdSec LAPI 1.4.6 with 110k decisions: ~56/s)")

    # 2. A first pull of every decision.
    before, peak, done = rss_kib(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.monotonic()
    body = Bouncer("rmpbbench").pull("?startup=true")
    took = time.monotonic() - start
    done.set()
    sampler.join()
    got = len(json.loads(body)["new"])
    print(f"first pull (startup=true) of {got:,} decisions: {took:.3f} s, {len(body) / 2**20:.1f} MiB; "
          f"daemon RSS {before / 1024:.0f} MiB before, +{(peak[0] - before) / 1024:.1f} MiB at most while it was written (target: 0.5 s, +30 MiB)")

    # 3. 100 bouncers polling every second.
    stop, latencies, first_seen = threading.Event(), [], {}
    lock, started = threading.Lock(), threading.Barrier(POLLERS + 1)
    watched = ["198.18.5.1"]

    def poller(name, key, interval, offset):
        bouncer = Bouncer(key)
        bouncer.pull("?startup=true")
        started.wait()
        time.sleep(offset)
        while not stop.is_set():
            tick = time.monotonic()
            answer = json.loads(bouncer.pull())
            took = time.monotonic() - tick
            arrived = time.time()
            with lock:
                latencies.append(took)
                if any(d["value"] == watched[0] for d in answer["new"]) and (name, watched[0]) not in first_seen:
                    first_seen[(name, watched[0])] = arrived
            if interval:
                time.sleep(max(0, interval - (time.monotonic() - tick)))

    def reach(value):
        """Blocks `value`; the seconds until each poller saw it (at most 5 s), sorted."""
        made = time.time()
        block(value)
        deadline = made + 5
        while time.time() < deadline and sum(1 for k in first_seen if k[1] == value) < POLLERS:
            time.sleep(0.001)
        return sorted(t - made for k, t in first_seen.items() if k[1] == value)

    threads = [threading.Thread(target=poller, args=(name, key, 1.0, random.random())) for name, key in keys.items()]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(1.5)
    latencies.clear()
    cpu, wall = cpu_seconds(), time.monotonic()
    time.sleep(20)
    cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
    with lock:
        answers = sorted(latencies)
    print(f"{POLLERS} bouncers polling every 1 s, nothing changing, {accepted:,} in force: {len(answers)} answers in {wall:.0f} s, "
          f"p50 {answers[len(answers) // 2] * 1000:.2f} ms, p99 {answers[int(len(answers) * 0.99)] * 1000:.2f} ms; "
          f"daemon CPU {cpu / wall * 100:.1f}% of one core (targets: p99 10 ms, 25%)")
    arrivals = reach(watched[0])
    print(f"one new decision reached {len(arrivals)}/{POLLERS} polling bouncers, the last after {arrivals[-1] * 1000:.0f} ms "
          f"(median {statistics.median(arrivals) * 1000:.0f} ms; target: within the 1 s poll interval)")
    stop.set()
    for thread in threads:
        thread.join()

    # 4. 100 long-polling keys.
    stop.clear()
    started = threading.Barrier(POLLERS + 1)
    watched[0] = "198.18.5.2"
    threads = [threading.Thread(target=poller, args=(name, key, 0, 0)) for name, key in held.items()]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(2)  # every one is held
    arrivals = reach(watched[0])
    print(f"one new decision reached {len(arrivals)}/{POLLERS} long-polling bouncers (hold: 30s), the last after "
          f"{arrivals[-1] * 1000:.1f} ms (median {statistics.median(arrivals) * 1000:.1f} ms; target: 50 ms)")
    stop.set()
    block("198.18.5.3")  # ends the held pulls
    for thread in threads:
        thread.join()

finally:
    daemon.terminate()
    daemon.wait()
