#!/usr/bin/env bash
# CrowdSec bouncer API benchmark, release build: lookups by address, a first pull, 100 polling and
# 100 long-polling bouncers, and (as root, in a network namespace of its own, with Debian's
# crowdsec-firewall-bouncer) the real bouncer's time from decision to element. See Benchmarks/bouncers.py.
# Usage: Benchmarks/bouncers.sh [COUNT [FEED [TRIALS]]]   (default 10000, Benchmarks/fixtures/ipsum-10k.txt, 20; the figures in the docs: 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-10000}
FEED=${2:-Benchmarks/fixtures/ipsum-10k.txt}
TRIALS=${3:-20}
[ -r "$FEED" ] || { echo "feed $FEED not found" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing (deploy/setup-dev.sh installs it)" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
if [ "$(id -u)" = 0 ]; then
    NS=rampart-bench-$$
    ip netns add "$NS"
    trap 'ip netns del "$NS"' EXIT
    ip -n "$NS" link set lo up
    ip netns exec "$NS" python3 Benchmarks/bouncers.py "$BIN" "$(realpath "$FEED")" "$COUNT" "$TRIALS"
else
    python3 Benchmarks/bouncers.py "$BIN" "$(realpath "$FEED")" "$COUNT" "$TRIALS"
fi
