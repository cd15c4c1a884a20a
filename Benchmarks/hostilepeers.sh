#!/usr/bin/env bash
# Hostile peers, release build (see Benchmarks/hostilepeers.py): node A shares 100 items/s with a
# real peer and six hostile ones (silent, dripping, endless body, 1 GB body, redirect loop, 500
# forever) for SECONDS; reports A's RSS and descriptors, /healthz and ingest p99, and each peer's
# state. Exits non-zero unless the real peer got everything. Usage: Benchmarks/hostilepeers.sh [SECONDS]
# (default 120; the figure in the docs: 600)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-120}
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
python3 Benchmarks/hostilepeers.py "$BIN" "$SECONDS_TOTAL"
