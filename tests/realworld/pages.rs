//! The real saved pages of ten marketplaces (tests/realworld/pages, sources and truth in its
//! SOURCES.md and truth/*.json) and how what the farm read from one is scored against its truth:
//! the checks of a product or search page, the known gaps, and the tally that fails a test with
//! every wrong field. Shared by the static read (`realworld_pages`) and the read of the same
//! pages rendered in Chromium (`realworld_browser`), so both score alike.

// Shared by several test crates, each of which uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use scrapefarm::inspect;
use scrapefarm::render::{CdpRenderer, RenderError};
use scrapefarm::site::Sites;
use serde_json::Value;

/// (file, check): what the farm still gets wrong on these pages, and why.
pub const KNOWN_GAPS: [(&str, &str, &str); 2] = [
    (
        "walmart/product/walmart-product-2017-fathom.html",
        "availability",
        "no availability markup: the truth infers it from the Add to Cart button",
    ),
    (
        "amazon/product/amazon-co-uk-product-2024-01-book-used-only.html",
        "availability",
        "a used-only offer: no #availability text, and no location recorded in the truth",
    ),
];

/// (file, check, why): a check that fails on a page only for a reason of its own.
pub type Known = (&'static str, &'static str, &'static str);

/// The folder of the saved pages.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realworld/pages")
}

/// The site files written for these pages (tests/realworld/pages/sites), all valid.
pub fn sites() -> Sites {
    let sites = Sites::load(&root().join("sites")).unwrap();
    assert!(sites.invalid().is_empty(), "{:?}", sites.invalid());
    sites
}

/// One saved page with a truth and a site file to read it with.
pub struct TruthPage {
    pub marketplace: String,
    /// Relative to [`root`].
    pub file: String,
    pub site: String,
    pub truth: Value,
}

impl TruthPage {
    pub fn is_product(&self) -> bool {
        self.truth["kind"].as_str() == Some("product")
    }

    pub fn path(&self) -> PathBuf {
        root().join(&self.file)
    }

    /// The checks of this page on `got`, the `extract --json` output read from it.
    pub fn checks(&self, got: &Value) -> Vec<(String, bool, String)> {
        match self.is_product() {
            true => product_checks(&self.truth, got),
            false => search_checks(&self.truth, got),
        }
    }
}

/// Every page of truth/*.json that a site file reads (the Rakuten home page is kept for its bytes
/// only), in file order.
pub fn truth_pages(sites: &Sites) -> Vec<TruthPage> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("truth"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let mut pages = Vec::new();
    for path in files {
        let marketplace = path.file_stem().unwrap().to_str().unwrap().to_string();
        let truths: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for truth in truths {
            let site = truth["site"].as_str().unwrap_or(&marketplace);
            let site = match sites.get(site) {
                Ok(_) => site.to_string(),
                Err(_) => marketplace.clone(),
            };
            if sites.get(&site).is_err() {
                continue;
            }
            pages.push(TruthPage {
                marketplace: marketplace.clone(),
                file: truth["file"].as_str().unwrap().to_string(),
                site,
                truth,
            });
        }
    }
    pages
}

