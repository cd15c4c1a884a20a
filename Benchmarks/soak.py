"""Soak, run by Benchmarks/soak.sh (release build).

Node A (port 8475) shares every ipv4 item with 10 peers (ports 8481-8490, signed v1a), each of
which blocks what A suggests; 500 new indicators a second are posted to A (50 every 100 ms).
Peer 10 flaps: up 30 s, down 30 s. Every 5 s: A's RSS, its open file descriptors, its WAL size,
and each peer's oldest undelivered entry (GET /v1/peers). At the end: the RSS slope (least
squares, MiB per hour, after the first minute), file descriptors and WAL at most, the outbox lag
p99 of the nine steady peers, the flapping peer's lag at most, and that every steady peer holds
every item A acknowledged.
"""
import atexit, os, shutil, statistics, sys, tempfile, threading, time

from benchdaemon import Nodes, fresh_addresses

binary, duration = sys.argv[1], int(sys.argv[2])
work = tempfile.mkdtemp(prefix="rampart-soak-")
atexit.register(shutil.rmtree, work, True)
PEERS = 10
nodes = Nodes(binary, work, "rmp_bench_token")

key_a = nodes.keygen("a")
names = [f"p{i}" for i in range(1, PEERS + 1)]
keys = {name: nodes.keygen(name) for name in names}
nodes.configure("a", 8475, [f'  - {{name: {n}, url: "http://127.0.0.1:{8480 + i}/v1/peer/events", public_key: {keys[n]}}}\n'
                         for i, n in enumerate(names, 1)],
             "name: share\nmatch: {kind: [ipv4]}\nactions:\n  - propagate: {to: all, suggest: [block]}\n")
for i, name in enumerate(names, 1):
    nodes.configure(name, 8480 + i, [f'  - {{name: a, url: "http://127.0.0.1:8475/v1/peer/events", public_key: {key_a}, accept: {{suggested: [block]}}}}\n'],
                 "name: block\nmatch: {kind: [ipv4], from: [peer:a], suggested: [block]}\nactions:\n  - block: {duration: 4h}\n")
a = nodes.start("a")
for name in names:
    nodes.start(name)

stop = threading.Event()
acknowledged = [0]


def load():
    addresses, next_at = fresh_addresses(0x0D000000), time.time()
    while not stop.is_set():
        values = [next(addresses) for _ in range(50)]
        try:
            acknowledged[0] += nodes.api("a", "/v1/indicators", ("\n".join(values) + "\n").encode())["accepted"]
        except Exception as error:
            print(f"post failed: {error}", file=sys.stderr)
        next_at += 0.1
        time.sleep(max(0, next_at - time.time()))


def flap():
    name = names[-1]
    while not stop.wait(30):
        nodes.processes[name].terminate()
        nodes.processes[name].wait()
        if stop.wait(30):
            break
        nodes.start(name)


samples = []
threads = [threading.Thread(target=load), threading.Thread(target=flap)]
for t in threads:
    t.start()
started = time.time()
while time.time() - started < duration:
    time.sleep(5)
    status = open(f"/proc/{a.pid}/status").read()
    rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1]) / 1024
    fds = len(os.listdir(f"/proc/{a.pid}/fd"))
    wal = os.path.getsize(f"{work}/a/state/rampart.sqlite-wal") / 2**20 if os.path.exists(f"{work}/a/state/rampart.sqlite-wal") else 0
    peers = {p["name"]: p.get("oldest_undelivered_seconds") or 0 for p in nodes.api("a", "/v1/peers")["peers"]}
    samples.append((time.time() - started, rss, fds, wal, peers))
    if len(samples) % 120 == 0:  # every ten minutes, so that a long run shows its curve
        print(f"  {samples[-1][0] / 60:.0f} min: RSS {rss:.0f} MiB, {fds} descriptors, WAL {wal:.0f} MiB, {acknowledged[0]} acknowledged", flush=True)
stop.set()
for t in threads:
    t.join()
if nodes.processes[names[-1]].poll() is not None:
    nodes.start(names[-1])

# Let the steady peers drain (up to a minute), then count what each holds.
for _ in range(60):
    if all(nodes.items(name) >= acknowledged[0] for name in names[:-1]):
        break
    time.sleep(1)

steady = [s for s in samples if s[0] >= 60] or samples
xs, ys = [s[0] for s in steady], [s[1] for s in steady]
mean_x, mean_y = statistics.mean(xs), statistics.mean(ys)
slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mean_x) ** 2 for x in xs)) * 3600
lags = sorted(s[4].get(n, 0) for s in samples for n in names[:-1])
p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
flapping = max(s[4].get(names[-1], 0) for s in samples)
held = [nodes.items(name) for name in names[:-1]]
print(f"soak {duration} s, 500 items/s to A, 10 peers (p10 flapping 30 s up / 30 s down): {acknowledged[0]} items acknowledged")
print(f"  A's RSS {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MiB, slope {slope:+.1f} MiB/h (least squares after the first minute)")
print(f"  A's open file descriptors {min(s[2] for s in samples)}-{max(s[2] for s in samples)}; WAL at most {max(s[3] for s in samples):.1f} MiB")
print(f"  outbox lag (oldest undelivered) of the 9 steady peers: p99 {p99} s; the flapping peer's at most {flapping} s")
print(f"  items held by each steady peer: min {min(held)}, max {max(held)} (of {acknowledged[0]})")
sys.exit(0 if min(held) == max(held) == acknowledged[0] > 0 else 1)
