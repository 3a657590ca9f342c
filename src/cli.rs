//! The command line (clap): every flag also reads an environment variable, and every command has
//! examples in its `--help`. Kept in the library so tests can parse the manifests' arguments.
//! Over 450 lines: every command's flags in one file, so the help texts read (and agree) together.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::render::{BrowserBuild, Retirement};

#[derive(Debug, Parser)]
#[command(
    name = "scrapefarm",
    version,
    about = "A browser-automation scraping farm: RabbitMQ -> headless Chromium -> PostgreSQL",
    after_help = "Examples:\n  scrapefarm migrate\n  scrapefarm enqueue --site fixture --query lamp --max-pages 4\n  scrapefarm worker --concurrency 4 --exit-when-idle 30\n  scrapefarm listings --json"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command (listed under their own heading in every `--help`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct Common {
    /// PostgreSQL (`postgres://…`) or SQLite (`sqlite://file.db?mode=rwc`) URL; without one, the
    /// embedded default `<data dir>/scrapefarm.db` (SQLite).
    // hide_env_values: these URLs hold passwords, which `--help` must never print.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// RabbitMQ URL; without one, jobs queue in the database (the embedded queue).
    #[arg(long, env = "AMQP_URL", global = true, hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// Folder of the embedded database.
    #[arg(long, env = "SCRAPEFARM_DATA_DIR", global = true, default_value = ".")]
    pub data_dir: PathBuf,
    /// Work queue name; retry tiers and the dead-letter queue are named after it.
    #[arg(
        long,
        env = "SCRAPEFARM_QUEUE",
        global = true,
        default_value = "scrapefarm.listings"
    )]
    pub queue: String,
    /// Directory of site definitions (`<name>.toml`) that add to or override the built-in
    /// `fixture` and `ebay` [default: ./sites when it exists]
    #[arg(long, env = "SCRAPEFARM_SITES_DIR", global = true)]
    pub sites_dir: Option<PathBuf>,
    /// Root of the browser profiles (each worker uses its own subfolder).
    #[arg(
        long,
        env = "SCRAPEFARM_PROFILE_DIR",
        global = true,
        default_value = "profiles"
    )]
    pub profile_dir: PathBuf,
    /// Root of the HTML snapshots.
    #[arg(
        long,
        env = "SCRAPEFARM_SNAPSHOT_DIR",
        global = true,
        default_value = "snapshots"
    )]
    pub snapshot_dir: PathBuf,
    /// Chromium binary.
    #[arg(
        long,
        env = "CHROME_BIN",
        global = true,
        default_value = crate::render::build::CHROMIUM
    )]
    pub chrome: PathBuf,
    /// Chromium build of the CDP renderer: `auto` (the headless shell when installed, else
    /// `--chrome`), `shell` (Chromium's headless shell: ~25% less CPU per page, easier to
    /// fingerprint) or `full` (`--chrome`, the browser in its new headless mode).
    #[arg(
        long,
        env = "SCRAPEFARM_CDP_BROWSER",
        global = true,
        default_value = "auto"
    )]
    pub cdp_browser: BrowserBuild,
    /// Chromium's headless shell (Debian package `chromium-headless-shell`).
    #[arg(
        long,
        env = "CHROME_HEADLESS_SHELL_BIN",
        global = true,
        default_value = crate::render::build::HEADLESS_SHELL
    )]
    pub headless_shell: PathBuf,
    /// Browser driver: `cdp` (chromiumoxide, the default) or `webdriver` (fantoccini + chromedriver).
    #[arg(long, env = "SCRAPEFARM_RENDERER", global = true, default_value = "cdp",
          value_parser = ["cdp", "webdriver"])]
    pub renderer: String,
    /// chromedriver binary, for `--renderer webdriver`.
    #[arg(
        long,
        env = "CHROMEDRIVER_BIN",
        global = true,
        default_value = "/usr/bin/chromedriver"
    )]
    pub chromedriver: PathBuf,
    /// Replace the browser with a fresh one (same profile) after this many pages; 0 = never.
    #[arg(
        long,
        env = "SCRAPEFARM_BROWSER_MAX_PAGES",
        global = true,
        default_value_t = Retirement::default().max_pages
    )]
    pub browser_max_pages: u64,
    /// Replace the browser when its process tree uses more memory (PSS, MiB); 0 = never.
    #[arg(
        long,
        env = "SCRAPEFARM_BROWSER_MAX_MEMORY_MIB",
        global = true,
        default_value_t = Retirement::default().max_memory_mib
    )]
    pub browser_max_memory_mib: u64,
    /// Point the chosen site at another base URL (e.g. the fixture site on another port).
    #[arg(long, env = "SCRAPEFARM_BASE_URL", global = true)]
    pub base_url: Option<String>,
    /// Log as JSON lines (`json`) or text.
    #[arg(
        long,
        env = "SCRAPEFARM_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

