#!/usr/bin/env bash
# Service figures, release build, as root, in a network namespace of its own with the
# nftables backend: time from exec to READY=1 (sd_notify) with 1,000 playbooks and 100,000 active
# decisions (their reconcile into the kernel included), the daemon's idle RSS then, and the time
# from SIGTERM to exit while eight clients post indicators.
# Usage: Benchmarks/service.sh [FEED]   (default Benchmarks/fixtures/ipsum-10k.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
FEED=${1:-Benchmarks/fixtures/ipsum-10k.txt}
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace, nftables)" >&2; exit 2; }
[ -r "$FEED" ] || { echo "feed $FEED not found" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
NS=rampart-svc-$$
WORK=$(mktemp -d /tmp/rampart-svc-bench-XXXXXX)
ip netns add "$NS"
trap 'ip netns del "$NS"; rm -rf "$WORK"' EXIT
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 - "$BIN" "$(realpath "$FEED")" "$WORK" <<'PY'
import hashlib, json, os, random, signal, socket, subprocess, sys, threading, time, urllib.request

binary, feed, work = sys.argv[1:4]
token = "rmp_bench_token"
rng = random.Random(7)
addresses = [l.split()[0] for l in open(feed) if l.strip() and not l.startswith("#")][:100_000]

# 1,000 playbooks: one blocks every ipv4 (so the feed makes 100k decisions), the rest are
# networks and tags like an operator's.
os.makedirs(f"{work}/playbooks")
open(f"{work}/playbooks/all.yaml", "w").write("name: block-all\nmatch: {kind: ipv4}\nactions: [{block: {duration: 4h}}]\n")
for i in range(999):
    if i % 2:
        nets = ", ".join(f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.0.0/16" for _ in range(3))
        match = f"{{kind: [ipv4, cidr], value: {{cidr: [{nets}]}}}}"
    else:
        match = f"{{kind: ipv4, tags: {{any: [tag{i}]}}}}"
    open(f"{work}/playbooks/p{i:04}.yaml", "w").write(f"name: p{i:04}\nmatch: {match}\nactions: [{{block: {{duration: 1h}}}}]\n")
open(f"{work}/rampart.yaml", "w").write(f"""node: {{id: bench}}
listen: 127.0.0.1:8476
state_dir: state
playbooks: playbooks
firewall: {{backend: nftables}}
http: {{max_body: 64MiB}}
api_keys:
  - {{name: bench, roles: [ingest, read, admin], token_sha256: "{hashlib.sha256(token.encode()).hexdigest()}"}}
log: {{level: warning}}
""")

notify_path = f"{work}/notify"
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)

def start():
    started = time.monotonic()
    log = open(f"{work}/daemon.log", "a")
    daemon = subprocess.Popen([binary, "serve", "--config", f"{work}/rampart.yaml"], stdout=log, stderr=log,
                              env={**os.environ, "NOTIFY_SOCKET": notify_path})
    notify.settimeout(120)
    while True:
        message = notify.recv(4096).decode()
        if message.startswith("READY=1"):
            return daemon, time.monotonic() - started

def post(body):
    request = urllib.request.Request("http://127.0.0.1:8476/v1/indicators", data=body.encode(), method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "text/plain")
    with urllib.request.urlopen(request, timeout=600) as answer:
        return answer.status

daemon, _ = start()
assert post("\n".join(addresses) + "\n") == 202
daemon.send_signal(signal.SIGTERM)
daemon.wait()

daemon, ready = start()
elements = json.loads(subprocess.run(["nft", "-j", "list", "set", "inet", "rampart", "in4"], capture_output=True, text=True).stdout)
count = sum(len(o["set"].get("elem", [])) for o in elements["nftables"] if "set" in o)
time.sleep(2)
rss = next(l.split()[1] for l in open(f"/proc/{daemon.pid}/status") if l.startswith("VmRSS"))
print(f"start to READY=1 with 1,000 playbooks and {count:,} blocks in the kernel after it: {ready:.2f} s")
print(f"idle RSS then: {int(rss) / 1024:.0f} MiB")

stop = threading.Event()
def client(n):
    round = 0
    while not stop.is_set():
        body = "\n".join(f"{30 + n}.{round // 200 % 256}.{round % 200}.{i + 1}" for i in range(100))
        try:
            post(body)
        except Exception:
            return
        round += 1
threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
for t in threads: t.start()
time.sleep(3)
signalled = time.monotonic()
daemon.send_signal(signal.SIGTERM)
code = daemon.wait()
took = time.monotonic() - signalled
stop.set()
for t in threads: t.join()
print(f"SIGTERM to exit under ingest load (8 clients, 100-line batches): {took * 1000:.0f} ms, exit status {code}")
PY
