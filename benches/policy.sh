#!/usr/bin/env bash
# The client-policy figures of BENCHMARKS.md, on the embedded SQLite default:
# - warm Introspect and IssueToken with the policy checks off and on (`--client-policy`: an
#   allow-list and a rate limit every call passes, Introspect with a client_address),
#   interleaved for three rounds so the VM's drift shows as the noise it is;
# - Introspect and IssueToken with 16 wrong-secret calls in flight from another address
#   (127.0.0.2), which the lockout refuses before argon2 after `secrets.max_failures`; and the
#   same with the lockout off (`secrets.max_failures = 0`: every wrong secret costs an argon2
#   verification, as before the lockout existed).
#
#   benches/policy.sh [seconds per RPC]        (TOKEND_BIN=path: use that binary, no build)
#
# Results go to target/bench-results/policy-*.json and the log.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-10}"
out=target/bench-results
mkdir -p "$out"
bin="${TOKEND_BIN:-target/release/tokend}"
port=50552
[ -n "${TOKEND_BIN:-}" ] || cargo build --release --quiet

log() { printf '%s\n' "$*" | tee -a "$out/log.txt"; }

dirs=()
# A fresh database with a bootstrapped admin: sets $envs, $id and $secret.
fresh_db() {
  local dir creds
  dir=$(mktemp -d)
  dirs+=("$dir")
  envs=(TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
    TOKEND__LOG__FORMAT=json)
  creds=$(env "${envs[@]}" "$bin" client create --tenant system --name bench-admin \
    --scopes tokend.admin 2>>"$out/server.log")
  id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
  secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
}
start() {
  env "${envs[@]}" "$@" "$bin" serve >>"$out/server.log" 2>&1 &
  pid=$!
  until "$bin" bench --target "http://127.0.0.1:$port" --rpc health --requests 1 --warmup 0 \
      --concurrency 1 --connections 1 --json >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { echo "tokend died; see $out/server.log" >&2; exit 1; }
    sleep 0.05
  done
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
trap 'kill -TERM $pid 2>/dev/null; rm -rf "${dirs[@]}"' EXIT
fresh_db
start

bench() {
  "$bin" bench --target "http://127.0.0.1:$port" --client-id "$id" --client-secret "$secret" \
    --duration "$secs" --warmup 2 --concurrency 64 --connections 2 --json "$@"
}

log "== client policy off / on (SQLite, 64 in flight, ${secs}s per RPC)"
for round in 1 2 3; do
  bench --rpc introspect,issue >"$out/policy-off-$round.json"
  log "-- round $round, policy off"
  python3 benches/table.py "$out/policy-off-$round.json" | tee -a "$out/log.txt"
  bench --rpc introspect,issue --client-policy >"$out/policy-on-$round.json"
  log "-- round $round, policy on"
  python3 benches/table.py "$out/policy-on-$round.json" | tee -a "$out/log.txt"
done
log "== 16 wrong secrets in flight from 127.0.0.2, lockout on (max_failures 10)"
bench --rpc introspect,issue --background-bad-secrets 16 --bad-secrets-from 127.0.0.2 \
  >"$out/policy-bad-secrets.json"
python3 benches/table.py "$out/policy-bad-secrets.json" | tee -a "$out/log.txt"
stop
# A fresh database: the locks of the run above are in the change log of the old one.
fresh_db
start TOKEND__SECRETS__MAX_FAILURES=0
log "== 16 wrong secrets in flight from 127.0.0.2, lockout off (max_failures 0)"
bench --rpc introspect,issue --background-bad-secrets 16 --bad-secrets-from 127.0.0.2 \
  >"$out/policy-bad-secrets-off.json"
python3 benches/table.py "$out/policy-bad-secrets-off.json" | tee -a "$out/log.txt"
log "results in $out/"
