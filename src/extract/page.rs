//! What a page says about itself, whatever the site's rules: the currency it declares for its
//! prices (JSON-LD `priceCurrency`, microdata, OpenGraph product meta).

use std::sync::LazyLock;

use scraper::Selector;
use serde_json::Value;

use super::rules::Document;
use crate::price::Currency;

static MICRODATA_CURRENCY: LazyLock<Selector> = LazyLock::new(|| {
    // A constant, valid selector.
    Selector::parse("[itemprop=priceCurrency]").expect("valid selector")
});

static META_CURRENCY: LazyLock<Selector> = LazyLock::new(|| {
    // A constant, valid selector.
    Selector::parse(
        r#"meta[property="og:price:currency"], meta[property="product:price:currency"]"#,
    )
    .expect("valid selector")
});

/// The currency the page declares for its prices, looked up in order in its JSON-LD
/// (`priceCurrency` anywhere), its microdata (`itemprop=priceCurrency`, `content` or text) and
/// its `og:price:currency` / `product:price:currency` meta.
pub fn declared_currency(doc: &Document<'_>) -> Option<Currency> {
    let jsonld = doc
        .jsonld_blocks()
        .iter()
        .find_map(|block| find_key(block, "priceCurrency"));
    let microdata = || {
        doc.html.select(&MICRODATA_CURRENCY).find_map(|el| {
            let code = el.value().attr("content").map(str::to_string);
            code.or_else(|| Some(super::inner_text(el, &|_| false)))
                .and_then(|code| Currency::parse(code.trim()).ok())
        })
    };
    let meta = || {
        doc.html
            .select(&META_CURRENCY)
            .filter_map(|el| el.value().attr("content"))
            .find_map(|code| Currency::parse(code.trim()).ok())
    };
    jsonld.or_else(microdata).or_else(meta)
}

/// The first currency code under `key` anywhere in `value`, depth first.
fn find_key(value: &Value, key: &str) -> Option<Currency> {
    match value {
        Value::Object(map) => map
            .get(key)
            .and_then(Value::as_str)
            .and_then(|code| Currency::parse(code.trim()).ok())
            .or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Sites;

    fn declared(html: &str) -> Option<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sites");
        let sites = Sites::load(&dir).unwrap();
        let doc = Document::parse(html, sites.get("fixture").unwrap());
        declared_currency(&doc).map(|c| c.to_string())
    }

    #[test]
    fn the_page_declares_its_currency_in_jsonld_then_microdata_then_meta() {
        let jsonld = r#"<script type="application/ld+json">{"@graph":[{"@type":"Organization"},
            {"@type":"Product","offers":{"@type":"Offer","priceCurrency":"CAD"}}]}</script>"#;
        let microdata = r#"<meta itemprop="priceCurrency" content="MXN">"#;
        let meta = r#"<meta property="product:price:currency" content="sek">"#;
        assert_eq!(
            declared(&format!("{meta}{microdata}{jsonld}")).as_deref(),
            Some("CAD")
        );
        assert_eq!(
            declared(&format!("{meta}{microdata}")).as_deref(),
            Some("MXN")
        );
        assert_eq!(declared(meta).as_deref(), Some("SEK"));
        assert_eq!(
            declared("<span itemprop=priceCurrency> BRL </span>").as_deref(),
            Some("BRL")
        );
        assert_eq!(declared("<p>$5</p>"), None);
    }
}
