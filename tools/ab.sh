#!/usr/bin/env bash
# Interleaved A/B of builds with the load generator: a change to a hot path is measured
# against the build before it on the same machine, run after run in turn, so that a noisy
# neighbour or a warm disk weighs on both alike.
#
#   tools/ab.sh SCENARIO ROUNDS DIR_A DIR_B [DIR_C ...]
#
# Each DIR holds a release `cartwright` and `loadgen` of one build, for instance:
#   cargo build --release --bin cartwright --example loadgen
#   mkdir -p /tmp/ab/after && cp target/release/cartwright target/release/examples/loadgen /tmp/ab/after/
#   git stash && cargo build --release --bin cartwright --example loadgen   # or a worktree of the base
#   mkdir -p /tmp/ab/before && cp target/release/cartwright target/release/examples/loadgen /tmp/ab/before/
#   tools/ab.sh place-order 3 /tmp/ab/before /tmp/ab/after
#
# On the embedded store each run gets a fresh temporary directory (loadgen's own). With
# PGURL set (a PostgreSQL URL), each run is on PostgreSQL in a fresh schema of that
# database. CLIENTS (64), SECS (12) and CUSTOMERS (2000) are the usual figures' settings.
set -euo pipefail

if [ $# -lt 4 ]; then
  sed -n '2,17p' "$0" >&2
  exit 2
fi
scenario=$1 rounds=$2
shift 2
clients=${CLIENTS:-64} secs=${SECS:-12} customers=${CUSTOMERS:-2000}
report=$(mktemp)
trap 'rm -f "$report"' EXIT
declare -A sum runs

for round in $(seq 1 "$rounds"); do
  for dir in "$@"; do
    env=()
    if [ -n "${PGURL:-}" ]; then
      env=(CARTWRIGHT__STORAGE__BACKEND=postgres "CARTWRIGHT__STORAGE__POSTGRES__URL=$PGURL"
           "CARTWRIGHT__STORAGE__POSTGRES__SCHEMA=ab_$(date +%s%N)")
    fi
    env "${env[@]}" "$dir/loadgen" --server-bin "$dir/cartwright" --scenario "$scenario" \
      --clients "$clients" --duration-secs "$secs" --customers "$customers" --out "$report" > /dev/null 2>&1
    # The report's throughput and latency, without a JSON tool: loadgen writes one key per line.
    ok=$(grep -o '"ok": [0-9]*' "$report" | grep -o '[0-9]*$')
    p50=$(grep -A8 '"latency_ms"' "$report" | grep -o '"p50": [0-9.]*' | grep -o '[0-9.]*$')
    p99=$(grep -A8 '"latency_ms"' "$report" | grep -o '"p99": [0-9.]*' | grep -o '[0-9.]*$')
    rate=$((ok / secs))
    printf '%-3s %-24s %7s /s   p50 %7s ms   p99 %7s ms\n' "$round" "$(basename "$dir")" "$rate" "$p50" "$p99"
    sum[$dir]=$(( ${sum[$dir]:-0} + rate ))
    runs[$dir]=$(( ${runs[$dir]:-0} + 1 ))
  done
done
for dir in "$@"; do
  printf 'mean %-24s %7s /s over %s runs\n' "$(basename "$dir")" $(( sum[$dir] / runs[$dir] )) "${runs[$dir]}"
done
