#!/usr/bin/env bash
# Soak, release build (see Benchmarks/soak.py): node A takes 500 items/s for SECONDS and shares
# them with 10 peer nodes, one of which goes down for 30 s every 30 s; reports A's RSS slope,
# open file descriptors, WAL size and the outbox lag of the steady peers.
# Usage: Benchmarks/soak.sh [SECONDS]   (default 120; the figure in the docs: 3600). Exits non-zero
# unless every steady peer holds every acknowledged item. The suite runs 120 s of it (CampaignTests).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-120}
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
python3 Benchmarks/soak.py "$BIN" "$SECONDS_TOTAL"
