#!/usr/bin/env bash
# Ingest benchmark. Builds release, then measures, in one session:
#   1. single-indicator POST (~300-byte JSON, keep-alive, wrk 64 connections) against
#      `rampart serve` and against the bare Hummingbird baseline (Benchmarks/Baseline), as a ratio;
#   2. a 120k-line feed posted whole as text/plain and as NDJSON (indicators/s, end to end);
#   3. the same feed in 1,000-line requests from 8 concurrent clients;
#   4. the daemon's RSS after ingesting the feed.
# For the POST comparison both servers run pinned to CPU 0 and wrk to CPU 1; the batch runs
# give the daemon both cores (curl is idle while it works). Needs wrk, curl, python3, taskset
# (deploy/setup-dev.sh installs them). Usage: Benchmarks/ingest.sh [FEED] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
FEED=${1:-Benchmarks/fixtures/ipsum-10k.txt}
SECONDS_PER_RUN=${2:-10}
RUNS=3
OUT=Benchmarks/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
[ -r "$FEED" ] || { echo "feed $FEED not found; pass a file of one IP a line" >&2; exit 2; }
for tool in wrk curl python3 taskset; do
    command -v $tool >/dev/null || { echo "$tool is missing: run deploy/setup-dev.sh" >&2; exit 2; }
done

swift build -c release --product rampart >/dev/null
swift build -c release --product rampart-baseline >/dev/null
BIN=$(swift build -c release --show-bin-path)

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
TOKEN=rmp_bench_token
HASH=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)

