#!/usr/bin/env bash
# The test command: installs/starts Chromium, PostgreSQL and RabbitMQ if needed, checks formatting
# and lints, runs every test (unit, integration on real services, manifests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
bash tests/k8s/validate.sh
cargo test --all-targets --locked --no-fail-fast -- --test-threads 2
