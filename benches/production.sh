#!/usr/bin/env bash
# The production-settings figures of BENCHMARKS.md (issue 14), on the embedded SQLite default:
# warm Introspect and IssueToken
#   - plain:   plaintext h2c, no metrics (the default);
#   - metrics: metrics.addr set (every request counted by the layer) and /metrics scraped once a
#              second meanwhile, harsher than Prometheus' usual 15 s;
#   - tls:     server.tls with a P-256 certificate (the bench trusts its CA), no metrics;
# interleaved for three rounds on one database, so the VM's drift shows as the noise it is.
# Connections are long-lived (2 HTTP/2 connections, 64 calls in flight): this is the cost per
# call of encryption and counting, not of handshakes.
#
#   benches/production.sh [seconds per RPC]     (TOKEND_BIN=path: use that binary, no build)
#
# Results go to target/bench-results/production-*.json and the log.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-10}"
out=target/bench-results
mkdir -p "$out"
bin="${TOKEND_BIN:-target/release/tokend}"
port=50553
metrics_port=50554
[ -n "${TOKEND_BIN:-}" ] || cargo build --release --quiet

log() { printf '%s\n' "$*" | tee -a "$out/log.txt"; }

dir=$(mktemp -d)
# A CA and a server certificate for 127.0.0.1, as an operator's PKI would issue them.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=tokend" \
  -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') \
  -out "$dir/tls.crt" 2>/dev/null

envs=(TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
  TOKEND__LOG__FORMAT=json)
creds=$(env "${envs[@]}" "$bin" client create --tenant system --name bench-admin \
  --scopes tokend.admin 2>>"$out/server.log")
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
pid=""
scraper=""
target=""
tls_args=()
start() {
  env "${envs[@]}" "$@" "$bin" serve >>"$out/server.log" 2>&1 &
  pid=$!
  until "$bin" bench --target "$target" "${tls_args[@]}" --rpc health --requests 1 --warmup 0 \
      --concurrency 1 --connections 1 --json >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { echo "tokend died; see $out/server.log" >&2; exit 1; }
    sleep 0.05
  done
}
stop() {
  [ -z "$scraper" ] || { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; scraper=""; }
  kill -TERM "$pid"; wait "$pid" || true
}
trap '[ -z "$scraper" ] || kill $scraper 2>/dev/null; [ -z "$pid" ] || kill -TERM $pid 2>/dev/null; rm -rf "$dir"' EXIT

bench() {
  "$bin" bench --target "$target" "${tls_args[@]}" --client-id "$id" --client-secret "$secret" \
    --duration "$secs" --warmup 2 --concurrency 64 --connections 2 --json --rpc introspect,issue
}
show() { log "-- round $1, $2"; python3 benches/table.py "$out/production-$2-$1.json" | tee -a "$out/log.txt"; }

log "== plaintext / metrics on / TLS (SQLite, 64 in flight over 2 connections, ${secs}s per RPC)"
for round in 1 2 3; do
  target="http://127.0.0.1:$port"; tls_args=()
  start
  bench >"$out/production-plain-$round.json"
  stop
  show "$round" plain

  start TOKEND__METRICS__ADDR="127.0.0.1:$metrics_port"
  (while true; do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/metrics"; sleep 1; done) &
  scraper=$!
  bench >"$out/production-metrics-$round.json"
  bytes=$(curl -s "http://127.0.0.1:$metrics_port/metrics" | wc -c)
  stop
  show "$round" metrics
  log "   (one scrape: $bytes bytes)"

  target="https://127.0.0.1:$port"; tls_args=(--ca-cert "$dir/ca.crt")
  start TOKEND__SERVER__TLS__CERT_FILE="$dir/tls.crt" TOKEND__SERVER__TLS__KEY_FILE="$dir/tls.key"
  bench >"$out/production-tls-$round.json"
  stop
  show "$round" tls
done
log "results in $out/"
