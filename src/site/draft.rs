//! `sites new NAME --from URL|FILE`: a first site definition drafted from one product page, for a
//! person to refine with `sites check`. The title and price rules come from what the page shows
//! and declares — the element whose text the page's `<title>` repeats, the price-looking element
//! closest to it in the tree, JSON-LD (Product/Offer nodes by `@type`, `@graph` included),
//! microdata (`itemprop`) and OpenGraph/meta tags — each with a comment saying where it came from
//! and what it reads on this page. `listing.url_pattern` is the page URL's shape with the listing
//! id as its `id` group. The draft is loaded like any site file before it is handed out.

mod rules;

use scraper::{ElementRef, Html, Selector};
use serde_json::Value;
use url::Url;

use crate::extract::{collapse_whitespace, inner_text};
use crate::price::{Currency, Money};
use rules::{field, other_fields, price_rules, title_element, title_rules, unique_selector};

/// A drafted site definition and what it read on the page it was drafted from.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The site file's text.
    pub toml: String,
    pub title: Option<String>,
    pub price: Option<Money>,
}

/// One rule of a field: its TOML, and a comment saying where it came from and what it reads.
struct Candidate {
    rule: String,
    comment: String,
}

/// What the page's JSON-LD holds: the first Product (or ProductGroup) node, the first node with
/// an offer price, and the currency declared.
#[derive(Default)]
struct JsonLd {
    /// (`@type`, name) of the first Product or ProductGroup node with a name.
    product: Option<(String, String)>,
    /// (`type` to start at, path prefix, price text) of the first priced offer.
    offer: Option<(String, String, String)>,
    currency: Option<String>,
}

