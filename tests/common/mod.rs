//! Test harness: a fresh PostgreSQL database, unique RabbitMQ queue names, temporary profile and
//! snapshot roots and the fixture marketplace on a free port — real components, no mocks.
#![allow(dead_code)]

pub mod fleet;
pub mod private;
pub mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use scrapefarm::collect::{CollectReport, collect};
use scrapefarm::fixture_site::{FixtureConfig, FixtureSite, TruthListing};
use scrapefarm::pipeline::{BackoffPolicy, Pipeline};
use scrapefarm::queue::{AnyQueue, EmbeddedQueue, Queue, QueueNames, RabbitMqQueue};
use scrapefarm::render::{
    BrowserBuild, BrowserSettings, CdpRenderer, Renderer, Retirement, profile,
};
use scrapefarm::report::ListingJson;
use scrapefarm::site::Sites;
use scrapefarm::store::Store;
use scrapefarm::telemetry::Stats;
use scrapefarm::worker::{WorkerExit, WorkerSettings, run_worker};
use tokio_util::sync::CancellationToken;

pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The browser of `build` (see `--cdp-browser`), as the command line would find it. Panics,
/// naming the package, when it is not installed.
pub fn chrome_of(build: BrowserBuild) -> PathBuf {
    scrapefarm::render::build::pick_from_env(build)
        .unwrap_or_else(|e| panic!("{e} (scripts/setup.sh installs both)"))
}

/// The full browser (what chromedriver drives).
pub fn full_chrome() -> PathBuf {
    chrome_of(BrowserBuild::Full)
}

/// The browser the CDP renderer launches by default (`SCRAPEFARM_CDP_BROWSER`, else `auto`:
/// the headless shell when installed, else the full browser).
pub fn chrome() -> PathBuf {
    let build = std::env::var("SCRAPEFARM_CDP_BROWSER").unwrap_or_else(|_| "auto".into());
    chrome_of(
        build
            .parse()
            .expect("SCRAPEFARM_CDP_BROWSER is auto, shell or full"),
    )
}

/// A unique name for this test's database and queues.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Drops a test's PostgreSQL database (it must not be in use).
pub async fn drop_database(name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&format!("{PG_BASE}/postgres"))
        .await
        .unwrap();
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\"");
    let drop = sqlx::query(sqlx::AssertSqlSafe(sql));
    drop.execute(&mut conn).await.unwrap();
}

/// Which store and queue a farm runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL + RabbitMQ: the farm.
    Served,
    /// SQLite + the embedded queue: the single-machine default.
    Embedded,
}

/// One isolated farm: database, queues, directories and the fixture site.
pub struct Farm {
    pub backend: Backend,
    pub fixture: FixtureSite,
    pub sites: Arc<Sites>,
    pub store: Store,
    pub queue: AnyQueue,
    pub dir: tempfile::TempDir,
    pub db_url: String,
    pub queue_name: String,
    /// Attempts before a job is dead-lettered (8 unless a test lowers it).
    pub max_attempts: u32,
}

impl Farm {
    /// A farm on PostgreSQL + RabbitMQ.
    pub async fn start(config: FixtureConfig) -> Farm {
        Farm::start_on(Backend::Served, config).await
    }

