#!/usr/bin/env bash
# The main job: a demo crawl of the built-in fixture marketplace. Installs Chromium and starts the
# services it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
cargo run --release --locked -- demo "$@"
