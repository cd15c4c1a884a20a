"""kill -9 campaign, run by Benchmarks/killcampaign.sh (release build) and CampaignTests (debug).

As root, in a network namespace of its own (the script creates it and runs itself inside; the
host's ruleset is never touched), two nodes on the namespace's loopback: A (port 8475) enforces
through nftables, B (port 8481) through the dry-run backend. Each blocks every IPv4 indicator
(inbound, 4 h) and shares it with the other, suggesting a block, which the other accepts. Eight
clients post batches of 20 new indicators, 0.1 s apart, six to A and two to B, each batch with an
Idempotency-Key and retried with it until acknowledged.

Each round, at a random moment (0.2 to 2 s in), A is killed with SIGKILL (every fourth round B
too) while ingest, propagation both ways and firewall batches are under way, and started again.
After each restart the clients pause and A's kernel set must equal its store's active blocks
within 5 s. At the end, with both outboxes drained: each node holds every acknowledged item,
none twice, one active block per value; `rampart audit verify` passes and `PRAGMA
integrity_check` is ok on both.
"""
import atexit, json, random, shutil, sqlite3, subprocess, sys, tempfile, threading, time, urllib.request, uuid

from benchdaemon import Nodes, fresh_addresses, in_own_namespace

binary, rounds = sys.argv[1], int(sys.argv[2])

if shutil.which("nft") is None:
    sys.exit("the kill campaign needs nft (nftables)")
in_own_namespace("the kill campaign")

work = tempfile.mkdtemp(prefix="rampart-kill-campaign-")
atexit.register(shutil.rmtree, work, True)
nodes = Nodes(binary, work, "rmp_bench_token")
keys = {name: nodes.keygen(name) for name in ("a", "b")}
playbook = "name: block-and-share\nmatch: {kind: [ipv4]}\nactions:\n  - block: {duration: 4h, direction: inbound}\n  - propagate: {to: all, suggest: [block]}\n"
for name, port, other, other_port, backend in (("a", 8475, "b", 8481, "nftables"), ("b", 8481, "a", 8475, "dry-run")):
    nodes.configure(name, port, [f'  - {{name: {other}, url: "http://127.0.0.1:{other_port}/v1/peer/events", public_key: {keys[other]}, accept: {{suggested: [block]}}}}\n'],
                    playbook, firewall=backend)
for name in ("a", "b"):
    nodes.start(name)

acknowledged, lock = {}, threading.Lock()  # id -> value, from either node's answers
addresses = fresh_addresses(0x0C000000)
running = threading.Event()  # cleared: clients finish their batch in flight and wait
running.set()
idle = threading.Semaphore(0)  # a client released once per pause when it has nothing in flight


def client(node, stop):
    batch, key = None, None
    while not stop.is_set():
        if batch is None:
            if not running.is_set():
                idle.release()
                running.wait()
                continue
            with lock:
                batch, key = [next(addresses) for _ in range(20)], str(uuid.uuid4())
        request = urllib.request.Request(f"http://127.0.0.1:{nodes.ports[node]}/v1/indicators", data=("\n".join(batch) + "\n").encode(), method="POST")
        request.add_header("Authorization", f"Bearer {nodes.token}")
        request.add_header("Content-Type", "text/plain")
        request.add_header("Idempotency-Key", key)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                ids = json.loads(answer.read())["ids"]
            with lock:
                acknowledged.update(zip(ids, batch))
            batch = None
            time.sleep(0.1)  # about 1,500 items a second in all, so that 200 rounds' sets stay cheap to compare
        except Exception:
            time.sleep(0.05)  # the node is down or restarting: the same batch again, same key


def kernel():
    """The addresses in A's inbound IPv4 set."""
    out = subprocess.run(["nft", "-j", "list", "set", "inet", "rampart", "in4"], capture_output=True, text=True)
    if out.returncode != 0:
        return set()
    elements = [e for o in json.loads(out.stdout)["nftables"] if "set" in o for e in o["set"].get("elem", [])]
    return {e["elem"]["val"] if isinstance(e, dict) else e for e in elements}


