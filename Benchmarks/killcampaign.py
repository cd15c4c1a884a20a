"""kill -9 campaign, run by Benchmarks/killcampaign.sh (release build).

Each round: the daemon (one state directory for the whole campaign, a block playbook) takes
batches of 100 new IPv4 indicators from 8 clients, each batch sent with an Idempotency-Key and
retried with it until acknowledged; at a random moment (0.2 to 2 s in) it is killed with SIGKILL
and started again. At the end, with the daemon stopped: every id an answer acknowledged is stored
(lost: none may be missing), no value is stored twice (duplicates), and `rampart audit verify`
passes; after each restart the daemon must become ready.
"""
import atexit, json, os, random, shutil, signal, sqlite3, subprocess, sys, tempfile, threading, time, urllib.error, urllib.request, uuid

from benchdaemon import URL, start_daemon

binary, rounds = sys.argv[1], int(sys.argv[2])
work = tempfile.mkdtemp(prefix="rampart-kill-campaign-")
atexit.register(shutil.rmtree, work, True)
token = "rmp_bench_token"
os.makedirs(f"{work}/playbooks")
open(f"{work}/playbooks/block.yaml", "w").write("name: block-all\nmatch: {kind: ipv4}\nactions: [{block: {duration: 4h}}]\n")
acknowledged, lock = {}, threading.Lock()
counter = [0x0C000000]


def next_batch():
    with lock:
        values = []
        while len(values) < 100:
            counter[0] += 1
            n = counter[0]
            if n & 255 not in (0, 255):
                values.append(f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}")
        return values


def client(stop):
    batch, key = None, None
    while not stop.is_set():
        if batch is None:
            batch, key = next_batch(), str(uuid.uuid4())
        request = urllib.request.Request(URL + "/v1/indicators", data=("\n".join(batch) + "\n").encode(), method="POST")
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "text/plain")
        request.add_header("Idempotency-Key", key)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                ids = json.loads(answer.read())["ids"]
            with lock:
                for value, id in zip(batch, ids):
                    acknowledged[id] = value
            batch = None
        except Exception:
            time.sleep(0.05)  # the daemon is down or restarting: the same batch again, same key


def start():
    # One state directory for the whole campaign: each restart recovers what the kill left.
    return start_daemon(binary, work, token, fresh=False)


stop = threading.Event()
daemon = start()
clients = [threading.Thread(target=client, args=(stop,)) for _ in range(8)]
for c in clients:
    c.start()
started = time.time()
for round in range(rounds):
    time.sleep(random.uniform(0.2, 2.0))
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    daemon = start()
stop.set()
for c in clients:
    c.join()
daemon.terminate()
daemon.wait()
elapsed = time.time() - started

db = sqlite3.connect(f"{work}/state/rampart.sqlite")
stored = {row[0] for row in db.execute("SELECT id FROM item")}
lost = [id for id in acknowledged if id not in stored]
duplicates = db.execute(
    "SELECT count(*) FROM (SELECT json_extract(a.detail, '$.indicator.value') v FROM item i JOIN audit a ON a.seq = i.audit_seq GROUP BY v HAVING count(*) > 1)"
).fetchone()[0]
decisions = db.execute("SELECT count(*) FROM decision WHERE state = 'active'").fetchone()[0]
db.close()
verify = subprocess.run([binary, "audit", "verify", "--config", f"{work}/rampart.yaml"], capture_output=True, text=True)
print(f"{rounds} kill -9 rounds in {elapsed:.0f} s with 8 clients: {len(acknowledged)} items acknowledged, {len(stored)} stored,"
      f" {len(lost)} lost, {duplicates} values stored twice, {decisions} blocks in force; audit verify: {verify.stdout.strip() or verify.stderr.strip()}")
sys.exit(1 if lost or duplicates or verify.returncode != 0 else 0)
