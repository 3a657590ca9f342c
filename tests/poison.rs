//! Poison jobs on real PostgreSQL, RabbitMQ and Chromium, with two real worker processes: 20 good
//! listings plus three jobs no worker can finish — a row the database would refuse (a 3,000-digit
//! listing id), a page whose renderer dies every time (its script never yields, and this test
//! SIGKILLs the worker's renderer processes while it loads, as the kernel's OOM killer would),
//! and a page whose worker is SIGKILLed every time it holds it (this test does the killing). Within a bounded time all three
//! are in the dead-letter queue with their reasons, the 20 are stored equal to the ground truth,
//! and the workers go idle and exit by themselves.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Farm, assert_matches_truth};
use scrapefarm::collect::new_job;
use scrapefarm::fixture_site::{FixtureConfig, Poison};
use scrapefarm::pipeline::MAX_UNFINISHED_RENDERS;
use scrapefarm::queue::Queue;

const CRASH_ID: &str = "990000001";
const KILL_ID: &str = "990000002";
const GOOD: usize = 20;
/// Attempts before dead-lettering, lowered from 8 so the crashing page ends in seconds.
const MAX_ATTEMPTS: &str = "3";
/// The whole run, kills and restarts included; the workers take ~1 min on this machine.
const RUN_DEADLINE: Duration = Duration::from_secs(360);

/// One worker process whose log goes to `log`.
fn worker(farm: &Farm, id: &str, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    farm.worker_command(id)
        .args([
            "--concurrency",
            "1",
            "--max-attempts",
            MAX_ATTEMPTS,
            "--exit-when-idle",
            "8",
        ])
        .env(
            "RUST_LOG",
            "info,chromiumoxide=off,scrapefarm::pipeline=debug",
        )
        .env("SCRAPEFARM_LOG_FORMAT", "json")
        .stderr(log)
        .spawn()
        .expect("worker binary starts")
}

/// A worker slot: its process, restarted after each kill with a fresh log.
struct Slot {
    id: String,
    child: Option<Child>,
    log: PathBuf,
    starts: usize,
}

impl Slot {
    fn start(farm: &Farm, id: &str) -> Slot {
        let mut slot = Slot {
            id: id.into(),
            child: None,
            log: PathBuf::new(),
            starts: 0,
        };
        slot.restart(farm);
        slot
    }

    fn restart(&mut self, farm: &Farm) {
        self.starts += 1;
        self.log = farm
            .dir
            .path()
            .join(format!("{}-{}.log", self.id, self.starts));
        self.child = Some(worker(farm, &self.id, &self.log));
    }

