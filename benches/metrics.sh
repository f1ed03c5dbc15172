#!/usr/bin/env bash
# The metrics figures of BENCHMARKS.md, on the embedded SQLite default: warm Introspect and
# IssueToken with metrics off (no metrics.addr: requests are not counted) and on (every request
# counted by the layer, and /metrics scraped once a second meanwhile, harsher than Prometheus'
# usual 15 s), interleaved for three rounds on one database so the VM's drift shows as noise.
#
#   benches/metrics.sh [seconds per RPC]        (TOKEND_BIN=path: use that binary, no build)
#
# Results go to target/bench-results/metrics-*.json and the log.
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
envs=(TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
  TOKEND__LOG__FORMAT=json)
creds=$(env "${envs[@]}" "$bin" client create --tenant system --name bench-admin \
  --scopes tokend.admin 2>>"$out/server.log")
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
pid=""
scraper=""
start() {
  env "${envs[@]}" "$@" "$bin" serve >>"$out/server.log" 2>&1 &
  pid=$!
  until "$bin" bench --target "http://127.0.0.1:$port" --rpc health --requests 1 --warmup 0 \
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
  "$bin" bench --target "http://127.0.0.1:$port" --client-id "$id" --client-secret "$secret" \
    --duration "$secs" --warmup 2 --concurrency 64 --connections 2 --json "$@"
}

log "== metrics off / on (SQLite, 64 in flight, ${secs}s per RPC; on: scraped every second)"
for round in 1 2 3; do
  start
  bench --rpc introspect,issue >"$out/metrics-off-$round.json"
  stop
  log "-- round $round, metrics off"
  python3 benches/table.py "$out/metrics-off-$round.json" | tee -a "$out/log.txt"
  start TOKEND__METRICS__ADDR="127.0.0.1:$metrics_port"
  (while true; do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/metrics"; sleep 1; done) &
  scraper=$!
  bench --rpc introspect,issue >"$out/metrics-on-$round.json"
  bytes=$(curl -s "http://127.0.0.1:$metrics_port/metrics" | wc -c)
  stop
  log "-- round $round, metrics on (a scrape: $bytes bytes)"
  python3 benches/table.py "$out/metrics-on-$round.json" | tee -a "$out/log.txt"
done
log "results in $out/"
