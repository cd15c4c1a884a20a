"""What one anti-entropy sync costs when nothing differs, by how much a peer was sent; run by
Benchmarks/synccost.sh (release build).

Two nodes on loopback (ports 9201 and 9202): A shares every item with B. For each size, A takes
items until B has taken that many in all; then the script, signing as B, asks A to sync (a
sync request that reciprocates, as a node just started sends). Reports the time until A's
`last_sync` in `GET /v1/peers` changes, and the CPU A and B spent over it, less their idle rate.
"""
import base64, json, os, sys, tempfile, shutil, atexit, time, urllib.request
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchdaemon import Nodes, fresh_addresses

binary, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
work = tempfile.mkdtemp(prefix="rampart-synccost-")
atexit.register(shutil.rmtree, work, True)
nodes = Nodes(binary, work, "rmp_bench_token")
keys = {name: nodes.keygen(name) for name in ("a", "b")}
port = {"a": 9201, "b": 9202}
playbook = "name: share\nmatch: {kind: [ipv4]}\nactions:\n  - block: {duration: 24h}\n  - propagate: {to: all}\n"
for name, other in (("a", "b"), ("b", "a")):
    peers = [f'  - {{name: {other}, url: "http://127.0.0.1:{port[other]}/v1/peer/events", public_key: {keys[other]}}}\n']
    nodes.configure(name, port[name], peers, playbook if name == "a" else "name: block\nmatch: {kind: [ipv4]}\nactions:\n  - block: {duration: 24h}\n")
nodes.start("a")
nodes.start("b")


def cpu(name):
    fields = open(f"/proc/{nodes.processes[name].pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def last_sync():
    peers = nodes.api("a", "/v1/peers")["peers"]
    return peers[0].get("last_sync"), peers[0]["queue_depth"]


def ask(name):
    """A sync request to `name`, signed as the other node, that asks it to sync back at once."""
    other = "b" if name == "a" else "a"
    seed = base64.b64decode(open(f"{work}/{other}.key").read().strip()[len("whsk_"):])
    body = json.dumps({"type": "rampart.sync.v1", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "data": {"node": other, "digests": ["0" * 16] * 256, "reciprocate": True}}).encode()
    webhook_id, stamp = f"msg_bench{time.time_ns()}", str(int(time.time()))
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(f"{webhook_id}.{stamp}.".encode() + body)
    request = urllib.request.Request(f"http://127.0.0.1:{port[name]}/v1/peer/events", data=body, method="POST", headers={
        "Content-Type": "application/json", "webhook-id": webhook_id, "webhook-timestamp": stamp,
        "webhook-signature": "v1a," + base64.b64encode(signature).decode()})
    urllib.request.urlopen(request, timeout=30).read()


addresses = fresh_addresses(0x10000000)
sent = 0
print("entries A queued for B | sync: seconds | CPU s at A, at B (over the sync, less their idle rate)")
for size in sizes:
    while sent < size:
        batch = min(100_000, size - sent)
        nodes.api("a", "/v1/indicators", "\n".join(next(addresses) for _ in range(batch)).encode())
        sent += batch
    while last_sync()[1] > 0:  # until B took everything
        time.sleep(0.5)
    previous = last_sync()[0]
    idle = (cpu("a"), cpu("b"))
    time.sleep(1)
    rate = (cpu("a") - idle[0], cpu("b") - idle[1])  # CPU a second at rest
    before, began = (cpu("a"), cpu("b")), time.time()
    ask("a")
    while last_sync()[0] == previous:
        time.sleep(0.02)
    took = time.time() - began
    spent = [cpu(n) - before[i] - rate[i] * took for i, n in enumerate(("a", "b"))]
    print(f"{size:>22,} | {took:13.2f} | {max(0, spent[0]):.2f}, {max(0, spent[1]):.2f}")
