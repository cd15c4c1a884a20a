"""Mesh harness, run by Benchmarks/mesh/mesh.sh (release build), as root.

Starts NODES real `rampart serve` processes on the loopback of a network namespace of its own
(ports 9101 on; generated keys and configurations, dry-run firewalls), joined in a TOPOLOGY:

- full: every node peers with every other; each shares what it originates with all.
- hub: node 1 is the hub; every other node peers with it alone; the hub relays to all.
- tiers: HUBS hubs in a full mesh; every other node hangs off one hub (round robin). A hub
  relays what its own nodes send to the other hubs and its own nodes, and what another hub sends
  to its own nodes only.

With WHERE `namespaces`, each node runs in a network namespace of its own instead (198.18.2.N,
port 8470, veth pairs on a bridge in the script's namespace) and enforces with nftables; time to
protect then also runs to the element in the last node's kernel set (the batch that added it:
the decision's expiry less the element's timeout).

Every node blocks what it is suggested and accepts blocks from its peers. Items are injected
one at a time at RATE a second for SECONDS, each at a random node (POST /v1/indicators, one new
IPv4 address). Reports, once every node holds every item:
- time to protect: from the origin's 2xx to the block being decided at the last node (the
  decision's created_at, a few ms before its commit), p50, p99 and at most;
- messages per item (peer deliveries, from each node's /metrics) and bytes per item (everything
  the namespace's loopback carried over the run, or the nodes' veths, API requests included);
- CPU seconds and RSS per node (mean and at most), and the machine's load average.
"""
import os, random, re, sqlite3, statistics, subprocess, sys, tempfile, threading, time, shutil, atexit, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchdaemon import Nodes, fresh_addresses, in_own_namespace

binary, count, topology = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rate, seconds, hubs = float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]) if len(sys.argv) > 6 else 5
kernels = (sys.argv[7] if len(sys.argv) > 7 else "loopback") == "namespaces"
if topology not in ("full", "hub", "tiers"):
    sys.exit(f"unknown topology {topology}: full, hub or tiers")
if kernels and count > 250:
    sys.exit("at most 250 nodes in namespaces (198.18.2.0/24)")
in_own_namespace("the mesh harness")

work = tempfile.mkdtemp(prefix="rampart-mesh-")
atexit.register(shutil.rmtree, work, True)
nodes = Nodes(binary, work, "rmp_bench_token")
names = [f"n{i}" for i in range(1, count + 1)]
port = {name: 8470 if kernels else 9100 + i for i, name in enumerate(names, 1)}
host = {name: f"198.18.2.{i}" if kernels else "127.0.0.1" for i, name in enumerate(names, 1)}
namespace = {name: f"rampart-mesh-{os.getpid()}-{name}" if kernels else None for name in names}
keys = {name: nodes.keygen(name) for name in names}


def ip(*arguments):
    subprocess.run(["ip", *arguments], check=True)


if kernels:
    # A bridge here, and a veth pair into it from each node's namespace.
    ip("link", "add", "br0", "type", "bridge")
    ip("addr", "add", "198.18.2.254/24", "dev", "br0")
    ip("link", "set", "br0", "up")
    for i, name in enumerate(names, 1):
        atexit.register(subprocess.run, ["ip", "netns", "del", namespace[name]])
        ip("netns", "add", namespace[name])
        ip("link", "add", f"v{i}", "netns", namespace[name], "type", "veth", "peer", "name", f"h{i}")
        ip("link", "set", f"h{i}", "master", "br0", "up")
        ip("-n", namespace[name], "addr", "add", f"{host[name]}/24", "dev", f"v{i}")
        ip("-n", namespace[name], "link", "set", f"v{i}", "up")
        ip("-n", namespace[name], "link", "set", "lo", "up")

# Who peers with whom, and which nodes relay.
if topology == "full":
    hub_of, links = {}, {name: [other for other in names if other != name] for name in names}
elif topology == "hub":
    hub_of = {name: names[0] for name in names[1:]}
    links = {names[0]: names[1:], **{name: [names[0]] for name in names[1:]}}
else:
    hub_names = names[:hubs]
    hub_of = {name: hub_names[i % hubs] for i, name in enumerate(names[hubs:])}
    links = {hub: [h for h in hub_names if h != hub] + [n for n, h in hub_of.items() if h == hub] for hub in hub_names}
    links.update({name: [hub] for name, hub in hub_of.items()})


def share(name, relay=False):
    return (f"name: {name}\nmatch: {{kind: [ipv4]}}\nactions:\n  - block: {{duration: 4h}}\n"
            f"  - propagate: {{to: all, suggest: [block]{', relay: true' if relay else ''}}}\n")


def playbooks(name):
    """What the node shares: its own items with its peers; a hub also relays."""
    if topology == "full" or name in hub_of:
        return share("share")
    own = [n for n, h in hub_of.items() if h == name]
    if topology == "hub" or not own:
        return share("relay", relay=True)
    other_hubs = ", ".join(f"peer:{h}" for h in links[name] if h not in own)
    return [
        # From another hub: to this hub's own nodes only (the other hubs have it already).
        f"name: from-hubs\npriority: 10\nstop: true\nmatch: {{kind: [ipv4], from: [{other_hubs}]}}\n"
        f"actions:\n  - block: {{duration: 4h}}\n  - propagate: {{to: [{', '.join(own)}], suggest: [block], relay: true}}\n",
        share("relay", relay=True),
    ]


