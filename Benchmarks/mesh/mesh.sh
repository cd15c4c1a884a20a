#!/usr/bin/env bash
# Mesh harness, release build, as root (see Benchmarks/mesh/mesh.py): NODES real daemons in a
# network namespace of the script's own, joined in TOPOLOGY (full, hub or tiers); items injected
# at random nodes at RATE a second for SECONDS; reports time to protect, messages and bytes per
# item, CPU and RSS per node. WHERE namespaces: one namespace and nftables per node, and time to
# protect to the element in the last kernel too.
# Usage: Benchmarks/mesh/mesh.sh [NODES [TOPOLOGY [RATE [SECONDS [HUBS [WHERE]]]]]]
#   (default 10 full 50 30 5 loopback; the figures in docs/scaling.md: 50 nodes, full and tiers;
#   10 nodes full namespaces)
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${1:-10}
TOPOLOGY=${2:-full}
RATE=${3:-50}
SECONDS_TOTAL=${4:-30}
HUBS=${5:-5}
WHERE=${6:-loopback}
[ "$(id -u)" = 0 ] || { echo "needs root (a network namespace of its own)" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
python3 Benchmarks/mesh/mesh.py "$BIN" "$NODES" "$TOPOLOGY" "$RATE" "$SECONDS_TOTAL" "$HUBS" "$WHERE"
