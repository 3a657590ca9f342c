#!/usr/bin/env bash
# Runs schemathesis (PyPI, pinned) with the given arguments, installing it first into a venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/scrapefarm-tools/schemathesis, outside the repository.
# Used by tests/api_schema.rs against a live `scrapefarm serve`.
set -euo pipefail
export PIP_DISABLE_PIP_VERSION_CHECK=1
req="schemathesis==4.32.5"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/scrapefarm-tools/schemathesis"
stamp="$venv/.scrapefarm-req"
if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" || {
        echo "cannot create a venv with python3 (on Debian: apt-get install python3-venv)" >&2
        exit 2
    }
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$req" ]]; then
    "$venv/bin/python" -m pip install -q "$req" || {
        echo "pip could not install $req from PyPI" >&2
        exit 2
    }
    printf '%s' "$req" >"$stamp"
fi
exec "$venv/bin/st" "$@"
