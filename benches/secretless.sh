#!/usr/bin/env bash
# The secretless IssueToken figures of BENCHMARKS.md (issue 21), on the embedded SQLite default:
# - IssueToken with a client secret (the verified-secret cache hit every warm client gets),
#   with private_key_jwt (a fresh ES256 assertion per call: one signature check and one jti
#   written, single-use on every replica) and with a federated workload token (RS256, as a
#   Kubernetes service-account token; one signature check, no write), in the same run, three
#   rounds interleaved;
# - IssueToken with a secret that misses the cache (secrets.verified_cache_entries = 0: one
#   argon2id verification per call, the cost the assertion paths must beat).
#
#   benches/secretless.sh [seconds per RPC]     (TOKEND_BIN=path: use that binary, no build)
#
# Results go to target/bench-results/secretless-*.json and the log.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-10}"
out=target/bench-results
mkdir -p "$out"
bin="${TOKEND_BIN:-target/release/tokend}"
port=50553
issuer_port=50554
issuer="http://127.0.0.1:$issuer_port"
[ -n "${TOKEND_BIN:-}" ] || cargo build --release --quiet

log() { printf '%s\n' "$*" | tee -a "$out/log.txt"; }

dir=$(mktemp -d)
trap 'kill -TERM ${pid:-0} 2>/dev/null; rm -rf "$dir"' EXIT
# The workload issuer the bench plays: tokend fetches its keys from the bench's own server.
cat >"$dir/tokend.toml" <<TOML
[[federation.issuers]]
issuer = "$issuer"
jwks_uri = "$issuer/jwks"
audiences = ["tokend-bench"]
TOML
envs=(TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
  TOKEND__LOG__FORMAT=json
  # each round plays a new issuer key under a new kid: find it at once
  TOKEND__ASSERTIONS__KEY_REFETCH_INTERVAL_SECS=1)
creds=$(env "${envs[@]}" "$bin" --config "$dir/tokend.toml" client create --tenant system \
  --name bench-admin --scopes tokend.admin 2>>"$out/server.log")
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')

start() {
  env "${envs[@]}" "$@" "$bin" --config "$dir/tokend.toml" serve >>"$out/server.log" 2>&1 &
  pid=$!
  until "$bin" bench --target "http://127.0.0.1:$port" --rpc health --requests 1 --warmup 0 \
      --concurrency 1 --connections 1 --json >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { echo "tokend died; see $out/server.log" >&2; exit 1; }
    sleep 0.05
  done
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
bench() {
  "$bin" bench --target "http://127.0.0.1:$port" --client-id "$id" --client-secret "$secret" \
    --duration "$secs" --warmup 2 --concurrency 64 --connections 2 --json "$@"
}

start
log "== IssueToken by a secret (cache hit), private_key_jwt and a federated token (SQLite, 64 in flight, ${secs}s per RPC)"
for round in 1 2 3; do
  bench --rpc issue,issue-pkjwt,issue-federated --federation-issuer "$issuer" \
    >"$out/secretless-$round.json"
  log "-- round $round"
  python3 benches/table.py "$out/secretless-$round.json" | tee -a "$out/log.txt"
done
stop
start TOKEND__SECRETS__VERIFIED_CACHE_ENTRIES=0
log "== IssueToken by a secret that misses the cache (verified_cache_entries = 0: argon2id per call)"
bench --rpc issue,issue-pkjwt,issue-federated --federation-issuer "$issuer" \
  >"$out/secretless-uncached.json"
python3 benches/table.py "$out/secretless-uncached.json" | tee -a "$out/log.txt"
stop
log "results in $out/"
