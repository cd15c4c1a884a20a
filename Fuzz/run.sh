#!/usr/bin/env bash
# Builds the fuzz targets (libFuzzer with AddressSanitizer, this package only: the main build is
# never instrumented), replays each target's committed seed corpus, then fuzzes each for SECONDS
# from a copy of it. A crash, leak or failed check stops it with the input saved under
# Fuzz/findings/. Usage: Fuzz/run.sh [SECONDS]   (default 60 each; the test suite runs 10)
set -euo pipefail
cd "$(dirname "$0")"
EACH=${1:-60}
TARGETS=(FuzzValues FuzzIngest FuzzYAML FuzzSignature FuzzRules FuzzOpenC2 FuzzFirewall)
# Every Swift module is instrumented; lld links libFuzzer's runtime (gold fails on it), and the
# package's build tool (the OpenAPI embedder, linked with that runtime too) leaves libFuzzer's
# entry point unresolved: it never runs it.
if ! swift build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld -Xlinker --unresolved-symbols=ignore-all \
    >build.log 2>&1; then
    grep -E 'error' build.log | grep -v 'Cannot export' >&2 || tail -20 build.log >&2
    exit 1
fi
mkdir -p findings
for target in "${TARGETS[@]}"; do
    work=$(mktemp -d)
    cp corpus/"$target"/* "$work"/
    # Every seed once, then fuzzing from them.
    ".build/debug/$target" -runs=0 corpus/"$target" >"$work.log" 2>&1 || { cat "$work.log" >&2; exit 1; }
    if ! ".build/debug/$target" -max_total_time="$EACH" -print_final_stats=1 -artifact_prefix=findings/"$target"- \
        -rss_limit_mb=4096 "$work" >"$work.log" 2>&1; then
        tail -40 "$work.log" >&2
        echo "$target: FOUND a failure; the input is in Fuzz/findings/" >&2
        exit 1
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$work.log" | grep -oE '[0-9]+$' || echo '?')
    cov=$(grep -oE 'cov: [0-9]+' "$work.log" | tail -1 | grep -oE '[0-9]+' || echo '?')
    echo "$target: $runs executions in ${EACH} s, coverage $cov, corpus $(ls corpus/"$target" | wc -l) -> $(ls "$work" | wc -l), no failure"
    rm -rf "$work" "$work.log"
done
