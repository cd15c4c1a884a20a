#!/usr/bin/env bash
# kill -9 campaign, release build, as root (see Benchmarks/killcampaign.py): ROUNDS rounds of
# SIGKILL at a random moment while 8 clients post to two peered nodes, one enforcing through
# nftables in a network namespace of the script's own; after each restart the kernel equals the
# store within 5 s, and at the end each node holds every acknowledged item once, with one block
# each, an intact audit chain and a sound database.
# Usage: Benchmarks/killcampaign.sh [ROUNDS]   (default 200; the suite runs 8 rounds on the debug
# build, CampaignTests)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-200}
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace, nftables)" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
python3 Benchmarks/killcampaign.py "$BIN" "$ROUNDS"
