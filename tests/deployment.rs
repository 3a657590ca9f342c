//! Deployment checks in Rust: every `scrapefarm` command line in the Kubernetes manifests parses
//! with the CLI's own parser, and a worker given `JOB_COMPLETION_INDEX=3` uses profile 3 and exits 0
//! once the queue has been empty for its idle timeout. (Schema validation and the Dockerfile lint
//! run in tests/k8s/validate.sh.)

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use scrapefarm::cli::Cli;
use yaml_rust2::{Yaml, YamlLoader};

/// Every container (and exec probe) that runs the scrapefarm image, as a full argv.
fn scrapefarm_command_lines(doc: &Yaml, out: &mut Vec<Vec<String>>) {
    match doc {
        Yaml::Hash(map) => {
            let image = map
                .get(&Yaml::String("image".into()))
                .and_then(Yaml::as_str);
            if image.is_some_and(|i| i.contains("scrapefarm")) {
                let list = |key: &str| -> Vec<String> {
                    map.get(&Yaml::String(key.into()))
                        .and_then(Yaml::as_vec)
                        .map(|v| {
                            v.iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (command, args) = (list("command"), list("args"));
                let mut argv = if command.is_empty() {
                    vec!["scrapefarm".to_string()]
                } else {
                    command
                };
                argv.extend(args);
                out.push(argv);
            }
            if let Some(Yaml::Hash(exec)) = map.get(&Yaml::String("exec".into()))
                && let Some(cmd) = exec
                    .get(&Yaml::String("command".into()))
                    .and_then(Yaml::as_vec)
            {
                let argv: Vec<String> = cmd
                    .iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect();
                if argv.first().is_some_and(|c| c == "scrapefarm") {
                    out.push(argv);
                }
            }
            for value in map.values() {
                scrapefarm_command_lines(value, out);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|i| scrapefarm_command_lines(i, out)),
        _ => {}
    }
}

#[test]
fn every_scrapefarm_command_in_the_manifests_parses_with_the_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in YamlLoader::load_from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            {
                scrapefarm_command_lines(&doc, &mut lines);
            }
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.get(1).is_some_and(|c| c == "worker")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.get(1).is_some_and(|c| c == "migrate")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.get(1).is_some_and(|c| c == "enqueue")),
        "{lines:?}"
    );
    for argv in &lines {
        if let Err(e) = Cli::try_parse_from(argv) {
            panic!("manifest command {argv:?} does not parse: {e}");
        }
    }
}

#[test]
fn worker_with_completion_index_3_uses_profile_3_and_exits_when_idle() {
    let chrome = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chrome).exists(),
        "Chromium missing at {chrome}: run scripts/setup.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["worker", "--exit-when-idle", "2", "--concurrency", "1"])
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .env_remove("SCRAPEFARM_WORKER_ID")
        .env("JOB_COMPLETION_INDEX", "3")
        .env("SCRAPEFARM_DATA_DIR", dir.path())
        .env("SCRAPEFARM_PROFILE_DIR", dir.path().join("profiles"))
        .env("SCRAPEFARM_SNAPSHOT_DIR", dir.path().join("snapshots"))
        .env("SCRAPEFARM_READY_FILE", dir.path().join("ready"))
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        )
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "worker exits 0: {logs}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "exits soon after the idle timeout"
    );
    let profile = dir.path().join("profiles").join("worker-3");
    assert!(
        profile.join("Default").is_dir() || profile.join("Local State").exists(),
        "Chromium used the profile at {}: {:?}",
        profile.display(),
        std::fs::read_dir(&profile).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert!(logs.contains("worker-3"), "logs name the worker: {logs}");
    assert!(!dir.path().join("profiles").join("worker-0").exists());
}
