#!/usr/bin/env bash
# Makes the pinned venv (.tools/py-engine-venv) and runs the Python consumer tests against a built
# liblatentmoe.so. Usage: native/python/run-tests.sh [BUILD_DIR] [pytest args...]
# BUILD_DIR defaults to $LATENTMOE_LIB's directory or <repo>/native/build (the launcher's).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${1:-}"
[[ $# -gt 0 ]] && shift
if [[ -n "$build" ]]; then
  export LATENTMOE_LIB="$build/lib/liblatentmoe.so"
elif [[ -z "${LATENTMOE_LIB:-}" ]]; then
  export LATENTMOE_LIB="$repo/native/build/lib/liblatentmoe.so"
fi
[[ -f "$LATENTMOE_LIB" || -d "$LATENTMOE_LIB" ]] || { echo "run-tests.sh: $LATENTMOE_LIB not found (build native/ first)" >&2; exit 2; }
py="$("$here/make-venv.sh" "$repo" | tail -n 1)"
cd "$here"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
exec "$py" -m pytest -p no:cacheprovider -rs -q tests "$@"
