#!/usr/bin/env bash
# The API-quota figures of BENCHMARKS.md (issue 22 section 3), on the embedded SQLite default:
# Envoy ext_authz Check without quotas (`ext-authz`: a client with no api_rate_limit_per_minute,
# on /orders/42 whose rule has no requests_per_minute) beside Check with both quotas
# (`ext-authz-quota`: a client with an api_rate_limit_per_minute no run reaches, on /quota/42
# whose rule has a requests_per_minute no run reaches either), so every measured Check of the
# second does the whole bookkeeping (two buckets, the RateLimit headers, the usage counter) and
# none is throttled. Same server, rounds interleaved with the order swapped each round.
#
#   benches/quotas.sh [seconds per RPC] [rounds]   (TOKEND_BIN=path: use that binary, no build)
#
# Results go to target/bench-results/quotas-*.json and the log.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-10}"
rounds="${2:-4}"
out=target/bench-results
mkdir -p "$out"
bin="${TOKEND_BIN:-target/release/tokend}"
port=50555
[ -n "${TOKEND_BIN:-}" ] || cargo build --release --quiet

log() { printf '%s\n' "$*" | tee -a "$out/log.txt"; }

dir=$(mktemp -d)
trap 'kill -TERM ${pid:-0} 2>/dev/null; rm -rf "$dir"' EXIT
cat >"$dir/tokend.toml" <<TOML
[ext_authz]
enabled = true

[[ext_authz.routes]]
path_prefix = "/orders"

[[ext_authz.routes]]
path_prefix = "/quota"
requests_per_minute = 1000000000
TOML
envs=(TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
  TOKEND__LOG__FORMAT=json)
creds=$(env "${envs[@]}" "$bin" --config "$dir/tokend.toml" client create --tenant system \
  --name bench-admin --scopes tokend.admin 2>>"$out/server.log")
id=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
secret=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')

env "${envs[@]}" "$bin" --config "$dir/tokend.toml" serve >>"$out/server.log" 2>&1 &
pid=$!
until "$bin" bench --target "http://127.0.0.1:$port" --rpc health --requests 1 --warmup 0 \
    --concurrency 1 --connections 1 --json >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { echo "tokend died; see $out/server.log" >&2; exit 1; }
  sleep 0.05
done
bench() {
  "$bin" bench --target "http://127.0.0.1:$port" --client-id "$id" --client-secret "$secret" \
    --duration "$secs" --warmup 2 --concurrency 64 --connections 2 --json "$@"
}

log "== ext_authz Check without and with API quotas (SQLite, 64 in flight, ${secs}s per RPC)"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order=ext-authz,ext-authz-quota; else order=ext-authz-quota,ext-authz; fi
  bench --rpc "$order" >"$out/quotas-$round.json"
  log "-- round $round ($order)"
  python3 benches/table.py "$out/quotas-$round.json" | tee -a "$out/log.txt"
done
python3 - "$out" "$rounds" <<'PY' | tee -a "$out/log.txt"
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
off, on = [], []
for r in range(1, rounds + 1):
    results = {x["name"]: x for x in json.load(open(f"{out}/quotas-{r}.json"))["results"]}
    off.append(results["ext-authz"]["rps"]); on.append(results["ext-authz-quota"]["rps"])
    print(f"round {r}: quotas on / off = {on[-1] / off[-1]:.3f}")
print(f"all rounds: on {sum(on):,.0f} / off {sum(off):,.0f} = {sum(on) / sum(off):.3f}")
PY
log "results in $out/"