def store(name, query):
    db = sqlite3.connect(f"file:{work}/{name}/state/rampart.sqlite?mode=ro", uri=True)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def active_blocks(name):
    return {row[0] for row in store(name, "SELECT value FROM decision WHERE state = 'active'")}


def drained():
    """Neither node has anything left to deliver to the other."""
    return all(p["queue_depth"] == 0 for name in ("a", "b") for p in nodes.api(name, "/v1/peers")["peers"])


stop = threading.Event()
clients = [threading.Thread(target=client, args=("a" if i < 6 else "b", stop), daemon=True) for i in range(8)]
for c in clients:
    c.start()
started, reconcile = time.time(), []
for round in range(rounds):
    time.sleep(random.uniform(0.2, 2.0))
    victims = ["a", "b"] if round % 4 == 3 else ["a"]
    for name in victims:
        nodes.processes[name].kill()
        nodes.processes[name].wait()
    for name in reversed(victims):
        nodes.start(name, within=120)
    ready = time.monotonic()
    running.clear()
    for _ in clients:
        idle.acquire()
    while True:
        probed = time.monotonic()
        # B's queue for A may still be arriving: the kernel must hold what the store held before
        # it was read, and nothing the store did not hold after.
        before, now = active_blocks("a"), kernel()
        missing, extra = before - now, now - active_blocks("a")
        if not missing and not extra:
            break
        if time.monotonic() - ready > 5:
            sys.exit(f"round {round + 1}: A's kernel set differs from its store 5 s after the restart: {len(missing)} blocks missing"
                     f" (e.g. {sorted(missing)[:3]}), {len(extra)} extra (e.g. {sorted(extra)[:3]})")
        time.sleep(0.1)
    reconcile.append(probed - ready)
    if (round + 1) % 25 == 0:
        print(f"  {round + 1} rounds, {len(acknowledged)} items acknowledged", flush=True)
    running.set()
stop.set()
running.set()
for c in clients:
    c.join()
for _ in range(600):
    if drained():
        break
    time.sleep(0.1)
else:
    sys.exit("the outboxes did not drain within a minute")
elapsed = time.time() - started
in_kernel = kernel() == active_blocks("a")
for process in nodes.processes.values():
    process.terminate()
    process.wait()

values = set(acknowledged.values())
failures, report = [], []
for name in ("a", "b"):
    ids = {row[0] for row in store(name, "SELECT id FROM item")}
    lost = sum(1 for id in acknowledged if id not in ids)
    twice = store(name, "SELECT count(*) FROM (SELECT json_extract(a.detail, '$.indicator.value') v FROM item i JOIN audit a ON a.seq = i.audit_seq GROUP BY v HAVING count(*) > 1)")[0][0]
    blocks = store(name, "SELECT value, count(*) FROM decision WHERE state = 'active' GROUP BY value")
    blocked_twice = sum(1 for _, n in blocks if n > 1)
    unblocked = len(values - {v for v, _ in blocks})
    integrity = store(name, "PRAGMA integrity_check")[0][0]
    verify = subprocess.run([binary, "audit", "verify", "--config", f"{work}/{name}/rampart.yaml"], capture_output=True, text=True)
    report.append(f"  {name.upper()}: {len(ids)} items stored, {lost} lost, {twice} values stored twice, {len(blocks)} values blocked,"
                  f" {unblocked} acknowledged values unblocked, {blocked_twice} blocked twice; integrity_check {integrity};"
                  f" audit verify: {verify.stdout.strip() or verify.stderr.strip()}")
    if lost or twice or unblocked or blocked_twice or integrity != "ok" or verify.returncode != 0:
        failures.append(name)
print(f"{rounds} kill -9 rounds in {elapsed:.0f} s (A every round, B every fourth) with 8 clients: {len(acknowledged)} items acknowledged;"
      f" A's kernel equal to its store {max(reconcile):.2f} s after a restart at most (median {sorted(reconcile)[len(reconcile) // 2]:.2f} s),"
      f" and at the end: {in_kernel}; a restart ready within {max(nodes.startups):.1f} s at most")
print("\n".join(report))
sys.exit(1 if failures or not in_kernel else 0)
