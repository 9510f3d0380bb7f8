#!/usr/bin/env bash
# A cluster under load: SERVERS release servers on one PostgreSQL schema, each serving its
# share of the partitions, and as many load generators, each driving one server's URL
# (`--url`, `--server-pid`) with CLIENTS/SERVERS clients at once. Prints, per server and in
# total, the requests answered per second, the server's CPU (cores) and the CPU per request
# (ms), and what the servers forwarded and called of each other.
#
#   PGURL=postgres://... tools/cluster-bench.sh SCENARIO [SERVERS] [DIR]
#
# DIR holds a release `cartwright` and `loadgen` (default: target/release and
# target/release/examples, after `cargo build --release --bin cartwright --example loadgen`).
# SERVERS=1 is the same setting for one server, to compare. CLIENTS (64), SECS (12) and
# CUSTOMERS (2000, per load generator) as in tools/ab.sh.
set -euo pipefail

if [ $# -lt 1 ] || [ -z "${PGURL:-}" ]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
scenario=$1 servers=${2:-3} dir=${3:-}
bin=${dir:-target/release}/cartwright
loadgen=${dir:-target/release/examples}/loadgen
clients=${CLIENTS:-64} secs=${SECS:-12} customers=${CUSTOMERS:-2000}
schema="bench_$(date +%s%N)"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for n in $(seq 1 "$servers"); do
  CARTWRIGHT__STORAGE__BACKEND=postgres CARTWRIGHT__STORAGE__POSTGRES__URL="$PGURL" \
  CARTWRIGHT__STORAGE__POSTGRES__SCHEMA="$schema" CARTWRIGHT__CLUSTER__NODE_ID="node$n" \
  CARTWRIGHT__SERVER__ADDR=127.0.0.1:0 CARTWRIGHT__STORAGE__PATH="$work/node$n" \
  CARTWRIGHT__AUTH__ADMIN_TOKEN=dev-admin-token-change-me \
  CARTWRIGHT__AUTH__ARGON2_MEMORY_KIB=1024 CARTWRIGHT__AUTH__ARGON2_ITERATIONS=1 \
  CARTWRIGHT__AUTH__LOGIN_PER_IP_PER_MINUTE=0 CARTWRIGHT__CHECKOUT__SYNC_WAIT_MS=5000 \
  RUST_LOG=warn,cartwright=info "$bin" > "$work/node$n.log" 2>&1 &
  pids+=($!)
  # One after the other: each joins a cluster whose partitions the others then share with it.
  until grep -q "listening on" "$work/node$n.log"; do sleep 0.1; done
done
urls=()
for n in $(seq 1 "$servers"); do
  urls+=("http://$(grep -o 'listening on [0-9.:]*' "$work/node$n.log" | head -1 | cut -d' ' -f3)")
done
# Until every server serves a share (a renewal or two after the last joined).
for n in $(seq 1 "$servers"); do
  until grep -q "leading: this server now serves requests itself" "$work/node$n.log"; do sleep 0.1; done
done
sleep 2

per=$((clients / servers))
lg=()
for n in $(seq 1 "$servers"); do
  "$loadgen" --url "${urls[$((n - 1))]}" --server-pid "${pids[$((n - 1))]}" --scenario "$scenario" \
    --clients "$per" --duration-secs "$secs" --customers "$customers" --out "$work/report$n.json" \
    > "$work/loadgen$n.log" 2>&1 &
  lg+=($!)
done
for pid in "${lg[@]}"; do wait "$pid"; done

field() { grep -o "\"$2\": [0-9.]*" "$1" | head -1 | grep -o '[0-9.]*$' || echo 0; }
metric() { curl -s "$1/metrics" | { grep "^$2" || true; } | awk '{s += $2} END {print s + 0}'; }
echo "$scenario, $servers server(s), $clients clients, ${secs} s"
total_rps=0 total_cores=0
for n in $(seq 1 "$servers"); do
  r="$work/report$n.json"
  rps=$(field "$r" throughput_ok_per_sec) cores=$(field "$r" server_cpu_cores)
  p99=$(grep -A8 '"latency_ms"' "$r" | grep -o '"p99": [0-9.]*' | grep -o '[0-9.]*$' || echo 0)
  fwd=$(metric "${urls[$((n - 1))]}" 'cartwright_forwarded_requests_total{outcome="forwarded"}')
  calls=$(metric "${urls[$((n - 1))]}" 'cartwright_cluster_calls_total')
  printf 'node%s  %8.0f /s  p99 %7.2f ms  server %5.2f cores  %6.3f ms CPU/request  forwarded %s, calls %s\n' \
    "$n" "$rps" "$p99" "$cores" "$(echo "$cores * 1000 / $rps" | bc -l)" "$fwd" "$calls"
  total_rps=$(echo "$total_rps + $rps" | bc -l)
  total_cores=$(echo "$total_cores + $cores" | bc -l)
done
printf 'total  %8.0f /s  servers %5.2f cores  %6.3f ms CPU/request\n' \
  "$total_rps" "$total_cores" "$(echo "$total_cores * 1000 / $total_rps" | bc -l)"
