#!/usr/bin/env bash
# The OAuth 2.0-over-HTTP figures of BENCHMARKS.md, on the embedded SQLite default: a standard
# HTTP load tool (wrk, HTTP/1.1 with keep-alive, 64 connections) against
#   POST /oauth2/token       client_credentials, client_secret_basic (a remembered secret: no argon2)
#   POST /oauth2/introspect  one warm JWT, the caller authenticated by a bearer token
# beside `tokend bench` (gRPC, 64 in flight over 2 HTTP/2 connections) measuring IssueToken and
# Introspect (and ext_authz Check when the server has it) against the same server in the same run,
# in alternating rounds so the VM's drift shows as noise. Every non-200 answer is counted.
#
#   benches/http.sh [seconds per measurement] [rounds]   (TOKEND_BIN=path: use that binary)
#
# Needs wrk (Debian package `wrk`). Results go to target/bench-results/http-*.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-10}"
rounds="${2:-2}"
out=target/bench-results
mkdir -p "$out"
bin="${TOKEND_BIN:-target/release/tokend}"
port=50553
url="http://127.0.0.1:$port"
[ -n "${TOKEND_BIN:-}" ] || cargo build --release --quiet
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

log() { printf '%s\n' "$*" | tee -a "$out/log.txt"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

dir=$(mktemp -d)
envs=(TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
  TOKEND__LOG__FORMAT=json TOKEND__EXT_AUTHZ__ENABLED=true)
create() { env "${envs[@]}" "$bin" client create "$@" 2>>"$out/server.log"; }
admin=$(create --tenant system --name bench-admin --scopes tokend.admin,tokend.introspect)
admin_id=$(echo "$admin" | json_field client_id)
admin_secret=$(echo "$admin" | json_field client_secret)
svc=$(create --tenant acme --name http-bench --scopes read:x)
svc_id=$(echo "$svc" | json_field client_id)
svc_secret=$(echo "$svc" | json_field client_secret)

env "${envs[@]}" "$bin" serve >>"$out/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; rm -rf "$dir"' EXIT
until curl -sf "$url/.well-known/jwks.json" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { echo "tokend died; see $out/server.log" >&2; exit 1; }
  sleep 0.05
done

token_of() { curl -sf -u "$1:$2" -d grant_type=client_credentials "$url/oauth2/token" | json_field access_token; }
caller=$(token_of "$admin_id" "$admin_secret")
target=$(token_of "$svc_id" "$svc_secret")
# wrk checks statuses only: make sure the measured introspection really answers active.
curl -sf -H "Authorization: Bearer $caller" -d "token=$target" "$url/oauth2/introspect" \
  | grep -q '"active":true' || { echo "the measured token does not introspect active" >&2; exit 1; }
basic="Basic $(printf '%s:%s' "$svc_id" "$svc_secret" | base64 -w0)"

script="$dir/post.lua"
cat >"$script" <<'LUA'
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("AUTH")
LUA

tck=$(getconf CLK_TCK)
# The server's CPU seconds so far (user + system), from /proc.
server_cpu() { awk -v t="$tck" '{ print ($14 + $15) / t }' "/proc/$pid/stat"; }

# wrk's rate, with its count of non-2xx answers and socket errors beside it, and the server's
# CPU per request (its CPU seconds during the run over wrk's request count: unlike the rate,
# this hardly moves with what else the VM runs).
http_rate() {
  local name="$1" path="$2" auth="$3" body="$4"
  local file="$out/http-$name.txt"
  local before after requests cpu_us
  before=$(server_cpu)
  AUTH="$auth" BODY="$body" wrk -t2 -c64 -d"${secs}s" --latency -s "$script" "$url$path" >"$file"
  after=$(server_cpu)
  requests=$(awk '/requests in/ {print $1}' "$file")
  cpu_us=$(awk -v a="$after" -v b="$before" -v n="$requests" 'BEGIN { printf "%.1f", (a - b) * 1e6 / n }')
  local rps bad
  rps=$(awk '/^Requests\/sec/ {print $2}' "$file")
  bad=$(awk '/Non-2xx/ {print $NF} /Socket errors/ {print}' "$file" | tr '\n' ' ')
  log "http  $name: ${rps} req/s  p50 $(awk '/ 50%/ {print $2}' "$file")  p99 $(awk '/ 99%/ {print $2}' "$file")  server ${cpu_us} us/req  ${bad:+errors: $bad}"
}

grpc_rates() {
  "$bin" bench --target "$url" --client-id "$admin_id" --client-secret "$admin_secret" \
    --rpc "$1" --duration "$secs" --warmup 2 --concurrency 64 --connections 2 --json \
    >"$out/http-grpc.json" 2>/dev/null
  python3 - "$out/http-grpc.json" <<'PY' | tee -a "$out/log.txt"
import json, sys
report = json.load(open(sys.argv[1]))
for r in report["results"]:
    errors = sum(r["errors"].values())
    print(f"grpc  {r['name']}: {r['rps']:.0f} req/s  p50 {r['latency_us']['p50']}us  "
          f"p99 {r['latency_us']['p99']}us  errors {errors}")
PY
}

log "== OAuth 2.0 over HTTP/1.1 (wrk, 64 connections) vs gRPC (64 in flight), ${secs}s each, $(date -u +%FT%TZ)"
for round in $(seq 1 "$rounds"); do
  log "-- round $round"
  http_rate token /oauth2/token "$basic" "grant_type=client_credentials"
  http_rate introspect /oauth2/introspect "Bearer $caller" "token=$target"
  grpc_rates "${GRPC_RPCS:-issue,introspect,ext-authz}"
done
