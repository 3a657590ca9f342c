#!/usr/bin/env bash
# The main job: a demo crawl of the built-in fixture marketplace on the embedded default (SQLite +
# the embedded queue; no servers). Installs Chromium first if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
cargo run --release --locked -- demo "$@"
