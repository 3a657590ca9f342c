//! The `extract` command (src/inspect.rs) on saved and live pages, and the generator of the saved
//! fixture-marketplace pages in tests/fixtures/fixture-site.

use super::*;
use scrapefarm::inspect;

#[tokio::test]
async fn extract_command_shows_every_rule_and_the_record_of_a_saved_ebay_page() {
    let Some(dir) = corpus() else { return };
    let file = dir.join("ebay/item/ebay-item-2025-06-evo-rtx5090-eur-listing.html");
    let target = file.to_str().unwrap();
    let no_browser =
        || async { Err::<CdpRenderer, _>(RenderError::Browser("not for files".into())) };
    let mut text = Vec::new();
    inspect::extract_command(
        &sites(),
        "ebay",
        target.into(),
        false,
        no_browser,
        &mut text,
    )
    .await
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    println!("{text}");
    assert!(text.contains("class   content"), "{text}");
    assert!(
        text.contains("price             \"EUR 3,500.00\""),
        "{text}"
    );
    // The rule that read the price is marked, the classic rules before it read nothing.
    assert!(
        text.contains("  * css .x-price-primary > .ux-textspans"),
        "{text}"
    );
    assert!(text.contains("    css #prcIsum_bidPrice"), "{text}");
    assert!(text.contains(" miss\n"), "{text}");
    let mut json = Vec::new();
    inspect::extract_command(&sites(), "ebay", target.into(), true, no_browser, &mut json)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["class"], "content");
    let record = &json["record"];
    assert_eq!(record["site"], "ebay");
    assert_eq!(
        record["external_id"], "226771798286",
        "from the canonical URL"
    );
    assert_eq!(record["status"], "active");
    assert_eq!(record["price"], "3500.00");
    assert_eq!(record["price_minor"], 350000);
    assert_eq!(record["currency"], "EUR");
    assert_eq!(record["seller"], "salomon0651");
    assert_eq!(record["seller_score"], 113);
    assert_eq!(record["specifics"]["Taille de la mémoire"], "24 Go");
}

#[tokio::test]
async fn extract_command_reads_a_saved_fixture_page_as_the_pipeline_would() {
    let file = fixture_pages_dir().join("listing-ended.html");
    let truth: serde_json::Value =
        serde_json::from_str(&read(&fixture_pages_dir().join("listing-ended.truth.json"))).unwrap();
    let truth = &truth["listing"];
    let no_browser =
        || async { Err::<CdpRenderer, _>(RenderError::Browser("not for files".into())) };
    let target = file.to_str().unwrap();
    let mut json = Vec::new();
    inspect::extract_command(
        &sites(),
        "fixture",
        target.into(),
        true,
        no_browser,
        &mut json,
    )
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["class"], "ended");
    let record = &json["record"];
    assert_eq!(record["status"], "ended");
    assert_eq!(
        record["url"], truth["url"],
        "the canonical link names the listing"
    );
    for key in [
        "external_id",
        "title",
        "price_minor",
        "currency",
        "condition",
        "seller",
    ] {
        assert_eq!(record[key], truth[key], "{key}");
    }
    for key in [
        "seller_score",
        "shipping",
        "location",
        "specifics",
        "description",
        "images",
    ] {
        assert_eq!(record[key], truth[key], "{key}");
    }
    let mut text = Vec::new();
    inspect::extract_command(
        &sites(),
        "fixture",
        target.into(),
        false,
        no_browser,
        &mut text,
    )
    .await
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("class   ended"), "{text}");
    assert!(text.contains("ended             true"), "{text}");
    assert!(text.contains("  * css .ended-banner"), "{text}");
}

