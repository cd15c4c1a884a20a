#!/usr/bin/env bash
# What one anti-entropy sync costs when nothing differs, by entries queued for the peer (see
# Benchmarks/synccost.py). Release build; two daemons on 127.0.0.1:9201 and 9202.
# Usage: Benchmarks/synccost.sh [SIZE...]   (default 10000 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
[ $# -gt 0 ] || set -- 10000 100000 1000000
python3 Benchmarks/synccost.py "$BIN" "$@"
