#!/bin/sh
# Runs every cargo-fuzz (libFuzzer) target of fuzz/ for SECONDS each (default 180), seeded with
# fuzz/corpus/<target>/ and the kept crashing inputs fuzz/regressions/<target>/, and reports each
# target's runs and any crash (its input is left in fuzz/artifacts/<target>/). Exits 1 when any
# target crashed or failed to build.
#
# The stable toolchain builds it: there is no sanitizer (`--sanitizer none`; the code is safe
# Rust, and a panic is what we look for), and RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the
# unstable flags it uses. Needs `cargo install cargo-fuzz`. New inputs found go to a temporary
# corpus, so a run never changes the repository's.
set -eu
seconds=${1:-180}
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 1
fi
cargo fuzz build --sanitizer none --release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=""
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target" "artifacts/$target" "regressions/$target" "corpus/$target"
    echo "== $target: ${seconds} s"
    if cargo fuzz run --sanitizer none --release "$target" \
        "$work/$target" "corpus/$target" "regressions/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
        >"$work/$target.log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^Done' "$work/$target.log" || true
        echo "== $target: no crash"
    else
        tail -40 "$work/$target.log"
        echo "== $target: CRASH (input in fuzz/artifacts/$target/)"
        failed="$failed $target"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz.sh: crashed:$failed" >&2
    exit 1
fi
echo "fuzz.sh: every target ran ${seconds} s without a crash"
