#!/usr/bin/env bash
# Creates <repo>/.tools/py-engine-venv with the pinned requirements.txt unless it is already
# complete. Prints the venv's python path on the last line. Usage: make-venv.sh [repo-root]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="${1:-$(cd "$here/../.." && pwd)}"
venv="$repo/.tools/py-engine-venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
mkdir -p "$repo/.tools"
if command -v flock >/dev/null; then
  exec 9>"$repo/.tools/py-engine-venv.lock"
  flock 9
fi
# The stamp is written last, so a half-made venv (killed pip) is rebuilt rather than trusted.
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 not found on PATH" >&2; exit 2; }
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --disable-pip-version-check -q --only-binary=:all: -r "$req" >&2
"$venv/bin/python" -c 'import numpy, pyarrow, pytest' >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
