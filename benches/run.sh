#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md on this machine: release build, a fresh database per
# backend, startup time, idle and loaded RSS, `tokend bench` for every RPC (at 64 and at 8 in
# flight), pgbench for the statements the durable RPCs commit (before and after tokend's run),
# and the memory of 1 million live revocations.
#
#   benches/run.sh [sqlite|postgres|all] [seconds per RPC]
#
# Needs Postgres on 127.0.0.1:5432 (trust auth, user postgres) for the Postgres part, and
# pgbench (Debian package postgresql-contrib or the server package). Results go to
# target/bench-results/ as JSON and a log.
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-all}"
secs="${2:-10}"
out=target/bench-results
mkdir -p "$out"
bin=target/release/tokend
pg_admin="postgres://postgres@127.0.0.1:5432/postgres"
pg_db="tokend_bench"
kek="q2K5Q7m0sV9pZ8c3Xo4eW1tY6uI0oP3aS5dF7gH9jK0="
port=50551

cargo build --release --quiet

log() { printf '%s\n' "$*" | tee -a "$out/log.txt"; }

# Starts tokend in the background with the environment given as arguments; sets $pid and
# $startup (milliseconds from exec to a SERVING health answer).
start_server() {
  local t0 t1
  t0=$(date +%s%N)
  env "$@" TOKEND__SERVER__ADDR="127.0.0.1:$port" TOKEND__LOG__FORMAT=json \
    "$bin" serve >>"$out/server.log" 2>&1 &
  pid=$!
  until "$bin" bench --target "http://127.0.0.1:$port" --rpc health --requests 1 \
      --warmup 0 --concurrency 1 --connections 1 --json >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { echo "tokend died; see $out/server.log" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(date +%s%N)
  startup=$(( (t1 - t0) / 1000000 ))
}

stop_server() { kill -TERM "$pid"; wait "$pid" || true; }

rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }

bootstrap() {
  env "$@" "$bin" client create --tenant system --name bench-admin --scopes tokend.admin
}

run_backend() {
  local backend="$1"; shift
  local envs=("$@")
  log "== $backend"
  env "${envs[@]}" "$bin" migrate >>"$out/server.log" 2>&1
  local creds id secret
  creds=$(bootstrap "${envs[@]}")
  id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
  secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
  start_server "${envs[@]}"
  sleep 1
  log "startup to SERVING (migrated database): ${startup} ms; idle RSS: $(rss_mib) MiB"
  local rpcs="health,introspect,introspect-opaque,introspect-cold,issue,issue-refresh,refresh"
  "$bin" bench --target "http://127.0.0.1:$port" --client-id "$id" --client-secret "$secret" \
    --rpc "$rpcs" --duration "$secs" --warmup 2 --concurrency 64 --connections 2 \
    --background-bad-secrets 16 --bad-secrets-from 127.0.0.2 --json >"$out/$backend.json"
  python3 benches/table.py "$out/$backend.json" | tee -a "$out/log.txt"
  log "RSS after the runs (caches filled): $(rss_mib) MiB"
  # Latency below saturation: 64 in flight on two shared cores queues every call (Little's law),
  # so the same RPCs again at 8 in flight.
  "$bin" bench --target "http://127.0.0.1:$port" --client-id "$id" --client-secret "$secret" \
    --rpc health,introspect,introspect-opaque,issue --duration "$secs" --warmup 2 \
    --concurrency 8 --connections 2 --json >"$out/$backend-8.json"
  log "-- 8 in flight"
  python3 benches/table.py "$out/$backend-8.json" | tee -a "$out/log.txt"
  stop_server
}

pgbench_same_statements() {
  log "== pgbench, the statements IssueToken(+refresh) and RefreshToken commit"
  local db="tokend_pgbench"
  psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  TOKEND__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$db" TOKEND__KEYS__KEK="$kek" \
    "$bin" migrate >>"$out/server.log" 2>&1
  psql "postgres://postgres@127.0.0.1:5432/$db" -q -v families=100000 -f benches/pgbench/seed.sql
  for script in issue_refresh refresh; do
    for clients in 16 32; do
      local tps
      tps=$(pgbench -n -M prepared -c "$clients" -j 2 -T "$secs" -D families=100000 \
        -f "benches/pgbench/$script.sql" "postgres://postgres@127.0.0.1:5432/$db" 2>&1 |
        awk '/^tps/ { print $3 }')
      log "pgbench $script, $clients clients: $tps tps"
    done
  done
  psql "$pg_admin" -qc "DROP DATABASE $db"
}

million_revocations() {
  log "== 1 million live revocations (Postgres)"
  local url="postgres://postgres@127.0.0.1:5432/$pg_db"
  psql "$url" -qc "INSERT INTO revocations (kind, subject, client_id, expire_time_us, create_time_us)
    SELECT 'token', encode(gen_random_bytes(16), 'base64'), 'c', 4000000000000000, 0
    FROM generate_series(1, 1000000)" 2>/dev/null ||
  psql "$url" -qc "INSERT INTO revocations (kind, subject, client_id, expire_time_us, create_time_us)
    SELECT 'token', substr(md5(g::text), 1, 22), 'c', 4000000000000000, 0
    FROM generate_series(1, 1000000) g"
  start_server TOKEND__DATABASE__URL="$url" TOKEND__KEYS__KEK="$kek"
  sleep 1
  log "startup with 1M revocations: ${startup} ms; RSS: $(rss_mib) MiB"
  stop_server
}

if [ "$which" = sqlite ] || [ "$which" = all ]; then
  dir=$(mktemp -d)
  run_backend sqlite TOKEND__DATABASE__URL="sqlite://$dir/tokend.db"
  rm -rf "$dir"
fi
if [ "$which" = postgres ] || [ "$which" = all ]; then
  psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db"
  # pgbench before and after tokend: the disk and the neighbours of this VM drift, so the
  # durable RPCs are compared with the pgbench figures on either side of them. The pool has
  # 16 connections, as pgbench has clients in the figure BENCHMARKS.md compares with.
  pgbench_same_statements
  run_backend postgres TOKEND__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$pg_db" \
    TOKEND__KEYS__KEK="$kek" TOKEND__DATABASE__MAX_CONNECTIONS=16
  pgbench_same_statements
  million_revocations
  psql "$pg_admin" -qc "DROP DATABASE $pg_db"
fi
log "results in $out/"