for name in names:
    peers = [f'  - {{name: {other}, url: "http://{host[other]}:{port[other]}/v1/peer/events", public_key: {keys[other]}, accept: {{suggested: [block]}}}}\n'
             for other in links[name]]
    nodes.configure(name, port[name], peers, playbooks(name), firewall="nftables" if kernels else "dry-run", host=host[name],
                    namespace=namespace[name])
for name in names:
    nodes.start(name)


def loopback_bytes():
    """What the loopback carried, or what the bridge delivered to the nodes' namespaces."""
    devices = [f"h{i}" for i in range(1, count + 1)] if kernels else ["lo"]
    return sum(int(open(f"/sys/class/net/{device}/statistics/tx_bytes").read()) for device in devices)


def cpu_seconds(name):
    fields = open(f"/proc/{nodes.processes[name].pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def deliveries(name):
    request = urllib.request.Request(f"http://{host[name]}:{port[name]}/metrics")
    text = urllib.request.urlopen(request, timeout=30).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("rampart_peer_deliveries_total{") and 'outcome="delivered"' in line)


acked, lock = {}, threading.Lock()  # value -> (origin, the 2xx's wall-clock time in ms)
addresses = fresh_addresses(0x0E000000)
cpu_before, bytes_before = {name: cpu_seconds(name) for name in names}, loopback_bytes()
total = int(rate * seconds)
started = time.time()


def inject(start):
    for n in range(start, total, 4):  # four injectors, so that one slow answer does not hold the rest back
        time.sleep(max(0, started + n / rate - time.time()))
        with lock:
            value = next(addresses)
        origin = random.choice(names)
        nodes.api(origin, "/v1/indicators", (value + "\n").encode())
        with lock:
            acked[value] = (origin, time.time() * 1000)


injectors = [threading.Thread(target=inject, args=(i,)) for i in range(4)]
for t in injectors:
    t.start()
for t in injectors:
    t.join()
late = time.time() - started - seconds

# Until every node holds every block (at most two minutes).
def decided(name):
    db = sqlite3.connect(f"file:{work}/{name}/state/rampart.sqlite?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT value, min(created_at) FROM decision GROUP BY value"))
    finally:
        db.close()


def milliseconds(text):
    """An nft duration (1h59m58s388ms) in ms."""
    units = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
    return sum(int(n) * units[unit] for n, unit in re.findall(r"(\d+)(ms|d|h|m|s)", text))


def enforced(name):
    """When each address went into the node's kernel set: its decision's expiry less its timeout."""
    listing = subprocess.run(["ip", "netns", "exec", namespace[name], "nft", "list", "set", "inet", "rampart", "in4"],
                             capture_output=True, text=True, check=True).stdout
    db = sqlite3.connect(f"file:{work}/{name}/state/rampart.sqlite?mode=ro", uri=True)
    try:
        expiry = dict(db.execute("SELECT value, max(expires_at) FROM decision WHERE state = 'active' GROUP BY value"))
    finally:
        db.close()
    return {value: expiry[value] - milliseconds(timeout)
            for value, timeout in re.findall(r"(\d+\.\d+\.\d+\.\d+) timeout (\S+?)(?: expires|,|\s*\})", listing) if value in expiry}


deadline = time.time() + 120
while True:
    held = {name: decided(name) if not kernels else enforced(name) for name in names}
    missing = sum(1 for name in names for value in acked if value not in held[name])
    if missing == 0 or time.time() > deadline:
        break
    time.sleep(1)
if kernels:
    decisions = {name: decided(name) for name in names}
bytes_used = loopback_bytes() - bytes_before
cpu = [cpu_seconds(name) - cpu_before[name] for name in names]
rss = [int(next(l for l in open(f"/proc/{nodes.processes[name].pid}/status") if l.startswith("VmRSS")).split()[1]) / 1024 for name in names]
messages = sum(deliveries(name) for name in names)
load = os.getloadavg()

def percentiles(held):
    times = sorted(max(held[name][value] for name in names if value in held[name]) - at for value, (origin, at) in acked.items())
    return times, lambda q: times[min(len(times) - 1, int(len(times) * q))]


protect, p = percentiles(decisions if kernels else held)
shape = {"full": "full mesh", "hub": "hub and spoke", "tiers": f"two tiers ({hubs} hubs)"}[topology]
print(f"{count} nodes, {shape}: {len(acked)} items at {rate:g}/s over {seconds:g} s (injection {late:+.1f} s late at its end)")
print(f"  time to protect (origin's 2xx to the last node's decision): p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, at most {protect[-1]:.0f} ms;"
      f" {missing} blocks missing at the end{' from a kernel' if kernels else ''}")
if kernels:
    in_kernel, k = percentiles(held)
    print(f"  to the element in the last node's kernel set (nftables): p50 {k(0.5):.0f} ms, p99 {k(0.99):.0f} ms, at most {in_kernel[-1]:.0f} ms")
print(f"  per item: {messages / len(acked):.1f} peer deliveries, {bytes_used / len(acked) / 1024:.1f} KiB on the {'veths' if kernels else 'loopback'}")
print(f"  per node: CPU {statistics.mean(cpu):.1f} s (at most {max(cpu):.1f}) over the run, RSS {statistics.mean(rss):.0f} MiB (at most {max(rss):.0f});"
      f" load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
sys.exit(0 if missing == 0 else 1)