impl Common {
    /// An empty `DATABASE_URL=` or `AMQP_URL=` (how env files and manifests often "unset" a
    /// variable) means unset — the embedded default — not a URL that fails to parse.
    pub fn unset_empty(&mut self) {
        for url in [&mut self.database_url, &mut self.amqp_url] {
            if url.as_deref().is_some_and(|u| u.trim().is_empty()) {
                *url = None;
            }
        }
    }

    /// The database URL: the given one, or the embedded SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("scrapefarm.db").display()
            ),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database schema.
    #[command(
        after_help = "Example:\n  DATABASE_URL=postgres://postgres@127.0.0.1/scrapefarm scrapefarm migrate"
    )]
    Migrate,
    /// Serve the fixture marketplace (tests, demo, benchmarks).
    #[command(
        after_help = "Example:\n  scrapefarm fixture-site --port 8377 --seed 42 --captcha-rate 0.05"
    )]
    FixtureSite(FixtureArgs),
    /// Render a search and queue every listing it finds, or queue listing URLs from a file.
    #[command(
        after_help = "Examples:\n  scrapefarm enqueue --site fixture --query lamp --max-pages 4\n  scrapefarm enqueue --site fixture --query lamp --every 6h\n  scrapefarm enqueue --site fixture --urls urls.txt\n  cat urls.txt | scrapefarm enqueue --site fixture --urls -"
    )]
    Enqueue(EnqueueArgs),
    /// Collect and work a search (or URL list) in one process, on its own queue; resumes when
    /// run again with the same arguments (or `--resume ID`).
    #[command(
        after_help = "Examples:\n  scrapefarm crawl --site fixture --query lamp --max-pages 4 --concurrency 4\n  scrapefarm crawl --site fixture --urls urls.txt\n  scrapefarm crawl --resume 3"
    )]
    Crawl(CrawlArgs),
    /// Crawl the built-in fixture marketplace end to end and print a summary.
    #[command(after_help = "Example:\n  scrapefarm demo --query lamp --concurrency 4")]
    Demo(DemoArgs),
    /// Consume listing jobs: render, classify, extract, snapshot, store.
    #[command(
        after_help = "Examples:\n  scrapefarm worker --concurrency 4\n  JOB_COMPLETION_INDEX=3 scrapefarm worker --exit-when-idle 120"
    )]
    Worker(WorkerArgs),
    /// List stored listings.
    #[command(
        after_help = "Examples:\n  scrapefarm listings --search 1 --json\n  scrapefarm listings --status failed --history"
    )]
    Listings(ListingsArgs),
    /// Write stored listings to a file: CSV or JSON lines.
    #[command(
        after_help = "Examples:\n  scrapefarm export --format csv --out listings.csv\n  scrapefarm export --format csv --out - --fields site,external_id,price,currency,title\n  scrapefarm export --format jsonl --out lamps.jsonl --search 1"
    )]
    Export(ExportArgs),
    /// List searches (with their schedules), or run one again.
    #[command(after_help = "Examples:\n  scrapefarm searches --json\n  scrapefarm searches run 3")]
    Searches(SearchesArgs),
    /// Queue depths (ready, unacked, retrying, dead, consumers), workers alive, listings stored
    /// and searches in progress.
    #[command(
        after_help = "Examples:\n  scrapefarm status\n  scrapefarm status --json\n  scrapefarm status --watch 5"
    )]
    Status(StatusArgs),
    /// Classify and extract one page (a saved file or a live URL): how site definitions are debugged.
    #[command(
        after_help = "Examples:\n  scrapefarm extract --site ebay page.html\n  scrapefarm extract --site fixture http://127.0.0.1:8377/item/123456 --json"
    )]
    Extract(ExtractArgs),
    /// Look into the snapshot directory: list, show, stats, verify, gc.
    #[command(
        after_help = "Examples:\n  scrapefarm snapshots ls --site fixture --since 2026-11-01\n  scrapefarm snapshots show 42 --screenshot thumb.jpg\n  scrapefarm snapshots verify\n  scrapefarm snapshots gc --older-than 30 --keep-latest --apply"
    )]
    Snapshots {
        #[command(subcommand)]
        cmd: crate::snapshot::SnapshotsCommand,
    },
    /// Failed listings and dead-lettered jobs, with their reasons.
    #[command(after_help = "Example:\n  scrapefarm failures --json")]
    Failures(FailuresArgs),
    /// The dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Database administration (PostgreSQL): the least-privilege role the workers connect as.
    #[command(subcommand)]
    Db(DbCommand),
    /// Exit 0 when the worker's health file shows it alive (its pid runs) and progressing
    /// (within --max-age seconds); the container health check.
    #[command(
        after_help = "Examples:\n  scrapefarm health\n  scrapefarm health --file /data/health/worker-3.json --max-age 120"
    )]
    Health(HealthArgs),
    /// API keys of the price-tracker service: create (the key is printed once), ls, revoke.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Serve the price-tracker HTTP API (with the scheduler and a collector of search runs).
    #[command(
        after_help = "Examples:\n  scrapefarm serve\n  SCRAPEFARM_BIND=0.0.0.0:8080 scrapefarm serve\n  curl -H \"Authorization: Bearer $KEY\" http://127.0.0.1:8080/api/v1/searches"
    )]
    Serve(ServeArgs),
    /// Start due scheduled runs (and collect them) without the HTTP API; any number may run.
    #[command(after_help = "Example:\n  scrapefarm scheduler\n  scrapefarm scheduler --no-collect")]
    Scheduler(SchedulerArgs),
    /// Site definitions: list the usable ones (built in and from the sites directory), validate
    /// a directory of them, draft one from a page (`new`) and read pages with it (`check`).
    #[command(
        visible_alias = "site",
        after_help = "Examples:\n  scrapefarm sites ls\n  scrapefarm sites validate ./my-sites\n  scrapefarm site new shop --from saved/product.html --out shop.toml"
    )]
    Sites {
        /// Default: `ls`.
        #[command(subcommand)]
        cmd: Option<crate::site::command::SitesCommand>,
    },
    /// Price alerts of watches: deliver them to their webhooks (until SIGTERM), list them.
    #[command(subcommand)]
    Alerts(crate::alerts::AlertsCommand),
    /// Workers seen in the last hour: alive or not (three missed heartbeats), pages, rate, memory.
    #[command(after_help = "Examples:\n  scrapefarm workers\n  scrapefarm workers --json")]
    Workers(JsonArg),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port, printed at start).
    #[arg(long, env = "SCRAPEFARM_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Do not start due scheduled runs here (another process runs `scrapefarm scheduler`).
    #[arg(long)]
    pub no_scheduler: bool,
    #[command(flatten)]
    pub collector: CollectorArgs,
    /// Do not deliver alerts here (another process runs `scrapefarm alerts deliver`).
    #[arg(long)]
    pub no_deliver: bool,
    #[command(flatten)]
    pub delivery: crate::alerts::DeliverArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    #[command(flatten)]
    pub collector: CollectorArgs,
}

