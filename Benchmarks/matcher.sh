#!/usr/bin/env bash
# Matcher benchmark, release build, pinned to one core. Usage: Benchmarks/matcher.sh [ITEMS] [PLAYBOOK COUNTS...]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product rampart-bench-matcher >/dev/null
exec taskset -c 0 "$(swift build -c release --show-bin-path)/rampart-bench-matcher" "$@"
