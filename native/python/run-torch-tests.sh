#!/usr/bin/env bash
# On demand (not in the test command: torch weighs several GB): runs the Python consumer tests,
# torch ones included, with the peers venv's torch (made by `./latentmoe peers`, .tools/peers-venv)
# plus pinned pytest and pyarrow installed beside it in .tools/py-torch-extra.
# Usage: native/python/run-torch-tests.sh [BUILD_DIR] [pytest args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${1:-$repo/native/build}"
[[ $# -gt 0 ]] && shift
py="$repo/.tools/peers-venv/bin/python"
[[ -x "$py" ]] || { echo "run-torch-tests.sh: $py missing; run ./latentmoe peers once to make the torch venv" >&2; exit 2; }
extra="$repo/.tools/py-torch-extra"
if [[ ! -f "$extra/.stamp" ]]; then
  "$py" -m pip install -q --target "$extra" pytest==8.4.2 pyarrow==22.0.0
  touch "$extra/.stamp"
fi
export LATENTMOE_LIB="$build/lib/liblatentmoe.so" PYTHONPATH="$extra" PYTHONDONTWRITEBYTECODE=1
cd "$here"
exec "$py" -m pytest -p no:cacheprovider -rs -q tests "$@"
