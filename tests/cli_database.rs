//! The real binary and the database: read-only commands never create or migrate one (a SQLite
//! file or a PostgreSQL database), and `migrate` says which migrations it applied.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{PG_BASE, drop_database, unique};

/// `scrapefarm <args>` in `dir`, on the embedded default unless `db_url` is given.
fn scrapefarm(dir: &Path, db_url: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrapefarm"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("AMQP_URL")
        .env_remove("SCRAPEFARM_DATA_DIR")
        .env("SCRAPEFARM_SNAPSHOT_DIR", dir.join("snapshots"))
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        );
    match db_url {
        Some(url) => cmd.env("DATABASE_URL", url),
        None => cmd.env_remove("DATABASE_URL"),
    };
    cmd.output().expect("the scrapefarm binary runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The files `dir` holds, recursively (names relative to `dir`).
fn files_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        found.push(entry.file_name().to_string_lossy().into_owned());
        if entry.path().is_dir() {
            found.extend(files_in(&entry.path()));
        }
    }
    found
}

const READ_ONLY: [&[&str]; 6] = [
    &["listings"],
    &["searches"],
    &["status"],
    &["failures"],
    &["snapshots", "ls"],
    &["dlq", "requeue", "--all"],
];

#[test]
fn read_only_commands_in_an_empty_directory_create_nothing_and_say_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    for args in READ_ONLY {
        let out = scrapefarm(dir.path(), None, args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("no database at ./scrapefarm.db; run `scrapefarm migrate`"),
            "{args:?}: {stderr}"
        );
        assert_eq!(files_in(dir.path()), Vec::<String>::new(), "{args:?}");
    }
    // An explicit SQLite URL (even with mode=rwc) is not created either.
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let out = scrapefarm(dir.path(), Some(&url), &["listings"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

/// `0001_schema`, … as the SQLite migration files are named, in order.
fn migration_files() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| Some(e.file_name().to_str()?.strip_suffix(".sql")?.to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn migrate_names_the_migrations_it_applied_then_says_the_schema_is_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let out = scrapefarm(dir.path(), None, &["migrate"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let known = migration_files();
    let applied = format!("Applied {} migrations: {}.", known.len(), known.join(", "));
    assert!(
        stdout.starts_with(&applied),
        "{stdout}\nexpected: {applied}"
    );
    let out = scrapefarm(dir.path(), None, &["migrate"]);
    let (stdout, _) = text(&out);
    let current = format!("Schema is up to date ({} migrations)", known.len());
    assert!(stdout.starts_with(&current), "{stdout}");
    // Now the read-only commands work, on an empty store.
    let out = scrapefarm(dir.path(), None, &["listings"]);
    assert!(out.status.success(), "{:?}", text(&out));
}

#[tokio::test]
async fn read_only_commands_never_create_a_postgres_database() {
    let name = unique("sf_cli_nodb");
    let url = format!("{PG_BASE}/{name}");
    let dir = tempfile::tempdir().unwrap();
    for args in [&["listings"][..], &["status"]] {
        let out = scrapefarm(dir.path(), Some(&url), args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("no database at postgres://127.0.0.1:5432/{name}")),
            "{stderr}"
        );
    }
    let exists = database_exists(&name).await;
    assert!(!exists, "a read-only command created {name}");
    let out = scrapefarm(dir.path(), Some(&url), &["migrate"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(database_exists(&name).await);
    let out = scrapefarm(dir.path(), Some(&url), &["listings"]);
    assert!(out.status.success(), "{:?}", text(&out));
    drop_database(&name).await;
}

async fn database_exists(name: &str) -> bool {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&format!("{PG_BASE}/postgres"))
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    found.is_some()
}
