#!/usr/bin/env bash
# Propagation benchmarks, release build, two daemons on loopback:
#   1. latency: 500 indicators posted one by one at A; for each, from A's 2xx to the decision
#      committed at B (B's database polled every 0.2 ms), p50/p99;
#   2. throughput: 100,000 feed addresses posted at A in one request, delivered to one peer
#      (B), then to ten peers (ten entries at A, all pointing at B, which stores each item once
#      and answers the other nine deliveries as duplicates): items delivered per second, and the
#      cost per delivery with ten peers relative to one;
#   3. backlog: B down while A queues 100,000 items; the time from B's start to A's outbox empty;
#   4. as root, A and B in a network namespace of their own, B with the nftables backend: 200
#      indicators one by one, from A's 2xx to the element in B's kernel set (netlink probe).
# Usage: [RAMPART_BIN_DIR=DIR] Benchmarks/peers.sh [FEED]   (needs curl and python3: deploy/setup-dev.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
FEED=${1:-Benchmarks/fixtures/ipsum-10k.txt}
COUNT=100000
[ -r "$FEED" ] || { echo "feed $FEED not found; pass a file of one IP a line" >&2; exit 2; }
# RAMPART_BIN_DIR: another build's directory (a baseline run alternately with this one).
if [ -n "${RAMPART_BIN_DIR:-}" ]; then
    BIN=$RAMPART_BIN_DIR
else
    swift build -c release --product rampart >/dev/null
    BIN=$(swift build -c release --show-bin-path)
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
TOKEN=rmp_bench_token
HASH=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
awk -v n=$COUNT '!/^#/ && NF && c < n { print $1; c++ }' "$FEED" >"$WORK/feed.txt"
KEY_A=$("$BIN/rampart" keygen --out "$WORK/a.key" | tail -1 | tr -d ' ')
KEY_B=$("$BIN/rampart" keygen --out "$WORK/b.key" | tail -1 | tr -d ' ')

config() { # NAME PORT PEERS_YAML PLAYBOOK_YAML
    mkdir -p "$WORK/$1/playbooks"
    printf '%s\n' "$4" >"$WORK/$1/playbooks/p.yaml"
    cat >"$WORK/$1/rampart.yaml" <<YAML
node: {id: $1}
listen: 127.0.0.1:$2
state_dir: state
playbooks: playbooks
firewall: {backend: dry-run}
safety: {allow_non_global: [0.0.0.0/0]}
api_keys:
  - {name: bench, roles: [ingest, read, admin], token_sha256: "$HASH"}
signing: {key_file: $WORK/$1.key}
log: {level: notice}
peers:
$3
YAML
}

peer() { # NAME NODE_ID PORT KEY
    printf '  - {name: %s, node_id: %s, url: "http://127.0.0.1:%s/v1/peer/events", public_key: %s, accept: {suggested: [block]}}\n' "$1" "$2" "$3" "$4"
}

start() { # NAME
    rm -rf "$WORK/$1/state"
    "$BIN/rampart" serve --config "$WORK/$1/rampart.yaml" >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$1=$!"
    for _ in $(seq 1 200); do grep -q daemon.ready "$WORK/$1.log" && return; sleep 0.05; done
    cat "$WORK/$1.log" >&2; exit 1
}

stop() { # NAME
    local var="PID_$1"; kill "${!var}"; wait "${!var}" 2>/dev/null || true
}

SHARE='name: share
match: {kind: [ipv4]}
actions:
  - propagate: {to: all, suggest: [block]}'
BLOCK='name: block-suggested
match: {kind: [ipv4], from: [peer:a], suggested: [block]}
actions:
  - block: {duration: 1h}'

run_python() { python3 - "$WORK" "$TOKEN" "$@"; }

