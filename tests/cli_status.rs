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
