"""nftables enforcement benchmark, run by Benchmarks/firewall.sh inside a fresh network
namespace, as root.

1. Bulk: N distinct IPv4 addresses of a feed. Baseline: one plain `nft -f` file adding them to a
   fresh timeout hash set. Rampart: the same addresses POSTed as text/plain to a daemon whose one
   playbook blocks every ipv4 indicator, timed from the request to every element in the kernel set.
2. Latency: single blocks (POST /v1/decisions) from the 2xx to the element being in the kernel
   set, over TRIALS trials: p50 and p99. Presence is asked of the kernel with one netlink request
   per probe (`nft get element` dumps the whole set first: 0.4 s at 100k elements).
3. The daemon's RSS with the bulk blocks active: as the last element arrives, and 3 s later.
4. The bytes the bulk request added to the write-ahead log, per blocked item.
"""
import atexit, hashlib, json, os, shutil, subprocess, sys, tempfile, time

from benchdaemon import call as api, feed_addresses, wait_ready
from nftprobe import ElementProbe

binary, feed, count, trials = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
work = tempfile.mkdtemp(prefix="rampart-fw-bench-")
atexit.register(shutil.rmtree, work, True)  # the database of a 100k run is hundreds of MB
token = "rmp_bench_token"
token_hash = hashlib.sha256(token.encode()).hexdigest()

addresses = feed_addresses(feed, count)
count = len(addresses)


def nft(*args, input=None):
    return subprocess.run(["nft", *args], input=input, capture_output=True, text=True, check=True).stdout


def set_size(table, name):
    data = json.loads(nft("-j", "list", "set", "inet", table, name))
    return sum(len(o["set"].get("elem", [])) for o in data["nftables"] if "set" in o)


# 1a. Baseline: a plain nft file.
script = "add table inet baseline\nadd set inet baseline in4 { type ipv4_addr; flags timeout; }\n"
script += "add element inet baseline in4 { " + ", ".join(f"{a} timeout 3600s" for a in addresses) + " }\n"
path = os.path.join(work, "baseline.nft")
open(path, "w").write(script)
start = time.monotonic()
nft("-f", path)
baseline = time.monotonic() - start
assert set_size("baseline", "in4") == count
nft("delete", "table", "inet", "baseline")

# 1b. Rampart.
os.makedirs(f"{work}/playbooks")
open(f"{work}/playbooks/block.yaml", "w").write(
    "name: block-feed\nmatch:\n  kind: ipv4\nactions:\n  - block: {duration: 1h, direction: inbound}\n"
)
open(f"{work}/rampart.yaml", "w").write(f"""node: {{id: bench}}
listen: 127.0.0.1:8475
state_dir: state
playbooks: playbooks
firewall: {{backend: nftables}}
safety: {{max_active_blocks: 5000000}}
http: {{max_items: 2000000, max_body: 64MiB}}
api_keys:
  - {{name: bench, roles: [ingest, read, admin], token_sha256: "{token_hash}"}}
log: {{level: warning}}
""")
log = open(f"{work}/daemon.log", "w")
daemon = subprocess.Popen([binary, "serve", "--config", f"{work}/rampart.yaml"], stdout=log, stderr=log)
try:
    wait_ready(daemon, work)

    def call(method, path, body=None, content_type="application/json"):
        return api(token, method, path, body, content_type)

    body = ("\n".join(addresses) + "\n").encode()
    last = addresses[-1]
    start = time.monotonic()
    wal = f"{work}/state/rampart.sqlite-wal"
    wal_before = os.path.getsize(wal) if os.path.exists(wal) else 0
    status, answer = call("POST", "/v1/indicators?confidence=90", body, "text/plain")
    acked = time.monotonic() - start
    # The log is checkpointed (and then reused from its start) only after 500 ms without writes,
    # so right after the answer its growth is what the bulk request wrote.
    wal_bytes = os.path.getsize(wal) - wal_before
    probe = ElementProbe("rampart", "in4")
    while not probe.contains(last):
        time.sleep(0.001)
    bulk = time.monotonic() - start
    # Blocks reach the kernel in request order; the last address present means all are (checked).
    in_kernel = set_size("rampart", "in4")
    assert in_kernel == count, f"{in_kernel} elements in the kernel, {count} expected"
    accepted = json.loads(answer)["accepted"]
    def rss_mib():
        return int(next(l.split()[1] for l in open(f"/proc/{daemon.pid}/status") if l.startswith("VmRSS"))) / 1024
    peak = rss_mib()
    time.sleep(3)  # what stays resident once the load is over (freed heap is handed back after a bulk request)
    rss = rss_mib()
    print(f"bulk {count:,} addresses: nft -f baseline {baseline:.3f} s; rampart {bulk:.3f} s from the request to all in the kernel "
          f"(2xx after {acked:.3f} s, {accepted:,} accepted): ratio {bulk / baseline:.2f}")
    print(f"write-ahead log: {wal_bytes:,} bytes for {count:,} blocked items, {wal_bytes / count:.0f} B per item")
    print(f"daemon RSS with {count:,} active blocks: {rss:.0f} MiB 3 s after the load, {peak:.0f} MiB as the last element arrived "
          f"(target 64 MiB + 200 B per block = {64 + count * 200 / 2**20:.0f} MiB)")

    # 2. Latency: the probe polls the set for each new element.
    latencies = []
    for i in range(trials):
        value = f"11.{200 + i // 250}.{i % 250 + 1}.{(i * 7) % 250 + 1}"
        sent = time.monotonic()
        call("POST", "/v1/decisions", json.dumps({"value": value, "duration": "1h", "direction": "inbound"}).encode())
        acked = time.monotonic()
        arrived = acked
        while not probe.contains(value):
            arrived = time.monotonic()
            if arrived - acked > 2:
                sys.exit(f"{value} not in the kernel 2 s after the 2xx")
        latencies.append(((arrived - acked) * 1000, (arrived - sent) * 1000))

    def percentiles(values):
        values = sorted(values)
        return values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]

    (a50, a99), (r50, r99) = percentiles(l[0] for l in latencies), percentiles(l[1] for l in latencies)
    print(f"latency over {trials} single blocks (POST /v1/decisions, polled by netlink): from the 2xx p50 {a50:.2f} ms, "
          f"p99 {a99:.2f} ms (0: already in the kernel when the answer arrived); from the request p50 {r50:.2f} ms, p99 {r99:.2f} ms")
finally:
    daemon.terminate()
    daemon.wait()