/// Who collects the runs of searches.
#[derive(Debug, Clone, Args)]
pub struct CollectorArgs {
    /// Do not collect runs here (another `serve` or `scheduler` process does).
    #[arg(long)]
    pub no_collect: bool,
    /// Browser profile (subfolder of the profile root) the run collector renders search pages
    /// with; give each collecting process its own, and never a worker's.
    #[arg(
        long,
        env = "SCRAPEFARM_COLLECTOR_PROFILE",
        default_value = "collector"
    )]
    pub collector_profile: String,
}

#[derive(Debug, Clone, Args)]
pub struct SearchesArgs {
    #[command(subcommand)]
    pub cmd: Option<SearchesCommand>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum SearchesCommand {
    /// Run a search again now: its pages are collected again and every listing it found is
    /// re-queued (by a `serve` or `scheduler` process).
    #[command(after_help = "Example:\n  scrapefarm searches run 3")]
    Run {
        /// The search's id, as `searches` shows it.
        id: i64,
    },
    /// Pause a search's schedule: no scheduled run starts until `resume`.
    #[command(after_help = "Example:\n  scrapefarm searches pause 3")]
    Pause {
        /// The search's id, as `searches` shows it.
        id: i64,
    },
    /// Resume a paused schedule from now (missed runs are not made up).
    #[command(after_help = "Example:\n  scrapefarm searches resume 3")]
    Resume {
        /// The search's id, as `searches` shows it.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; prints the key alone on stdout, once (only its SHA-256 is stored).
    #[command(
        after_help = "Example:\n  KEY=$(scrapefarm apikey create --name dashboard --scope read)"
    )]
    Create {
        /// A name for the key (1–64 letters, digits, `-`, `_`, `.`), unique.
        #[arg(long)]
        name: String,
        /// `read`: read only; `write`: also create, run and delete.
        #[arg(long, value_enum, default_value = "read")]
        scope: crate::api_key::Scope,
    },
    /// List keys: name, scope, live or revoked (never the key).
    #[command(after_help = "Example:\n  scrapefarm apikey ls --json")]
    Ls(JsonArg),
    /// Revoke a key: it stops working at once.
    #[command(after_help = "Example:\n  scrapefarm apikey revoke dashboard")]
    Revoke {
        /// The key's name.
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct FixtureArgs {
    /// TCP port on 127.0.0.1 (0 = any free port).
    #[arg(long, env = "SCRAPEFARM_FIXTURE_PORT", default_value_t = 8377)]
    pub port: u16,
    /// Seed of the generated catalogue: the same seed serves the same listings and prices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Listings each search query finds.
    #[arg(long, default_value_t = 200)]
    pub listings_per_query: usize,
    /// Fraction of listing pages answered with a JS challenge.
    #[arg(long, default_value_t = 0.0)]
    pub challenge_rate: f64,
    /// Requests per second before 429s.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Fraction of listing requests answered with a captcha 403.
    #[arg(long, default_value_t = 0.0)]
    pub captcha_rate: f64,
    /// Seconds a visitor that hit a captcha keeps getting captchas.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub captcha_cooldown: u64,
    /// Fraction of listing requests answered with a 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// The defences (all but the JS challenge) also answer the listing pages' data API.
    #[arg(long)]
    pub api_defences: bool,
    /// Server-side latency of the data API.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub api_latency_ms: u64,
    /// Fraction of listings whose data API answers after --slow-api-ms instead.
    #[arg(long, default_value_t = 0.0)]
    pub slow_api_rate: f64,
    /// Latency of the slow listings' data API.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub slow_api_ms: u64,
    /// Captcha pages worded as a bot vendor's ("Pardon Our Interruption").
    #[arg(long)]
    pub vendor_captcha: bool,
    /// The benchmark's hostile settings (challenge 50%, 10 requests/s, captcha 5% with a 10 s
    /// cooldown, 503 5%, on pages and data API, 30 ms API latency, 5% of listings 400 ms,
    /// vendor-worded captchas); replaces the other defence flags.
    #[arg(long)]
    pub hostile: bool,
}

#[derive(Debug, Clone, Args)]
pub struct EnqueueArgs {
    /// Site definition to use (`scrapefarm sites` lists them).
    #[arg(long, env = "SCRAPEFARM_SITE")]
    pub site: String,
    /// Search query to collect.
    #[arg(long, conflicts_with = "urls", required_unless_present = "urls")]
    pub query: Option<String>,
    /// Search-result pages to collect at most (≥ 1).
    #[arg(long, default_value_t = 5, value_parser = at_least_one_u32)]
    pub max_pages: u32,
    /// File of listing URLs, one per line (`-` for stdin).
    #[arg(long)]
    pub urls: Option<PathBuf>,
    /// Browser profile (subfolder of the profile root) that renders the search; give concurrent
    /// enqueuers (a Job and a CronJob) different ones, and never a worker's.
    #[arg(long, env = "SCRAPEFARM_ENQUEUE_PROFILE", default_value = "enqueue")]
    pub profile: String,
    /// Run the search again on this schedule: an interval (`30m`, `6h`, `1d`; at least 10s)
    /// or a 5-field cron expression (UTC). A `serve` or `scheduler` process starts the runs.
    #[arg(long, value_name = "SCHEDULE")]
    pub every: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CrawlArgs {
    /// Site definition to use (`scrapefarm sites` lists them).
    #[arg(long, env = "SCRAPEFARM_SITE", required_unless_present = "resume")]
    pub site: Option<String>,
    /// Search query to collect and crawl.
    #[arg(long, conflicts_with = "urls", required_unless_present_any = ["urls", "resume"])]
    pub query: Option<String>,
    /// Resume search ID, made by an earlier crawl in this data directory (interrupted, or
    /// stopped early), with that crawl's site, query or URL list and page limit. Without it, a
    /// crawl resumes its own unfinished search when run again with the same arguments.
    #[arg(long, value_name = "ID", conflicts_with_all = ["query", "urls"])]
    pub resume: Option<i64>,
    /// Search-result pages to collect at most (≥ 1).
    #[arg(long, default_value_t = 5, value_parser = at_least_one_u32)]
    pub max_pages: u32,
    /// File of listing URLs, one per line.
    #[arg(long)]
    pub urls: Option<PathBuf>,
    /// Queue the valid lines of `--urls` and skip the others (without it, any invalid line fails
    /// the crawl before anything is queued, as `enqueue` does).
    #[arg(long, requires = "urls")]
    pub skip_invalid: bool,
    /// Pages rendering at once (browser tabs, ≥ 1).
    #[arg(long, env = "SCRAPEFARM_CONCURRENCY", default_value_t = 4, value_parser = at_least_one)]
    pub concurrency: usize,
    /// Attempts of a listing before it is dead-lettered (≥ 1).
    #[arg(long, env = "SCRAPEFARM_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = at_least_one_u32)]
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Search query on the fixture marketplace.
    #[arg(long, default_value = "lamp")]
    pub query: String,
    /// Listings the fixture marketplace finds for the query (≥ 1).
    #[arg(long, default_value_t = 200, value_parser = at_least_one)]
    pub listings: usize,
    /// Pages rendering at once (browser tabs, ≥ 1).
    #[arg(long, env = "SCRAPEFARM_CONCURRENCY", default_value_t = 4, value_parser = at_least_one)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Tabs = pages rendering at once (≥ 1); RabbitMQ prefetch is twice this (storing overlaps
    /// rendering).
    #[arg(long, env = "SCRAPEFARM_CONCURRENCY", default_value_t = 4, value_parser = at_least_one)]
    pub concurrency: usize,
    /// Exit 0 after the queues have been empty this many seconds.
    #[arg(long, env = "SCRAPEFARM_EXIT_WHEN_IDLE_SECS", value_name = "SECONDS")]
    pub exit_when_idle: Option<u64>,
    /// Worker id (profile subfolder); defaults to `worker-$JOB_COMPLETION_INDEX` or `worker-0`.
    #[arg(long, env = "SCRAPEFARM_WORKER_ID")]
    pub worker_id: Option<String>,
    #[arg(long, env = "JOB_COMPLETION_INDEX", hide = true)]
    pub completion_index: Option<u32>,
    /// Seconds in-flight pages may take after SIGTERM.
    #[arg(
        long,
        env = "SCRAPEFARM_SHUTDOWN_DEADLINE_SECS",
        value_name = "SECONDS",
        default_value_t = 30
    )]
    pub shutdown_deadline: u64,
    /// Attempts before a job is dead-lettered (≥ 1).
    #[arg(long, env = "SCRAPEFARM_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = at_least_one_u32)]
    pub max_attempts: u32,
    /// Health file of this worker: it writes its pid and the time of its last progress there
    /// every second while jobs settle (or there is nothing to do), and `scrapefarm health`
    /// reads it [default: <data dir>/health/<worker id>.json].
    #[arg(
        long = "health-file",
        visible_alias = "ready-file",
        env = "SCRAPEFARM_READY_FILE",
        value_name = "FILE"
    )]
    pub ready_file: Option<PathBuf>,
    /// Let images, fonts and media load (slower; for debugging).
    #[arg(long)]
    pub no_blocking: bool,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (e.g. `0.0.0.0:9464`); off without it.
    #[arg(long, env = "SCRAPEFARM_METRICS_BIND", value_name = "ADDR")]
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// Seconds between two heartbeats (the worker's row in `status`); it counts as gone after
    /// three missed ones.
    #[arg(long, env = "SCRAPEFARM_HEARTBEAT_SECS", default_value_t = crate::worker::HEARTBEAT_INTERVAL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub heartbeat_secs: u64,
}

