//! Extraction and classification of saved, rendered pages of our own fixture marketplace
//! (tests/fixtures/fixture-site, written by `regenerate_saved_fixture_site_pages` in
//! tests/realworld.rs), checked field by field against the ground truth saved beside them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::*;
use crate::classify::{PageClass, classify, ready_in_html};
use crate::fixture_site::TruthListing;
use crate::render::Page;
use crate::site::Sites;

fn fixture_site() -> Site {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sites");
    Sites::load(&dir).unwrap().get("fixture").unwrap().clone()
}

fn saved(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fixture-site")
        .join(name)
}

#[derive(Deserialize)]
struct ListingTruth {
    class: String,
    listing: TruthListing,
}

#[derive(Deserialize)]
struct SearchTruth {
    url: String,
    next_page: String,
    hits: Vec<SearchHit>,
}

fn listing(name: &str) -> (String, ListingTruth) {
    let html = std::fs::read_to_string(saved(&format!("listing-{name}.html"))).unwrap();
    let truth = std::fs::read_to_string(saved(&format!("listing-{name}.truth.json"))).unwrap();
    (html, serde_json::from_str(&truth).unwrap())
}

/// The saved page as the pipeline sees it: status 200 or the given one, ready from the HTML.
fn page(html: &str, url: &str, status: Option<u16>, site: &Site) -> Page {
    Page {
        url: url.to_string(),
        status,
        html: html.to_string(),
        ready: ready_in_html(html, site),
        ..Page::default()
    }
}

fn assert_record_matches(record: &Record, truth: &TruthListing) {
    assert_eq!(record.external_id, truth.external_id);
    assert_eq!(record.title, truth.title);
    assert_eq!(record.price.map(|p| p.minor), truth.price_minor);
    let currency = record.price.map(|p| p.currency.as_str().to_string());
    assert_eq!(currency, truth.currency);
    assert_eq!(record.condition, truth.condition);
    assert_eq!(record.seller, truth.seller);
    assert_eq!(record.seller_score, truth.seller_score);
    assert_eq!(record.shipping, truth.shipping);
    assert_eq!(record.location, truth.location);
    assert_eq!(record.specifics, truth.specifics);
    assert_eq!(record.description, truth.description);
    assert_eq!(record.images, truth.images);
    assert_eq!(record.ended, truth.status == "ended");
}

#[test]
fn saved_active_listing_is_content_with_every_true_field() {
    let site = fixture_site();
    let (html, truth) = listing("active");
    let url = &truth.listing.url;
    assert_eq!(truth.class, "content");
    assert_eq!(
        classify(&page(&html, url, Some(200), &site), &site),
        PageClass::Content
    );
    let record = extract_listing(&html, url, &site).unwrap();
    assert_record_matches(&record, &truth.listing);
    assert!(!record.auction && !record.best_offer && record.was_price.is_none());
}

#[test]
fn saved_ended_listing_is_ended_with_every_true_field() {
    let site = fixture_site();
    let (html, truth) = listing("ended");
    let url = &truth.listing.url;
    assert_eq!(truth.class, "ended");
    assert_eq!(
        classify(&page(&html, url, Some(200), &site), &site),
        PageClass::Ended
    );
    let record = extract_listing(&html, url, &site).unwrap();
    assert_record_matches(&record, &truth.listing);
    assert!(record.ended);
}

#[test]
fn saved_gone_listing_is_gone_by_status_and_by_its_text_alone() {
    let site = fixture_site();
    let (html, truth) = listing("gone");
    let url = &truth.listing.url;
    assert_eq!(truth.class, "gone");
    assert_eq!(
        classify(&page(&html, url, Some(404), &site), &site),
        PageClass::Gone
    );
    // Saved without its status: the "no longer available" text says it.
    assert_eq!(
        classify(&page(&html, url, None, &site), &site),
        PageClass::Gone
    );
    assert_eq!(
        extract_listing(&html, url, &site),
        Err(ExtractError::NoTitle)
    );
}

