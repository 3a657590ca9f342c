//! Search results from embedded page state, search-result prices as money (with the currency
//! decision order), the schema.org fallback for fields a site file leaves out, and the required
//! fields that make a listing page content.

use super::*;
use crate::classify::PageClass;
use crate::site::Sites;

/// A site from a small site file: `search` is the `[search]` body, `listing` extra lines of
/// `[listing]` and `fields` of `[listing.fields]`.
fn site(top: &str, search: &str, listing: &str, fields: &str) -> Result<Site, String> {
    let text = format!(
        "name = \"t\"\nbase_url = \"https://shop.example\"\n{top}\n\
         [search]\nurl = \"{{base_url}}/s?q={{query}}\"\n{search}\n\
         [listing]\nurl_pattern = '^https://shop\\.example/item/(?P<id>\\d+)'\nready = \"h1\"\n\
         {listing}\n[listing.fields]\n{fields}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.toml"), text).unwrap();
    let sites = Sites::load(dir.path()).unwrap();
    sites.get("t").cloned().map_err(|e| e.to_string())
}

const STATE: &str = r#"<html><body><div id=app></div><script>
window.__INITIAL_STATE__ = {"search":{"total":"1,234","items":[
  {"url":"/item/1?ref=s","name":"Desk Lamp","price":{"text":"$1,299.00"}},
  {"type":"ad","name":"Banner"},
  {"url":"https://other.example/x/2","name":"Elsewhere"},
  {"url":"/item/3","name":"Floor Lamp","price":{"text":"19,90 €"}},
  {"url":"/item/4","name":"Lamp without price"}
]}};
</script></body></html>"#;

fn state_site(price: &str) -> Site {
    let search = format!(
        r#"result = {{ json = "search.items", var = "window.__INITIAL_STATE__" }}
link = [{{ css = "a" }}, {{ json = "url" }}]
title = {{ json = "name" }}
price = {price}
result_count = {{ json = "search.total", var = "window.__INITIAL_STATE__" }}"#
    );
    site("", &search, "", "title = \"h1\"").unwrap()
}

