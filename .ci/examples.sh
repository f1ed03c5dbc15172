#!/usr/bin/env bash
# Runs the client examples in examples/ (Python gRPC, Python OAuth 2.0 over HTTP, Node gRPC)
# as black-box tests against a real tokend:
#   TOKEND_BIN=target/release/tokend bash .ci/examples.sh
# Everything (venv, node_modules, database, KEK, logs) lives in a temp dir removed on exit;
# nothing is written into the repository. KEEP_TMP=1 keeps the temp dir for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TOKEND_BIN=${TOKEND_BIN:-target/debug/tokend}
case $TOKEND_BIN in /*) ;; *) TOKEND_BIN=$ROOT/$TOKEND_BIN ;; esac
[ -x "$TOKEND_BIN" ] || { echo "FAIL: no tokend binary at $TOKEND_BIN (set TOKEND_BIN)" >&2; exit 1; }

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

TMP=$(mktemp -d -t tokend-examples.XXXXXX)
SERVER_PID=
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$TMP/tokend.log" ]; then
    echo "--- last lines of the tokend log (KEEP_TMP=1 keeps it) ---" >&2
    tail -n 30 "$TMP/tokend.log" >&2
  fi
  if [ "${KEEP_TMP:-}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "python $(python3 --version | cut -d' ' -f2): venv with examples/python/requirements.txt"
python3 -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install --quiet --disable-pip-version-check -r examples/python/requirements.txt
PY=$TMP/venv/bin/python

step "node $(node --version), npm $(npm --version): npm ci of examples/node (into the temp dir)"
mkdir -p "$TMP/node"
cp examples/node/package.json examples/node/package-lock.json "$TMP/node/"
npm ci --prefix "$TMP/node" --ignore-scripts --no-audit --no-fund --loglevel=error
export NODE_PATH=$TMP/node/node_modules

# Same database for the server and for the command-line bootstrap below.
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TOKEND__SERVER__ADDR=127.0.0.1:$PORT
# Where clients reach tokend: the metadata's endpoint URLs, and the token endpoint URL a
# private_key_jwt assertion may name as its audience.
export TOKEND__SERVER__PUBLIC_URL=http://127.0.0.1:$PORT
export TOKEND__DATABASE__URL=sqlite://$TMP/tokend.db
export TOKEND__KEYS__KEK_FILE=$TMP/tokend.db.kek

step "bootstrap an admin (tokend client create, straight into $TMP/tokend.db)"
"$TOKEND_BIN" client create --tenant system --name admin --scopes tokend.admin,tokend.introspect \
  >"$TMP/admin.json" 2>"$TMP/admin.log" || { cat "$TMP/admin.log" >&2; exit 1; }
TOKEND_ADMIN_ID=$("$PY" -c 'import json, sys; print(json.load(sys.stdin)["client_id"])' <"$TMP/admin.json")
TOKEND_ADMIN_SECRET=$("$PY" -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])' <"$TMP/admin.json")
export TOKEND_ADMIN_ID TOKEND_ADMIN_SECRET
echo "admin client_id $TOKEND_ADMIN_ID"

step "start tokend on 127.0.0.1:$PORT"
"$TOKEND_BIN" serve >"$TMP/tokend.log" 2>&1 &
SERVER_PID=$!
export TOKEND_ADDR=127.0.0.1:$PORT TOKEND_URL=http://127.0.0.1:$PORT
for i in $(seq 1 100); do
  curl -fsS -o /dev/null "$TOKEND_URL/.well-known/jwks.json" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "FAIL: tokend exited during startup" >&2; exit 1; }
  [ "$i" -lt 100 ] || { echo "FAIL: tokend not ready after 20 s" >&2; exit 1; }
  sleep 0.2
done
echo "ready"

export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in examples/python

step "examples/python/grpc_client.py"
"$PY" examples/python/grpc_client.py

step "examples/python/oauth_http.py"
"$PY" examples/python/oauth_http.py

step "examples/python/private_key_jwt.py"
"$PY" examples/python/private_key_jwt.py

step "examples/node/grpc_client.js"
node examples/node/grpc_client.js

kill -0 "$SERVER_PID" 2>/dev/null || { echo "FAIL: tokend died during the examples" >&2; exit 1; }
echo
echo "all examples passed in $(($(date +%s) - start)) s"
echo "examples: 4 passed, 0 failed"
