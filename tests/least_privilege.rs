//! Least privilege outside the browser: `--help` never prints a secret from the environment, and
//! workers connect to PostgreSQL as a role that can read and write the farm's rows but cannot
//! change the schema or read the server's secrets — nor a watch's webhook or secret (it may only
//! evaluate watches and add alerts).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use clap::CommandFactory;
use common::{PG_BASE, drop_database, unique};
use scrapefarm::cli::Cli;
use scrapefarm::fixture_site::{FixtureConfig, FixtureSite};
use scrapefarm::store::{NewWatch, Store, WatchRule};
use sqlx::Connection;

const SECRET: &str = "s3cret";

/// Every subcommand path of the CLI, e.g. `["snapshots", "ls"]`.
fn subcommand_paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        let mut path = prefix.clone();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        subcommand_paths(sub, path, out);
    }
}

#[test]
fn help_of_every_command_never_prints_secret_env_values() {
    let mut paths = vec![Vec::new()];
    subcommand_paths(&Cli::command(), Vec::new(), &mut paths);
    assert!(paths.len() > 10, "{paths:?}");
    assert!(paths.contains(&vec!["db".into(), "grant-worker".into()]));
    for path in paths {
        let out = Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
            .args(&path)
            .arg("--help")
            .env("DATABASE_URL", format!("postgres://u:{SECRET}@h/db"))
            .env("AMQP_URL", format!("amqp://u:{SECRET}@h/"))
            .env("SCRAPEFARM_WORKER_DB_PASSWORD", SECRET)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{path:?} --help");
        assert!(
            !text.contains(SECRET),
            "`{} --help` prints a secret:\n{text}",
            path.join(" ")
        );
        if path.is_empty() || path == ["worker"] {
            assert!(
                text.contains("[env: DATABASE_URL]"),
                "the variable is still named:\n{text}"
            );
        }
    }
}

fn scrapefarm(db_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env_remove("AMQP_URL")
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        )
        .output()
        .unwrap()
}

/// Runs `sql` as the worker role and returns the server's error, if any.
async fn as_worker(url: &str, sql: &str) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    done.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_role_crawls_but_cannot_change_the_schema_or_read_secrets() {
    let name = unique("sf_role");
    let role = format!("sf_worker_{}", name.rsplit('_').next().unwrap());
    let owner_url = format!("{PG_BASE}/{name}");
    let out = scrapefarm(&owner_url, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without a password a missing role is not created.
    let out = scrapefarm(&owner_url, &["db", "grant-worker", &role]);
    assert!(!out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["db", "grant-worker", &role])
        .env("DATABASE_URL", &owner_url)
        .env("SCRAPEFARM_WORKER_DB_PASSWORD", SECRET)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("Role {role} created")), "{said}");
    assert!(
        !said.contains(SECRET),
        "the password is never printed: {said}"
    );
    // Idempotent: a second run updates the role.
    let out = scrapefarm(&owner_url, &["db", "grant-worker", &role]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A crawl (collect, embedded queue, render, store) connecting as the worker role.
    let fixture = FixtureSite::start(FixtureConfig::default(), 0)
        .await
        .unwrap();
    // A watch on one listing the crawl stores: the worker evaluates it and writes its alert.
    let watched = fixture
        .ground_truth("lamp")
        .into_iter()
        .find(|l| l.status == "active" && l.rank <= 50)
        .unwrap();
    let owner = Store::connect(&owner_url, 2).await.unwrap();
    let new_watch = NewWatch {
        site: Some("fixture".into()),
        external_id: Some(watched.external_id.clone()),
        rule: WatchRule {
            below_minor: Some(i64::MAX),
            ..WatchRule::default()
        },
        webhook_url: "http://127.0.0.1:9/hook".into(),
        ..NewWatch::default()
    };
    let watch = owner.create_watch(&new_watch).await.unwrap().watch;
    owner.close().await;
    let worker_url = format!("postgres://{role}:{SECRET}@127.0.0.1:5432/{name}");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args([
            "crawl",
            "--site",
            "fixture",
            "--query",
            "lamp",
            "--max-pages",
            "1",
        ])
        .env("DATABASE_URL", &worker_url)
        .env_remove("AMQP_URL")
        .env("SCRAPEFARM_BASE_URL", fixture.base_url())
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        )
        .env("SCRAPEFARM_PROFILE_DIR", dir.path().join("profiles"))
        .env("SCRAPEFARM_SNAPSHOT_DIR", dir.path().join("snapshots"))
        .output()
        .unwrap();
    fixture.stop().await;
    assert!(
        out.status.success(),
        "crawl as {role}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let owner = Store::connect(&owner_url, 2).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM listings WHERE status <> 'pending'")
        .fetch_one(owner.pool())
        .await
        .unwrap();
    assert!(stored > 0, "the worker role stored listings");
    let alerts = owner.alerts(Some(watch.id)).await.unwrap();
    assert_eq!(
        alerts.len(),
        1,
        "the worker role wrote the alert: {alerts:?}"
    );
    owner.close().await;

    assert!(
        as_worker(&worker_url, "SELECT COUNT(*) FROM listings")
            .await
            .is_ok()
    );
    let evaluation = "SELECT id, below_minor, drop_percent, currency FROM watches \
        WHERE deleted_at IS NULL AND site = 'fixture' AND external_id = '1' AND search_id IS NULL";
    assert_eq!(as_worker(&worker_url, evaluation).await, Ok(()));
    let denied = [
        "SELECT secret FROM watches",
        "SELECT webhook_url FROM watches",
        "SELECT * FROM alerts",
        "UPDATE alerts SET state = 'delivered'",
        "DELETE FROM alerts",
        "UPDATE watches SET deleted_at = 1",
        "INSERT INTO watches (webhook_url, secret, created_at, search_id, below_minor) \
         VALUES ('http://x', 'x', 0, 1, 1)",
        "DROP TABLE listings",
        "CREATE TABLE intruder (id INT)",
        "SELECT rolpassword FROM pg_authid",
        "ALTER TABLE listings ADD COLUMN intruder INT",
        "TRUNCATE listings",
        "CREATE DATABASE intruder",
        "CREATE ROLE intruder",
    ];
    for sql in denied {
        let err = as_worker(&worker_url, sql).await.expect_err(sql);
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{sql}: {err}"
        );
    }

    drop_database(&name).await;
    drop_role(&role).await;
}