    /// How many times this process started rendering `url` (the pipeline logs it at DEBUG).
    fn renders(&self, url: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let quoted = format!("\"{url}\"");
        log.lines()
            .filter(|l| l.contains("Rendering.") && l.contains(&quoted))
            .count()
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces, so read after the last ')'.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Chromium renderer processes under `root` (the worker's process tree).
fn renderers_under(root: u32) -> Vec<u32> {
    let under = |mut pid: u32| {
        while let Some(parent) = parent_of(pid) {
            if parent == root {
                return true;
            }
            if parent <= 1 {
                return false;
            }
            pid = parent;
        }
        false
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("--type=renderer") && under(*pid)
        })
        .collect()
}

/// Kills the renderers of the worker `pid` once its page had time to start loading in one.
async fn crash_renderers_of(pid: u32) -> usize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victims = renderers_under(pid);
    for victim in &victims {
        let _ = Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status();
    }
    victims.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_jobs_are_dead_lettered_with_reasons_and_the_workers_go_idle() {
    let config = FixtureConfig {
        poison: Poison {
            crash_ids: vec![CRASH_ID.into()],
            slow_ids: vec![KILL_ID.into()],
            slow_secs: 600,
        },
        ..FixtureConfig::default()
    };
    let farm = Farm::start(config).await;
    let site = farm.sites.get("fixture").unwrap();
    let base = farm.fixture.base_url();
    let truth: Vec<_> = farm
        .fixture
        .ground_truth("lamp")
        .into_iter()
        .take(GOOD)
        .collect();
    let long_id_url = format!("{base}/item/{}", "7".repeat(3000));
    let (crash_url, kill_url) = (
        format!("{base}/item/{CRASH_ID}"),
        format!("{base}/item/{KILL_ID}"),
    );
    let now = farm.store.db_now_ms().await.unwrap();
    let urls = truth.iter().map(|t| t.url.clone()).chain([
        long_id_url.clone(),
        crash_url.clone(),
        kill_url.clone(),
    ]);
    for url in urls {
        // Published as another producer would: `enqueue` itself refuses the over-long id.
        farm.queue
            .publish(&new_job(site, &url, None, now))
            .await
            .unwrap();
    }

    let started = Instant::now();
    let mut slots = [
        Slot::start(&farm, "poison-a"),
        Slot::start(&farm, "poison-b"),
    ];
    let mut kills = 0;
    let mut crashes = [0usize; 2];
    let mut exits = Vec::new();
    while exits.len() < slots.len() {
        assert!(
            started.elapsed() < RUN_DEADLINE,
            "the workers did not finish within {RUN_DEADLINE:?} ({kills} kills, exits {exits:?})"
        );
        for (i, slot) in slots.iter_mut().enumerate() {
            let holds_kill_job = slot.renders(&kill_url) > 0;
            let crash_renders = slot.renders(&crash_url);
            if crash_renders > crashes[i]
                && let Some(pid) = slot.pid()
            {
                crashes[i] = crash_renders;
                assert!(crash_renderers_of(pid).await > 0, "a renderer to crash");
            }
            let Some(child) = slot.child.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait().unwrap() {
                exits.push((slot.id.clone(), status));
                slot.child = None;
            } else if holds_kill_job {
                child.kill().unwrap(); // SIGKILL, while it holds the job
                child.wait().unwrap();
                kills += 1;
                slot.restart(&farm);
                crashes[i] = 0;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("finished in {:?} with {kills} kills", started.elapsed());
    for slot in &slots {
        eprintln!("--- {} (start {})", slot.id, slot.starts);
        let log = std::fs::read_to_string(&slot.log).unwrap_or_default();
        for line in log.lines().filter(|l| !l.contains("Rendering.")) {
            eprintln!("{}", &line[..line.len().min(300)]);
        }
    }
    for (id, status) in &exits {
        assert!(
            status.success(),
            "{id} exited by itself with success: {status}"
        );
    }
    assert_eq!(
        kills, MAX_UNFINISHED_RENDERS as usize,
        "killed once per delivery that rendered it"
    );

    let dead = farm.queue.dead_jobs().await.unwrap();
    let reason_of = |url: &str| {
        let found: Vec<_> = dead
            .iter()
            .filter(|d| d.job().is_some_and(|j| j.url == url))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one dead letter for {}",
            &url[..url.len().min(60)]
        );
        found[0].reason.clone()
    };
    for d in &dead {
        eprintln!("dead letter: {}", d.reason);
    }
    assert_eq!(dead.len(), 3, "{dead:?}");
    let long = reason_of(&long_id_url);
    assert!(
        long.contains("listing id is 3000 characters long"),
        "{long}"
    );
    let crash = reason_of(&crash_url);
    assert!(crash.contains("attempts exhausted (3)"), "{crash}");
    // Each crash ends its render at once (not after the page's timeouts); under heavy load the
    // browser may then fail to open the next tab in time, which is also a render failure.
    let details: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT a.detail FROM attempts a JOIN listings l ON l.id = a.listing_id \
         WHERE l.external_id = $1 ORDER BY a.attempt",
    )
    .bind(CRASH_ID)
    .fetch_all(farm.store.pool())
    .await
    .unwrap();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(
        details
            .iter()
            .flatten()
            .any(|d| d.contains("the renderer crashed")),
        "{details:?}"
    );
    let killed = reason_of(&kill_url);
    assert!(
        killed.contains("started 3 times and never finished"),
        "{killed}"
    );

    let rows = farm.stored_listings().await;
    for t in &truth {
        assert_matches_truth(&rows[&t.external_id], t);
    }
    assert_eq!(
        rows[CRASH_ID].status, "failed",
        "the crashing listing is marked failed"
    );
    let depths = farm.queue.depths().await.unwrap();
    assert_eq!((depths.ready, depths.retrying, depths.dead), (0, 0, 3));
    farm.cleanup().await;
}
