//! A short run of every cargo-fuzz target (price parsing, site-definition loading, extraction of
//! arbitrary HTML with each shipped site) as part of the suite: `scripts/fuzz.sh 20` runs each for
//! 20 s (`SCRAPEFARM_FUZZ_SECONDS` to change it) from the corpus and the kept regression inputs,
//! and any crash fails this test. Without cargo-fuzz it is skipped with the reason printed,
//! except under CI (`CI=true`), where it fails.

use std::path::Path;
use std::process::Command;

#[test]
fn every_fuzz_target_runs_without_a_crash() {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !installed {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cargo-fuzz is not installed under CI (cargo install cargo-fuzz)"
        );
        println!("SKIPPED: cargo-fuzz is not installed (cargo install cargo-fuzz)");
        return;
    }
    let seconds = std::env::var("SCRAPEFARM_FUZZ_SECONDS").unwrap_or_else(|_| "20".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fuzz.sh");
    let out = Command::new(&script).arg(&seconds).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{} failed:\n{text}", script.display());
    for target in ["price", "site_toml", "extract_html"] {
        assert!(
            text.contains(&format!("== {target}: no crash")),
            "{target} did not run:\n{text}"
        );
    }
}