/// Heartbeats (`workers` table): the worker role writes its own row, insert and update, and may
/// neither read the fleet's rows nor delete them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_role_writes_its_heartbeat_but_cannot_read_or_delete_the_fleet() {
    use scrapefarm::store::workers::Heartbeat;
    let name = unique("sf_beat");
    let role = format!("sf_beat_{}", name.rsplit('_').next().unwrap());
    let owner_url = format!("{PG_BASE}/{name}");
    let owner = Store::connect(&owner_url, 2).await.unwrap();
    owner.migrate().await.unwrap();
    owner.grant_worker(&role, Some(SECRET)).await.unwrap();

    let worker_url = format!("postgres://{role}:{SECRET}@127.0.0.1:5432/{name}");
    let worker = Store::connect(&worker_url, 2).await.unwrap();
    worker.migrate().await.unwrap();
    let mut beat = Heartbeat {
        id: "worker-7",
        host: "pod-7",
        concurrency: 2,
        pages: 1,
        pages_per_min: 1.0,
        memory_bytes: Some(1 << 20),
        last_error: None,
        interval: std::time::Duration::from_secs(5),
        started_at: worker.db_now_ms().await.unwrap(),
    };
    worker.heartbeat(&beat).await.expect("first beat inserts");
    beat.pages = 9;
    worker.heartbeat(&beat).await.expect("later beats update");
    worker.close().await;

    let rows = owner
        .workers(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id.as_str(), rows[0].pages), ("worker-7", 9));
    assert!(rows[0].alive);
    owner.close().await;
    for sql in [
        "SELECT pages FROM workers",
        "SELECT * FROM workers",
        "DELETE FROM workers",
        "TRUNCATE workers",
    ] {
        let err = as_worker(&worker_url, sql).await.expect_err(sql);
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }

    drop_database(&name).await;
    drop_role(&role).await;
}

/// Dashboard sessions (`ui_sessions`): a worker role may neither read them nor add one (which
/// would sign it in to the dashboard as any key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_role_cannot_read_or_mint_dashboard_sessions() {
    let name = unique("sf_ui");
    let role = format!("sf_ui_{}", name.rsplit('_').next().unwrap());
    let owner = Store::connect(&format!("{PG_BASE}/{name}"), 2)
        .await
        .unwrap();
    owner.migrate().await.unwrap();
    owner.grant_worker(&role, Some(SECRET)).await.unwrap();
    owner.close().await;
    let worker_url = format!("postgres://{role}:{SECRET}@127.0.0.1:5432/{name}");
    for sql in [
        "SELECT token_hash FROM ui_sessions",
        "INSERT INTO ui_sessions (token_hash, key_hash, csrf, created_at, expires_at) \
         VALUES ('t', 'k', 'c', 0, 9999999999999)",
        "DELETE FROM ui_sessions",
    ] {
        let err = as_worker(&worker_url, sql).await.expect_err(sql);
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    drop_database(&name).await;
    drop_role(&role).await;
}

/// Drops a test's role (after its database: the grants there go with it).
async fn drop_role(role: &str) {
    let mut admin = sqlx::PgConnection::connect(&format!("{PG_BASE}/postgres"))
        .await
        .unwrap();
    let sql = format!("DROP ROLE IF EXISTS {role}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin)
        .await
        .unwrap();
}
