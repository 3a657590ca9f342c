//! Shared by the `cli_*` tests: the real binary run in a temporary directory on the embedded
//! default (SQLite file + embedded queue), and listings saved through the store as the pipeline
//! saves them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scrapefarm::domain::{Job, ListingStatus, Record};
use scrapefarm::price::{Currency, Money};
use scrapefarm::store::{ListingSave, Store};

/// A scratch directory whose `scrapefarm.db` is the embedded default.
pub struct Farm {
    pub dir: tempfile::TempDir,
}

impl Farm {
    pub fn new() -> Farm {
        Farm {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.db_file().display())
    }

    pub fn db_file(&self) -> PathBuf {
        self.path().join("scrapefarm.db")
    }

    /// `scrapefarm <args>` run in the directory, nothing from the caller's environment deciding
    /// which database, queue or sites it uses.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrapefarm"));
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("DATABASE_URL")
            .env_remove("AMQP_URL")
            .env_remove("SCRAPEFARM_DATA_DIR")
            .env_remove("SCRAPEFARM_BASE_URL")
            .env_remove("SCRAPEFARM_LOG_FORMAT")
            .env("SCRAPEFARM_SNAPSHOT_DIR", self.path().join("snapshots"))
            .env("SCRAPEFARM_PROFILE_DIR", self.path().join("profiles"))
            .env(
                "SCRAPEFARM_SITES_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
            );
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .expect("the scrapefarm binary runs")
    }

    /// The store, migrated.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.db_url(), 2).await.unwrap();
        store.migrate().await.unwrap();
        store
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Saves an active listing of site `fixture` priced `minor` in `currency`.
pub async fn save_listing(
    store: &Store,
    external_id: &str,
    title: &str,
    minor: i64,
    currency: &str,
) {
    let job = Job {
        id: format!("job-{external_id}-{minor}"),
        site: "fixture".into(),
        url: format!("http://127.0.0.1:1/item/{external_id}"),
        search_id: None,
        run: None,
        published_at: 0,
    };
    let record = Record {
        external_id: external_id.into(),
        title: Some(title.into()),
        price: Some(Money::new(minor, Currency::parse(currency).unwrap())),
        ..Record::default()
    };
    let save = ListingSave {
        job: &job,
        external_id,
        attempt: 1,
        worker: "cli-test",
        status: Some(ListingStatus::Active),
        record: Some(&record),
        snapshot: None,
        outcome: "content",
        detail: None,
        duration_ms: 1,
    };
    store.save(&save).await.unwrap();
}
