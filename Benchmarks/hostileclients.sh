#!/usr/bin/env bash
# Hostile clients, release build (see Benchmarks/hostileclients.py): CONNECTIONS connections that
# send header lines slowly while /healthz is timed, then unsigned 16 MiB bodies to
# /v1/peer/events and the daemon's CPU for each, then hostile bodies and headers (deep JSON,
# invalid UTF-8, NUL bytes, a 1 MB header, 10^6 tiny lines) and each answer.
# Usage: Benchmarks/hostileclients.sh [CONNECTIONS]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-1000}
swift build -c release --product rampart >/dev/null
BIN=$(swift build -c release --show-bin-path)/rampart
cd Benchmarks && python3 hostileclients.py "$BIN" "$CONNECTIONS"