#[test]
fn saved_search_page_yields_every_true_hit_in_order_and_the_next_page() {
    let site = fixture_site();
    let html = std::fs::read_to_string(saved("search-lamp-1.html")).unwrap();
    let truth: SearchTruth =
        serde_json::from_str(&std::fs::read_to_string(saved("search-lamp-1.truth.json")).unwrap())
            .unwrap();
    let page = extract_search(&html, &truth.url, &site);
    assert_eq!(page.hits.len(), truth.hits.len());
    for (i, (got, want)) in page.hits.iter().zip(&truth.hits).enumerate() {
        let unpriced = SearchHit {
            price: None,
            ..got.clone()
        };
        assert_eq!(&unpriced, want, "hit {i}");
        // The price as money too, in the currency its text names.
        let text = want.price_text.as_deref().unwrap_or_default();
        let money = got
            .price
            .unwrap_or_else(|| panic!("hit {i}: {text:?} not read"));
        let markers = [
            ("US $", "USD"),
            ("AU $", "AUD"),
            ("C $", "CAD"),
            ("€", "EUR"),
            ("EUR", "EUR"),
            ("JPY", "JPY"),
            ("¥", "JPY"),
            ("£", "GBP"),
        ];
        let code = money.currency.as_str();
        let named = markers.iter().any(|(m, c)| text.contains(m) && *c == code);
        assert!(
            named && money.minor > 0,
            "hit {i}: {text:?} read as {money:?}"
        );
    }
    // 50 results and the sponsored row, which is skipped.
    assert_eq!(page.rows, truth.hits.len() + 1);
    assert_eq!(page.next_page.as_deref(), Some(truth.next_page.as_str()));
    assert_eq!(page.result_count, None);
}

#[test]
fn a_listing_url_outside_the_pattern_is_an_error() {
    let site = fixture_site();
    let (html, _) = listing("active");
    let url = "http://127.0.0.1:1/promo/1";
    assert_eq!(
        extract_listing(&html, url, &site),
        Err(ExtractError::NoListingId(url.into()))
    );
}

#[test]
fn a_price_range_on_a_listing_keeps_its_low_end() {
    let site = fixture_site();
    let html = r#"<main id="listing" data-ready="1"><h1 class="title">Shirt</h1>
        <div class="price">US $9.99 to US $19.99</div></main>"#;
    let record = extract_listing(html, "http://127.0.0.1:1/item/100001", &site).unwrap();
    assert_eq!(record.price.map(|p| p.minor), Some(999));
}

#[test]
fn an_unreadable_price_leaves_the_record_with_a_field_error() {
    let site = fixture_site();
    let html = r#"<main id="listing" data-ready="1"><h1 class="title">Shirt</h1>
        <div class="price">about twelve dollars</div><div class="seller"><span class="name">
        ann</span></div></main>"#;
    let record = extract_listing(html, "http://127.0.0.1:1/item/100001", &site).unwrap();
    assert_eq!(record.title.as_deref(), Some("Shirt"));
    assert_eq!(record.seller.as_deref(), Some("ann"));
    assert_eq!(record.price, None);
    let error = &record.field_errors["price"];
    assert!(error.contains("about twelve dollars"), "{error}");
    assert!(error.contains("css .price"), "{error}");
    let json = serde_json::to_value(&record).unwrap();
    assert!(json["field_errors"]["price"].is_string(), "{json}");
}

#[test]
fn a_price_that_does_not_parse_falls_through_to_the_next_rule() {
    let mut site = fixture_site();
    site.fields.price = Some(field(
        r#"price = [".shown", { jsonld = ["offers.priceCurrency", "offers.price"] }]"#,
    ));
    let html = r#"<h1 class="title">Lamp</h1><span class="shown">Call for price</span>
        <script type="application/ld+json">{"offers":{"price":"12.50","priceCurrency":"EUR"}}</script>"#;
    let record = extract_listing(html, "http://127.0.0.1:1/item/100001", &site).unwrap();
    assert_eq!(
        record.price.map(|p| (p.minor, p.currency.to_string())),
        Some((1250, "EUR".into()))
    );
    assert!(record.field_errors.is_empty(), "{:?}", record.field_errors);
}

