#!/usr/bin/env bash
# The test command: installs/starts Chromium, PostgreSQL and RabbitMQ if needed, checks formatting
# and lints, runs every test (unit, integration on real services, manifests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
bash tests/k8s/validate.sh
# The fuzz targets' short run (tests/fuzz_smoke.rs) needs cargo-fuzz and the targets built
# (release, libFuzzer, no sanitizer: stable Rust with RUSTC_BOOTSTRAP=1); built here, before
# the tests, so the build does not slow the timed tests down.
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none --release)
cargo test --all-targets --locked --no-fail-fast -- --test-threads 2
