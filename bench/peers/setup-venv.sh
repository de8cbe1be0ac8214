#!/usr/bin/env bash
# Creates (or reuses) the pinned virtual environment for ./latentmoe peers from PyPI:
# bench/peers/requirements.txt (torch 2.11.0, transformers 5.17.0 and everything they pull in).
# torch from PyPI brings the CUDA libraries: several GB, downloaded once.
set -euo pipefail
VENV="${1:?usage: setup-venv.sh VENV_DIR}"
REQ="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements.txt"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" == "$want" ]]; then exit 0; fi
command -v python3 >/dev/null 2>&1 || { echo "latentmoe peers: python3 not found" >&2; exit 1; }
echo "[latentmoe] creating $VENV from $REQ (torch from PyPI: several GB, once)" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
echo "$want" > "$VENV/.requirements.sha256"