/// Drafts site `name` from one product page (`html`), found at `page_url` when known (else its
/// canonical link or `og:url` names it). Fails when `name` is not a site name.
pub fn draft(name: &str, html: &str, page_url: Option<&str>) -> Result<Draft, String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!(
            "site name `{name}`: expected letters, digits, `_` or `-`"
        ));
    }
    let doc = Html::parse_document(html);
    let url = page_url
        .map(str::to_string)
        .or_else(|| own_url(&doc))
        .and_then(|u| Url::parse(&u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let jsonld = read_jsonld(&doc);
    let declared = jsonld
        .currency
        .clone()
        .or_else(|| attr(&doc, r#"[itemprop="priceCurrency"]"#, "content"))
        .or_else(|| attr(&doc, r#"meta[property$="price:currency"]"#, "content"))
        .and_then(|c| Currency::parse(c.trim()).ok());
    let guessed = declared
        .is_none()
        .then(|| language_currency(&doc))
        .flatten();
    let title_el = title_element(&doc);
    let mut text = header(name, url.as_ref(), guessed);
    // Not empty: many pages fill the title in by script after the page has loaded.
    let ready = title_el
        .and_then(|(el, _)| unique_selector(&doc, el))
        .map_or_else(|| "body".to_string(), |css| format!("{css}:not(:empty)"));
    text += &listing_section(url.as_ref(), &ready);
    text += &field("title", &title_rules(&doc, title_el, &jsonld));
    text += &field(
        "price",
        &price_rules(&doc, title_el, &jsonld, declared.or(guessed)),
    );
    text += &other_fields(&doc);
    let site = super::parse(&text).map_err(|problems| {
        format!(
            "the draft does not load ({}); this is a bug:\n{text}",
            problems.join("; ")
        )
    })?;
    let at = url.as_ref().map_or("http://127.0.0.1/", Url::as_str);
    let record = crate::extract::extract_record(html, at, String::new(), &site).ok();
    Ok(Draft {
        toml: text,
        title: record.as_ref().and_then(|r| r.title.clone()),
        price: record.and_then(|r| r.price),
    })
}

fn selector(css: &str) -> Selector {
    // Only called with the constant selectors of this file, which are valid.
    Selector::parse(css).expect("valid selector")
}

fn attr(doc: &Html, css: &str, name: &str) -> Option<String> {
    doc.select(&selector(css))
        .find_map(|el| el.value().attr(name))
        .map(str::to_string)
}

fn text_of(el: ElementRef<'_>) -> String {
    collapse_whitespace(&inner_text(el, &|_| false))
}

/// A TOML string literal.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// A value shown in a comment: one line, at most 70 characters.
fn shown(text: &str) -> String {
    let line = collapse_whitespace(text);
    match line.char_indices().nth(70) {
        Some((cut, _)) => format!("{:?}…", &line[..cut]),
        None => format!("{line:?}"),
    }
}

/// The page's own absolute URL: its canonical link, else `og:url`.
fn own_url(doc: &Html) -> Option<String> {
    [
        (r#"link[rel="canonical"]"#, "href"),
        (r#"meta[property="og:url"]"#, "content"),
    ]
    .into_iter()
    .filter_map(|(css, name)| attr(doc, css, name))
    .find(|u| Url::parse(u).is_ok())
}

fn header(name: &str, url: Option<&Url>, guessed: Option<Currency>) -> String {
    let mut text = format!(
        "# Drafted by `scrapefarm sites new` from one product page{}. Check it with\n\
         # `scrapefarm sites check FILE PAGE…` and refine: each rule says where it came from.\n\
         name = {}\n",
        url.map(|u| format!(" ({u})")).unwrap_or_default(),
        quote(name)
    );
    match url {
        Some(url) => {
            let base = format!("{}/", url.origin().ascii_serialization());
            text += &format!("base_url = {}\n", quote(&base));
        }
        None => {
            text += "# The page names no URL of its own: set the site's address.\n";
            text += &format!(
                "base_url = {}\n",
                quote(&format!("https://{name}.example/"))
            );
        }
    }
    if let Some(currency) = guessed {
        text +=
            "# No currency is declared on the page; its language or charset suggests this one.\n";
        text += &format!("default_currency = \"{currency}\"\n");
    }
    text += "max_rps = 1\n\n# No [search] section: this site reads listing URLs only until one is added.\n";
    text
}

fn listing_section(url: Option<&Url>, ready: &str) -> String {
    let (pattern, why) = match url {
        Some(url) => url_pattern(url),
        None => (
            r"^https?://[^/]+/(?P<id>[^/?#]+)/?(?:[?#].*)?$".to_string(),
            "no URL known: any last path segment stands for the listing id".to_string(),
        ),
    };
    format!(
        "\n[listing]\n# {why}\nurl_pattern = {}\n# The title element, once it has text.\nready = {}\n\n[listing.fields]\n",
        quote(&pattern),
        quote(ready)
    )
}

/// The URL's shape as a listing pattern: host, fixed path words kept, slugs generalised, and the
/// listing id — the last path piece that looks like an id (5+ digits, or 8+ letters and digits
/// with 2+ digits), else an `id`-like query parameter — as the `id` group.
fn url_pattern(url: &Url) -> (String, String) {
    let host = regex::escape(url.host_str().unwrap_or("localhost"));
    let start = format!("^https?://(?:{host})(?::\\d+)?");
    let segments: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
    const KEYS: [&str; 6] = [
        "id",
        "itemId",
        "item_id",
        "productId",
        "product_id",
        "skuId",
    ];
    let found = segments.iter().enumerate().rev().find_map(|(i, segment)| {
        let piece = segment
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find(|piece| looks_like_id(piece, 5))?;
        Some((i, segment, piece))
    });
    let query_id = url
        .query_pairs()
        .find(|(k, v)| KEYS.contains(&k.as_ref()) && looks_like_id(v, 1));
    if let (None, Some((key, value))) = (found, query_id) {
        let path: Vec<String> = segments.iter().map(|s| generalise(s)).collect();
        let id = id_class(&value);
        let pattern = format!(
            "{start}/{}\\?(?:[^#]*&)?{}=(?P<id>{id})(?:[&#].*)?$",
            path.join("/"),
            regex::escape(&key)
        );
        return (pattern, format!("the listing id is the `{key}` parameter"));
    }
    let Some((i, segment, piece)) = found else {
        let path: Vec<String> = segments.iter().map(|s| generalise(s)).collect();
        let last = path.len().saturating_sub(1);
        let head = path[..last].join("/");
        let pattern = format!("{start}/{head}{}(?P<id>[^/?#]+)/?(?:[?#].*)?$", {
            if head.is_empty() { "" } else { "/" }
        });
        return (
            pattern,
            "no id in the URL: its last path segment stands for it".into(),
        );
    };
    let mut path: Vec<String> = segments[..i].iter().map(|s| generalise(s)).collect();
    let (before, after) = segment.split_once(piece).unwrap_or(("", ""));
    path.push(format!(
        "{}(?P<id>{}){}",
        regex::escape(before),
        id_class(piece),
        regex::escape(after)
    ));
    let pattern = format!("{start}/{}(?:[/?#].*)?$", path.join("/"));
    (
        pattern,
        format!("the listing id is `{piece}` in the URL's path"),
    )
}

/// Letters and digits with at least `digits` digits: all digits (5+ of them), or 8+ characters.
fn looks_like_id(piece: &str, digits: usize) -> bool {
    let n = piece.chars().filter(char::is_ascii_digit).count();
    let alnum = !piece.is_empty() && piece.chars().all(|c| c.is_ascii_alphanumeric());
    alnum && n >= digits.min(2) && (n >= digits || piece.len() >= 8)
}

fn id_class(piece: &str) -> &'static str {
    match piece.chars().all(|c| c.is_ascii_digit()) {
        true => r"\d+",
        false => "[0-9A-Za-z]+",
    }
}

/// A path segment as a pattern: a short word kept as it is (`dp`, `item.htm`), anything else
/// (a slug) any segment.
fn generalise(segment: &str) -> String {
    let word = segment.len() <= 12
        && !segment.contains('-')
        && segment.chars().all(|c| c.is_ascii_alphabetic() || c == '.');
    match word {
        true => regex::escape(segment),
        false => "[^/?#]+".to_string(),
    }
}

/// Every node of every JSON-LD block (`@graph`s, arrays and nested objects walked).
fn read_jsonld(doc: &Html) -> JsonLd {
    let blocks: Vec<Value> = doc
        .select(&selector(r#"script[type="application/ld+json"]"#))
        .filter_map(|script| serde_json::from_str(&script.text().collect::<String>()).ok())
        .collect();
    let mut nodes = Vec::new();
    blocks.iter().for_each(|block| walk(block, &mut nodes));
    let typed = |node: &Value, names: &[&str]| match &node["@type"] {
        Value::String(t) => names.contains(&t.as_str()),
        Value::Array(ts) => ts
            .iter()
            .any(|t| t.as_str().is_some_and(|t| names.contains(&t))),
        _ => false,
    };
    let scalar = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut found = JsonLd::default();
    for node in &nodes {
        for kind in ["Product", "ProductGroup"] {
            if found.product.is_none() && typed(node, &[kind]) {
                found.product = scalar(&node["name"]).map(|name| (kind.to_string(), name));
            }
        }
        for kind in ["Offer", "AggregateOffer"] {
            if found.offer.is_none() && typed(node, &[kind]) {
                let price = scalar(&node["price"]).or_else(|| scalar(&node["lowPrice"]));
                found.offer = price.map(|p| (kind.to_string(), String::new(), p));
                found.currency = scalar(&node["priceCurrency"]);
            }
        }
    }
    // A Product's own offers are preferred to the first Offer anywhere (a review's, a bundle's).
    let product = nodes.iter().find(|n| typed(n, &["Product"]));
    if let Some(offers) = product.map(|p| &p["offers"]).filter(|o| o.is_object()) {
        let price = scalar(&offers["price"]).or_else(|| scalar(&offers["lowPrice"]));
        if let Some(price) = price {
            found.offer = Some(("Product".into(), "offers.".into(), price));
            found.currency = scalar(&offers["priceCurrency"]).or(found.currency);
        }
    }
    found
}

fn walk<'v>(value: &'v Value, nodes: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| walk(item, nodes)),
        Value::Object(map) => {
            if map.contains_key("@type") {
                nodes.push(value);
            }
            map.values().for_each(|v| walk(v, nodes));
        }
        _ => {}
    }
}

/// The currency an ambiguous symbol most likely means on this page, from its language
/// (`<html lang>`) or, failing that, its charset (a GBK page is Chinese).
fn language_currency(doc: &Html) -> Option<Currency> {
    let lang = attr(doc, "html[lang]", "lang")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let charset = attr(doc, "meta[charset]", "charset")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let code = match (
        lang.split(['-', '_']).next().unwrap_or(""),
        charset.as_str(),
    ) {
        ("zh", _) | (_, "gbk" | "gb2312" | "gb18030") => "CNY",
        ("ja", _) | (_, "shift_jis" | "euc-jp") => "JPY",
        _ => return None,
    };
    Currency::parse(code).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(url: &str) -> regex::Regex {
        regex::Regex::new(&url_pattern(&Url::parse(url).unwrap()).0).unwrap()
    }

    fn id(re: &regex::Regex, url: &str) -> Option<String> {
        re.captures(url).map(|c| c["id"].to_string())
    }

    #[test]
    fn the_listing_id_is_the_last_id_like_piece_of_the_path() {
        let re = pattern("https://www.bestbuy.com/site/crucial-p3-1tb-ssd/6509712.p?skuId=6509712");
        let other = "https://www.bestbuy.com/site/another-thing/6400001.p?skuId=6400001";
        assert_eq!(id(&re, other).as_deref(), Some("6400001"));
        let re = pattern("https://www.etsy.com/listing/230389421/agents-of-shield-decal");
        assert_eq!(
            id(&re, "https://www.etsy.com/shop/Sticker"),
            None,
            "not a listing"
        );
        let etsy = "https://www.etsy.com/listing/252423036/happy-soba";
        assert_eq!(id(&re, etsy).as_deref(), Some("252423036"));
        let re = pattern("https://www.amazon.com/Camcorder-Hausbell-302S/dp/B01KLOA1PI");
        let asin = "https://www.amazon.com/Other-Thing/dp/B07XJ8C8F5?th=1";
        assert_eq!(id(&re, asin).as_deref(), Some("B07XJ8C8F5"));
        assert_eq!(id(&re, "https://www.walmart.com/dp/B07XJ8C8F5"), None);
    }

    #[test]
    fn without_an_id_in_the_path_an_id_parameter_is_the_listing_id() {
        let re = pattern("https://item.taobao.com/item.htm?id=562283240178");
        let url = "https://item.taobao.com/item.htm?spm=a1z&id=600000000001&ns=1";
        assert_eq!(id(&re, url).as_deref(), Some("600000000001"));
        let re = pattern("https://shop.example/products/blue-lamp");
        let url = "https://shop.example/products/red-lamp";
        assert_eq!(
            id(&re, url).as_deref(),
            Some("red-lamp"),
            "the last segment"
        );
    }

    #[test]
    fn a_draft_loads_and_reads_jsonld_by_type_in_a_graph() {
        let html = r#"<html><head><title>Blue lamp | Shop</title>
            <script type="application/ld+json">{"@graph": [
              {"@type": "Organization", "name": "Shop"},
              {"@type": "Product", "name": "Blue lamp",
               "offers": {"@type": "Offer", "price": "12.50", "priceCurrency": "EUR"}}]}
            </script></head><body><h1>Blue lamp</h1></body></html>"#;
        let draft = draft("shop", html, Some("https://shop.example/p/12345")).unwrap();
        assert!(draft.toml.contains(r#"type = "Product""#), "{}", draft.toml);
        assert_eq!(draft.title.as_deref(), Some("Blue lamp"));
        let price = draft.price.unwrap();
        assert_eq!((price.minor, price.currency.as_str()), (1250, "EUR"));
        assert!(super::draft("my shop", html, None).is_err());
    }
}
