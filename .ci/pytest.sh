#!/usr/bin/env bash
# Runs pytest (`.ci/pytest.sh PYTHON [pytest args...]`) and passes its exit status on, except
# that "no tests collected" (pytest's exit 5) is a failure: a CI that runs nothing is red.
set -uo pipefail
python=$1
shift
start=$SECONDS
"$python" -m pytest "$@"
rc=$?
echo "test suite wall time: $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
if [ "$rc" = 5 ]; then
  echo "error: pytest collected no tests (exit 5): that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
