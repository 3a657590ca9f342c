//! The OpenAPI document checked against the live server by schemathesis (PyPI, pinned in
//! tests/tools/schemathesis.sh): every operation is called with generated valid and invalid
//! requests, authenticated with a real `write` key; no answer may be a 5xx, and every answer's
//! status, content type, headers and body must match the document. The real binary serves the
//! API on the embedded default, with no collector, scheduler or alert deliverer (generated
//! searches and webhooks must not send traffic anywhere).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::private::spare_port;
use common::process::Running;

fn scrapefarm(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrapefarm"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .env("SCRAPEFARM_DATA_DIR", dir)
        .env("SCRAPEFARM_PROFILE_DIR", dir.join("profiles"))
        .env("SCRAPEFARM_SNAPSHOT_DIR", dir.join("snapshots"))
        .env_remove("SCRAPEFARM_SITES_DIR")
        .env_remove("SCRAPEFARM_BIND");
    cmd
}

fn wait_healthy(base: &str) {
    let started = Instant::now();
    loop {
        let ok = std::net::TcpStream::connect(base.trim_start_matches("http://")).is_ok();
        if ok {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let key = scrapefarm(
        dir.path(),
        &["apikey", "create", "--name", "st", "--scope", "write"],
    )
    .output()
    .unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let bind = format!("127.0.0.1:{}", spare_port());
    let args = [
        "serve",
        "--bind",
        &bind,
        "--no-collect",
        "--no-scheduler",
        "--no-deliver",
    ];
    let mut serve = scrapefarm(dir.path(), &args);
    serve.stdout(Stdio::null()).stderr(Stdio::null());
    let _serve = Running(serve.spawn().unwrap());
    let base = format!("http://{bind}");
    wait_healthy(&base);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/schemathesis.sh");
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,\
                  response_headers_conformance,response_schema_conformance";
    // Run where schemathesis may leave its cache: the test's scratch directory.
    let out = Command::new("bash")
        .current_dir(dir.path())
        .arg(script)
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", checks])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "50", "--seed", "7", "--workers", "1"])
        .args([
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            "--no-color",
        ])
        .output()
        .expect("bash runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found problems (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(
        !stdout.contains(&key),
        "the key never appears in the report"
    );
    assert!(
        stdout.contains("passed"),
        "schemathesis ran operations:\n{stdout}"
    );
}
