#!/usr/bin/env bash
# STIX and TAXII benchmark, release build (see Benchmarks/stix.py):
#   1. COUNT IPv4 indicators posted as one STIX bundle against the same values as NDJSON, fresh
#      daemon each run, RUNS alternating runs: indicators/s and the ratio STIX/NDJSON;
#   2. a TAXII collection of those COUNT objects paged with limit=1000: objects/s and the daemon's
#      RSS growth while it pages.
# Usage: Benchmarks/stix.sh [COUNT [FEED [RUNS]]]   (default 10000, Benchmarks/fixtures/ipsum-10k.txt, 3; the figures in the docs: 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-10000}
FEED=${2:-Benchmarks/fixtures/ipsum-10k.txt}
RUNS=${3:-3}
[ -r "$FEED" ] || { echo "feed $FEED not found" >&2; exit 2; }
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
python3 Benchmarks/stix.py "$BIN" "$(realpath "$FEED")" "$COUNT" "$RUNS"
