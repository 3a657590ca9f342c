//! What the real binary prints: tables with headers, money as `USD 19.99`, times as ISO 8601,
//! a sentence when nothing matches, validated `--log-format` and no colour codes off a terminal.

mod cli_common;

use cli_common::{Farm, save_listing, stderr, stdout};

fn is_iso_time(text: &str) -> bool {
    let re = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").unwrap();
    re.is_match(text)
}

#[tokio::test]
async fn listings_print_a_table_with_money_and_local_times_and_history() {
    let farm = Farm::new();
    let store = farm.store().await;
    save_listing(&store, "100001", "Brass lamp", 2499, "USD").await;
    save_listing(&store, "100001", "Brass lamp", 1999, "USD").await;
    save_listing(&store, "100002", "Paper lantern", 1200, "JPY").await;
    store.close().await;

    let out = farm.run(&["listings"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["SITE", "ID", "STATUS", "PRICE", "UPDATED", "TITLE"]
    );
    assert!(lines[1].contains("USD 19.99"), "{text}");
    assert!(lines[1].contains("Brass lamp"), "{text}");
    assert!(lines[2].contains("JPY 1200"), "{text}");
    assert!(is_iso_time(lines[1]), "{text}");

    let out = farm.run(&["listings", "--history", "--site", "fixture"]);
    let text = stdout(&out);
    let history: Vec<&str> = text.lines().filter(|l| l.starts_with("    ")).collect();
    assert_eq!(history.len(), 3, "{text}");
    assert!(history[0].ends_with("USD 24.99"), "{text}");
    assert!(history[1].ends_with("USD 19.99"), "{text}");
    assert!(history.iter().all(|l| is_iso_time(l)), "{text}");
    let epoch_ms = regex::Regex::new(r"\b\d{13}\b").unwrap();
    assert!(!epoch_ms.is_match(&text), "no epoch milliseconds: {text}");

    let out = farm.run(&["listings", "--sort", "title", "--limit", "1"]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("Brass lamp") && !text.contains("Paper lantern"));

    let out = farm.run(&["listings", "--site", "nosuch"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "no listings match\n");
    let out = farm.run(&["listings", "--since", "2999-01-01"]);
    assert_eq!(stdout(&out), "no listings match\n");
}

#[test]
fn an_empty_store_says_so_instead_of_printing_nothing() {
    let farm = Farm::new();
    assert!(farm.run(&["migrate"]).status.success());
    let out = farm.run(&["listings"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "no listings match\n");
    let out = farm.run(&["searches"]);
    assert_eq!(stdout(&out), "no searches yet\n");
}

#[test]
fn log_format_and_sort_take_only_known_values() {
    let farm = Farm::new();
    let out = farm.run(&["--log-format", "yaml", "listings"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("possible values: text, json"),
        "{}",
        stderr(&out)
    );
    let out = farm.run(&["listings", "--sort", "colour"]);
    assert_eq!(out.status.code(), Some(2));
    let out = farm.run(&["listings", "--since", "last week"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let farm = Farm::new();
    let out = farm
        .command(&["migrate"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let logs = stderr(&out);
    assert!(out.status.success(), "{logs}");
    assert!(!logs.is_empty(), "debug logs were written");
    assert!(!logs.contains('\u{1b}'), "{logs}");
}

#[tokio::test]
async fn listings_changes_shows_only_listings_whose_price_moved_with_old_new_and_when() {
    let farm = Farm::new();
    let store = farm.store().await;
    save_listing(&store, "100001", "Brass lamp", 2499, "USD").await;
    save_listing(&store, "100002", "Paper lantern", 1200, "JPY").await;
    store.close().await;
    let out = farm.run(&["listings", "--changes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "no price changes\n");

    let store = farm.store().await;
    save_listing(&store, "100001", "Brass lamp", 1999, "USD").await;
    store.close().await;
    let out = farm.run(&["listings", "--changes"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "header, the lamp, its change:\n{text}");
    assert!(
        lines[1].contains("100001") && !text.contains("Paper lantern"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("    ") && is_iso_time(lines[2]),
        "{text}"
    );
    assert!(
        lines[2].ends_with("USD 24.99 → USD 19.99 (-20.0%)"),
        "{text}"
    );

    let out = farm.run(&["listings", "--changes", "--json"]);
    let json: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 1, "{json:?}");
    let change = &json[0]["changes"][0];
    assert_eq!(
        (change["old_minor"].as_i64(), change["new_minor"].as_i64()),
        (Some(2499), Some(1999))
    );
    assert!(json[0]["history"].is_null(), "history only with --history");
}
