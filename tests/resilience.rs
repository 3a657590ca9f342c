//! Crashes and shutdown on real PostgreSQL, RabbitMQ and Chromium: a worker SIGKILLed twice, a
//! Chromium killed under a running worker, and a SIGTERM mid-run. Nothing is lost, nothing is
//! stored twice, and no Chromium is left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use common::{Farm, fleet};
use scrapefarm::fixture_site::FixtureConfig;
use scrapefarm::queue::Queue;
use scrapefarm::render::Renderer;
use scrapefarm::render::retire::{MEMORY_CHECK_EVERY, Retirement};
use scrapefarm::worker::{WorkerExit, WorkerSettings, run_worker};
use tokio_util::sync::CancellationToken;

fn worker(farm: &Farm, id: &str, extra: &[&str]) -> Child {
    farm.worker_command(id)
        .args(["--concurrency", "4"])
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .expect("worker binary starts")
}

fn processes_on(profile: &Path) -> Vec<u32> {
    let needle = format!("--user-data-dir={}", profile.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(&needle).then_some(pid)
        })
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_sigkilled_twice_loses_nothing_and_leaves_no_chromium() {
    let farm = Farm::start(FixtureConfig::default()).await;
    farm.enqueue("lamp", 20).await;
    let profile: PathBuf = farm.profiles().join("crashy");
    for kill_at in [40, 100] {
        let mut child = worker(&farm, "crashy", &[]);
        fleet::wait_until_stored(&farm.store, kill_at, Duration::from_secs(180)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Chromium dies with its worker, even on SIGKILL (no orphans, no zombies).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_on(&profile).is_empty() {
            assert!(
                Instant::now() < deadline,
                "Chromium outlived the killed worker: {:?}",
                processes_on(&profile)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let status = worker(&farm, "crashy", &["--exit-when-idle", "3"])
        .wait()
        .unwrap();
    assert!(status.success(), "the third worker completes the run");
    fleet::assert_stored_once_and_true(&farm, "lamp").await;
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        processes_on(&profile),
        Vec::<u32>::new(),
        "no Chromium left on the profile"
    );
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_in_flight_pages_exits_zero_and_leaves_the_rest_queued() {
    let farm = Farm::start(FixtureConfig::default()).await;
    farm.enqueue("lamp", 20).await;
    let mut child = worker(&farm, "graceful", &["--shutdown-deadline", "20"]);
    fleet::wait_until_stored(&farm.store, 30, Duration::from_secs(180)).await;
    let asked = Instant::now();
    signal(child.id(), "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(25),
        "exited within the deadline"
    );
    // Nothing half-done: every listing not stored still has its job waiting in the queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = farm
        .stored_listings()
        .await
        .values()
        .filter(|r| r.status == "pending")
        .count();
    let depths = farm.queue.depths().await.unwrap();
    assert!(pending > 0, "stopped mid-run");
    assert_eq!(
        depths.ready as usize, pending,
        "one queued job per listing not yet stored"
    );
    assert_eq!(
        processes_on(&farm.profiles().join("graceful")),
        Vec::<u32>::new()
    );
    let status = worker(&farm, "graceful", &["--exit-when-idle", "3"])
        .wait()
        .unwrap();
    assert!(status.success());
    fleet::assert_stored_once_and_true(&farm, "lamp").await;
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_chromium_is_relaunched_and_its_pages_retried() {
    let farm = Farm::start(FixtureConfig::default()).await;
    farm.enqueue("lamp", 20).await;
    let run = farm.work("phoenix", 4, Duration::from_secs(3));
    let killer = async {
        fleet::wait_until_stored(&farm.store, 40, Duration::from_secs(180)).await;
        let victims = processes_on(&farm.profiles().join("phoenix"));
        assert!(!victims.is_empty(), "Chromium runs on the profile");
        for pid in victims {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    };
    let (stats, ()) = tokio::join!(run, killer);
    eprintln!("{stats}");
    fleet::assert_stored_once_and_true(&farm, "lamp").await;
    assert_eq!(
        processes_on(&farm.profiles().join("phoenix")),
        Vec::<u32>::new()
    );
    farm.cleanup().await;
}

/// A worker process that is killed when the test ends, even by a failed assertion.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The main Chromium process of each browser on the profile: not a helper (`--type=`), and not a
/// child of another process on the profile (a helper caught between fork and exec, before it
/// carries `--type=`).
fn browsers_on(profile: &Path) -> Vec<u32> {
    let all = processes_on(profile);
    let parent = |pid: &u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        rest.split_whitespace().nth(1)?.parse::<u32>().ok()
    };
    let helper = |pid: &u32| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmdline).contains("--type=")
    };
    all.iter()
        .filter(|pid| !helper(pid) && parent(pid).is_none_or(|ppid| !all.contains(&ppid)))
        .copied()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_browser_is_retired_after_its_pages_and_a_fresh_one_runs_on_the_same_profile() {
    let farm = Farm::start(FixtureConfig::default()).await;
    farm.enqueue("lamp", 20).await;
    let profile = farm.profiles().join("retiring");
    let mut child = KillOnDrop(worker(
        &farm,
        "retiring",
        &["--browser-max-pages", "60", "--exit-when-idle", "3"],
    ));
    let mut browsers = std::collections::BTreeSet::new();
    let status = loop {
        let now = browsers_on(&profile);
        assert!(now.len() <= 1, "one browser per profile, ever: {now:?}");
        browsers.extend(now);
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "the worker completes the run: {status:?}");
    let truth = farm.fixture.ground_truth("lamp");
    assert!(
        browsers.len() >= truth.len() / 60,
        "{} pages at 60 per browser ran {} browsers: {browsers:?}",
        truth.len(),
        browsers.len()
    );
    fleet::assert_stored_once_and_true(&farm, "lamp").await;
    assert_eq!(processes_on(&profile), Vec::<u32>::new());
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_browser_above_its_memory_ceiling_is_replaced_and_nothing_is_lost() {
    let farm = Farm::start(FixtureConfig::default()).await;
    farm.enqueue("lamp", 20).await;
    // Every browser uses more than 1 MiB: it is replaced at each memory check.
    let ceiling = Retirement {
        max_pages: 0,
        max_memory_mib: 1,
    };
    let renderer = Arc::new(farm.renderer_retired("heavy", 4, ceiling).await);
    let pipeline = farm.pipeline("heavy", renderer.clone(), 4);
    let settings = WorkerSettings {
        concurrency: 4,
        exit_when_idle: Some(Duration::from_secs(3)),
        shutdown_deadline: Duration::from_secs(30),
        ready_file: None,
    };
    let exit = run_worker(
        pipeline,
        farm.queue.clone(),
        settings,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(exit, WorkerExit::Idle);
    let pages = farm.fixture.ground_truth("lamp").len() as u64;
    let generations = renderer.slot().generation();
    assert!(
        // Each browser counts its pages from 0, and pages in flight at a replacement count for
        // the old one: at least every second check replaces it.
        generations >= pages / MEMORY_CHECK_EVERY / 2,
        "{pages} pages, memory read every {MEMORY_CHECK_EVERY}: only {generations} replacements"
    );
    renderer.close().await;
    fleet::assert_stored_once_and_true(&farm, "lamp").await;
    assert_eq!(
        processes_on(&farm.profiles().join("heavy")),
        Vec::<u32>::new()
    );
    farm.cleanup().await;
}
