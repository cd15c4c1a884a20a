#!/usr/bin/env bash
# nftables enforcement benchmark (issue 4), release build, as root, in a network namespace of its
# own (the host's ruleset is never touched): bulk blocks against a plain `nft -f` load of the
# same addresses, single-block latency, and the daemon's RSS. See Benchmarks/firewall.py.
# Usage: Benchmarks/firewall.sh [COUNT [FEED [TRIALS]]]   (default 100000, ipsum-level1, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100000}
FEED=${2:-../shared/data/feeds/ipsum-level1.txt}
TRIALS=${3:-200}
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace, nftables)" >&2; exit 2; }
[ -r "$FEED" ] || { echo "feed $FEED not found" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
NS=rampart-bench-$$
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 Benchmarks/firewall.py "$BIN" "$(realpath "$FEED")" "$COUNT" "$TRIALS"
