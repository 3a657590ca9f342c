//! Worker metrics and heartbeats on the farm (PostgreSQL + RabbitMQ + Chromium): a real
//! `scrapefarm worker --metrics-bind` works off a search of the fixture site; its `/metrics`
//! counts exactly the pages stored, its heartbeat row says it is alive (through the real
//! `status --json`), and once it stops `status` says it is gone after three missed beats.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fleet::wait_until_stored;
use common::private::{spare_port, wait_for_port};
use common::{AMQP, Farm, drop_database};
use scrapefarm::fixture_site::FixtureConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WORKER: &str = "metrics-w1";
/// Heartbeats 1 s apart, so "gone" shows after 3 s.
const BEAT_SECS: u64 = 1;

/// `GET /metrics` on `port`: the status line and body.
async fn scrape(port: u16) -> String {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the worker serves /metrics");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let read = conn.read_to_string(&mut answer);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("/metrics answers within 10 s")
        .unwrap();
    answer
}

/// `scrapefarm_pages_total` samples of site `fixture`, by outcome.
fn pages_by_outcome(text: &str) -> BTreeMap<String, u64> {
    let prefix = r#"scrapefarm_pages_total{site="fixture",outcome=""#;
    text.lines()
        .filter_map(|line| line.strip_prefix(prefix))
        .filter_map(|rest| {
            let (outcome, value) = rest.split_once(r#""} "#)?;
            Some((outcome.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `scrapefarm ARGS` on the farm's database and queue; its stdout.
fn run(farm: &Farm, args: &[&str]) -> String {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(args)
        .env("DATABASE_URL", &farm.db_url)
        .env("AMQP_URL", AMQP)
        .env("SCRAPEFARM_QUEUE", &farm.queue_name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn status_json(farm: &Farm) -> serde_json::Value {
    let text = run(farm, &["status", "--json"]);
    serde_json::from_str(&text).expect("status --json prints one object")
}

fn worker_row(status: &serde_json::Value) -> serde_json::Value {
    let workers = status["workers"].as_array().expect("workers listed");
    let row = workers.iter().find(|w| w["id"] == WORKER);
    row.cloned()
        .unwrap_or_else(|| panic!("{WORKER} listed: {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_metrics_count_the_stored_pages_and_its_heartbeat_shows_it_alive_then_gone() {
    let farm = Farm::start(FixtureConfig::default()).await;
    let report = farm.enqueue("lamp", 1).await;
    let jobs = report.jobs_published as usize;
    assert!(jobs > 0, "the search found listings");

    let port = spare_port();
    let mut worker = farm
        .worker_command(WORKER)
        .args([
            "--concurrency",
            "2",
            "--heartbeat-secs",
            &BEAT_SECS.to_string(),
        ])
        .args(["--metrics-bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "scrapefarm=warn")
        .stderr(Stdio::inherit())
        .spawn()
        .expect("worker binary starts");
    wait_for_port(port, true, "the worker's /metrics").await;
    wait_until_stored(&farm.store, jobs, Duration::from_secs(60)).await;

    // Stored listings by status, as the pages' outcomes name them.
    let mut expected = BTreeMap::new();
    for listing in farm.stored_listings().await.values() {
        let outcome = match listing.status.as_str() {
            "active" => "content",
            other => other,
        };
        *expected.entry(outcome.to_string()).or_insert(0u64) += 1;
    }
    let answer = scrape(port).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("text/plain; version=0.0.4"), "{answer}");
    assert_eq!(pages_by_outcome(&answer), expected, "{answer}");
    assert!(answer.contains(r#"scrapefarm_render_seconds_count{site="fixture"}"#));
    assert!(answer.contains("scrapefarm_tabs_in_use 0"), "{answer}");
    assert!(answer.contains("# TYPE scrapefarm_render_seconds histogram"));

    // The heartbeat: alive, with its pages, as the real `status --json` reports it.
    tokio::time::sleep(Duration::from_secs(BEAT_SECS * 2)).await;
    let status = status_json(&farm);
    let row = worker_row(&status);
    assert_eq!(row["alive"], true, "{status}");
    assert_eq!(row["concurrency"], 2, "{status}");
    assert_eq!(row["pages"], jobs as u64, "{status}");
    assert_eq!(row["heartbeat_ms"], BEAT_SECS * 1000, "{status}");
    assert!(
        row["memory_bytes"].as_u64() > Some(1 << 20),
        "the browser's memory is read: {status}"
    );
    let answer = scrape(port).await;
    assert!(
        answer.contains("scrapefarm_browser_memory_bytes "),
        "{answer}"
    );
    assert!(status["workers_alive"].as_u64() >= Some(1), "{status}");
    let listed = run(&farm, &["workers", "--json"]);
    let rows: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        rows.iter().any(|w| w["id"] == WORKER && w["alive"] == true),
        "{listed}"
    );
    let table = run(&farm, &["status"]);
    assert!(table.contains("workers alive: 1"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with(WORKER) && l.contains(" yes ")),
        "{table}"
    );

    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let exited = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exited.success(), "worker exits 0 on SIGTERM: {exited:?}");
    // Its last beat was at most one interval before it began shutting down.
    let stopped = Instant::now();
    let gone_after = Duration::from_secs(3 * BEAT_SECS);
    loop {
        let status = status_json(&farm);
        let alive = worker_row(&status)["alive"] == true;
        if !alive {
            assert_eq!(status["workers_alive"], 0, "{status}");
            break;
        }
        assert!(
            stopped.elapsed() < gone_after + Duration::from_secs(5),
            "still alive {:?} after it stopped: {status}",
            stopped.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let name = farm.db_url.rsplit('/').next().unwrap().to_string();
    farm.cleanup().await;
    drop_database(&name).await;
}
