#!/usr/bin/env bash
# On demand (not in the test command: torch weighs several GB): HF transformers' NemotronH on the
# library (latentmoe.transformers), checked against transformers' eager forward and timed, with the
# peers venv (torch 2.11.0, transformers 5.17.0 pinned in bench/peers/requirements.txt; made here
# when missing). Usage: native/python/run-transformers-check.sh [BUILD_DIR] [--json FILE] [--no-bench] ...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/native/build"
if [[ $# -gt 0 && "$1" != --* ]]; then build="$1"; shift; fi
[[ -f "$build/lib/liblatentmoe.so" ]] || { echo "run-transformers-check.sh: $build/lib/liblatentmoe.so not found (./latentmoe build)" >&2; exit 2; }
"$repo/bench/peers/setup-venv.sh" "$repo/.tools/peers-venv"
export LATENTMOE_LIB="$build/lib/liblatentmoe.so" PYTHONPATH="$here" PYTHONDONTWRITEBYTECODE=1
exec "$repo/.tools/peers-venv/bin/python" "$here/tools/transformers_check.py" "$@"
