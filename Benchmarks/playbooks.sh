#!/usr/bin/env bash
# Playbook benchmarks, release build, in one session:
#   1. a feed posted as text/plain with no playbooks, then with 100 generated playbooks loaded,
#      then with 100 of which half have no condition the index can use (only `from`, `severity`,
#      `confidence` or `not`), so that every item is evaluated against them (indicators/s and
#      the ratios);
#   2. a reload of 1,000 generated playbooks (POST /v1/reload), timed, while the feed is posted:
#      both finish, and the ingest answer shows it went on during the reload.
#   With ACTIONS=none the playbooks have no actions: what matching costs, without the blocks
#   the matches create (about one item in eight), which the writer pays for.
# Usage: [RUNS=5] [ACTIONS=none] Benchmarks/playbooks.sh [FEED]   (needs curl and python3: deploy/setup-dev.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
FEED=${1:-Benchmarks/fixtures/ipsum-10k.txt}
RUNS=${RUNS:-5}
[ -r "$FEED" ] || { echo "feed $FEED not found; pass a file of one IP a line" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
TOKEN=rmp_bench_token
HASH=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
LINES=$(grep -cv '^#' "$FEED" || true)

generate() { # COUNT DIR [unindexed]: playbooks like an operator's: networks, suffixes, tags, some regex
    rm -rf "$2"; mkdir -p "$2"
    ACTIONS=${ACTIONS:-} python3 - "$1" "$2" "$FEED" "${3:-}" <<'PY'
import os, random, sys
count, out, feed, unindexed = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "unindexed"
rng = random.Random(42)
ips = [l.split()[0] for l in open(feed) if l.strip() and not l.startswith("#")]
for i in range(count):
    r = rng.random()
    if unindexed and i % 2 == 0:
        # Nothing the index can use: every ipv4 item is evaluated against it (and few match).
        match = "  kind: ipv4\n" + rng.choice([
            f"  from: [api:bench]\n  confidence: {{min: {rng.randint(61, 100)}}}\n",
            "  severity: {min: high}\n",
            "  not: {tlp: [amber]}\n",
            f"  confidence: {{max: {rng.randint(0, 59)}}}\n",
        ])
        actions = "  - block: {duration: 1h}\n"
    elif r < 0.6:
        # networks: /16s around addresses of the feed, so some playbooks match
        nets = sorted({".".join(rng.choice(ips).split(".")[:2]) + ".0.0/16" for _ in range(rng.randint(1, 3))})
        match = f"  kind: [ipv4, cidr]\n  confidence: {{min: {rng.randint(0, 60)}}}\n  value: {{cidr: [{', '.join(nets)}]}}\n"
        actions = "  - block: {duration: 1h, direction: inbound}\n"
    elif r < 0.8:
        match = f"  kind: ipv4\n  tags: {{any: [tag{rng.randint(0, 300)}, tag{rng.randint(0, 300)}]}}\n"
        actions = "  - block: {duration: 4h}\n"
    elif r < 0.95:
        match = f"  kind: [domain, url]\n  value: {{suffix: [site{rng.randint(0, 5000)}.com]}}\n"
        actions = ""
    else:
        match = f"  kind: domain\n  value: {{suffix: [site{rng.randint(0, 5000)}.top], regex: '^[a-z0-9]{{12,}}\\\\.top$'}}\n"
        actions = ""
    with open(f"{out}/p{i:05d}.yaml", "w") as f:
        if os.environ.get("ACTIONS") == "none":
            actions = ""
        actions = actions or "  []\n"
        f.write(f"name: p{i:05d}\npriority: {rng.randint(1, 1000)}\nmatch:\n{match}actions:\n{actions}")
PY
}

start() { # PLAYBOOKS_DIR: a fresh daemon on both cores
    rm -rf "$WORK/state"
    cat >"$WORK/rampart.yaml" <<YAML
node: {id: bench}
listen: 127.0.0.1:8474
state_dir: state
playbooks: $1
firewall: {backend: dry-run}
api_keys:
  - {name: bench, roles: [ingest, read, admin], token_sha256: "$HASH"}
log: {level: warning}
YAML
    "$BIN/rampart" serve --config "$WORK/rampart.yaml" 2>>"$WORK/daemon.log" &
    PID=$!
    for _ in $(seq 400); do curl -sf -o /dev/null http://127.0.0.1:8474/readyz && return; sleep 0.05; done
    echo "daemon did not start:"; cat "$WORK/daemon.log"; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
post() { curl -sS -o "$WORK/answer.json" -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/plain' \
    --data-binary @"$FEED" 'http://127.0.0.1:8474/v1/indicators?source=ipsum&confidence=60'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

generate 100 "$WORK/p100"
generate 100 "$WORK/p100u" unindexed
generate 1000 "$WORK/p1000"
mkdir -p "$WORK/none"
echo "== 1. $FEED ($LINES lines) as text/plain, fresh daemon each run, $RUNS alternating runs"
: >"$WORK/t0"; : >"$WORK/t100"; : >"$WORK/t100u"
for run in $(seq $RUNS); do
    start "$WORK/none"; post >>"$WORK/t0"; stop
    start "$WORK/p100"; post >>"$WORK/t100"
    DECISIONS=$(sqlite3 "$WORK/state/rampart.sqlite" "SELECT COUNT(*) FROM decision")
    stop
    start "$WORK/p100u"; post >>"$WORK/t100u"
    DECISIONS_U=$(sqlite3 "$WORK/state/rampart.sqlite" "SELECT COUNT(*) FROM decision")
    stop
done
T0=$(median <"$WORK/t0"); T100=$(median <"$WORK/t100"); T100U=$(median <"$WORK/t100u")
python3 -c "print(f'no playbooks:  {$T0:.3f} s = {$LINES/$T0:,.0f} indicators/s  runs: ' + ' '.join(open('$WORK/t0').read().split()))"
python3 -c "print(f'100 playbooks: {$T100:.3f} s = {$LINES/$T100:,.0f} indicators/s  runs: ' + ' '.join(open('$WORK/t100').read().split()) + '  ($DECISIONS decisions created)')"
python3 -c "print(f'100, half unindexed: {$T100U:.3f} s = {$LINES/$T100U:,.0f} indicators/s  runs: ' + ' '.join(open('$WORK/t100u').read().split()) + '  ($DECISIONS_U decisions created)')"
python3 - "$WORK/t0" "$WORK/t100" "$WORK/t100u" <<'PY'
import statistics, sys
t0, t100, t100u = ([float(x) for x in open(f).read().split()] for f in sys.argv[1:])
# Each run with playbooks follows one without: the ratio of each pair is measured under the same
# machine conditions, so their median is the figure (this VM's speed drifts between pairs).
for name, runs in (("100 playbooks", t100), ("100, half unindexed", t100u)):
    pairs = [a / b for a, b in zip(t0, runs)]
    print(f"ratio, {name}: {statistics.median(t0) / statistics.median(runs):.2f} of the rate without playbooks (medians); "
          f"per pair {' '.join(f'{p:.2f}' for p in pairs)}, median {statistics.median(pairs):.2f}")
PY

echo "== 2. reload of 1,000 playbooks while the feed is posted"
start "$WORK/p100"
sed -i "s|playbooks: .*|playbooks: $WORK/p1000|" "$WORK/rampart.yaml"
( post >"$WORK/ingest-time" ) &
INGEST=$!
sleep 0.1
RELOAD=$(curl -sS -o "$WORK/reload.json" -w '%{time_total}' -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8474/v1/reload)
wait $INGEST
python3 -c "
import json
r = json.load(open('$WORK/reload.json')); a = json.load(open('$WORK/answer.json'))
print(f'reload: {$RELOAD:.3f} s, {r[\"playbooks\"]} playbooks in force')
print(f'ingest during it: {open(\"$WORK/ingest-time\").read().strip()} s, {a[\"accepted\"]:,} accepted')"
for _ in 1 2 3; do
    curl -sS -o "$WORK/reload.json" -w 'reload again: %{time_total} s\n' -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8474/v1/reload
done
stop