latency() { # TRIALS PROBE [PREFIX...]: indicators posted one by one at A, each timed from A's 2xx
    # until B has it: PROBE decision (B's database, polled) or kernel (B's nftables set, by netlink).
    local trials=$1 probe=$2; shift 2
    "$@" python3 - "$WORK" "$TOKEN" "$trials" "$probe" <<'PY'
import sqlite3, sys, time, urllib.request
sys.path.insert(0, "Benchmarks")
work, token, trials, probe = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if probe == "kernel":
    from nftprobe import ElementProbe
    kernel = ElementProbe("rampart", "in4")
    present = kernel.contains
else:
    db = sqlite3.connect(f"file:{work}/b/state/rampart.sqlite?mode=ro", uri=True)
    present = lambda value: db.execute("SELECT 1 FROM decision WHERE value = ?", (value,)).fetchone() is not None
lat = []
for i in range(trials):
    value = f"198.19.{i // 256}.{i % 256}"
    req = urllib.request.Request("http://127.0.0.1:8481/v1/indicators?confidence=90", data=value.encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 202
    acked = time.perf_counter()
    while not present(value):
        time.sleep(0.0002)
        if time.perf_counter() - acked > 5: raise SystemExit(f"{value} never reached B ({probe})")
    lat.append((time.perf_counter() - acked) * 1000)
lat.sort()
print(f"{probe} latency ms: p50 {lat[len(lat)//2]:.2f}  p90 {lat[int(len(lat)*0.9)]:.2f}  p99 {lat[int(len(lat)*0.99)]:.2f}  max {lat[-1]:.2f}")
PY
}

echo "== latency: 500 single indicators, A's 2xx to the decision committed at B"
config a 8481 "$(peer b b 8482 "$KEY_B")" "$SHARE"
config b 8482 "$(peer a a 8481 "$KEY_A")" "$BLOCK"
start a; start b
latency 500 decision
stop a; stop b

throughput() { # PEERS B_PLAYBOOK: one feed at A, until every outbox is empty
    local peers=""
    if [ "$1" = 1 ]; then peers=$(peer b b 8482 "$KEY_B"); else
        for i in $(seq 1 "$1"); do peers+="$(peer "b$i" "b$i" 8482 "$KEY_B")"$'\n'; done
    fi
    config a 8481 "$peers" "$SHARE"
    config b 8482 "$(peer a a 8481 "$KEY_A")" "$2"
    start b; start a
    run_python "$1" <<'PY'
import json, sys, time, urllib.request
work, token, peers = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = open(f"{work}/feed.txt", "rb").read()
h = {"Authorization": f"Bearer {token}"}
t0 = time.perf_counter()
req = urllib.request.Request("http://127.0.0.1:8481/v1/indicators?confidence=90", data=body, headers={**h, "Content-Type": "text/plain"})
accepted = json.load(urllib.request.urlopen(req))["accepted"]
t1 = time.perf_counter()
while True:
    state = json.load(urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:8481/v1/peers", headers=h)))["peers"]
    if sum(p["queue_depth"] for p in state) == 0 and sum(p["sent"] for p in state) >= accepted * peers: break
    time.sleep(0.01)
t2 = time.perf_counter()
print(f"{peers} peer(s): {accepted} items; ingest at A {t1-t0:.2f} s; all delivered {t2-t0:.2f} s after the POST: "
      f"{accepted*peers/(t2-t0):,.0f} deliveries/s ({accepted*peers/(t2-t1):,.0f}/s after A's 2xx), "
      f"{(t2-t0)/(accepted*peers)*1e6:.1f} us per delivery")
PY
    stop a; stop b
}

STORE='name: store-only
match: {kind: [md5]}
actions: []'
echo "== throughput: $COUNT items to one peer that blocks them, then to one that only stores them, then to ten"
throughput 1 "$BLOCK"
throughput 1 "$STORE"
throughput 10 "$STORE"

echo "== backlog: B down while A queues $COUNT items, then B starts"
config a 8481 "$(peer b b 8482 "$KEY_B")" "$SHARE"
config b 8482 "$(peer a a 8481 "$KEY_A")" "$BLOCK"
start a
curl -sS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/plain' --data-binary @"$WORK/feed.txt" 'http://127.0.0.1:8481/v1/indicators?confidence=90'
sleep 2
T0=$(date +%s.%N)
start b
run_python <<'PY'
import json, sys, time, urllib.request
work, token = sys.argv[1], sys.argv[2]
h = {"Authorization": f"Bearer {token}"}
while True:
    state = json.load(urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:8481/v1/peers", headers=h)))["peers"][0]
    if state["queue_depth"] == 0: break
    time.sleep(0.01)
PY
T1=$(date +%s.%N)
echo "backlog of $COUNT drained in $(python3 -c "print(f'{$T1 - $T0:.2f}')") s from B's start (B's start and A's next retry included)"
stop a; stop b

if [ "$(id -u)" != 0 ]; then echo "== kernel latency: skipped (needs root for a network namespace and nftables)"; exit 0; fi
echo "== kernel latency: 200 single indicators, A's 2xx to the element in B's nftables set"
NS=rampart-peers-bench-$$
ip netns add "$NS"
trap 'cleanup; ip netns del "$NS"' EXIT
ip -n "$NS" link set lo up
config a 8481 "$(peer b b 8482 "$KEY_B")" "$SHARE"
config b 8482 "$(peer a a 8481 "$KEY_A")" "$BLOCK"
sed -i 's/backend: dry-run/backend: nftables/' "$WORK/b/rampart.yaml"
for n in a b; do
    rm -rf "$WORK/$n/state"
    ip netns exec "$NS" "$BIN/rampart" serve --config "$WORK/$n/rampart.yaml" >"$WORK/$n.log" 2>&1 &
    PIDS+=($!)
done
for n in a b; do for _ in $(seq 1 200); do grep -q daemon.ready "$WORK/$n.log" && break; sleep 0.05; done; done
latency 200 kernel ip netns exec "$NS"
