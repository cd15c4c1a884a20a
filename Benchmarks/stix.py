"""STIX ingest and TAXII paging benchmark, run by Benchmarks/stix.sh (release build).

1. COUNT IPv4 indicators as one STIX 2.1 bundle (indicator objects as the stix2 library writes
   them: id, created, modified, name, pattern, valid_from) and as NDJSON, each posted whole to a
   fresh daemon, alternating, RUNS times: indicators/s, medians, and the ratio STIX/NDJSON.
2. The collection of those COUNT objects paged through TAXII with limit=1000, following `next`:
   objects/s, and the daemon's RSS before and after.
"""
import atexit, base64, json, shutil, statistics, sys, tempfile, time, urllib.request, uuid

from benchdaemon import URL, call, feed_addresses, start_daemon

binary, feed, count, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
work = tempfile.mkdtemp(prefix="rampart-stix-bench-")
atexit.register(shutil.rmtree, work, True)
token = "rmp_bench_token"
collection = "365fed99-08fa-4dcd-a1b3-fb247eb41d01"
addresses = feed_addresses(feed, count, ipv4_only=True)

ndjson = "".join(json.dumps({"value": a, "source": "ipsum", "confidence": 60}) + "\n" for a in addresses).encode()
now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
bundle = json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [
    {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now, "modified": now,
     "name": f"ip {a}", "pattern": f"[ipv4-addr:value = '{a}']", "pattern_type": "stix", "valid_from": now,
     "confidence": 60} for a in addresses]}).encode()

daemon = None


def start():
    global daemon
    daemon = start_daemon(binary, work, token, f"""taxii:
  collections:
    - {{id: {collection}, title: bench, read: [bench], write: [bench]}}
""")


def stop():
    daemon.terminate()
    daemon.wait()


def post(body, content_type):
    started = time.perf_counter()
    status, answer = call(token, "POST", "/v1/indicators", body, content_type)
    elapsed = time.perf_counter() - started
    accepted = json.loads(answer)["accepted"]
    if accepted != count:
        sys.exit(f"{content_type}: {accepted} of {count} accepted")
    return count / elapsed


def rss():
    return int(next(l for l in open(f"/proc/{daemon.pid}/status") if l.startswith("VmRSS")).split()[1]) // 1024


rates = {"stix": [], "ndjson": []}
for run in range(runs):
    for kind, body, content_type in [("ndjson", ndjson, "application/x-ndjson"), ("stix", bundle, "application/stix+json")]:
        start()
        rates[kind].append(post(body, content_type))
        if kind == "ndjson" or run < runs - 1:
            stop()
print(f"1. {count} IPv4 indicators in one request, fresh daemon each run, {runs} alternating runs")
for kind in ["ndjson", "stix"]:
    print(f"   {kind:7s} median {statistics.median(rates[kind]):9.0f} indicators/s  runs: " + " ".join(f"{r:.0f}" for r in rates[kind]))
print(f"   ratio STIX/NDJSON (medians): {statistics.median(rates['stix']) / statistics.median(rates['ndjson']):.2f}")

# 2. The daemon of the last STIX run holds the collection.
auth = "Basic " + base64.b64encode(f"bench:{token}".encode()).decode()
before = rss()
seen, pages, next_token = 0, 0, None
started = time.perf_counter()
while True:
    query = "?limit=1000" + (f"&next={next_token}" if next_token else "")
    request = urllib.request.Request(f"{URL}/taxii2/api/collections/{collection}/objects/{query}")
    request.add_header("Authorization", auth)
    request.add_header("Accept", "application/taxii+json;version=2.1")
    envelope = json.loads(urllib.request.urlopen(request, timeout=600).read())
    seen += len(envelope.get("objects", []))
    pages += 1
    if not envelope.get("more"):
        break
    next_token = envelope["next"]
elapsed = time.perf_counter() - started
after = rss()
if seen != count:
    sys.exit(f"paged {seen} objects, expected {count}")
print(f"2. TAXII paging, limit=1000: {seen} objects in {pages} pages, {elapsed:.2f} s, {seen / elapsed:.0f} objects/s;"
      f" RSS {before} -> {after} MiB ({after - before:+d} MiB)")
stop()
