//! Exit codes of the real binary: 0 done, 1 error, 2 usage, 3 a crawl that finished with
//! failures; a reader closing stdout early (`listings | head -1`) is a quiet success.

mod cli_common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use cli_common::{Farm, save_listing, stderr, stdout};
use scrapefarm::fixture_site::{Defences, FixtureConfig, FixtureSite};

#[test]
fn usage_errors_exit_2() {
    let farm = Farm::new();
    let out = farm.run(&["listings", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = farm.run(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[tokio::test]
async fn listings_piped_into_a_reader_that_stops_after_one_line_exits_quietly() {
    let farm = Farm::new();
    let store = farm.store().await;
    // Far more than a pipe buffer (64 KiB) of output, so the binary is still writing when the
    // reader goes away.
    let title = "A brass lamp with a very long title ".repeat(6);
    for i in 0..400 {
        save_listing(&store, &format!("{}", 100_000 + i), &title, 1999, "USD").await;
    }
    store.close().await;
    let mut child = farm
        .command(&["listings"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(!first.is_empty());
    drop(reader);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(err, "", "nothing on stderr");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn crawl_with_an_invalid_url_line_exits_1_naming_the_line_and_creates_nothing() {
    let farm = Farm::new();
    let list = farm.path().join("urls.txt");
    std::fs::write(&list, "http://127.0.0.1:8377/item/100001\nnot a url\n").unwrap();
    let out = farm.run(&["crawl", "--site", "fixture", "--urls", "urls.txt"]);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("line 2: `not a url`"), "{said}");
    assert!(said.contains("--skip-invalid"), "{said}");
    assert!(!farm.db_file().exists(), "no search recorded");
    // A missing list is an error too, before anything is recorded.
    let out = farm.run(&["crawl", "--site", "fixture", "--urls", "nosuch.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nosuch.txt"), "{}", stderr(&out));
    assert!(!farm.db_file().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_whose_listings_all_fail_exits_3_with_the_counts() {
    let config = FixtureConfig {
        listings_per_query: 3,
        defences: Defences {
            error_rate: 1.0,
            ..Defences::default()
        },
        ..FixtureConfig::default()
    };
    let fixture = FixtureSite::start(config, 0).await.unwrap();
    let farm = Farm::new();
    let mut cmd = farm.command(&[
        "crawl",
        "--site",
        "fixture",
        "--query",
        "lamp",
        "--max-pages",
        "1",
        "--max-attempts",
        "1",
        "--concurrency",
        "1",
    ]);
    cmd.env("SCRAPEFARM_BASE_URL", fixture.base_url());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    fixture.stop().await;
    let (said, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{said}\n{err}");
    assert!(said.contains("failed"), "{said}");
    assert!(
        err.contains("3 of 3 listings failed; `scrapefarm failures`"),
        "{err}"
    );
    assert!(
        !err.contains("error:"),
        "a finished run, not an error: {err}"
    );
}
