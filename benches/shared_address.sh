#!/usr/bin/env bash
# Issue 20's lockout figure: warm Introspect and IssueToken while 16 wrong-secret calls are in
# flight FROM THE SAME ADDRESS as the measured calls (the mesh case: behind a sidecar every
# caller has one address), for a neighbour client of their own (`--bad-secrets-for-neighbour`).
# The lockout locks the address after `secrets.max_failures` (10); the measured clients, which
# authenticated from it before, must keep working. Then the same flood from another address
# (127.0.0.2) for comparison, and a quiet run first as the reference.
#
#   benches/shared_address.sh [seconds per RPC]
#     TOKEND_BIN=path: the server binary (no build); BENCH_BIN=path: the load generator
#     (default: the server binary; it needs `--bad-secrets-for-neighbour`).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-8}"
out=target/bench-results
mkdir -p "$out"
bin="${TOKEND_BIN:-target/release/tokend}"
gen="${BENCH_BIN:-$bin}"
port=50554
[ -n "${TOKEND_BIN:-}" ] || cargo build --release --quiet

log() { printf '%s\n' "$*" | tee -a "$out/log.txt"; }
dir=$(mktemp -d)
envs=(TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
  TOKEND__LOG__FORMAT=json)
creds=$(env "${envs[@]}" "$bin" client create --tenant system --name bench-admin \
  --scopes tokend.admin 2>>"$out/server.log")
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
env "${envs[@]}" "$bin" serve >>"$out/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; rm -rf "$dir"' EXIT
until "$gen" bench --target "http://127.0.0.1:$port" --rpc health --requests 1 --warmup 0 \
    --concurrency 1 --connections 1 --json >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { echo "tokend died; see $out/server.log" >&2; exit 1; }
  sleep 0.05
done
bench() {
  "$gen" bench --target "http://127.0.0.1:$port" --client-id "$id" --client-secret "$secret" \
    --duration "$secs" --warmup 2 --concurrency 64 --connections 2 --json "$@"
}
# The other address first: a lock of the measured calls' address would refuse the temporary
# clients a later run creates (they never authenticated from it: the documented trade-off).
log "== $bin: 16 wrong secrets in flight for a neighbour, from 127.0.0.2"
bench --rpc introspect,issue --background-bad-secrets 16 --bad-secrets-for-neighbour \
  --bad-secrets-from 127.0.0.2 >"$out/other-address.json"
python3 benches/table.py "$out/other-address.json" | tee -a "$out/log.txt"
log "== $bin: the same flood from the measured calls' address"
bench --rpc introspect,issue --background-bad-secrets 16 --bad-secrets-for-neighbour \
  >"$out/shared-address.json"
python3 benches/table.py "$out/shared-address.json" | tee -a "$out/log.txt"
