//! `status` of the real binary on the embedded default (SQLite file + embedded queue): queue
//! depths, listing counts and searches in progress, as text and as one JSON object.

mod cli_common;

use cli_common::{Farm, save_listing, stderr, stdout};
use scrapefarm::domain::Job;
use scrapefarm::queue::{EmbeddedQueue, Queue};

#[tokio::test]
async fn status_json_reports_depths_counts_and_searches_in_progress() {
    let farm = Farm::new();
    let store = farm.store().await;
    let search = store
        .create_search("fixture", "brass lamp", 2)
        .await
        .unwrap();
    let done = store.create_search("fixture", "old lamp", 1).await.unwrap();
    store.set_search_status(done, "done").await.unwrap();
    let queue = EmbeddedQueue::new(&store, "scrapefarm.listings");
    for id in ["100001", "100002", "100003"] {
        let job = Job {
            id: format!("job-{id}"),
            site: "fixture".into(),
            url: format!("http://127.0.0.1:1/item/{id}"),
            search_id: Some(search),
            run: None,
            published_at: 0,
        };
        queue.publish(&job).await.unwrap();
    }
    save_listing(&store, "100009", "Brass lamp", 1999, "USD").await;
    store.close().await;

    let out = farm.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one object: {text}");
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["queue"], "scrapefarm.listings");
    assert_eq!(status["depths"]["ready"], 3, "{status}");
    assert_eq!(
        status["depths"]["unacked"], 0,
        "the embedded queue knows: {status}"
    );
    assert_eq!(status["depths"]["dead"], 0);
    assert_eq!(status["depths"]["consumers"], 0);
    assert_eq!(status["listings"]["active"], 1, "{status}");
    let in_progress = status["searches_in_progress"].as_array().unwrap();
    assert_eq!(in_progress.len(), 1, "{status}");
    assert_eq!(in_progress[0]["id"], search);
    assert_eq!(in_progress[0]["query"], "brass lamp");
    assert!(
        status["database"]
            .as_str()
            .unwrap()
            .starts_with("sqlite://")
    );

    let out = farm.run(&["status"]);
    let text = stdout(&out);
    assert!(
        text.starts_with("queue scrapefarm.listings: ready 3  unacked 0  retrying 0  dead 0"),
        "{text}"
    );
    assert!(text.contains("listings: active 1\n"), "{text}");
    assert!(text.contains("searches in progress: 1\n"), "{text}");
    assert!(text.contains("brass lamp"), "{text}");
    assert!(
        !text.contains("old lamp"),
        "a done search is not in progress: {text}"
    );
}

#[tokio::test]
async fn status_watch_redraws_until_interrupted() {
    use std::io::{BufRead, BufReader};
    let farm = Farm::new();
    farm.store().await.close().await;
    let mut child = farm
        .command(&["status", "--watch", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut refreshes = Vec::new();
    while refreshes.len() < 2 {
        let line = lines.next().expect("status keeps printing").unwrap();
        if line.starts_with("status at ") {
            refreshes.push((line, started.elapsed()));
        } else if line.starts_with("queue scrapefarm.listings: ready 0") {
            assert!(!refreshes.is_empty(), "each refresh is headed by its time");
        }
    }
    assert!(
        refreshes[1].1 >= refreshes[0].1 + std::time::Duration::from_millis(900),
        "one second apart: {refreshes:?}"
    );
    assert!(
        refreshes[0].0.ends_with("(every 1 s; Ctrl-C stops)"),
        "{refreshes:?}"
    );
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let exit = child.wait().unwrap();
    assert_eq!(
        exit.code(),
        Some(0),
        "Ctrl-C ends the watch cleanly: {exit:?}"
    );
}

#[test]
fn health_reads_the_workers_own_file_and_fails_when_it_is_stale_or_orphaned() {
    let farm = Farm::new();
    let file = farm.path().join("health").join("worker-7.json");
    let out = farm.run(&["health", "--worker-id", "worker-7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("(health file ./health/worker-7.json): cannot read it"),
        "names the default file, <data dir>/health/<worker id>.json: {}",
        stderr(&out)
    );
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let now = scrapefarm::clock::now_ms();
    let write = |pid: u32, at: i64| {
        let body = format!("{{\"pid\":{pid},\"progress_at_ms\":{at}}}");
        std::fs::write(&file, body).unwrap();
    };
    write(std::process::id(), now);
    let out = farm.run(&["health", "--worker-id", "worker-7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    write(std::process::id(), now - 120_000);
    let out = farm.run(&["health", "--file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no progress for 120 s (limit 60 s)"),
        "{}",
        stderr(&out)
    );
    let out = farm.run(&[
        "health",
        "--file",
        file.to_str().unwrap(),
        "--max-age",
        "300",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    write(u32::MAX - 1, now);
    let out = farm.run(&["health", "--worker-id", "worker-7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
}

#[test]
fn a_running_worker_is_healthy_by_its_own_file_and_not_once_it_stopped() {
    let farm = Farm::new();
    let mut worker = farm
        .command(&["worker", "--worker-id", "w-1", "--concurrency", "1"])
        .args(["--exit-when-idle", "4"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let file = farm.path().join("health").join("w-1.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker wrote <data dir>/health/w-1.json"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = farm.run(&["health", "--worker-id", "w-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["pid"], worker.id(), "{written}");
    let other = farm.run(&["health", "--worker-id", "w-2"]);
    assert_eq!(
        other.status.code(),
        Some(1),
        "another worker's file is its own"
    );
    assert!(worker.wait().unwrap().success());
    let out = farm.run(&["health", "--worker-id", "w-1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a stopped worker is not healthy"
    );
}