start_rampart() { # CPUS: fresh state each time
    rm -rf "$WORK/state"
    mkdir -p "$WORK/playbooks"
    cat >"$WORK/rampart.yaml" <<YAML
node: {id: bench}
listen: 127.0.0.1:8472
state_dir: state
playbooks: playbooks
firewall: {backend: dry-run}
api_keys:
  - {name: bench, roles: [ingest, read], token_sha256: "$HASH"}
log: {level: warning}
YAML
    taskset -c "$1" "$BIN/rampart" serve --config "$WORK/rampart.yaml" 2>>"$OUT/rampart.log" &
    RAMPART_PID=$!
    PIDS+=($RAMPART_PID)
    wait_for http://127.0.0.1:8472/readyz
}
stop_rampart() { kill "$RAMPART_PID"; wait "$RAMPART_PID" 2>/dev/null || true; }
wait_for() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }
rss() { awk '/VmRSS|VmHWM/ {printf "%s %d MiB  ", $1, $2/1024}' /proc/"$1"/status; echo; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# wrk script: one ~300-byte indicator per request, a different address each time.
cat >"$WORK/single.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local n = 0
request = function()
  n = n + 1
  local ip = string.format("45.%d.%d.%d", (n / 62500) % 250 + 1, (n / 250) % 250, n % 250 + 1)
  local body = '{"kind":"ipv4","value":"' .. ip .. '","confidence":85,"severity":"high","tlp":"amber",' ..
    '"source":"benchmark-feed","tags":["scanner","ssh-bruteforce"],' ..
    '"description":"Observed brute-forcing SSH on several sensors over the last 24 hours; reported by the benchmark."}'
  return wrk.format(nil, "/v1/indicators", nil, body)
end
LUA

single() { # URL -> requests/s
    taskset -c 1 wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/single.lua" "$1" >"$WORK/wrk.txt"
    cat "$WORK/wrk.txt" >>"$OUT/wrk.txt"
    if grep -q "Non-2xx" "$WORK/wrk.txt"; then echo "non-2xx answers from $1" >&2; grep Non-2xx "$WORK/wrk.txt" >&2; exit 1; fi
    awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt"
}

echo "== 1. single-indicator POST, wrk -t2 -c64 -d${SECONDS_PER_RUN}s, $RUNS alternating runs" | tee "$OUT/summary.txt"
taskset -c 0 "$BIN/rampart-baseline" 8471 2>>"$OUT/baseline.log" &
BASELINE_PID=$!
PIDS+=($BASELINE_PID)
wait_for_post() { for _ in $(seq 200); do curl -s -o /dev/null -X POST -d '{"value":"1.1.1.1"}' "$1" && return; sleep 0.05; done; exit 1; }
wait_for_post http://127.0.0.1:8471/v1/indicators
start_rampart 0
: >"$WORK/base" ; : >"$WORK/ramp"
for run in $(seq $RUNS); do
    single http://127.0.0.1:8471 >>"$WORK/base"
    single http://127.0.0.1:8472 >>"$WORK/ramp"
done
BASE=$(median <"$WORK/base"); RAMP=$(median <"$WORK/ramp")
printf "baseline (bare Hummingbird, decode, 202): %s req/s  runs: %s\n" "$BASE" "$(tr '\n' ' ' <"$WORK/base")" | tee -a "$OUT/summary.txt"
printf "rampart (validate, commit, audit, 202):   %s req/s  runs: %s\n" "$RAMP" "$(tr '\n' ' ' <"$WORK/ramp")" | tee -a "$OUT/summary.txt"
python3 -c "print(f'ratio rampart/baseline: {$RAMP/$BASE:.2f}')" | tee -a "$OUT/summary.txt"
kill "$BASELINE_PID"
stop_rampart

LINES=$(grep -cv '^#' "$FEED" || true)
python3 - "$FEED" "$WORK" <<'PY'
import json, sys
feed, work = sys.argv[1], sys.argv[2]
values = [l.split()[0] for l in open(feed) if l.strip() and not l.startswith("#")]
with open(f"{work}/feed.ndjson", "w") as f:
    for v in values:
        f.write(json.dumps({"value": v, "source": "ipsum", "confidence": 60}) + "\n")
for i in range(0, len(values), 1000):
    with open(f"{work}/chunk-{i // 1000:05d}.txt", "w") as f:
        f.write("\n".join(values[i:i + 1000]) + "\n")
PY

batch() { # content-type file -> seconds
    curl -sS -o "$WORK/answer.json" -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" \
        -H "Content-Type: $1" --data-binary @"$2" "http://127.0.0.1:8472/v1/indicators?source=ipsum"
    python3 -c "import json,sys; a=json.load(open('$WORK/answer.json')); sys.exit(0 if a.get('accepted',0) > 0 else 1)" ||
        { echo "batch refused: $(head -c 300 "$WORK/answer.json")" >&2; exit 1; }
}

echo "== 2. the feed ($LINES lines) in one request, fresh daemon on both cores each run" | tee -a "$OUT/summary.txt"
for type in text/plain application/x-ndjson; do
    file=$FEED; [ "$type" = application/x-ndjson ] && file=$WORK/feed.ndjson
    : >"$WORK/times"
    for run in $(seq $RUNS); do
        start_rampart 0,1
        batch "$type" "$file" >>"$WORK/times"
        [ "$type" = text/plain ] && [ "$run" = 1 ] && RSS_AFTER=$(rss "$RAMPART_PID")
        stop_rampart
    done
    T=$(median <"$WORK/times")
    python3 -c "print(f'$type: median {$T:.3f} s = {$LINES/$T:,.0f} indicators/s  runs: ' + ' '.join(open('$WORK/times').read().split()))" | tee -a "$OUT/summary.txt"
done
echo "daemon RSS after ingesting the feed once: $RSS_AFTER" | tee -a "$OUT/summary.txt"

echo "== 3. the feed in 1,000-line requests, 8 concurrent clients (one keep-alive curl each)" | tee -a "$OUT/summary.txt"
: >"$WORK/times"
for run in $(seq $RUNS); do
    start_rampart 0,1
    start=$(date +%s.%N)
    CLIENTS=()
    for client in $(seq 0 7); do
        args=()
        i=0
        for chunk in "$WORK"/chunk-*.txt; do
            if [ $((i % 8)) = "$client" ]; then
                [ ${#args[@]} -gt 0 ] && args+=(--next)
                args+=(-sS -o /dev/null -f -H "Authorization: Bearer $TOKEN" -H "Content-Type: text/plain" --data-binary @"$chunk" http://127.0.0.1:8472/v1/indicators)
            fi
            i=$((i + 1))
        done
        curl "${args[@]}" &
        CLIENTS+=($!)
    done
    for c in "${CLIENTS[@]}"; do wait "$c" || { echo "a client failed" >&2; exit 1; }; done
    end=$(date +%s.%N)
    python3 -c "print($end - $start)" >>"$WORK/times"
    stop_rampart
done
T=$(median <"$WORK/times")
python3 -c "print(f'median {$T:.3f} s = {$LINES/$T:,.0f} indicators/s  runs: ' + ' '.join(f'{float(x):.3f}' for x in open('$WORK/times').read().split()))" | tee -a "$OUT/summary.txt"
echo "results in $OUT"
