//! What the browser may see and do, read from the kernel while the real `scrapefarm` binary
//! runs it: no Chromium or chromedriver process holds the worker's credentials in its
//! environment (`/proc/<pid>/environ`), the sandbox is on exactly where this machine allows it
//! (`/proc/<pid>/cmdline`, the renderer's seccomp mode), and an unprivileged user gets it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{AMQP, Farm};
use scrapefarm::fixture_site::{FixtureConfig, FixtureSite};

/// Values that must never reach the browser.
const SECRET: &str = "s3cretpw";
const TOKEN_VAR: &str = "SCRAPEFARM_TEST_API_TOKEN";

/// One process seen under the worker: its command line, environment and seccomp mode.
#[derive(Debug, Clone)]
struct Seen {
    cmdline: String,
    environ: String,
    seccomp: Option<u8>,
}

fn read_proc(pid: u32) -> Option<Seen> {
    let text = |name: &str| {
        std::fs::read(format!("/proc/{pid}/{name}"))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
    };
    let status = text("status")?;
    let seccomp = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok());
    Some(Seen {
        cmdline: text("cmdline")?,
        environ: text("environ")?,
        seccomp,
    })
}

/// Every process descending from `root`, keyed by pid (one scan of /proc).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&pid| {
            let mut at = pid;
            for _ in 0..32 {
                match parent.get(&at) {
                    Some(&p) if p == root => return true,
                    Some(&p) if p > 1 => at = p,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Watches `child` until it exits (or `limit`), recording every descendant process; returns
/// them with the child's stderr.
fn watch(mut child: Child, limit: Duration) -> (BTreeMap<u32, Seen>, String, bool) {
    let root = child.id();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + limit;
    let status = loop {
        for pid in descendants(root) {
            if let Some(s) = read_proc(pid) {
                seen.insert(pid, s);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (seen, stderr, status.success())
}

/// Chromium's processes (the browser, zygotes, renderers, utilities, crashpad); its children
/// rewrite their command lines, so they are recognised by the program name alone.
fn is_chromium(s: &Seen) -> bool {
    let program = s.cmdline.split([' ', '\n']).next().unwrap_or_default();
    program.contains("chrom") && !program.ends_with("chromedriver")
}

/// Whether this machine lets the current user sandbox Chromium: not root, and user namespaces
/// with a pid and network namespace inside can be made (what Chromium's sandbox makes).
fn machine_allows_the_sandbox() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let userns = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--pid",
            "--net",
            "--fork",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success());
    !root && userns
}

fn worker(farm: &Farm, id: &str, renderer: &str) -> Child {
    // The password is ignored by the test server (trust), but it is in the worker's env.
    let db_url = farm.db_url.replace(
        "postgres://postgres@",
        &format!("postgres://postgres:{SECRET}@"),
    );
    assert!(db_url.contains(SECRET), "{db_url}");
    Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["worker", "--concurrency", "2", "--worker-id", id])
        .args(["--renderer", renderer, "--exit-when-idle", "2"])
        .env("DATABASE_URL", db_url)
        .env("AMQP_URL", AMQP)
        .env(TOKEN_VAR, SECRET)
        .env("SCRAPEFARM_QUEUE", &farm.queue_name)
        .env("SCRAPEFARM_PROFILE_DIR", farm.profiles())
        .env("SCRAPEFARM_SNAPSHOT_DIR", farm.snapshots())
        .env(
            "SCRAPEFARM_READY_FILE",
            farm.dir.path().join(format!("{id}.ready")),
        )
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        )
        .env("SCRAPEFARM_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .env_remove("SCRAPEFARM_BROWSER_SANDBOX")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker binary starts")
}

/// Runs a worker binary with `renderer` over a fresh search and checks every process it started.
async fn browser_processes_hold_no_credentials(renderer: &str, query: &str) {
    let farm = Farm::start(FixtureConfig::default()).await;
    let published = farm.enqueue(query, 1).await.jobs_published;
    assert!(published > 0);
    let child = worker(&farm, "w-env", renderer);
    let worker_pid = child.id();
    // Until the fork has exec'd, the child still shows this test's environment.
    let has_secret = || read_proc(worker_pid).is_some_and(|s| s.environ.contains(SECRET));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !has_secret() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        has_secret(),
        "the worker holds the secret: the test must be able to fail"
    );
    let (seen, stderr, ok) =
        tokio::task::spawn_blocking(move || watch(child, Duration::from_secs(120)))
            .await
            .unwrap();
    assert!(ok, "worker exits 0:\n{stderr}");
    let stored = farm.stored_listings().await;
    assert!(
        stored.values().any(|r| r.status != "pending"),
        "the worker rendered pages"
    );
    let chromium: Vec<&Seen> = seen.values().filter(|s| is_chromium(s)).collect();
    assert!(
        chromium.len() >= 2,
        "Chromium's processes were seen: {seen:#?}"
    );
    if renderer == "webdriver" {
        let driver = |s: &&Seen| {
            let program = s.cmdline.split('\n').next().unwrap_or_default();
            program.ends_with("chromedriver")
        };
        assert!(
            seen.values().any(|s| driver(&s)),
            "chromedriver was seen: {seen:#?}"
        );
    }
    for (pid, s) in &seen {
        for bad in ["DATABASE_URL=", "AMQP_URL=", TOKEN_VAR, SECRET, "guest"] {
            assert!(
                !s.environ.contains(bad),
                "process {pid} ({}) has {bad} in its environment:\n{}",
                s.cmdline.lines().next().unwrap_or_default(),
                s.environ
            );
        }
    }
    // The sandbox: on exactly where this machine allows it, and a WARN with the reason if not.
    let unsandboxed = chromium
        .iter()
        .filter(|s| s.cmdline.contains("--no-sandbox"))
        .count();
    if machine_allows_the_sandbox() {
        assert_eq!(unsandboxed, 0, "sandboxed Chromium: {chromium:#?}");
        assert!(!stderr.contains("without its sandbox"), "{stderr}");
    } else {
        assert_eq!(
            unsandboxed,
            chromium.len(),
            "every Chromium process has --no-sandbox"
        );
        let warns = stderr.matches("Chromium runs without its sandbox").count();
        assert_eq!(warns, 1, "one WARN per launch:\n{stderr}");
        assert!(
            stderr.contains("runs as root (uid 0)") || stderr.contains("user namespaces"),
            "{stderr}"
        );
    }
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdp_chromium_never_sees_the_credentials_and_is_sandboxed_where_allowed() {
    browser_processes_hold_no_credentials("cdp", "lamp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromedriver_and_its_chromium_never_see_the_credentials() {
    assert!(
        Path::new("/usr/bin/chromedriver").exists(),
        "chromedriver missing: run scripts/setup.sh --browser"
    );
    browser_processes_hold_no_credentials("webdriver", "chair").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_user_gets_chromium_with_its_sandbox_on() {
    assert!(
        Path::new("/usr/bin/setpriv").exists(),
        "setpriv (util-linux) missing"
    );
    let fixture = FixtureSite::start(FixtureConfig::default(), 0)
        .await
        .unwrap();
    let listing = fixture
        .ground_truth("lamp")
        .into_iter()
        .find(|l| l.status == "active")
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let child = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["extract", "--site", "fixture", "--json", &listing.url])
        .env("SCRAPEFARM_BASE_URL", fixture.base_url())
        .env("SCRAPEFARM_PROFILE_DIR", home.path().join("profiles"))
        .env("SCRAPEFARM_DATA_DIR", home.path())
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        )
        .env("HOME", home.path())
        .env("RUST_LOG", "info")
        .env_remove("SCRAPEFARM_BROWSER_SANDBOX")
        .current_dir(home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (seen, stderr, ok) =
        tokio::task::spawn_blocking(move || watch(child, Duration::from_secs(60)))
            .await
            .unwrap();
    fixture.stop().await;
    assert!(ok, "extract as nobody succeeds:\n{stderr}");
    let chromium: Vec<&Seen> = seen.values().filter(|s| is_chromium(s)).collect();
    assert!(!chromium.is_empty(), "Chromium was seen: {seen:#?}");
    assert!(
        chromium.iter().all(|s| !s.cmdline.contains("--no-sandbox")),
        "no --no-sandbox for an unprivileged user: {chromium:#?}"
    );
    assert!(!stderr.contains("without its sandbox"), "{stderr}");
    // Chromium's seccomp-bpf sandbox puts its renderers in seccomp filter mode (2).
    let renderers: Vec<&&Seen> = chromium
        .iter()
        .filter(|s| s.cmdline.contains("--type=renderer"))
        .collect();
    assert!(!renderers.is_empty(), "a renderer was seen: {chromium:#?}");
    assert!(
        renderers.iter().all(|s| s.seccomp == Some(2)),
        "renderers run under seccomp: {renderers:#?}"
    );
}
