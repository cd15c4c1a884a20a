"""Partition scenario of the mesh harness, run by Benchmarks/mesh/partition.sh (release build), as root.

NODES real daemons in a full mesh (each shares what it originates with all, blocks what it is
suggested), on the loopback of a network namespace of the script's own, every peer entry with
`dead_letter_after: DEAD` (shorter than the partition, so that dead letters happen) and the
default `resync: 1h`:

1. Before: WARM items at random nodes, until every node holds each. The last node's state is
   copied (stopped for the copy): the backup of step 4.
2. Partition: every link between the two halves points where nothing listens (a reload on each
   node). For MINUTES, ITEMS items a side are posted at random nodes of that side (batches of 50),
   one TLP:RED item at a node of each side, and REVOKED of the items of step 1 are revoked at
   their origins.
3. Heal: the links are restored (a reload on each node). Reports the time until every node
   holds the same active shared state (its own TLP:RED item aside), duplicate effects (an item
   applied twice at a node, two decisions in force for one value: must be 0), TLP:RED items
   outside their origin (must be 0), and what the syncs queued again.
4. Restored backup: the last node is stopped, its state replaced with the copy of step 1, and
   started; reports the time from its start until it holds that state again. It originates
   nothing in the run: what a node originated after its backup is not sent back to it (nothing
   returns to a node in an item's path).
"""
import os, random, shutil, signal, sqlite3, sys, tempfile, threading, time, atexit, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchdaemon import Nodes, fresh_addresses, in_own_namespace

binary, count, minutes = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
per_side, dead = int(sys.argv[4]), sys.argv[5]
warm, revoked_count = int(sys.argv[6]), int(sys.argv[7])
in_own_namespace("the partition scenario")

