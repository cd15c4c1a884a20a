#!/usr/bin/env bash
# Feed benchmark, release build (see Benchmarks/feeds.py): a text feed pulled from a loopback
# server against the same file posted directly, fresh daemon each run, RUNS alternating runs;
# then an unchanged second pull (304).
# Usage: Benchmarks/feeds.sh [FEED [RUNS]]   (default Benchmarks/fixtures/ipsum-10k.txt, 3; the figures in the docs: the 120k ipsum level 1)
set -euo pipefail
cd "$(dirname "$0")/.."
FEED=${1:-Benchmarks/fixtures/ipsum-10k.txt}
RUNS=${2:-3}
[ -r "$FEED" ] || { echo "feed $FEED not found" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
python3 Benchmarks/feeds.py "$BIN" "$(realpath "$FEED")" "$RUNS"