/// The binary, on a URL nothing answers: a clear error naming the URL, its reason said once.
#[test]
fn extract_command_says_once_why_a_url_failed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/item/1", listener.local_addr().unwrap());
    drop(listener); // nothing listens there any more: the connection is refused
    let profiles = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scrapefarm"))
        .args(["extract", &url, "--site", "fixture"])
        .env(
            "SCRAPEFARM_SITES_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites"),
        )
        .env("SCRAPEFARM_PROFILE_DIR", profiles.path())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("Failed to render {url}")),
        "{stderr}"
    );
    let reason = format!("navigation to {url} failed");
    assert_eq!(
        stderr.matches(&reason).count(),
        1,
        "the reason once: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_command_renders_a_url_in_the_browser_it_launches() {
    use scrapefarm::fixture_site::{FixtureConfig, FixtureSite};
    let fixture = FixtureSite::start(FixtureConfig::default(), 0)
        .await
        .unwrap();
    let mut sites = sites();
    sites.set_base_url("fixture", &fixture.base_url()).unwrap();
    let truth = fixture.ground_truth("lamp");
    let listing = truth.iter().find(|t| t.status == "active").unwrap();
    let profiles = tempfile::tempdir().unwrap();
    let launch = || browser::try_launch(profiles.path());
    let mut json = Vec::new();
    inspect::extract_command(
        &sites,
        "fixture",
        listing.url.as_str().into(),
        true,
        launch,
        &mut json,
    )
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["class"], "content");
    let record = &json["record"];
    assert_eq!(record["external_id"], listing.external_id.as_str());
    assert_eq!(record["title"].as_str(), listing.title.as_deref());
    assert_eq!(record["price_minor"].as_i64(), listing.price_minor);
    assert_eq!(record["seller_score"].as_i64(), listing.seller_score);
    let search = sites.get("fixture").unwrap().search_url("lamp", 1).unwrap();
    let mut json = Vec::new();
    inspect::extract_command(
        &sites,
        "fixture",
        search.as_str().into(),
        true,
        launch,
        &mut json,
    )
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        json["search"]["hits"][0]["external_id"],
        truth[0].external_id.as_str()
    );
    assert_eq!(json["search"]["hits"].as_array().unwrap().len(), 50);
    fixture.stop().await;
}

/// Re-creates tests/fixtures/fixture-site: renders a search page, an active, an ended and a gone
/// listing of the fixture marketplace (seed 42, query "lamp") in Chromium and writes each page's
/// HTML with its ground truth. Run by hand: `cargo test --test realworld -- --ignored regenerate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/fixtures/fixture-site; run by hand to regenerate the saved pages"]
async fn regenerate_saved_fixture_site_pages() {
    use scrapefarm::fixture_site::{FixtureConfig, FixtureSite};
    let fixture = FixtureSite::start(FixtureConfig::default(), 0)
        .await
        .unwrap();
    let mut sites = sites();
    sites.set_base_url("fixture", &fixture.base_url()).unwrap();
    let site = sites.get("fixture").unwrap();
    let truth = fixture.ground_truth("lamp");
    let first = |status: &str| truth.iter().find(|t| t.status == status).unwrap().clone();
    let profiles = tempfile::tempdir().unwrap();
    let renderer = browser::launch(profiles.path()).await;
    let out = fixture_pages_dir();
    std::fs::create_dir_all(&out).unwrap();
    let save = |name: &str, html: &str, truth: serde_json::Value| {
        std::fs::write(out.join(format!("{name}.html")), html).unwrap();
        let truth = serde_json::to_string_pretty(&truth).unwrap() + "\n";
        std::fs::write(out.join(format!("{name}.truth.json")), truth).unwrap();
    };
    for (name, listing) in [
        ("active", first("active")),
        ("ended", first("ended")),
        ("gone", first("gone")),
    ] {
        let ready = &site.ready;
        let page = renderer
            .render(&browser::request(
                listing.url.clone(),
                ready,
                site.ready_timeout,
            ))
            .await
            .unwrap();
        let class = classify(&page, site).name();
        save(
            &format!("listing-{name}"),
            &page.html,
            serde_json::json!({ "class": class, "listing": listing }),
        );
    }
    let url = site.search_url("lamp", 1).unwrap();
    let ready = site.search.as_ref().unwrap().ready.clone().unwrap();
    let page = renderer
        .render(&browser::request(url.clone(), &ready, site.ready_timeout))
        .await
        .unwrap();
    let hits: Vec<serde_json::Value> = truth
        .iter()
        .filter(|t| t.rank <= 50)
        .map(|t| {
            let title = t.title.clone().unwrap_or(format!("Listing {}", t.external_id));
            let price = t.price_text.clone().unwrap_or("—".into());
            serde_json::json!({ "external_id": t.external_id, "url": t.url, "title": title, "price_text": price })
        })
        .collect();
    let next = site.search_url("lamp", 2).unwrap().replace("+", "%20");
    save(
        "search-lamp-1",
        &page.html,
        serde_json::json!({ "url": url, "next_page": next, "hits": hits }),
    );
    renderer.close().await;
    fixture.stop().await;
}
