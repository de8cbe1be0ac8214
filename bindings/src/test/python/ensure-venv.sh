#!/usr/bin/env bash
# Creates <repo>/.tools/pyenv with the pinned requirements unless it is already complete.
# Usage: ensure-venv.sh <repo-root>. Prints the venv's python path on the last line.
set -euo pipefail
repo="${1:?usage: ensure-venv.sh <repo-root>}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$repo/.tools/pyenv"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
mkdir -p "$repo/.tools"
# Serialise concurrent callers (parallel test forks, other modules) so one builds and the rest reuse.
if command -v flock >/dev/null; then
  exec 9>"$repo/.tools/pyenv.lock"
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
"$venv/bin/pip" install --disable-pip-version-check -q -r "$req" >&2
"$venv/bin/python" -c 'import clang.cindex; clang.cindex.Index.create()' >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
