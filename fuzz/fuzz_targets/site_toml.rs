//! Site-definition loading on arbitrary TOML text: `Sites::load_file` never panics (every problem
//! is an error naming the file), and a definition that loads reads a small page without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrapefarm::extract::{extract_record, extract_search};
use scrapefarm::site::Sites;

const PAGE: &str = r#"<html><head><title>T</title><link rel="canonical" href="/item/1">
<script type="application/ld+json">{"@type":"Product","name":"N","offers":{"price":"1.50","priceCurrency":"EUR"}}</script>
</head><body><h1 class="title">Lamp</h1><div class="price">$12.50</div>
<ul><li class="result"><a href="/item/2">x</a></li></ul></body></html>"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One file per fuzzing process: load_file reads a path.
    let file = std::env::temp_dir().join(format!("scrapefarm-fuzz-{}.toml", std::process::id()));
    std::fs::write(&file, text).expect("the temporary directory is writable");
    if let Ok((sites, name)) = Sites::load_file(&file) {
        let site = sites.get(&name).expect("a loaded site is known");
        let _ = extract_record(PAGE, "http://127.0.0.1/item/1", "1".into(), site);
        let _ = extract_search(PAGE, "http://127.0.0.1/search?q=x", site);
        let _ = site.search_url(text, 2);
        let _ = site.listing_id(text);
    }
});