impl WorkerArgs {
    /// The heartbeat of worker `worker_id` on `host`.
    pub fn heartbeat(&self, worker_id: &str, host: &str) -> crate::worker::HeartbeatSettings {
        crate::worker::HeartbeatSettings {
            worker_id: worker_id.into(),
            host: host.into(),
            concurrency: self.concurrency,
            interval: std::time::Duration::from_secs(self.heartbeat_secs),
        }
    }

    pub fn worker_id(&self) -> String {
        worker_id(self.worker_id.as_deref(), self.completion_index)
    }

    /// Where this worker writes its health (see `--health-file`).
    pub fn health_file(&self, common: &Common) -> PathBuf {
        self.ready_file
            .clone()
            .unwrap_or_else(|| default_health_file(common, &self.worker_id()))
    }
}

/// A worker's id: `--worker-id`, else `worker-$JOB_COMPLETION_INDEX`, else `worker-0`.
fn worker_id(explicit: Option<&str>, completion_index: Option<u32>) -> String {
    match (explicit, completion_index) {
        (Some(id), _) => id.to_string(),
        (None, Some(index)) => format!("worker-{index}"),
        (None, None) => "worker-0".into(),
    }
}

/// `<data dir>/health/<worker id>.json`: one file per worker process, never shared.
fn default_health_file(common: &Common, worker_id: &str) -> PathBuf {
    common
        .data_dir
        .join("health")
        .join(format!("{worker_id}.json"))
}

