#!/usr/bin/env bash
# The Helm chart (helm/tokend) and its values.schema.json, checked with real Helm and the
# Kubernetes schemas, offline: see .ci/helm_check.py for what and how. Installs its tools into a
# venv cached like buf in .ci/run, keyed by the pinned requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

REQS=.ci/helm-requirements.txt
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/tokend-ci/helm-venv-$(sha256sum "$REQS" | cut -c1-12)"
if [ ! -f "$VENV/.complete" ]; then
  rm -rf "${VENV%-*}"-*  # this one half-installed, or older ones (about 500 MB each)
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --ignore-requires-python -r "$REQS"
  touch "$VENV/.complete"
fi
"$VENV/bin/python" -u .ci/helm_check.py helm/tokend