#[test]
fn a_count_that_does_not_parse_falls_through_and_a_record_without_errors_serializes_without_them() {
    let mut site = fixture_site();
    site.fields.seller_score = Some(field(r#"seller_score = [".a", ".b"]"#));
    let html = r#"<h1 class="title">Lamp</h1><i class="a">lots</i><i class="b">(1,234)</i>"#;
    let record = extract_listing(html, "http://127.0.0.1:1/item/100001", &site).unwrap();
    assert_eq!(record.seller_score, Some(1234));
    let json = serde_json::to_value(&record).unwrap();
    assert!(json.get("field_errors").is_none(), "{json}");
    let html = r#"<h1 class="title">Lamp</h1><i class="a">lots</i><i class="b">many</i>"#;
    let record = extract_listing(html, "http://127.0.0.1:1/item/100001", &site).unwrap();
    assert_eq!(record.seller_score, None);
    let error = &record.field_errors["seller_score"];
    assert!(
        error.contains("\"lots\"") && error.contains("\"many\""),
        "{error}"
    );
}

/// One field of a site file (`name = rules`), validated as the loader does.
fn field(line: &str) -> crate::site::Field {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"))
            .unwrap();
    let name = line.split(' ').next().unwrap();
    let text = text
        .replace(&format!("{name} = "), &format!("replaced_{name} = "))
        .replace("[listing.fields]\n", &format!("[listing.fields]\n{line}\n"))
        .replace(&format!("replaced_{name} = "), "# ");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.toml"), text).unwrap();
    let sites = Sites::load(dir.path()).unwrap();
    let site = sites.get("fixture").unwrap();
    site.fields
        .named()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
        .clone()
}

#[test]
fn the_currency_is_the_rules_then_the_fields_then_the_pages_then_the_sites() {
    let url = "http://127.0.0.1:1/item/100001";
    let read = |site: &Site, html: &str| {
        let record = extract_listing(html, url, site).unwrap();
        record.price.map(|p| (p.minor, p.currency.to_string()))
    };
    let page_mxn = r#"<h1 class="title">Lamp</h1><div class="price">$ 1,299.00</div>
        <meta property="og:price:currency" content="MXN"><i class=cur>CAD</i>"#;
    let mut site = fixture_site();
    site.default_currency = Some(Currency::parse("AUD").unwrap());
    assert_eq!(read(&site, page_mxn), Some((129_900, "MXN".into())));
    site.fields.currency = Some(field(r#"currency = ".cur""#));
    assert_eq!(read(&site, page_mxn), Some((129_900, "CAD".into())));
    site.fields.price = Some(field(r#"price = { css = ".price", currency = "NZD" }"#));
    assert_eq!(read(&site, page_mxn), Some((129_900, "NZD".into())));
    let mut site = fixture_site();
    site.default_currency = Some(Currency::parse("AUD").unwrap());
    let bare = r#"<h1 class="title">Lamp</h1><div class="price">$12.00</div>"#;
    assert_eq!(read(&site, bare), Some((1200, "AUD".into())));
    let marked = r#"<h1 class="title">Lamp</h1><div class="price">CDN$ 12.00</div>"#;
    assert_eq!(read(&site, marked), Some((1200, "CAD".into())));
}

#[test]
fn next_page_rules_are_tried_in_order_with_attributes_and_regexes() {
    let mut site = fixture_site();
    let search = site.search.as_mut().unwrap();
    search.next_page = Some(search_field(
        r#"next_page = ["a.visible-next", { css = "button.more", attr = "data-url" }, { html = '"nextUrl":"([^"]+)"' }]"#,
    ));
    let url = "http://127.0.0.1:1/search?q=lamp&page=1";
    let next = |html: &str| extract_search(html, url, &site).next_page;
    let head = r#"<link rel="next" href="/search?q=lamp&page=9">"#;
    assert_eq!(
        next(&format!(
            "{head}<a class=visible-next href='?q=lamp&page=2'>Next</a>"
        ))
        .as_deref(),
        Some("http://127.0.0.1:1/search?q=lamp&page=2")
    );
    assert_eq!(
        next("<button class=more data-url='/search?page=3'>More</button>").as_deref(),
        Some("http://127.0.0.1:1/search?page=3")
    );
    assert_eq!(
        next(r#"<script>x={"nextUrl":"https://example.com/p4"}</script>"#).as_deref(),
        Some("https://example.com/p4")
    );
    assert_eq!(next("<p>last page</p>"), None);
}

/// The fixture site's `[search]` with one key replaced, validated as the loader does.
fn search_field(line: &str) -> crate::site::Field {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"))
            .unwrap()
            .replace("next_page = \"a.next\"", line);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.toml"), text).unwrap();
    let sites = Sites::load(dir.path()).unwrap();
    let site = sites.get("fixture").unwrap();
    site.search.clone().unwrap().next_page.unwrap()
}

#[test]
fn specifics_keys_lose_direction_marks_and_trailing_colons() {
    let site = fixture_site();
    let html = "<h1 class=\"title\">Lamp</h1><table class=\"specifics\">\
        <tr><th>\u{200F}Brand\u{200E}:</th><td>Acme</td></tr>\
        <tr><th>色 ：</th><td>赤</td></tr><tr><th>Size\u{FEFF}</th><td>XL</td></tr></table>";
    let record = extract_listing(html, "http://127.0.0.1:1/item/100001", &site).unwrap();
    let keys: Vec<_> = record.specifics.keys().map(String::as_str).collect();
    assert_eq!(keys, ["Brand", "Size", "色"]);
}

/// The fixture site with its `[listing.specifics]` table replaced by `specifics`.
fn site_with_specifics(specifics: &str) -> Site {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"))
            .unwrap();
    let start = text.find("[listing.specifics]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    let text = format!("{}{specifics}{}", &text[..start], &text[end..]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.toml"), text).unwrap();
    Sites::load(dir.path())
        .unwrap()
        .get("fixture")
        .unwrap()
        .clone()
}

#[test]
fn specifics_keep_empty_values_and_read_bare_text_values_with_regexes() {
    let site = site_with_specifics(
        "[[listing.specifics]]\nrow = \"table tr\"\nkey = \"th\"\nvalue = \"td\"\n\n\
         [[listing.specifics]]\nrow = \"ul.facts li\"\nkey = \"b\"\n\
         key_regex = '^(?:Item )?(.+)$'\nvalue_regex = '^(.*?)\\s*See all$'\n",
    );
    let html = "<h1 class=\"title\">Lamp</h1><table>\
        <tr><th>Brand</th><td>Acme</td></tr><tr><th>Model</th><td></td></tr>\
        <tr><th>Colour</th><td> </td></tr></table>\
        <ul class=facts><li><b>Item Colour:</b> Red See all</li><li><b>Weight</b>: 2 kg</li>\
        <li><b>Brand:</b> Other</li></ul>";
    let record = extract_listing(html, "http://127.0.0.1:1/item/100001", &site).unwrap();
    let got: Vec<(&str, &str)> = record
        .specifics
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("Brand", "Acme"),
            ("Colour", "Red"),
            ("Model", ""),
            ("Weight", "2 kg")
        ],
        "an empty value is kept, a later non-empty one fills it, the first non-empty one wins"
    );
}

#[test]
fn specifics_regexes_are_validated_with_their_key() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"))
            .unwrap()
            .replace(
                "[listing.specifics]\n",
                "[listing.specifics]\nkey_regex = \"(\"\n",
            );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.toml"), text).unwrap();
    let err = Sites::load(dir.path())
        .unwrap()
        .get("fixture")
        .unwrap_err()
        .to_string();
    assert!(err.contains("listing.specifics.key_regex"), "{err}");
}

#[test]
fn relative_links_resolve_against_base_then_page_then_canonical_then_site() {
    let site = fixture_site();
    let row = r#"<ul class="results"><li class="result"><a class="result-link" href="item/100001">Lamp</a>
        <span class="price">$1.00</span></li></ul>"#;
    let first_url = |html: &str, url: &str| {
        let page = extract_search(html, url, &site);
        page.hits.first().map(|h| h.url.clone())
    };
    let with_base = format!(r#"<base href="http://localhost:9/">{row}"#);
    assert_eq!(
        first_url(&with_base, "http://127.0.0.1:8377/search?q=x").as_deref(),
        Some("http://localhost:9/item/100001"),
        "<base href> first"
    );
    assert_eq!(
        first_url(row, "http://127.0.0.1:8377/search?q=x").as_deref(),
        Some("http://127.0.0.1:8377/item/100001"),
        "then the page's own URL"
    );
    let canonical = format!(r#"<link rel="canonical" href="http://localhost:7/search">{row}"#);
    assert_eq!(
        first_url(&canonical, "file:///tmp/saved.html").as_deref(),
        Some("http://localhost:7/item/100001"),
        "a saved file: its canonical link"
    );
    assert_eq!(
        first_url(row, "file:///tmp/saved.html").as_deref(),
        Some("http://127.0.0.1:8377/item/100001"),
        "else the site's base URL, never file://"
    );
}

#[test]
fn a_link_rule_unwraps_a_redirect_and_dropped_rows_are_counted_by_reason() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"))
            .unwrap();
    let link = text
        .lines()
        .find(|l| l.starts_with("link = "))
        .unwrap()
        .to_string();
    let text = text.replace(
        &link,
        r#"link = { css = "a.link", attr = "href", unwrap = "u" }"#,
    );
    assert!(text.contains("unwrap = \"u\""));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.toml"), text).unwrap();
    let site = Sites::load(dir.path())
        .unwrap()
        .get("fixture")
        .unwrap()
        .clone();
    let html = r#"<ul class="results">
        <li class="result"><a class="link" href="/ads/click?x=1&u=http%3A%2F%2F127.0.0.1%3A8377%2Fitem%2F100002">A</a></li>
        <li class="result"><a class="link" href="/item/100003">B</a></li>
        <li class="result"><a class="link" href="/ads/click?x=9">C</a></li>
        <li class="result"><span>no link</span></li></ul>"#;
    let page = extract_search(html, "http://127.0.0.1:8377/search?q=x", &site);
    let ids: Vec<_> = page.hits.iter().map(|h| h.external_id.as_str()).collect();
    assert_eq!(ids, ["100002", "100003"]);
    assert_eq!(page.hits[0].url, "http://127.0.0.1:8377/item/100002");
    assert_eq!(page.rows, 4);
    let dropped: Vec<_> = page.dropped.iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(dropped, [("no link", 1), ("not a listing URL", 1)]);
}

#[test]
fn product_identity_fields_ratings_and_a_sites_own_fields_are_read() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"))
            .unwrap()
            .replace(
                "[listing.fields]\n",
                "[listing.extra]\nenergy_class = \".energy\"\nwarranty_years = { css = \".warranty\", regex = '(\\d+)' }\n\n\
                 [listing.fields]\nbrand = { jsonld = \"brand.name\", type = \"Product\" }\n\
                 sku = { itemprop = \"sku\" }\ngtin = { jsonld = \"gtin13\", type = \"Product\" }\n\
                 mpn = { jsonld = \"mpn\", type = \"Product\" }\n\
                 availability = { jsonld = \"offers.availability\", type = \"Product\" }\n\
                 rating = [\".stars\", { jsonld = \"aggregateRating.ratingValue\" }]\n\
                 review_count = \".reviews\"\n",
            );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.toml"), text).unwrap();
    let site = Sites::load(dir.path())
        .unwrap()
        .get("fixture")
        .unwrap()
        .clone();
    let html = r#"<h1 class="title">Lamp</h1><span itemprop="sku">L-1</span>
        <span class="stars">4,5 de 5 estrellas</span><span class="reviews">(1.234 valoraciones)</span>
        <span class="energy">A++</span><span class="warranty">2 years</span>
        <script type="application/ld+json">{"@type":"Product","brand":{"@type":"Brand","name":"Acme"},
        "gtin13":"4006381333931","mpn":"LX-9","aggregateRating":{"ratingValue":"4.6"},
        "offers":{"@type":"Offer","availability":"https://schema.org/InStock"}}</script>"#;
    let record = extract_listing(html, "http://127.0.0.1:1/item/100001", &site).unwrap();
    assert_eq!(record.brand.as_deref(), Some("Acme"));
    assert_eq!(record.sku.as_deref(), Some("L-1"));
    assert_eq!(record.gtin.as_deref(), Some("4006381333931"));
    assert_eq!(record.mpn.as_deref(), Some("LX-9"));
    assert_eq!(record.availability.as_deref(), Some("InStock"));
    assert_eq!(record.rating, Some(4.5), "the first rule, a comma decimal");
    assert_eq!(record.review_count, Some(1234));
    let extra: Vec<_> = record
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(extra, [("energy_class", "A++"), ("warranty_years", "2")]);
}

#[test]
fn extra_field_names_are_checked() {
    for (extra, expected) in [
        ("brand = \".b\"", "is a standard field"),
        ("\"bad name\" = \".b\"", "letters, digits and `_`"),
        ("ok = { css = \"[[\" }", "listing.extra.ok"),
    ] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"),
        )
        .unwrap()
        .replace(
            "[listing.fields]\n",
            &format!("[listing.extra]\n{extra}\n\n[listing.fields]\n"),
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fixture.toml"), text).unwrap();
        let err = Sites::load(dir.path())
            .unwrap()
            .get("fixture")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{extra}: {err}");
    }
}

#[test]
fn availability_reads_as_a_schema_org_name_and_a_gtin_must_be_digits() {
    for (text, name) in [
        ("https://schema.org/InStock", "InStock"),
        ("http://schema.org/OutOfStock", "OutOfStock"),
        ("in_stock", "InStock"),
        ("In Stock.", "InStock"),
        ("PreOrder", "PreOrder"),
        ("Only 3 left", "Only 3 left"),
    ] {
        assert_eq!(availability(text), name, "{text}");
    }
    assert_eq!(gtin("978-1849757096").as_deref(), Ok("9781849757096"));
    assert_eq!(gtin("0 032884 187614").as_deref(), Ok("0032884187614"));
    assert!(gtin("n/a").is_err());
    assert!(gtin("1234567").is_err(), "too short");
}