#[derive(Debug, Clone, Args)]
pub struct ListingsArgs {
    /// Only the listings a search found (its id, as `searches` shows), in search-result order.
    #[arg(long, value_name = "SEARCH_ID")]
    pub search: Option<i64>,
    /// Only listings in this status.
    #[arg(long, value_parser = LISTING_STATUSES)]
    pub status: Option<String>,
    /// Only listings of this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Only listings extracted (or, never extracted, first seen) on or after this local day.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::report::parse_local_day)]
    pub since: Option<i64>,
    /// Order of the rows (default: search-result order with --search, else as stored).
    #[arg(long, value_enum)]
    pub sort: Option<ListingSort>,
    /// At most this many rows (after sorting, ≥ 1).
    #[arg(long, value_parser = at_least_one)]
    pub limit: Option<usize>,
    /// Include each listing's price observations (local time and price).
    #[arg(long)]
    pub history: bool,
    /// Only listings whose price changed, each change shown as old → new with its time and
    /// percentage (in JSON: `changes`).
    #[arg(long)]
    pub changes: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// File format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// File to write (replaced whole, never left half-written); `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Comma-separated fields, in order (default: every field of `listings --json`, or with
    /// `--history` every field of an observation).
    #[arg(long, value_delimiter = ',', value_name = "FIELD,…")]
    pub fields: Option<Vec<String>>,
    /// Export the price history instead: one row per observation of the chosen listings
    /// (site, external_id, observed_at as UTC RFC 3339, observed_at_ms, price, price_minor,
    /// currency), oldest first per listing.
    #[arg(long)]
    pub history: bool,
    /// Only the listings a search found (its id, as `searches` shows).
    #[arg(long, value_name = "SEARCH_ID")]
    pub search: Option<i64>,
    /// Only listings in this status.
    #[arg(long, value_parser = LISTING_STATUSES)]
    pub status: Option<String>,
    /// Only listings of this site.
    #[arg(long)]
    pub site: Option<String>,
}

