//! A search's lifecycle and isolated crawl runs, through the real binary: a search collected by
//! `enqueue` goes `queued` and then `done` once a farm worker (PostgreSQL + RabbitMQ) settles its
//! last job; a `crawl` on the embedded default ends `done` with its jobs counted per outcome;
//! two crawls of different searches in one data directory each work only their own jobs (their
//! own queues), and leave the shared queue's jobs alone; `crawl --resume` resumes only a crawl's
//! own search.

mod cli_common;
mod common;

use std::path::Path;
use std::process::{Command, Output};

use cli_common::{stderr, stdout};
use scrapefarm::domain::Job;
use scrapefarm::fixture_site::{FixtureConfig, FixtureSite};
use scrapefarm::queue::{EmbeddedQueue, Queue};
use scrapefarm::store::{ListingFilter, Store};

fn small(listings: usize) -> FixtureConfig {
    FixtureConfig {
        listings_per_query: listings,
        ..FixtureConfig::default()
    }
}

/// `searches --json` of a command's environment: one object per search, by id.
fn searches(mut cmd: Command) -> Vec<serde_json::Value> {
    let out = cmd.arg("searches").arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How the listings a search found stand in the store: (stored = active or ended, gone).
async fn stored_and_gone(store: &Store, search_id: i64) -> (i64, i64) {
    let filter = ListingFilter {
        search_id: Some(search_id),
        ..ListingFilter::default()
    };
    let rows = store.listings(&filter).await.unwrap();
    let count = |s: &[&str]| {
        rows.iter()
            .filter(|r| s.contains(&r.status.as_str()))
            .count()
    };
    (count(&["active", "ended"]) as i64, count(&["gone"]) as i64)
}

/// The farm's binary with the farm's database, broker, queue and fixture site.
fn farm_command(farm: &common::Farm) -> Command {
    let mut cmd = farm.command();
    cmd.env("SCRAPEFARM_BASE_URL", farm.fixture.base_url());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueued_search_is_done_once_a_farm_worker_settles_its_last_job() {
    let farm = common::Farm::start(small(6)).await;
    let mut enqueue = farm_command(&farm);
    enqueue.args([
        "enqueue",
        "--site",
        "fixture",
        "--query",
        "lamp",
        "--max-pages",
        "1",
    ]);
    let out = tokio::task::spawn_blocking(move || enqueue.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = searches(farm_command(&farm));
    assert_eq!(listed.len(), 1, "{listed:?}");
    let search = &listed[0];
    let id = search["id"].as_i64().unwrap();
    assert_eq!(search["status"], "queued", "{search}");
    assert_eq!(search["jobs"]["pending"], 6, "{search}");

    let mut worker = farm.worker_command("w-lifecycle");
    worker.args(["--concurrency", "2", "--exit-when-idle", "2"]);
    let status = tokio::task::spawn_blocking(move || worker.status().unwrap())
        .await
        .unwrap();
    assert!(status.success());

    let search = &searches(farm_command(&farm))[0];
    assert_eq!(search["status"], "done", "{search}");
    let (stored, gone) = stored_and_gone(&farm.store, id).await;
    assert_eq!(stored + gone, 6);
    assert_eq!(search["jobs"]["stored"], stored, "{search}");
    assert_eq!(search["jobs"]["gone"], gone, "{search}");
    assert_eq!(search["jobs"]["pending"], 0, "{search}");
    assert_eq!(search["jobs"]["failed"], 0, "{search}");
    assert!(search["finished_at"].is_i64(), "{search}");
    farm.cleanup().await;
}

/// `crawl` of `query` in `farm`'s directory against `fixture`, as a child process.
fn crawl(farm: &cli_common::Farm, fixture: &FixtureSite, query: &str, attempts: &str) -> Command {
    let mut cmd = farm.command(&[
        "crawl",
        "--site",
        "fixture",
        "--query",
        query,
        "--max-pages",
        "1",
        "--concurrency",
        "2",
        "--max-attempts",
        attempts,
    ]);
    cmd.env("SCRAPEFARM_BASE_URL", fixture.base_url());
    cmd
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_ends_done_with_its_jobs_counted_by_outcome() {
    let fixture = FixtureSite::start(small(5), 0).await.unwrap();
    let farm = cli_common::Farm::new();
    let out = output(crawl(&farm, &fixture, "lamp", "8")).await;
    fixture.stop().await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("Search 1: done; jobs stored "), "{said}");
    let search = &searches(farm.command(&[]))[0];
    assert_eq!(search["status"], "done", "{search}");
    let store = farm.store().await;
    let (stored, gone) = stored_and_gone(&store, 1).await;
    assert_eq!(stored + gone, 5);
    assert_eq!(search["jobs"]["stored"], stored, "{search}");
    assert_eq!(search["jobs"]["gone"], gone, "{search}");
    assert_eq!(search["jobs"]["pending"], 0, "{search}");
    let status = farm.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(
        status["searches_in_progress"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_crawls_in_one_data_dir_work_only_their_own_jobs() {
    let fixture = FixtureSite::start(small(6), 0).await.unwrap();
    let farm = cli_common::Farm::new();
    // A job of someone else's search waits in the shared queue.
    let store = farm.store().await;
    let other = store.create_search("fixture", "other", 1).await.unwrap();
    let planted = Job {
        id: "planted".into(),
        site: "fixture".into(),
        url: format!("{}/item/999999", fixture.base_url()),
        search_id: Some(other),
        run: None,
        published_at: 0,
    };
    EmbeddedQueue::new(&store, "scrapefarm.listings")
        .publish(&planted)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        output(crawl(&farm, &fixture, "lamp", "1")),
        output(crawl(&farm, &fixture, "chair", "8")),
    );
    fixture.stop().await;
    for out in [&a, &b] {
        assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    }
    // Every attempt of a crawl's job was made by that crawl's own worker.
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT j.search_id, a.worker FROM attempts a JOIN search_jobs j ON j.job_id = a.job_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(
        rows.len() >= 12,
        "both crawls attempted their jobs: {rows:?}"
    );
    for (search, worker) in &rows {
        assert_eq!(worker, &format!("crawl-{search}"), "{rows:?}");
    }
    let by_search: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(by_search.len(), 2, "{rows:?}");
    for s in searches(farm.command(&[])) {
        if s["id"] == other {
            assert_eq!(s["status"], "collecting", "untouched: {s}");
        } else {
            assert_eq!(s["status"], "done", "{s}");
        }
    }
    let shared = EmbeddedQueue::new(&store, "scrapefarm.listings");
    assert_eq!(
        shared.depths().await.unwrap().ready,
        1,
        "the shared queue's job was left alone"
    );
}

#[tokio::test]
async fn crawl_resume_refuses_a_search_no_crawl_made_and_an_unknown_id() {
    let farm = cli_common::Farm::new();
    let store = farm.store().await;
    let id = store.create_search("fixture", "lamp", 1).await.unwrap();
    store.close().await;
    let out = farm.run(&["crawl", "--resume", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was not made by `crawl`"),
        "{}",
        stderr(&out)
    );
    let out = farm.run(&["crawl", "--resume", "42"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no search 42"), "{}", stderr(&out));
    assert!(Path::new(&farm.db_file()).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_whose_jobs_all_fail_is_done_with_its_dead_letters_in_status_and_failures() {
    let config = FixtureConfig {
        defences: scrapefarm::fixture_site::Defences {
            error_rate: 1.0,
            ..Default::default()
        },
        ..small(2)
    };
    let fixture = FixtureSite::start(config, 0).await.unwrap();
    let farm = cli_common::Farm::new();
    let out = output(crawl(&farm, &fixture, "lamp", "1")).await;
    fixture.stop().await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Search 1: done; jobs stored 0, gone 0, failed 2, dead 0"),
        "{}",
        stdout(&out)
    );
    let search = &searches(farm.command(&[]))[0];
    assert_eq!(search["status"], "done", "{search}");
    assert_eq!(search["jobs"]["failed"], 2, "{search}");

    let status = farm.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    let crawl_queues = status["crawl_queues"].as_array().unwrap();
    assert_eq!(crawl_queues.len(), 1, "{status}");
    assert_eq!(crawl_queues[0]["queue"], "scrapefarm.listings.crawl-1");
    assert_eq!(crawl_queues[0]["depths"]["dead"], 2, "{status}");
    let text = stdout(&farm.run(&["status"]));
    assert!(
        text.contains("queue scrapefarm.listings.crawl-1: ready 0  unacked 0  retrying 0  dead 2"),
        "{text}"
    );

    let failures = stdout(&farm.run(&["failures", "--json"]));
    let dead: Vec<serde_json::Value> = failures
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "dead_letter")
        .collect();
    assert_eq!(dead.len(), 2, "{failures}");
    assert!(
        dead.iter()
            .all(|d| d["queue"] == "scrapefarm.listings.crawl-1"),
        "{failures}"
    );
}

#[test]
fn an_enqueued_url_list_is_a_search_queued_with_its_jobs_pending() {
    let farm = cli_common::Farm::new();
    let list = farm.path().join("urls.txt");
    let urls = "http://127.0.0.1:8377/item/100001\nhttp://127.0.0.1:8377/item/100002\n";
    std::fs::write(&list, urls).unwrap();
    let out = farm.run(&["enqueue", "--site", "fixture", "--urls", "urls.txt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Search 1: published 2 jobs for site fixture."),
        "{}",
        stdout(&out)
    );
    let search = &searches(farm.command(&[]))[0];
    assert_eq!(search["status"], "queued", "{search}");
    assert_eq!(search["query"], "urls:urls.txt", "{search}");
    assert_eq!(search["jobs"]["pending"], 2, "{search}");
    assert_eq!(search["interrupted"], false, "not a crawl's: {search}");
}
