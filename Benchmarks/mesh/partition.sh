#!/usr/bin/env bash
# Partition scenario of the mesh harness, release build, as root (see Benchmarks/mesh/partition.py):
# NODES daemons in a full mesh cut in half for MINUTES with ITEMS posted on each side, healed, then
# a node restored from a backup taken before the partition. Reports the time to converge,
# duplicate effects, TLP:RED items outside their origin, and the restored node's catch-up.
# Usage: Benchmarks/mesh/partition.sh [NODES [MINUTES [ITEMS [DEAD_LETTER_AFTER [WARM [REVOKED]]]]]]
#   (default 10 1 1000 20s 500 50; the figures in docs/scaling.md: 50 10 10000 2m 1000 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "needs root (a network namespace of its own)" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
python3 Benchmarks/mesh/partition.py "$BIN" "${1:-10}" "${2:-1}" "${3:-1000}" "${4:-20s}" "${5:-500}" "${6:-50}"