work = tempfile.mkdtemp(prefix="rampart-partition-")
atexit.register(shutil.rmtree, work, True)
nodes = Nodes(binary, work, "rmp_bench_token")
names = [f"n{i}" for i in range(1, count + 1)]
port = {name: 9100 + i for i, name in enumerate(names, 1)}
keys = {name: nodes.keygen(name) for name in names}
halves = (names[:count // 2], names[count // 2:])
side = {name: 0 if name in halves[0] else 1 for name in names}
nowhere = 9099  # nothing listens there
playbook = ("name: share\nmatch: {kind: [ipv4]}\nactions:\n  - block: {duration: 4h}\n"
            "  - propagate: {to: all, suggest: [block]}\n")


def configure(cut):
    for name in names:
        peers = []
        for other in names:
            if other == name:
                continue
            target = nowhere if cut and side[name] != side[other] else port[other]
            peers.append(f'  - {{name: {other}, url: "http://127.0.0.1:{target}/v1/peer/events", public_key: {keys[other]}, '
                         f'accept: {{suggested: [block]}}, dead_letter_after: {dead}}}\n')
        nodes.configure(name, port[name], peers, playbook)


def reload(cut):
    """Reloads every node with the links cut (or not); returns once each has them in force."""
    configure(cut)
    for name in names:
        nodes.processes[name].send_signal(signal.SIGHUP)
    for name in names:
        deadline = time.time() + 60
        while True:
            peers = nodes.api(name, "/v1/peers")["peers"]
            cut_here = sum(1 for p in peers if f":{nowhere}/" in p["url"])
            if cut_here == (len(halves[1 - side[name]]) if cut else 0):
                break
            if time.time() > deadline:
                sys.exit(f"{name} did not reload")
            time.sleep(0.2)


def active(name):
    db = sqlite3.connect(f"file:{work}/{name}/state/rampart.sqlite?mode=ro", uri=True)
    try:
        return {value for (value,) in db.execute("SELECT value FROM decision WHERE state = 'active'")}
    finally:
        db.close()


def effects(name):
    """(items applied twice, values with two decisions in force, TLP:RED items from elsewhere)."""
    db = sqlite3.connect(f"file:{work}/{name}/state/rampart.sqlite?mode=ro", uri=True)
    try:
        twice = db.execute("SELECT count(*) FROM (SELECT subject FROM audit WHERE event = 'item.accepted' "
                           "GROUP BY subject HAVING count(*) > 1)").fetchone()[0]
        doubled = db.execute("SELECT count(*) FROM (SELECT value FROM decision WHERE state = 'active' "
                             "GROUP BY value HAVING count(*) > 1)").fetchone()[0]
        red = db.execute("SELECT count(*) FROM audit WHERE event = 'item.accepted' AND detail LIKE '%\"via\":\"peer:%' "
                         "AND detail LIKE '%\"tlp\":\"red\"%'").fetchone()[0]
        return twice, doubled, red
    finally:
        db.close()


def post(name, values, query=""):
    nodes.api(name, f"/v1/indicators{query}", "\n".join(values).encode())


def wait_until(check, limit):
    began = time.time()
    while not check():
        if time.time() - began > limit:
            return None
        time.sleep(0.5)
    return time.time() - began


configure(False)
for name in names:
    nodes.start(name)
addresses = fresh_addresses(0x0F000000)
origin_of = {}
restored = names[-1]
origins = (halves[0], [name for name in halves[1] if name != restored])
for n in range(0, warm, 50):
    origin = random.choice(origins[0] + origins[1])
    values = [next(addresses) for _ in range(min(50, warm - n))]
    post(origin, values)
    origin_of.update({v: origin for v in values})
before = set(origin_of)
if wait_until(lambda: all(active(name) == before for name in names), 300) is None:
    sys.exit("the mesh did not take the first items")
nodes.processes[restored].terminate()
nodes.processes[restored].wait()
shutil.copytree(f"{work}/{restored}/state", f"{work}/backup")
nodes.start(restored)
print(f"{count} nodes, full mesh, dead_letter_after {dead}: {warm} items everywhere; backup of {restored} taken")

reload(True)
cut_at = time.time()
sides_values = ([], [])
red = [next(addresses), next(addresses)]
post(halves[0][0], [red[0]], "?tlp=red")
post(halves[1][0], [red[1]], "?tlp=red")
revoked = random.sample(sorted(before), revoked_count)


def inject(s):
    batches = per_side // 50
    for b in range(batches):
        time.sleep(max(0, cut_at + b * minutes * 60 / batches - time.time()))
        values = [next(addresses) for _ in range(50)]
        post(random.choice(origins[s]), values)
        sides_values[s].extend(values)


injectors = [threading.Thread(target=inject, args=(s,)) for s in (0, 1)]
for t in injectors:
    t.start()
for value in revoked:
    request = urllib.request.Request(f"http://127.0.0.1:{port[origin_of[value]]}/v1/decisions?value={value}", method="DELETE")
    request.add_header("Authorization", "Bearer rmp_bench_token")
    urllib.request.urlopen(request, timeout=30).read()
for t in injectors:
    t.join()
time.sleep(max(0, cut_at + minutes * 60 - time.time()))
dead_letters = sum(p["dead_letters"] for name in names for p in nodes.api(name, "/v1/peers")["peers"])
print(f"partition {len(halves[0])} | {len(halves[1])} for {(time.time() - cut_at) / 60:.1f} min: {len(sides_values[0])} and "
      f"{len(sides_values[1])} items posted, {revoked_count} revoked, one TLP:RED item a side; {dead_letters} dead letters")

expected = (before - set(revoked)) | set(sides_values[0]) | set(sides_values[1])
own_red = {name: ({red[0]} if name == halves[0][0] else {red[1]} if name == halves[1][0] else set()) for name in names}
reload(False)
converged = wait_until(lambda: all(active(name) == expected | own_red[name] for name in names), 600)
twice, doubled, red_elsewhere = (sum(e[i] for e in map(effects, names)) for i in range(3))
repaired = sum(p["repaired"] for name in names for p in nodes.api(name, "/v1/peers")["peers"])
load = os.getloadavg()
if converged is None:
    worst = max(names, key=lambda name: len(active(name) ^ (expected | own_red[name])))
    print(f"  NOT converged within 600 s after the heal: {worst} differs by {len(active(worst) ^ (expected | own_red[worst]))} values")
else:
    print(f"  healed: every node holds the same {len(expected)} active shared values {converged:.1f} s after the last node reloaded")
print(f"  duplicate effects: {twice} items applied twice, {doubled} values with two decisions in force; "
      f"TLP:RED items outside their origin: {red_elsewhere}; entries queued again by syncs: {repaired}")
print(f"  load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")

nodes.processes[restored].terminate()
nodes.processes[restored].wait()
shutil.rmtree(f"{work}/{restored}/state")
shutil.copytree(f"{work}/backup", f"{work}/{restored}/state")
lacking = len(expected ^ active(restored))
began = time.time()
nodes.start(restored)
caught_up = wait_until(lambda: active(restored) == expected, 300)
ready = nodes.startups[-1]
if caught_up is None:
    print(f"  {restored} restored from the backup ({lacking} values behind): NOT caught up within 300 s")
else:
    print(f"  {restored} restored from the backup ({lacking} values behind): ready in {ready:.1f} s, "
          f"holding the mesh's state {time.time() - began:.1f} s after its start")
ok = converged is not None and caught_up is not None and twice == doubled == red_elsewhere == 0
sys.exit(0 if ok else 1)