#[test]
fn search_results_come_from_a_list_of_objects_in_embedded_state() {
    let site = state_site(r#"{ json = "price.text" }"#);
    let page = extract_search(STATE, "https://shop.example/s?q=lamp", &site);
    let ids: Vec<_> = page.hits.iter().map(|h| h.external_id.as_str()).collect();
    assert_eq!(ids, ["1", "3", "4"]);
    assert_eq!(page.hits[0].url, "https://shop.example/item/1?ref=s");
    assert_eq!(page.hits[0].title.as_deref(), Some("Desk Lamp"));
    assert_eq!(page.hits[0].price_text.as_deref(), Some("$1,299.00"));
    assert_eq!(page.rows, 5);
    assert_eq!(page.dropped.get("no link"), Some(&1));
    assert_eq!(page.dropped.get("not a listing URL"), Some(&1));
    assert_eq!(page.result_count, Some(1234));
    let prices: Vec<_> = page.hits.iter().map(|h| h.price).collect();
    let cur = |c: &str| Currency::parse(c).unwrap();
    assert_eq!(
        prices,
        [
            Some(Money::new(129_900, cur("USD"))),
            Some(Money::new(1990, cur("EUR"))),
            None
        ]
    );
}

#[test]
fn a_search_price_takes_the_rule_then_page_then_site_currency_before_the_symbol() {
    let html = r#"<ul><li><a href="/item/1">Lamp</a><b>$ 1.299,00</b></li></ul>"#;
    let declared = r#"<script type="application/ld+json">{"@type":"Offer","priceCurrency":"ARS"}
        </script>"#;
    let read = |top: &str, price: &str, page: &str| {
        let search =
            format!("result = \"li\"\nlink = {{ css = \"a\", attr = \"href\" }}\nprice = {price}");
        let site = site(top, &search, "", "title = \"h1\"").unwrap();
        let hits = extract_search(page, "https://shop.example/s", &site).hits;
        hits[0].price.map(|m| m.currency.to_string())
    };
    let with_page = format!("{declared}{html}");
    let mxn = "default_currency = \"MXN\"";
    assert_eq!(
        read("", "\"b\"", html).as_deref(),
        Some("USD"),
        "the symbol alone"
    );
    assert_eq!(read(mxn, "\"b\"", html).as_deref(), Some("MXN"));
    assert_eq!(read(mxn, "\"b\"", &with_page).as_deref(), Some("ARS"));
    let rule = r#"{ css = "b", currency = "CLP" }"#;
    assert_eq!(read(mxn, rule, &with_page).as_deref(), Some("CLP"));
    let site = site(
        mxn,
        "result = \"li\"\nlink = { css = \"a\", attr = \"href\" }\nprice = \"b\"",
        "",
        "title = \"h1\"",
    )
    .unwrap();
    let hit = &extract_search(html, "https://shop.example/s", &site).hits[0];
    assert_eq!(
        hit.price,
        Some(Money::new(129_900, Currency::parse("MXN").unwrap()))
    );
    assert_eq!(
        hit.price_text.as_deref(),
        Some("$ 1.299,00"),
        "the text is kept"
    );
}

#[test]
fn a_price_rule_that_does_not_parse_falls_through_to_the_next_for_the_money() {
    let site = state_site(r#"[{ json = "name" }, { json = "price.text" }]"#);
    let page = extract_search(STATE, "https://shop.example/s", &site);
    assert_eq!(page.hits[0].price_text.as_deref(), Some("Desk Lamp"));
    assert_eq!(page.hits[0].price.map(|m| m.minor), Some(129_900));
}

#[test]
fn result_object_rules_need_a_json_result_and_a_result_table_must_be_page_json() {
    for (search, expected) in [
        (
            "result = \"li\"\nlink = { json = \"url\" }",
            "key `search.link`: a `json` rule without `script` or `var` reads the result object",
        ),
        (
            "result = { css = \"li\" }\nlink = \"a\"",
            "key `search.result`: a rule table here must be one `json` rule",
        ),
        (
            "result = { json = \"items\" }\nlink = \"a\"",
            "key `search.result`: a rule table here must be one `json` rule",
        ),
        (
            "result = 5\nlink = \"a\"",
            "key `search.result`: invalid type integer",
        ),
        (
            "result = { json = \"items\", var = \"s\" }\nskip = \".ad\"\nlink = { json = \"url\" }",
            "key `search.skip`: only applies to a CSS `search.result`",
        ),
    ] {
        let err = site("", search, "", "title = \"h1\"").unwrap_err();
        assert!(err.contains(expected), "{search}: {err}");
    }
    let err = site(
        "",
        "result = \"li\"\nlink = \"a\"",
        "",
        "title = { json = \"name\" }",
    );
    assert!(
        err.unwrap_err().contains("exactly one of `script`"),
        "listing fields have no result object"
    );
}

const PRODUCT: &str = r#"<html><head><script type="application/ld+json">
{"@context":"https://schema.org","@graph":[{"@type":"Organization","name":"Shop Inc"},
{"@type":"Product","name":"Desk Lamp","brand":{"@type":"Brand","name":"Lumo"},"sku":"L-1",
"gtin13":"4006381333931","image":["/a.jpg","/b.jpg"],
"aggregateRating":{"ratingValue":"4.5","reviewCount":"12"},
"offers":{"@type":"Offer","price":"19.90","priceCurrency":"EUR",
"availability":"https://schema.org/InStock","itemCondition":"https://schema.org/UsedCondition"}}]}
</script></head><body><h1>Desk lamp, brass</h1><span itemprop="mpn">not the product's</span>
<div itemscope itemtype="https://schema.org/Product"><span itemprop="mpn">M-9</span></div>
</body></html>"#;

#[test]
fn fields_a_site_file_leaves_out_come_from_the_pages_schema_org_data() {
    let site = site("", "result = \"li\"\nlink = \"a\"", "", "title = \"h1\"").unwrap();
    let r = extract_record(PRODUCT, "https://shop.example/item/7", "7".into(), &site).unwrap();
    assert_eq!(
        r.title.as_deref(),
        Some("Desk lamp, brass"),
        "the site's rule wins"
    );
    assert_eq!(
        r.price,
        Some(Money::new(1990, Currency::parse("EUR").unwrap()))
    );
    assert_eq!(r.brand.as_deref(), Some("Lumo"));
    assert_eq!(r.sku.as_deref(), Some("L-1"));
    assert_eq!(r.gtin.as_deref(), Some("4006381333931"));
    assert_eq!(
        r.mpn.as_deref(),
        Some("M-9"),
        "microdata when JSON-LD has none"
    );
    assert_eq!(r.availability.as_deref(), Some("InStock"));
    assert_eq!(r.condition.as_deref(), Some("Used"));
    assert_eq!(r.rating, Some(4.5));
    assert_eq!(r.review_count, Some(12));
    assert_eq!(
        r.images,
        ["https://shop.example/a.jpg", "https://shop.example/b.jpg"]
    );
    let doc = Document::parse(PRODUCT, &site);
    let brand = doc.trace(site.fields.brand.as_ref().unwrap());
    assert!(
        brand[0]
            .label
            .starts_with("schema.org jsonld Product brand.name"),
        "{brand:?}"
    );
    let title = doc.trace(site.fields.title.as_ref().unwrap());
    assert_eq!(title[0].label, "css h1");
}

#[test]
fn a_site_can_turn_the_schema_org_fallback_off() {
    let site = site(
        "",
        "result = \"li\"\nlink = \"a\"",
        "schema_org = false",
        "title = \"h1\"",
    )
    .unwrap();
    let r = extract_record(PRODUCT, "https://shop.example/item/7", "7".into(), &site).unwrap();
    assert_eq!(r.title.as_deref(), Some("Desk lamp, brass"));
    assert_eq!(
        (r.price, r.brand, r.sku, r.rating),
        (None, None, None, None)
    );
    assert!(r.images.is_empty());
}

#[test]
fn a_listing_page_without_title_or_price_is_empty_unless_the_price_is_optional() {
    let strict = site(
        "",
        "result = \"li\"\nlink = \"a\"",
        "schema_org = false",
        "title = \"h1\"\nprice = \".p\"",
    )
    .unwrap();
    let lenient = site(
        "",
        "result = \"li\"\nlink = \"a\"",
        "schema_org = false\nprice_optional = true",
        "title = \"h1\"\nprice = \".p\"",
    )
    .unwrap();
    let url = "https://shop.example/item/7";
    let read = |html: &str, site: &Site| {
        let record = Some(extract_record(html, url, "7".into(), site));
        settle_class(PageClass::Content, record, site)
    };
    let priced = "<h1>Lamp</h1><p class=p>€5</p>";
    let (class, record) = read(priced, &strict);
    assert_eq!(class, PageClass::Content);
    assert!(record.is_some_and(|r| r.is_ok()));
    let unpriced = "<h1>Lamp</h1>";
    assert_eq!(read(unpriced, &strict), (PageClass::Empty, None));
    assert_eq!(read(unpriced, &lenient).0, PageClass::Content);
    assert_eq!(read("<p>nothing</p>", &lenient), (PageClass::Empty, None));
    let ended = Some(extract_record(unpriced, url, "7".into(), &strict));
    assert_eq!(
        settle_class(PageClass::Ended, ended, &strict).0,
        PageClass::Ended,
        "an ended listing keeps its class without a price"
    );
    assert_eq!(
        settle_class(PageClass::Blocked, None, &strict),
        (PageClass::Blocked, None)
    );
}

#[test]
fn a_microdata_rule_can_read_only_inside_items_of_one_type() {
    let scoped = r#"{ itemprop = "price", type = "Product" }"#;
    let shop = site(
        "",
        "result = \"li\"\nlink = \"a\"",
        "",
        &format!("title = \"h1\"\nprice = {scoped}"),
    )
    .unwrap();
    let html = r#"<h1>Lamp</h1><div itemscope itemtype="https://schema.org/Offer">
        <span itemprop="price" content="3.00">3 €</span></div>
        <div itemscope itemtype="http://schema.org/Product"><span itemprop="price">€ 9,50</span></div>"#;
    let r = extract_record(html, "https://shop.example/item/7", "7".into(), &shop).unwrap();
    assert_eq!(r.price.map(|m| m.minor), Some(950));
    let label = &shop.fields.price.as_ref().unwrap().rules[0].label;
    assert_eq!(label, "itemprop Product price");
    let bad = site(
        "",
        "result = \"li\"\nlink = \"a\"",
        "",
        r#"title = { itemprop = "name", type = "a]b" }"#,
    );
    assert!(
        bad.unwrap_err()
            .contains("key `listing.fields.title.type`: `a]b` is not a schema.org type name")
    );
}