/// What `extract --json` prints for the saved page (no browser: a saved file is read as is).
pub async fn extract_saved(sites: &Sites, page: &TruthPage) -> Value {
    let no_browser =
        || async { Err::<CdpRenderer, _>(RenderError::Browser("not for saved files".into())) };
    let mut out = Vec::new();
    let file = page.path();
    let target = file.to_str().unwrap().into();
    inspect::extract_command(sites, &page.site, target, true, no_browser, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_slice(&out).unwrap()
}

fn norm(text: Option<&str>) -> String {
    text.unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn digits(text: Option<&str>) -> String {
    text.unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// A truth value given as `{ "value": … }` or bare.
pub fn value(field: &Value) -> &Value {
    field.get("value").unwrap_or(field)
}

/// The title and price (minor units and currency) checks of a product page: the two a drafted
/// site file must get right.
pub fn title_and_price_checks(truth: &Value, record: &Value) -> Vec<(String, bool, String)> {
    let fields = &truth["fields"];
    let mut checks = vec![(
        "title".to_string(),
        norm(record["title"].as_str()) == norm(value(&fields["title"]).as_str()),
        record["title"].to_string(),
    )];
    let price = &fields["price"];
    if price["amount_minor"].is_null() {
        checks.push((
            "no price".into(),
            record["price_minor"].is_null(),
            record["price_minor"].to_string(),
        ));
    } else {
        checks.push((
            "price".into(),
            record["price_minor"] == price["amount_minor"],
            record["price_minor"].to_string(),
        ));
        checks.push((
            "currency".into(),
            record["currency"] == price["currency"],
            record["currency"].to_string(),
        ));
    }
    checks
}

/// Checks of one product page: (name, right, what was read).
fn product_checks(truth: &Value, got: &Value) -> Vec<(String, bool, String)> {
    let (fields, record) = (&truth["fields"], &got["record"]);
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut checks = title_and_price_checks(truth, record);
    checks.push((
        "url".into(),
        record["url"] == *value(&fields["url"]),
        record["url"].to_string(),
    ));
    let id = value(&fields["external_id"]);
    let id_ok = record["external_id"] == *id || record["item_id"] == *id;
    checks.push((
        "external_id".into(),
        id_ok,
        record["external_id"].to_string(),
    ));
    for name in ["seller", "condition"] {
        if let Some(want) = fields.get(name).map(value).and_then(text) {
            checks.push((
                name.into(),
                record[name].as_str() == Some(&want),
                record[name].to_string(),
            ));
        }
    }
    // Product identity, stock and rating: what the page says, or nothing where it says nothing.
    for name in [
        "brand",
        "sku",
        "gtin",
        "mpn",
        "availability",
        "review_count",
    ] {
        let want = fields.get(name).map(value).cloned().unwrap_or(Value::Null);
        checks.push((name.into(), record[name] == want, record[name].to_string()));
    }
    let want = fields.get("rating").map(value).and_then(Value::as_f64);
    let got = record["rating"].as_f64();
    let close = match (got, want) {
        (Some(g), Some(w)) => (g - w).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    };
    checks.push(("rating".into(), close, record["rating"].to_string()));
    if let Some(want) = fields.get("image_count").map(value).and_then(Value::as_u64) {
        let n = record["images"].as_array().map_or(0, Vec::len) as u64;
        checks.push(("images".into(), n == want, n.to_string()));
    }
    checks
}

/// Checks of one search page.
fn search_checks(truth: &Value, got: &Value) -> Vec<(String, bool, String)> {
    let search = &got["search"];
    let hits = search["hits"].as_array().cloned().unwrap_or_default();
    let results = truth["results"].as_array().cloned().unwrap_or_default();
    // An ad whose link is an opaque redirect has no listing id anywhere on the page.
    let (real, opaque): (Vec<&Value>, Vec<&Value>) =
        results.iter().partition(|r| !r["id"].is_null());
    let dropped = search["dropped"]["not a listing URL"].as_u64().unwrap_or(0) as usize;
    let mut checks = vec![
        (
            "result_count".to_string(),
            search["result_count"] == truth["result_count"],
            search["result_count"].to_string(),
        ),
        (
            "results".into(),
            hits.len() == real.len(),
            hits.len().to_string(),
        ),
        (
            "opaque ads dropped".into(),
            dropped >= opaque.len(),
            dropped.to_string(),
        ),
    ];
    // A next page the markup does not show (built by script from page state) must not be invented.
    let shown = !truth["next_page_note"]
        .as_str()
        .unwrap_or("")
        .starts_with("no next link");
    let want_next = if shown {
        truth["next_page"].clone()
    } else {
        Value::Null
    };
    checks.push((
        "next_page".into(),
        search["next_page"] == want_next,
        search["next_page"].to_string(),
    ));
    for (i, want) in real.iter().enumerate() {
        let urls = ["url", "url_unwrapped", "url_absolute"]
            .map(|k| want[k].as_str().unwrap_or("-").to_string());
        // By URL first: a sponsored copy and the organic result share the listing id.
        let by_url = hits
            .iter()
            .find(|h| urls.contains(&h["url"].as_str().unwrap_or("").to_string()));
        let hit = by_url.or_else(|| hits.iter().find(|h| h["external_id"] == want["id"]));
        let got = |k: &str| hit.and_then(|h| h[k].as_str());
        let n = i + 1;
        checks.push((
            format!("r{n}.title"),
            norm(got("title")) == norm(want["title"].as_str()),
            format!("{:?}", got("title")),
        ));
        let price_ok = digits(got("price_text")) == digits(want["price"]["text"].as_str());
        checks.push((
            format!("r{n}.price"),
            price_ok,
            format!("{:?}", got("price_text")),
        ));
        // The price as money: minor units and ISO currency, as the truth reads them off the page.
        let money = hit.map(|h| (&h["price"]["minor"], &h["price"]["currency"]));
        checks.push((
            format!("r{n}.amount"),
            money.is_some_and(|(minor, _)| *minor == want["price"]["amount_minor"]),
            format!("{money:?}"),
        ));
        checks.push((
            format!("r{n}.currency"),
            money.is_some_and(|(_, currency)| *currency == want["price"]["currency"]),
            format!("{money:?}"),
        ));
        checks.push((
            format!("r{n}.url"),
            got("url").is_some_and(|u| urls.contains(&u.to_string())),
            format!("{:?}", got("url")),
        ));
    }
    checks
}

/// Right and checked fields per marketplace, the wrong ones, and the known failures met.
pub struct Tally {
    known: Vec<Known>,
    totals: BTreeMap<String, (usize, usize)>,
    wrong: Vec<String>,
    known_seen: Vec<(Known, bool)>,
    files: usize,
}

impl Tally {
    /// A tally that expects [`KNOWN_GAPS`] and `more` (each must still fail) and nothing else
    /// wrong.
    pub fn new(more: &[Known]) -> Tally {
        Tally {
            known: KNOWN_GAPS.iter().chain(more).copied().collect(),
            totals: BTreeMap::new(),
            wrong: Vec::new(),
            known_seen: Vec::new(),
            files: 0,
        }
    }

    /// Counts the checks of one page.
    pub fn add(&mut self, page: &TruthPage, checks: Vec<(String, bool, String)>) {
        self.files += 1;
        let total = self.totals.entry(page.marketplace.clone()).or_default();
        for (name, ok, read) in checks {
            total.1 += 1;
            total.0 += usize::from(ok);
            match self
                .known
                .iter()
                .find(|(f, c, _)| *f == page.file && *c == name)
            {
                Some(known) => self.known_seen.push((*known, ok)),
                None if !ok => self
                    .wrong
                    .push(format!("{}: {name} read {read}", page.file)),
                None => {}
            }
        }
    }

    /// Prints the per-marketplace totals and fails with every wrong field, every known failure
    /// that is right now, and every known failure that was not checked.
    pub fn finish(self) {
        for (marketplace, (ok, all)) in &self.totals {
            println!("{marketplace:<16} {ok:>4}/{all}");
        }
        assert!(
            self.files >= 20 && self.totals.len() >= 10,
            "{} files of {} marketplaces",
            self.files,
            self.totals.len()
        );
        let wrong = &self.wrong;
        assert!(wrong.is_empty(), "fields read wrong:\n{}", wrong.join("\n"));
        for ((file, check, why), ok) in &self.known_seen {
            println!("known: {file} {check}: {why}");
            assert!(
                !ok,
                "{file} {check} is right now: take it off its known list"
            );
        }
        assert_eq!(
            self.known_seen.len(),
            self.known.len(),
            "every known failure was checked"
        );
    }
}
