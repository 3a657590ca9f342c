//! `scrapefarm apikey` through the real binary on the embedded default: a key is printed once,
//! alone on stdout; only its hash is stored; `ls` never shows it; `revoke` ends it.

use std::process::{Command, Output};

use scrapefarm::api_key::hash_key;
use scrapefarm::store::Store;

fn apikey(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .arg("apikey")
        .args(args)
        .env("SCRAPEFARM_DATA_DIR", dir)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_key_is_shown_once_stored_hashed_listed_without_it_and_revocable() {
    let dir = tempfile::tempdir().unwrap();
    let created = apikey(
        dir.path(),
        &["create", "--name", "dashboard", "--scope", "write"],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim_end().to_string();
    assert!(
        key.starts_with("sf_") && key.len() == 67,
        "the key alone: {key:?}"
    );
    assert!(
        !text(&created.stderr).contains(&key),
        "the key is printed once"
    );

    let again = apikey(dir.path(), &["create", "--name", "dashboard"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("exists already"),
        "{}",
        text(&again.stderr)
    );

    let listed = apikey(dir.path(), &["ls"]);
    let table = text(&listed.stdout);
    assert!(table.starts_with("name"), "a header: {table}");
    assert!(table.contains("dashboard") && table.contains("write") && table.contains("live"));
    assert!(
        !table.contains(&key) && !table.contains(&key[3..]),
        "{table}"
    );

    let url = format!(
        "sqlite://{}?mode=rw",
        dir.path().join("scrapefarm.db").display()
    );
    let store = Store::connect(&url, 1).await.unwrap();
    let found = store.api_key_by_hash(&hash_key(&key)).await.unwrap();
    assert_eq!(
        found.map(|k| (k.name, k.scope)),
        Some(("dashboard".into(), "write".into()))
    );
    assert!(
        store
            .api_key_by_hash(&hash_key("sf_nope"))
            .await
            .unwrap()
            .is_none()
    );
    let raw: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1")
        .bind(&key)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(raw, 0, "the key itself is never stored");

    let revoked = apikey(dir.path(), &["revoke", "dashboard"]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(
        store
            .api_key_by_hash(&hash_key(&key))
            .await
            .unwrap()
            .is_none()
    );
    assert!(text(&apikey(dir.path(), &["ls"]).stdout).contains("revoked"));
    let twice = apikey(dir.path(), &["revoke", "dashboard"]);
    assert_eq!(twice.status.code(), Some(1));
    let bad = apikey(dir.path(), &["create", "--name", "a b"]);
    assert_eq!(bad.status.code(), Some(1));
    store.close().await;
}
