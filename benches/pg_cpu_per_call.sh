#!/usr/bin/env bash
# CPU per durable call on Postgres: the tokend server, the load generator and Postgres itself
# (every backend, and those already exited, through the postmaster's reaped-children times),
# against pgbench's client and Postgres for the same statements (benches/pgbench/).
#
#   benches/pg_cpu_per_call.sh [calls]        (default 40000; run as root beside the server)
#
# Prints seconds of CPU per run: divide by the number of calls (the health line is health alone;
# the other tokend lines include a health run of the same size). Needs /usr/bin/time and pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-40000}
bin=target/release/tokend
kek="q2K5Q7m0sV9pZ8c3Xo4eW1tY6uI0oP3aS5dF7gH9jK0="
admin="postgres://postgres@127.0.0.1:5432/postgres"
tck=$(getconf CLK_TCK)
tmp=$(mktemp -d)
cargo build --release --quiet
pm=$(head -1 "$(psql -h 127.0.0.1 -U postgres -Atc 'SHOW data_directory')/postmaster.pid")
pgcpu() { # all postgres processes' CPU + reaped children, seconds
  local live=0
  for p in $(pgrep -u postgres); do live=$(awk -v l=$live '{print l+$14+$15}' /proc/$p/stat 2>/dev/null || echo $live); done
  awk -v l=$live -v t=$tck '{print (l+$16+$17)/t}' /proc/$pm/stat
}
db=tokend_cpu; url="postgres://postgres@127.0.0.1:5432/$db"
psql "$admin" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
export TOKEND__DATABASE__URL="$url" TOKEND__KEYS__KEK="$kek" TOKEND__DATABASE__MAX_CONNECTIONS=16 TOKEND__SERVER__ADDR=127.0.0.1:50564
$bin migrate >/dev/null 2>&1
creds=$($bin client create --tenant system --name bench-admin --scopes tokend.admin 2>/dev/null)
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
$bin serve >/dev/null 2>&1 & pid=$!
sleep 1
scpu() { awk -v t=$tck '{print ($14+$15)/t}' /proc/$pid/stat; }
run() { /usr/bin/time -f "%U %S" -o "$tmp/time" $bin bench --target http://127.0.0.1:50564 --client-id "$id" --client-secret "$secret" --rpc "$1" --requests $n --warmup 0 --concurrency 64 --connections 2 --json >/dev/null 2>&1; awk '{print $1+$2}' "$tmp/time"; }
run health,issue-refresh >/dev/null
for rpc in health health,issue-refresh health,refresh; do
  s0=$(scpu); p0=$(pgcpu); g=$(run $rpc); s1=$(scpu); p1=$(pgcpu)
  echo "$rpc server $(awk -v a=$s1 -v b=$s0 'BEGIN{print a-b}') gen $g pg $(awk -v a=$p1 -v b=$p0 'BEGIN{print a-b}')"
done
kill -TERM $pid; wait $pid || true
# pgbench
psql "$admin" -qc "DROP DATABASE IF EXISTS tokend_pgbench" -c "CREATE DATABASE tokend_pgbench" 2>/dev/null
TOKEND__DATABASE__URL="postgres://postgres@127.0.0.1:5432/tokend_pgbench" $bin migrate >/dev/null 2>&1
psql "postgres://postgres@127.0.0.1:5432/tokend_pgbench" -q -v families=100000 -f benches/pgbench/seed.sql
for script in issue_refresh refresh; do
  p0=$(pgcpu)
  /usr/bin/time -f "%U %S" -o "$tmp/time" pgbench -n -M prepared -c 16 -j 2 -t $((n/16)) -D families=100000 -f benches/pgbench/$script.sql "postgres://postgres@127.0.0.1:5432/tokend_pgbench" > "$tmp/pgbench" 2>&1
  p1=$(pgcpu)
  echo "pgbench $script client $(awk '{print $1+$2}' "$tmp/time") pg $(awk -v a=$p1 -v b=$p0 'BEGIN{print a-b}') $(grep ^tps "$tmp/pgbench")"
done
psql "$admin" -qc "DROP DATABASE tokend_pgbench" -c "DROP DATABASE $db" 2>/dev/null
rm -rf "$tmp"