/// Formats of `export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header row; lists and maps as JSON text.
    Csv,
    /// One JSON object per line, as `listings --json` prints them.
    Jsonl,
}

/// Orders of `listings --sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListingSort {
    /// Lowest price first (by currency, then amount).
    Price,
    /// Most recently extracted first.
    Updated,
    /// By title, A to Z.
    Title,
}

/// Formats of `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct JsonArg {
    /// Print JSON for scripts (`searches`: one object per line; `status`: one object).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExtractArgs {
    /// Site definition whose rules read the page (`scrapefarm sites` lists them).
    #[arg(long, env = "SCRAPEFARM_SITE")]
    pub site: String,
    /// A saved HTML file, or an http(s) URL rendered in the browser.
    pub target: String,
    /// The URL a saved file was saved from: its relative links resolve against it (default: the
    /// page's canonical listing URL, else the site's base URL).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// One JSON object: `class` and the record (the field names of `listings --json`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FailuresArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Send dead-lettered jobs back to the work queue.
    #[command(
        after_help = "Examples:\n  scrapefarm dlq requeue --all\n  scrapefarm dlq requeue --listing 123456"
    )]
    Requeue(DlqArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DlqArgs {
    /// Every dead-lettered job.
    #[arg(long, conflicts_with = "listing")]
    pub all: bool,
    /// Only the jobs of this listing (external id).
    #[arg(long)]
    pub listing: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create (or update) the role workers connect as: LOGIN, no superuser, no CREATEDB or
    /// CREATEROLE; SELECT/INSERT/UPDATE/DELETE on the farm's tables and USAGE on their sequences,
    /// also for tables later migrations add. Run it as the owner (the role `migrate` runs as),
    /// after `migrate`. The password is read from SCRAPEFARM_WORKER_DB_PASSWORD, never printed.
    #[command(
        after_help = "Example:\n  SCRAPEFARM_WORKER_DB_PASSWORD=$(openssl rand -hex 24) \\\n    DATABASE_URL=postgres://owner:…@db/scrapefarm scrapefarm db grant-worker scrapefarm_worker"
    )]
    GrantWorker(GrantWorkerArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GrantWorkerArgs {
    /// Role name (lowercase letters, digits, underscores).
    pub role: String,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The worker's health file [default: <data dir>/health/<worker id>.json, the worker's own
    /// default].
    #[arg(
        long = "file",
        visible_alias = "ready-file",
        env = "SCRAPEFARM_READY_FILE",
        value_name = "FILE"
    )]
    pub file: Option<PathBuf>,
    /// The worker whose default health file is read (as `worker --worker-id`).
    #[arg(long, env = "SCRAPEFARM_WORKER_ID")]
    pub worker_id: Option<String>,
    #[arg(long, env = "JOB_COMPLETION_INDEX", hide = true)]
    pub completion_index: Option<u32>,
    /// Seconds without progress after which the worker counts as stuck (exit 1).
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_age: u64,
}