    pub async fn start_on(backend: Backend, config: FixtureConfig) -> Farm {
        assert!(
            chrome().exists(),
            "Chromium not found at {}: run scripts/setup.sh (apt-get install chromium)",
            chrome().display()
        );
        let fixture = FixtureSite::start(config, 0)
            .await
            .expect("fixture site starts");
        let mut sites = Sites::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sites")).unwrap();
        sites.set_base_url("fixture", &fixture.base_url()).unwrap();
        let name = unique("sf_test");
        let dir = tempfile::tempdir().unwrap();
        let db_url = match backend {
            Backend::Served => format!("{PG_BASE}/{name}"),
            Backend::Embedded => {
                format!("sqlite://{}?mode=rwc", dir.path().join("farm.db").display())
            }
        };
        let store = Store::connect(&db_url, 8)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/setup.sh)");
        store.migrate().await.unwrap();
        let queue_name = format!("{name}.listings");
        let queue = match backend {
            Backend::Served => AnyQueue::RabbitMq(
                RabbitMqQueue::connect(AMQP, QueueNames::new(&queue_name))
                    .await
                    .expect("RabbitMQ on 127.0.0.1:5672 (run scripts/setup.sh)"),
            ),
            Backend::Embedded => AnyQueue::Embedded(EmbeddedQueue::new(&store, &queue_name)),
        };
        Farm {
            backend,
            fixture,
            sites: Arc::new(sites),
            store,
            queue,
            dir,
            db_url,
            queue_name,
            max_attempts: 8,
        }
    }

    /// `scrapefarm worker --worker-id ID` on this farm's database, queues, profiles, snapshots
    /// and sites (stdout discarded); callers add flags, log settings and stderr.
    pub fn worker_command(&self, id: &str) -> std::process::Command {
        let mut cmd = self.command();
        cmd.args(["worker", "--worker-id", id])
            .env(
                "SCRAPEFARM_READY_FILE",
                self.dir.path().join(format!("{id}.ready")),
            )
            .stdout(std::process::Stdio::null());
        cmd
    }

    /// The `scrapefarm` binary on this farm's database, queues, profiles, snapshots and sites;
    /// callers add the subcommand (and `SCRAPEFARM_BASE_URL` for commands that render).
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scrapefarm"));
        cmd.env("DATABASE_URL", &self.db_url)
            .env("AMQP_URL", AMQP)
            .env("SCRAPEFARM_QUEUE", &self.queue_name)
            .env("SCRAPEFARM_PROFILE_DIR", self.profiles())
            .env("SCRAPEFARM_SNAPSHOT_DIR", self.snapshots())
            .env(
                "SCRAPEFARM_SITES_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
            );
        cmd
    }

    pub fn profiles(&self) -> PathBuf {
        self.dir.path().join("profiles")
    }

    pub fn snapshots(&self) -> PathBuf {
        self.dir.path().join("snapshots")
    }

    pub async fn renderer(&self, worker_id: &str, tabs: usize) -> CdpRenderer {
        self.renderer_retired(worker_id, tabs, Retirement::default())
            .await
    }

    /// [`Farm::renderer`] with its own browser retirement policy.
    pub async fn renderer_retired(
        &self,
        worker_id: &str,
        tabs: usize,
        retire: Retirement,
    ) -> CdpRenderer {
        let profile_dir = profile::claim(&self.profiles(), worker_id).unwrap();
        CdpRenderer::launch(BrowserSettings {
            chrome: chrome(),
            profile_dir,
            tabs,
            nav_timeout: Duration::from_secs(30),
            block_resources: true,
            retire,
        })
        .await
        .expect("Chromium launches")
    }

    /// Collects a search through a real browser and publishes its jobs.
    pub async fn enqueue(&self, query: &str, max_pages: u32) -> CollectReport {
        let renderer = self.renderer("enqueue", 1).await;
        let site = self.sites.get("fixture").unwrap();
        let report = collect(site, query, max_pages, &renderer, &self.store, &self.queue)
            .await
            .expect("collect succeeds");
        renderer.close().await;
        report
    }

    pub fn pipeline(
        &self,
        worker_id: &str,
        renderer: Arc<CdpRenderer>,
        tabs: usize,
    ) -> Arc<Pipeline<CdpRenderer>> {
        self.pipeline_with(worker_id, renderer, tabs)
    }

    /// Runs one worker until the queues stay empty for `idle`.
    pub async fn work(&self, worker_id: &str, concurrency: usize, idle: Duration) -> Arc<Stats> {
        let renderer = Arc::new(self.renderer(worker_id, concurrency).await);
        let pipeline = self.pipeline(worker_id, renderer.clone(), concurrency);
        let settings = WorkerSettings {
            concurrency,
            exit_when_idle: Some(idle),
            shutdown_deadline: Duration::from_secs(30),
            ready_file: None,
        };
        let run = run_worker(
            pipeline.clone(),
            self.queue.clone(),
            settings,
            CancellationToken::new(),
        );
        let exit = tokio::time::timeout(Duration::from_secs(600), run)
            .await
            .expect("worker finishes within 10 minutes")
            .expect("worker runs");
        assert_eq!(exit, WorkerExit::Idle);
        renderer.close().await;
        pipeline.stats.clone()
    }

    /// Deletes the queues' messages and the database (best effort).
    pub async fn cleanup(self) {
        let _ = self.queue.purge_all().await;
        self.queue.close().await;
        self.store.close().await;
        self.fixture.stop().await;
    }
}

/// Helpers generic over the renderer, for tests that drive a renderer other than CDP.
impl Farm {
    /// The pipeline of [`Farm::pipeline`] with any renderer.
    pub fn pipeline_with<R: Renderer>(
        &self,
        worker_id: &str,
        renderer: Arc<R>,
        tabs: usize,
    ) -> Arc<Pipeline<R>> {
        let mut pipeline = Pipeline::new(
            self.sites.clone(),
            renderer,
            self.store.clone(),
            self.snapshots(),
            worker_id,
            tabs,
        );
        pipeline.max_attempts = self.max_attempts;
        pipeline.backoff = BackoffPolicy {
            min: Duration::from_millis(500),
            max: Duration::from_secs(5),
        };
        Arc::new(pipeline)
    }

