"""Hostile peers on the outbound side, run by Benchmarks/hostilepeers.sh (release build).

Node A (port 8475) shares every ipv4 item with seven peers: B, a real node (port 8481), and six
hostile servers of this script (ports 8491-8496) that never answer, drip one byte a second,
send an endless body, announce a 1 GB body and send it, redirect forever, or answer 500 forever.
100 new indicators a second are posted to A for SECONDS. Every 5 s: A's RSS and open file
descriptors, the time /healthz takes, and each peer's state (GET /v1/peers). At the end: A's RSS
at most and its slope, /healthz and ingest p99, B holding every item A acknowledged (the
hostile peers must not delay it), and each hostile peer's last error, queue and attempts.
"""
import atexit, os, shutil, socket, statistics, sys, tempfile, threading, time, urllib.request

from benchdaemon import Nodes, fresh_addresses

binary, duration = sys.argv[1], int(sys.argv[2])
work = tempfile.mkdtemp(prefix="rampart-hostile-peers-")
atexit.register(shutil.rmtree, work, True)
nodes = Nodes(binary, work, "rmp_bench_token")
HOSTILE = {"silent": 8491, "drip": 8492, "endless": 8493, "huge": 8494, "redirect": 8495, "error": 8496}
sent = {name: 0 for name in HOSTILE}


def serve(name, port):
    """One hostile peer: reads each request's head and answers it in its own bad way."""
    listener = socket.create_server(("127.0.0.1", port), reuse_port=True)
    listener.listen(64)

    def handle(conn):
        try:
            conn.settimeout(600)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            if name == "silent":
                while conn.recv(65536):
                    pass
            elif name == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                while True:
                    conn.sendall(b" ")
                    sent[name] += 1
                    time.sleep(1)
            elif name == "endless":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                block = b"%x\r\n%s\r\n" % (65536, b"[" * 65536)
                while True:
                    conn.sendall(block)
                    sent[name] += 65536
            elif name == "huge":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n")
                block = b" " * 65536
                for _ in range(16384):
                    conn.sendall(block)
                    sent[name] += 65536
            elif name == "redirect":
                conn.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:%d/v1/peer/events\r\nContent-Length: 0\r\n\r\n" % port)
            elif name == "error":
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nerror")
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


for name, port in HOSTILE.items():
    threading.Thread(target=serve, args=(name, port), daemon=True).start()
key_a, key_b = nodes.keygen("a"), nodes.keygen("b")
share = "name: share\nmatch: {kind: [ipv4]}\nactions:\n  - propagate: {to: all, suggest: [block]}\n"
nodes.configure("a", 8475, [f'  - {{name: b, url: "http://127.0.0.1:8481/v1/peer/events", public_key: {key_b}}}\n'] +
             [f'  - {{name: {n}, url: "http://127.0.0.1:{p}/v1/peer/events", public_key: {key_b}}}\n' for n, p in HOSTILE.items()], share)
nodes.configure("b", 8481, [f'  - {{name: a, url: "http://127.0.0.1:8475/v1/peer/events", public_key: {key_a}, accept: {{suggested: [block]}}}}\n'],
             "name: block\nmatch: {kind: [ipv4], from: [peer:a], suggested: [block]}\nactions:\n  - block: {duration: 4h}\n")
a = nodes.start("a")
nodes.start("b")

stop = threading.Event()
acknowledged, ingest_times = [0], []


def load():
    addresses, next_at = fresh_addresses(0x0E000000), time.time()
    while not stop.is_set():
        values = [next(addresses) for _ in range(10)]
        began = time.perf_counter()
        try:
            acknowledged[0] += nodes.api("a", "/v1/indicators", ("\n".join(values) + "\n").encode())["accepted"]
            ingest_times.append(time.perf_counter() - began)
        except Exception as error:
            print(f"post failed: {error}", file=sys.stderr)
        next_at += 0.1
        time.sleep(max(0, next_at - time.time()))


samples, health = [], []
loader = threading.Thread(target=load)
loader.start()
started = time.time()
while time.time() - started < duration:
    for _ in range(50):
        began = time.perf_counter()
        urllib.request.urlopen("http://127.0.0.1:8475/healthz", timeout=10).read()
        health.append(time.perf_counter() - began)
        time.sleep(0.1)
    status = open(f"/proc/{a.pid}/status").read()
    rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1]) / 1024
    samples.append((time.time() - started, rss, len(os.listdir(f"/proc/{a.pid}/fd"))))
stop.set()
loader.join()


for _ in range(30):
    if nodes.items("b") >= acknowledged[0]:
        break
    time.sleep(1)
held = nodes.items("b")
peers = {p["name"]: p for p in nodes.api("a", "/v1/peers")["peers"]}


def p99(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))] * 1000


xs, ys = [s[0] for s in samples], [s[1] for s in samples]
slope = sum((x - statistics.mean(xs)) * (y - statistics.mean(ys)) for x, y in zip(xs, ys)) / max(1e-9, sum((x - statistics.mean(xs)) ** 2 for x in xs)) * 3600
print(f"hostile peers {duration} s, 100 items/s to A, peer b real and six hostile: {acknowledged[0]} items acknowledged")
print(f"  A's RSS {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MiB, at most {max(ys):.0f}, slope {slope:+.1f} MiB/h; open file descriptors at most {max(s[2] for s in samples)}")
print(f"  /healthz p99 {p99(health):.1f} ms over {len(health)}; ingest of 10 items p99 {p99(ingest_times):.1f} ms")
print(f"  b holds {held} of the {acknowledged[0]} items; its queue {peers['b']['queue_depth']}")
for name in HOSTILE:
    p = peers[name]
    print(f"  {name}: queue {p['queue_depth']}, dead letters {p['dead_letters']}, last error: {p.get('last_error', '-')[:120]}")
print(f"  bytes the hostile peers sent: drip {sent['drip']}, endless {sent['endless'] >> 20} MiB, huge {sent['huge'] >> 20} MiB")
sys.exit(0 if held == acknowledged[0] > 0 else 1)
