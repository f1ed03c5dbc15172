#!/usr/bin/env bash
# CPU time per call, of the server and of the load generator, for each RPC beside health Check.
# Throughput on a shared 2-core VM drifts by a factor of two from hour to hour; CPU seconds per
# call drift far less, and say where a gap to health comes from (the server or the generator).
#
#   benches/cpu_per_call.sh [requests per RPC] [rpc ...]
#
# Starts tokend (release build) on a fresh SQLite file, runs `tokend bench --requests N
# --warmup 0` once for health alone and once per RPC (health, then the RPC), and reads the
# server's utime+stime from /proc and the generator's from /usr/bin/time (Debian package time). An RPC's cost is its
# run's CPU less the health-only run's, over N. The generator's per-run setup (temporary clients,
# a first argon2 verification) is included, a few milliseconds in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-200000}"
shift || true
rpcs=("${@:-introspect introspect-opaque issue}")
read -r -a rpcs <<<"${rpcs[*]}"
bin=target/release/tokend
port=50552
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

cargo build --release --quiet
export TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
"$bin" migrate >/dev/null 2>&1
creds=$("$bin" client create --tenant system --name bench-admin --scopes tokend.admin 2>/dev/null)
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
"$bin" serve >"$dir/server.log" 2>&1 &
pid=$!
until "$bin" bench --target "http://127.0.0.1:$port" --rpc health --requests 1 --warmup 0 \
    --concurrency 1 --connections 1 --json >/dev/null 2>&1; do sleep 0.05; done

tck=$(getconf CLK_TCK)
server_cpu() { awk -v t="$tck" '{ print ($14 + $15) / t }' "/proc/$pid/stat"; }
# Runs the bench on "$1"; prints "server_seconds generator_seconds".
measure() {
  local before after
  before=$(server_cpu)
  /usr/bin/time -f "%U %S" -o "$dir/time" "$bin" bench --target "http://127.0.0.1:$port" \
    --client-id "$id" --client-secret "$secret" --rpc "$1" --requests "$n" --warmup 0 \
    --concurrency 64 --connections 2 --json >"$dir/report.json" 2>/dev/null
  after=$(server_cpu)
  echo "$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }') \
    $(awk '{ print $1 + $2 }' "$dir/time")"
}

measure "health,${rpcs[0]}" >/dev/null # warm the server: caches, allocator, first argon2
read -r hs hg < <(measure health)
echo "| rpc | server µs/call | x health | generator µs/call | x health |"
echo "|---|---:|---:|---:|---:|"
awk -v s="$hs" -v g="$hg" -v n="$n" \
  'BEGIN { printf "| health | %.1f | 1.00 | %.1f | 1.00 |\n", s * 1e6 / n, g * 1e6 / n }'
for rpc in "${rpcs[@]}"; do
  read -r s g < <(measure "health,$rpc")
  python3 - "$hs" "$hg" "$s" "$g" "$n" "$rpc" <<'PY'
import sys
hs, hg, s, g = map(float, sys.argv[1:5])
n, rpc = int(sys.argv[5]), sys.argv[6]
server, gen = (s - hs) / n * 1e6, (g - hg) / n * 1e6
h_server, h_gen = hs / n * 1e6, hg / n * 1e6
print(f"| {rpc} | {server:.1f} | {server / h_server:.2f} | {gen:.1f} | {gen / h_gen:.2f} |")
PY
done
