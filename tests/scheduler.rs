//! Two `scrapefarm scheduler` processes on one PostgreSQL database, a few searches every 10 s
//! for about a minute: every due run is started exactly once (claimed by compare-and-set on
//! `next_run_at`), with no slot missed or doubled. And a run's collection lease: a run whose
//! collector died is taken over once the lease expires.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use scrapefarm::site::Sites;
use scrapefarm::store::Store;
use scrapefarm::tracker::{SearchRequest, Tracker};

use common::process::Running;
use common::{PG_BASE, drop_database, unique};

/// How long both schedulers run.
const RUN_FOR: Duration = Duration::from_secs(122);

fn scheduler(db_url: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["scheduler", "--no-collect"])
        .env("DATABASE_URL", db_url)
        .env_remove("AMQP_URL")
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_start_each_due_run_exactly_once() {
    let name = unique("sf_sched");
    let db_url = format!("{PG_BASE}/{name}");
    let store = Store::connect(&db_url, 4)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    store.migrate().await.unwrap();
    let sites = Sites::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sites")).unwrap();
    let tracker = Tracker::new(store.clone(), Arc::new(sites));
    let mut searches = Vec::new();
    for query in ["lamp", "desk", "chair"] {
        let request = SearchRequest {
            site: "fixture".into(),
            query: Some(query.into()),
            every: Some("10s".into()),
            ..SearchRequest::default()
        };
        searches.push(tracker.create_search(&request).await.unwrap());
    }
    let (mut a, mut b) = (scheduler(&db_url), scheduler(&db_url));
    tokio::time::sleep(RUN_FOR).await;
    a.terminate(Duration::from_secs(40));
    b.terminate(Duration::from_secs(40));

    let runs = store.search_runs().await.unwrap();
    for search in &searches {
        let first_slot = search.next_run_at.unwrap();
        let next_slot = tracker
            .search(search.id)
            .await
            .unwrap()
            .next_run_at
            .unwrap();
        let mine: Vec<_> = runs.iter().filter(|r| r.0 == search.id).collect();
        let numbers: Vec<i64> = mine.iter().map(|r| r.1).collect();
        assert_eq!(
            numbers,
            (1..=mine.len() as i64).collect::<Vec<_>>(),
            "run numbers"
        );
        let slots: Vec<i64> = mine.iter().filter_map(|r| r.2).collect();
        // Every slot from the first to the one before the next, once each and in order.
        let expected: Vec<i64> = (first_slot..next_slot).step_by(10_000).collect();
        assert_eq!(slots, expected, "search {}: scheduled runs", search.id);
        // One slot every 10 s of the run, give or take the first and the last.
        let about = RUN_FOR.as_secs() as usize / 10;
        assert!(
            (about - 1..=about + 1).contains(&slots.len()),
            "search {}: {} scheduled runs in {RUN_FOR:?}",
            search.id,
            slots.len()
        );
    }
    store.close().await;
    drop_database(&name).await;
}

/// A collector that dies holding a run blocks it only until its lease expires: then another
/// takes it over, and the dead one can no longer renew it. On both backends.
#[tokio::test]
async fn a_run_whose_collector_died_is_taken_over_when_its_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("sf_lease");
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    for url in [format!("{PG_BASE}/{name}"), sqlite] {
        let store = Store::connect(&url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let sites = Sites::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sites")).unwrap();
        let tracker = Tracker::new(store.clone(), Arc::new(sites));
        let request = SearchRequest {
            site: "fixture".into(),
            query: Some("lamp".into()),
            ..SearchRequest::default()
        };
        let search = tracker.create_search(&request).await.unwrap();
        let dead = store
            .claim_run("dead", 300, None)
            .await
            .unwrap()
            .expect("run 1 waits");
        assert_eq!((dead.search_id, dead.run), (search.id, 1));
        assert_eq!(
            store.claim_run("alive", 60_000, None).await.unwrap(),
            None,
            "{url}: leased"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let taken = store.claim_run("alive", 60_000, None).await.unwrap();
        assert_eq!(
            taken,
            Some(dead.clone()),
            "{url}: taken over after the lease"
        );
        assert!(!store.renew_run_lease(dead.id, "dead", 300).await.unwrap());
        assert!(
            store
                .renew_run_lease(dead.id, "alive", 60_000)
                .await
                .unwrap()
        );
        store.close().await;
    }
    drop_database(&name).await;
}
