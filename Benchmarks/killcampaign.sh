#!/usr/bin/env bash
# kill -9 campaign, release build (see Benchmarks/killcampaign.py): ROUNDS rounds of SIGKILL at a
# random moment while 8 clients post batches, each retried with its Idempotency-Key until
# acknowledged; after each restart, every acknowledged item is in the store exactly once and the
# audit chain verifies. Usage: Benchmarks/killcampaign.sh [ROUNDS]   (default 50; the suite runs 8
# rounds on the debug build, CampaignTests)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-50}
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
python3 Benchmarks/killcampaign.py "$BIN" "$ROUNDS"