impl HealthArgs {
    /// The health file to read.
    pub fn health_file(&self, common: &Common) -> PathBuf {
        self.file.clone().unwrap_or_else(|| {
            let id = worker_id(self.worker_id.as_deref(), self.completion_index);
            default_health_file(common, &id)
        })
    }
}

/// `status`: read once, or redrawn.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// One JSON object (with `--watch`, one per refresh, one per line).
    #[arg(long)]
    pub json: bool,
    /// Redraw every SECONDS (2 when given without a value) until Ctrl-C.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub watch: Option<u64>,
}

/// The statuses a listing can be in, for `--status`.
const LISTING_STATUSES: [&str; 5] = ["pending", "active", "ended", "gone", "failed"];

/// A count that must be at least 1 (`--concurrency 0` would never render a page).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

/// [`at_least_one`] for `u32` settings (`--max-pages`, `--max-attempts`).
fn at_least_one_u32(text: &str) -> Result<u32, String> {
    let n = at_least_one(text)?;
    u32::try_from(n).map_err(|_| format!("must be at most {}", u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_database_and_broker_urls_mean_the_embedded_default() {
        let mut cli = Cli::try_parse_from([
            "scrapefarm",
            "--database-url",
            "",
            "--amqp-url",
            " ",
            "migrate",
        ])
        .unwrap();
        cli.common.unset_empty();
        assert_eq!(cli.common.database_url, None);
        assert_eq!(cli.common.amqp_url, None);
        assert!(cli.common.database_url().starts_with("sqlite://"));
        let mut cli = Cli::try_parse_from([
            "scrapefarm",
            "--database-url",
            "postgres://postgres@127.0.0.1/x",
            "migrate",
        ])
        .unwrap();
        cli.common.unset_empty();
        assert_eq!(
            cli.common.database_url.as_deref(),
            Some("postgres://postgres@127.0.0.1/x")
        );
    }
}
