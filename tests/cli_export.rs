//! `scrapefarm export` through the real binary: a CSV read back with the `csv` crate equals
//! `listings --json`, JSON lines equal it exactly, and `--fields` picks and orders columns.

mod cli_common;

use cli_common::{Farm, save_listing, stderr, stdout};
use scrapefarm::export::{DEFAULT_FIELDS, cell};
use serde_json::Value;

async fn seeded() -> Farm {
    let farm = Farm::new();
    let store = farm.store().await;
    save_listing(
        &store,
        "100001",
        "Brass lamp, \"vintage\"\nwith shade",
        1999,
        "USD",
    )
    .await;
    save_listing(&store, "100002", "Paper lantern", 1200, "JPY").await;
    save_listing(&store, "100003", "Desk lamp", 4550, "EUR").await;
    store.close().await;
    farm
}

fn listings_json(farm: &Farm) -> Vec<Value> {
    let out = farm.run(&["listings", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_csv_export_read_back_equals_listings_json() {
    let farm = seeded().await;
    let expected = listings_json(&farm);
    assert_eq!(expected.len(), 3);
    let out = farm.run(&["export", "--format", "csv", "--out", "listings.csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Exported 3 listings to listings.csv.\n");
    assert!(!farm.path().join("listings.csv.partial").exists());

    let mut reader = csv::Reader::from_path(farm.path().join("listings.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, DEFAULT_FIELDS);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), expected.len());
    for (record, listing) in records.iter().zip(&expected) {
        for (field, value) in header.iter().zip(record.iter()) {
            assert_eq!(
                value,
                cell(&listing[field.as_str()]),
                "{field} of {listing}"
            );
        }
    }
    assert_eq!(&records[0][4], "Brass lamp, \"vintage\"\nwith shade");
    assert_eq!(&records[0][5], "19.99");
    assert_eq!(&records[1][5], "1200", "JPY has no minor unit");
}

#[tokio::test]
async fn jsonl_equals_listings_json_and_fields_pick_the_columns() {
    let farm = seeded().await;
    let expected = listings_json(&farm);
    let out = farm.run(&["export", "--format", "jsonl", "--out", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exported: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported, expected);

    let out = farm.run(&[
        "export",
        "--format",
        "csv",
        "--out",
        "-",
        "--fields",
        "currency,price,external_id",
        "--site",
        "fixture",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "currency,price,external_id\nUSD,19.99,100001\nJPY,1200,100002\nEUR,45.50,100003\n"
    );
    let out = farm.run(&[
        "export", "--format", "csv", "--out", "-", "--fields", "colour",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown field(s) colour"),
        "{}",
        stderr(&out)
    );
    let out = farm.run(&["export", "--format", "parquet", "--out", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn history_export_has_one_row_per_observation_equal_to_listings_history() {
    let farm = seeded().await;
    let store = farm.store().await;
    save_listing(&store, "100001", "Brass lamp", 1799, "USD").await;
    store.close().await;
    let out = farm.run(&["export", "--history", "--format", "csv", "--out", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, scrapefarm::export::HISTORY_FIELDS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // The history `listings --json --history` shows, observation by observation.
    let out = farm.run(&["listings", "--json", "--history"]);
    let mut expected = Vec::new();
    for line in stdout(&out).lines() {
        let listing: Value = serde_json::from_str(line).unwrap();
        for obs in listing["history"].as_array().unwrap() {
            expected.push((
                listing["external_id"].as_str().unwrap().to_string(),
                obs["observed_at"].as_i64().unwrap().to_string(),
                obs["price_minor"].as_i64().unwrap().to_string(),
                obs["currency"].as_str().unwrap().to_string(),
            ));
        }
    }
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r[1].to_string(),
                r[3].to_string(),
                r[5].to_string(),
                r[6].to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        rows.len(),
        4,
        "two observations of the lamp, one of each other listing"
    );
    let lamp: Vec<_> = rows.iter().filter(|r| &r[1] == "100001").collect();
    assert_eq!((&lamp[0][4], &lamp[1][4]), ("19.99", "17.99"));
    assert!(
        lamp[0][2].ends_with('Z') && lamp[0][2].contains('T'),
        "{:?}",
        lamp[0]
    );

    let out = farm.run(&[
        "export",
        "--history",
        "--format",
        "csv",
        "--out",
        "-",
        "--fields",
        "title",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("observed_at"), "{}", stderr(&out));
}
