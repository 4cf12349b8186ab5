#!/usr/bin/env bash
# Creates (or refreshes) the project's one virtual environment at .venv/ and installs
# dc_mlops with its test extras. Idempotent and cache-friendly: a second call only
# re-checks what is installed. Used by the README's Quickstart and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: dc_mlops needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# pip's own output (setuptools' "editable installation" warning among it) only when it fails
quiet() { local out; if ! out=$("$@" 2>&1); then echo "$out" >&2; return 1; fi; }
stamp=.venv/.dc_mlops-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing dc_mlops and its dependencies into .venv/ (a few minutes the first time)"
  quiet .venv/bin/python -m pip install --quiet --upgrade pip
  quiet .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$want" > "$stamp"
else
  # the package itself is editable; only make sure the entry point is registered
  quiet .venv/bin/python -m pip install --quiet --no-deps -e .
fi
echo "dc_mlops environment ready in .venv/"
