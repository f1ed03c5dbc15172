#!/usr/bin/env bash
# The forward-auth figures of BENCHMARKS.md (issue 23), on the embedded SQLite default, same run:
#   wrk  GET  /edge/verify        a warm JWT, the original request in X-Forwarded-Method/-Uri
#   wrk  POST /oauth2/introspect  the same JWT, the caller authenticated by a bearer token
#   tokend bench: gRPC ext_authz Check and Introspect (64 in flight over 2 connections)
#   wrk through nginx (examples/nginx/nginx.conf) to a static upstream, with auth_request and
#        without (the same proxy_pass location minus auth_request)
# in alternating rounds. Every non-2xx answer is counted.
#
#   benches/forward_auth.sh [seconds per measurement] [rounds]   (TOKEND_BIN=path: that binary)
#
# Needs wrk and nginx (Debian packages). Results go to target/bench-results/forward-auth-*.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-10}"
rounds="${2:-2}"
out=target/bench-results
mkdir -p "$out"
bin="${TOKEND_BIN:-target/release/tokend}"
port=50554
url="http://127.0.0.1:$port"
[ -n "${TOKEND_BIN:-}" ] || cargo build --release --quiet
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx is not installed (apt-get install nginx)" >&2; exit 1; }

log() { printf '%s\n' "$*" | tee -a "$out/forward-auth-log.txt"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

dir=$(mktemp -d)
envs=(TOKEND__DATABASE__URL="sqlite://$dir/tokend.db" TOKEND__SERVER__ADDR="127.0.0.1:$port"
  TOKEND__LOG__FORMAT=json TOKEND__EXT_AUTHZ__ENABLED=true TOKEND__EXT_AUTHZ__FORWARD_AUTH=true
  TOKEND__SERVER__TRUSTED_PROXIES=127.0.0.1)
create() { env "${envs[@]}" "$bin" client create "$@" 2>>"$out/forward-auth-server.log"; }
admin=$(create --tenant system --name bench-admin --scopes tokend.admin,tokend.introspect)
admin_id=$(echo "$admin" | json_field client_id)
admin_secret=$(echo "$admin" | json_field client_secret)
svc=$(create --tenant acme --name edge-bench --scopes read:x)
svc_id=$(echo "$svc" | json_field client_id)
svc_secret=$(echo "$svc" | json_field client_secret)

env "${envs[@]}" "$bin" serve >>"$out/forward-auth-server.log" 2>&1 &
pid=$!
nginx_pid=""
trap 'kill -TERM $pid 2>/dev/null; [ -n "$nginx_pid" ] && kill $nginx_pid 2>/dev/null; rm -rf "$dir"' EXIT
until curl -sf "$url/.well-known/jwks.json" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { echo "tokend died; see $out/forward-auth-server.log" >&2; exit 1; }
  sleep 0.05
done

token_of() { curl -sf -u "$1:$2" -d grant_type=client_credentials "$url/oauth2/token" | json_field access_token; }
caller=$(token_of "$admin_id" "$admin_secret")
target=$(token_of "$svc_id" "$svc_secret")

# nginx: the example's server (auth_request) on 18000, a plain proxy on 18001 and the static
# upstream on 18080, all in one nginx with one worker.
proxy_port=18000 plain_port=18001 api_port=18080
sed -e "s/127.0.0.1:50051/127.0.0.1:$port/; s/127.0.0.1:8080/127.0.0.1:$api_port/" \
  -e "s/127.0.0.1:8000/127.0.0.1:$proxy_port/; s/^http {/http {\n    access_log off;/" \
  examples/nginx/nginx.conf | API_PORT=$api_port PLAIN_PORT=$plain_port python3 -c '
import os, sys
conf = sys.stdin.read()
extra = """
    server { listen 127.0.0.1:%s; location / { return 200 "ok\\n"; } }
    server { listen 127.0.0.1:%s; location / { proxy_pass http://api; } }
""" % (os.environ["API_PORT"], os.environ["PLAIN_PORT"])
i = conf.rindex("}")
sys.stdout.write(conf[:i] + extra + conf[i:])
' >"$dir/nginx.conf"
"$nginx" -p "$dir" -c "$dir/nginx.conf" -g "daemon off; pid $dir/nginx.pid; error_log $dir/error.log;" &
nginx_pid=$!
until curl -sf "http://127.0.0.1:$plain_port/" >/dev/null; do sleep 0.05; done
# wrk checks statuses only: make sure the measured paths really pass.
curl -sf -H "Authorization: Bearer $target" "http://127.0.0.1:$proxy_port/orders/1" | grep -q ok \
  || { echo "the token does not pass nginx's auth_request" >&2; exit 1; }
curl -sf -H "Authorization: Bearer $target" -H "X-Forwarded-Method: GET" \
  -H "X-Forwarded-Uri: /orders/1" "$url/edge/verify" >/dev/null \
  || { echo "/edge/verify does not answer 200" >&2; exit 1; }

script="$dir/req.lua"
cat >"$script" <<'LUA'
wrk.method = os.getenv("METHOD")
local body = os.getenv("BODY")
if body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
wrk.headers["Authorization"] = os.getenv("AUTH")
wrk.headers["X-Forwarded-Method"] = "GET"
wrk.headers["X-Forwarded-Uri"] = "/orders/1"
LUA

http_rate() {
  local name="$1" method="$2" target_url="$3" auth="$4" body="$5"
  local file="$out/forward-auth-$name.txt"
  METHOD="$method" AUTH="$auth" BODY="$body" wrk -t2 -c64 -d"${secs}s" --latency -s "$script" "$target_url" >"$file"
  local rps bad
  rps=$(awk '/^Requests\/sec/ {print $2}' "$file")
  bad=$(awk '/Non-2xx/ {print $NF} /Socket errors/ {print}' "$file" | tr '\n' ' ')
  log "http  $name: ${rps} req/s  p50 $(awk '/ 50%/ {print $2}' "$file")  p99 $(awk '/ 99%/ {print $2}' "$file")  ${bad:+errors: $bad}"
}

grpc_rates() {
  "$bin" bench --target "$url" --client-id "$admin_id" --client-secret "$admin_secret" \
    --rpc ext-authz,introspect --duration "$secs" --warmup 2 --concurrency 64 --connections 2 --json \
    >"$out/forward-auth-grpc.json" 2>/dev/null
  python3 - "$out/forward-auth-grpc.json" <<'PY' | tee -a "$out/forward-auth-log.txt"
import json, sys
report = json.load(open(sys.argv[1]))
for r in report["results"]:
    errors = sum(r["errors"].values())
    print(f"grpc  {r['name']}: {r['rps']:.0f} req/s  p50 {r['latency_us']['p50']}us  "
          f"p99 {r['latency_us']['p99']}us  errors {errors}")
PY
}

log "== forward auth: /edge/verify vs HTTP introspection vs gRPC Check/Introspect, and nginx with and without auth_request, ${secs}s each, $(date -u +%FT%TZ)"
for round in $(seq 1 "$rounds"); do
  log "-- round $round"
  http_rate edge-verify GET "$url/edge/verify" "Bearer $target" ""
  http_rate introspect POST "$url/oauth2/introspect" "Bearer $caller" "token=$target"
  grpc_rates
  http_rate nginx-auth-request GET "http://127.0.0.1:$proxy_port/orders/1" "Bearer $target" ""
  http_rate nginx-plain GET "http://127.0.0.1:$plain_port/orders/1" "Bearer $target" ""
done
