//! `scrapefarm demo` as a new user runs it: the real binary in an empty directory, with no
//! checkout and no `SCRAPEFARM_*` settings — the built-in site definitions, the embedded default
//! and its own data directory (`./scrapefarm-demo/`: database, profiles, snapshots), never the
//! user's `./scrapefarm.db`.

use std::process::Command;

/// The binary run in `dir` with nothing from the caller's environment choosing its paths.
fn in_dir(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrapefarm"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("SCRAPEFARM_") || key == "DATABASE_URL" || key == "AMQP_URL" {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn demo_run_from_an_empty_directory_completes_with_the_built_in_sites() {
    let dir = tempfile::tempdir().unwrap();
    let out = in_dir(
        dir.path(),
        &["demo", "--listings", "12", "--concurrency", "2"],
    )
    .output()
    .expect("the scrapefarm binary runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("12 listings queued"), "{stdout}");
    assert!(stdout.contains("\n12 listings in "), "{stdout}");
    let active = stdout
        .lines()
        .find(|l| l.starts_with("active"))
        .unwrap_or_else(|| panic!("no active count in:\n{stdout}"));
    assert_eq!(active.split_whitespace().nth(1), Some("12"), "{stdout}");
    let demo = dir.path().join("scrapefarm-demo");
    assert!(
        stdout.contains("Demo data in ./scrapefarm-demo/"),
        "says where: {stdout}"
    );
    assert!(
        demo.join("scrapefarm.db").is_file(),
        "embedded database not created in the demo's own directory"
    );
    for made in ["snapshots", "profiles"] {
        assert!(demo.join(made).is_dir(), "{made}/ not created");
    }
    for mine in ["scrapefarm.db", "snapshots", "profiles"] {
        assert!(
            !dir.path().join(mine).exists(),
            "the demo left the user's {mine} alone"
        );
    }
    assert!(
        !dir.path().join("sites").exists(),
        "no sites directory needed"
    );
}

#[test]
fn a_sites_directory_that_does_not_exist_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = in_dir(dir.path(), &["crawl", "--site", "fixture", "--urls", "-"])
        .env("SCRAPEFARM_SITES_DIR", "/nonexistent/sites")
        .output()
        .expect("the scrapefarm binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("/nonexistent/sites"), "{stderr}");
}
