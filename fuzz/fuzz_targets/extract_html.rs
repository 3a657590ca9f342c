//! Extraction of arbitrary HTML with each shipped site (`fixture`, `ebay`): decoding the bytes,
//! classifying, reading the listing (every rule traced, as `extract` shows it) and reading the
//! page as search results never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrapefarm::extract::{decode_html, extract_search};
use scrapefarm::inspect::inspect;
use scrapefarm::render::Page;
use scrapefarm::site::Sites;

/// Parsed once: loading the definitions is not what is fuzzed here.
static SITES: std::sync::LazyLock<Sites> = std::sync::LazyLock::new(Sites::builtin);

fuzz_target!(|data: &[u8]| {
    let sites = &*SITES;
    let html = decode_html(data, None).html;
    for (name, url) in [
        ("fixture", "http://127.0.0.1:8377/item/100042"),
        ("ebay", "https://www.ebay.com/itm/226771798286"),
    ] {
        let site = sites.get(name).expect("a built-in site");
        let page = Page {
            url: url.to_string(),
            html: html.clone(),
            status: Some(200),
            ..Page::default()
        };
        let _ = inspect(&page, site);
        let _ = extract_search(&html, "https://www.ebay.com/sch/i.html?_nkw=x", site);
    }
});
