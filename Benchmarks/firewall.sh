#!/usr/bin/env bash
# nftables enforcement benchmark, release build, as root, in a network namespace of its
# own (the host's ruleset is never touched): bulk blocks against a plain `nft -f` load of the
# same addresses, single-block latency, and the daemon's RSS. See Benchmarks/firewall.py.
# Usage: Benchmarks/firewall.sh [COUNT [FEED [TRIALS]]]   (default 10000, Benchmarks/fixtures/ipsum-10k.txt, 200; the figures in the docs: 100000 and the full ipsum level-1 list)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-10000}
FEED=${2:-Benchmarks/fixtures/ipsum-10k.txt}
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