    /// [`Farm::work`] with a renderer the caller launched; the renderer is closed at the end.
    pub async fn work_with<R: Renderer>(
        &self,
        renderer: Arc<R>,
        worker_id: &str,
        concurrency: usize,
        idle: Duration,
    ) -> Arc<Stats> {
        let pipeline = self.pipeline_with(worker_id, renderer.clone(), concurrency);
        let settings = WorkerSettings {
            concurrency,
            exit_when_idle: Some(idle),
            shutdown_deadline: Duration::from_secs(30),
            ready_file: None,
        };
        let run = run_worker(
            pipeline.clone(),
            self.queue.clone(),
            settings,
            CancellationToken::new(),
        );
        let exit = tokio::time::timeout(Duration::from_secs(600), run)
            .await
            .expect("worker finishes within 10 minutes")
            .expect("worker runs");
        assert_eq!(exit, WorkerExit::Idle);
        renderer.close().await;
        pipeline.stats.clone()
    }

    /// Every stored listing as the JSON report shows it, by external id.
    pub async fn stored_listings(&self) -> std::collections::HashMap<String, ListingJson> {
        let filter = scrapefarm::store::ListingFilter::default();
        let rows = self.store.listings(&filter).await.unwrap();
        rows.into_iter()
            .map(|row| {
                let id = row.external_id.clone();
                (id, ListingJson::from_row(row, None))
            })
            .collect()
    }
}

/// Asserts a stored listing equals the fixture's ground truth, field by field (shared by every
/// end-to-end test).
pub fn assert_matches_truth(row: &ListingJson, truth: &TruthListing) {
    let id = &truth.external_id;
    assert_eq!(row.status, truth.status, "{id}: status");
    assert_eq!(row.url, truth.url, "{id}: url");
    if truth.status == "gone" {
        return;
    }
    assert_eq!(row.title, truth.title, "{id}: title");
    assert_eq!(
        row.price_minor, truth.price_minor,
        "{id}: price_minor ({:?})",
        truth.price_text
    );
    assert_eq!(row.currency, truth.currency, "{id}: currency");
    assert_eq!(row.condition, truth.condition, "{id}: condition");
    assert_eq!(row.seller, truth.seller, "{id}: seller");
    assert_eq!(row.seller_score, truth.seller_score, "{id}: seller_score");
    assert_eq!(row.shipping, truth.shipping, "{id}: shipping");
    assert_eq!(row.location, truth.location, "{id}: location");
    assert_eq!(row.specifics, truth.specifics, "{id}: specifics");
    assert_eq!(row.description, truth.description, "{id}: description");
    assert_eq!(row.images, truth.images, "{id}: images");
    assert!(
        row.last_error.is_none(),
        "{id}: last_error {:?}",
        row.last_error
    );
}

/// Farms whose PostgreSQL and RabbitMQ are reached through other addresses (outage proxies).
impl Farm {
    /// [`Farm::start`] with the database server at `pg_base` (`postgres://user@host:port`, the
    /// database name is appended) and the broker at `amqp_url`.
    pub async fn start_via(config: FixtureConfig, pg_base: &str, amqp_url: &str) -> Farm {
        assert!(
            chrome().exists(),
            "Chromium not found at {}",
            chrome().display()
        );
        let fixture = FixtureSite::start(config, 0)
            .await
            .expect("fixture site starts");
        let mut sites = Sites::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sites")).unwrap();
        sites.set_base_url("fixture", &fixture.base_url()).unwrap();
        let name = unique("sf_test");
        let db_url = format!("{pg_base}/{name}");
        let store = Store::connect(&db_url, 8)
            .await
            .expect("PostgreSQL reachable through the given address");
        store.migrate().await.unwrap();
        let queue_name = format!("{name}.listings");
        let queue = RabbitMqQueue::connect(amqp_url, QueueNames::new(&queue_name))
            .await
            .expect("RabbitMQ reachable through the given address");
        Farm {
            backend: Backend::Served,
            fixture,
            sites: Arc::new(sites),
            store,
            queue: AnyQueue::RabbitMq(queue),
            dir: tempfile::tempdir().unwrap(),
            db_url,
            queue_name,
            max_attempts: 8,
        }
    }
}
