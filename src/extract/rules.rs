//! Rule evaluation: how one [`Field`] of a site definition reads values from a parsed page —
//! CSS-selected text or attributes, JSON-LD paths, paths in JSON embedded in scripts or assigned
//! to JavaScript variables, microdata, meta tags, regexes over the raw HTML — and how element
//! text is read the way a reader sees it (`text`: innerText without the site's hidden decoration).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use scraper::{ElementRef, Html, Selector};
use serde_json::Value;

use super::json::{assigned_json, json_values, object_values, type_roots, walk};
use super::text::{collapse_whitespace, inner_text};
use crate::site::{Field, JsonDocument, Rule, Site, Source};

static JSONLD: LazyLock<Selector> = LazyLock::new(|| {
    // A constant, valid selector.
    Selector::parse(r#"script[type="application/ld+json"]"#).expect("valid selector")
});

/// A parsed page, the input of every rule. JSON-LD is parsed on first use.
pub struct Document<'a> {
    pub html: Html,
    raw: &'a str,
    hidden: Option<&'a Selector>,
    jsonld: OnceLock<Vec<Value>>,
    /// Embedded JSON documents already parsed, by script selector or variable name.
    embedded: Mutex<HashMap<String, Arc<Vec<Value>>>>,
}

/// Where a search result's fields are read: inside its element, or in its JSON object.
#[derive(Clone, Copy)]
pub enum Scope<'s> {
    Element(ElementRef<'s>),
    Object(&'s Value),
}

/// What one rule of a field read, for the `extract` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    pub label: String,
    /// The rule's first value, or `None` when it matched nothing.
    pub value: Option<String>,
}

impl<'a> Document<'a> {
    /// Parses `raw` for reading with `site`'s rules.
    pub fn parse(raw: &'a str, site: &'a Site) -> Document<'a> {
        Document {
            html: Html::parse_document(raw),
            raw,
            hidden: site.hidden.as_ref(),
            jsonld: OnceLock::new(),
            embedded: Mutex::new(HashMap::new()),
        }
    }

    /// The first value of `field` in the whole page.
    pub fn first(&self, field: &Field) -> Option<String> {
        field
            .rules
            .iter()
            .find_map(|rule| self.values(rule, None, 1).pop())
    }

    /// The first value of each rule of `field` that reads one, in rule order, with its rule:
    /// the candidates a typed field parses until one reads (a price text that cannot be parsed
    /// falls through to the next rule). Lazy, so rules after the first good value never run.
    pub fn candidates<'s>(
        &'s self,
        field: &'s Field,
    ) -> impl Iterator<Item = (&'s Rule, String)> + 's {
        field
            .rules
            .iter()
            .filter_map(move |rule| self.values(rule, None, 1).pop().map(|v| (rule, v)))
    }

    /// The first value of `field` inside `scope` (a search result row). In an element only CSS
    /// and microdata rules apply, in a result object only `json` rules without a document: the
    /// other rules describe the whole page, not a row.
    pub fn first_in(&self, scope: Scope<'_>, field: &Field) -> Option<String> {
        field
            .rules
            .iter()
            .find_map(|rule| self.values(rule, Some(scope), 1).pop())
    }

    /// The first value of one rule inside `scope`: each rule of a result's typed field in turn.
    pub fn rule_first_in(&self, scope: Scope<'_>, rule: &Rule) -> Option<String> {
        self.values(rule, Some(scope), 1).pop()
    }

    /// Every value of the first rule of `field` that yields any (image lists).
    pub fn all(&self, field: &Field) -> Vec<String> {
        field
            .rules
            .iter()
            .map(|rule| self.values(rule, None, usize::MAX))
            .find(|values| !values.is_empty())
            .unwrap_or_default()
    }

    /// Whether any rule of a flag field matches: an element exists (with the attribute and regex
    /// match, if given), a JSON-LD path has a value, or the raw-HTML regex matches.
    pub fn present(&self, field: &Field) -> bool {
        field.rules.iter().any(|rule| match &rule.source {
            Source::Css {
                selector,
                attr: None,
                ..
            } if rule.regex.is_none() => self.html.select(selector).next().is_some(),
            _ => !self.values(rule, None, 1).is_empty(),
        })
    }

    /// What each rule of `field` reads, in order, including the rules that read nothing.
    pub fn trace(&self, field: &Field) -> Vec<RuleTrace> {
        field
            .rules
            .iter()
            .map(|rule| RuleTrace {
                label: rule.label.clone(),
                value: self.values(rule, None, 1).pop(),
            })
            .collect()
    }

    /// Whether each rule of a flag field matches, in order.
    pub fn trace_flag(&self, field: &Field) -> Vec<RuleTrace> {
        field
            .rules
            .iter()
            .map(|rule| RuleTrace {
                label: rule.label.clone(),
                value: self
                    .present(&Field {
                        rules: vec![rule.clone()],
                    })
                    .then(|| "present".to_string()),
            })
            .collect()
    }

    /// Text of `el` as a reader sees it, without the site's hidden elements and `exclude`.
    /// One line: the element's `innerText` with its line breaks read as spaces.
    pub fn text(&self, el: ElementRef<'_>, exclude: Option<&Selector>) -> String {
        let skip = |child: &ElementRef<'_>| {
            self.hidden.is_some_and(|h| h.matches(child))
                || exclude.is_some_and(|x| x.matches(child))
        };
        collapse_whitespace(&inner_text(el, &skip))
    }

    /// Up to `limit` values `rule` reads, in document order, after its regex.
    fn values(&self, rule: &Rule, scope: Option<Scope<'_>>, limit: usize) -> Vec<String> {
        self.read(rule, scope)
            .filter_map(|value| post_process(rule, value))
            .take(limit)
            .collect()
    }

    /// What `rule`'s source reads, lazily (a field usually wants only the first value). Inside a
    /// result row only CSS and microdata read, inside a result object only `json` rules without
    /// a document; the other sources describe the whole page.
    fn read<'s>(
        &'s self,
        rule: &'s Rule,
        scope: Option<Scope<'s>>,
    ) -> Box<dyn Iterator<Item = String> + 's> {
        let root = match scope {
            None => self.html.root_element(),
            Some(Scope::Element(el)) => el,
            Some(Scope::Object(object)) => return object_values(rule, object),
        };
        match (&rule.source, scope) {
            (
                Source::Css {
                    selector,
                    attr,
                    exclude,
                },
                _,
            ) => Box::new(root.select(selector).filter_map(move |el| match attr {
                Some(attr) => el.value().attr(attr).map(|v| v.trim().to_string()),
                None => Some(self.text(el, exclude.as_ref())),
            })),
            (Source::ItemProp { selector, .. }, _) => {
                Box::new(root.select(selector).filter_map(|el| self.item_value(el)))
            }
            (_, Some(_)) => Box::new(std::iter::empty()),
            (Source::Meta { selector, .. }, None) => Box::new(
                root.select(selector)
                    .filter_map(|el| el.value().attr("content").map(|v| v.trim().to_string())),
            ),
            (Source::JsonLd { paths, node_type }, None) => {
                Box::new(json_values(self.jsonld_blocks(), paths, node_type.as_deref()).into_iter())
            }
            (
                Source::Json {
                    document,
                    paths,
                    node_type,
                },
                None,
            ) => Box::new(
                json_values(&self.embedded_json(document), paths, node_type.as_deref()).into_iter(),
            ),
            (Source::Html(re), None) => Box::new(
                re.captures_iter(self.raw)
                    .filter_map(|caps| caps.get(1).or_else(|| caps.get(0)))
                    .map(|m| m.as_str().trim().to_string()),
            ),
        }
    }

    /// The objects a `json` result rule finds (the values at its path; a list gives its
    /// items), in document order; values that are not objects are left out.
    pub fn json_objects(&self, rule: &Rule) -> Vec<Value> {
        let Source::Json {
            document,
            paths,
            node_type,
        } = &rule.source
        else {
            return Vec::new();
        };
        let documents = self.embedded_json(document);
        let mut found = Vec::new();
        for root in type_roots(&documents, node_type.as_deref()) {
            for path in paths {
                walk(root, path, &mut found);
            }
        }
        found
            .into_iter()
            .filter(|v| v.is_object())
            .cloned()
            .collect()
    }

    /// The page's JSON-LD blocks that parse, in document order.
    pub fn jsonld_blocks(&self) -> &[Value] {
        self.jsonld.get_or_init(|| {
            self.html
                .select(&JSONLD)
                .filter_map(|script| serde_json::from_str(&script.text().collect::<String>()).ok())
                .collect()
        })
    }

    /// The JSON documents `document` names, parsed once per page.
    fn embedded_json(&self, document: &JsonDocument) -> Arc<Vec<Value>> {
        let key = match document {
            JsonDocument::Script { css, .. } => format!("script {css}"),
            JsonDocument::Var(var) => format!("var {var}"),
            JsonDocument::Result => return Arc::new(Vec::new()),
        };
        // A poisoned lock only means another rule panicked; the cache is still consistent.
        let mut cache = self.embedded.lock().unwrap_or_else(|e| e.into_inner());
        let docs = cache.entry(key).or_insert_with(|| {
            Arc::new(match document {
                JsonDocument::Script { selector, .. } => self
                    .html
                    .select(selector)
                    .filter_map(|el| serde_json::from_str(&el.text().collect::<String>()).ok())
                    .collect(),
                JsonDocument::Var(var) => assigned_json(self.raw, var),
                JsonDocument::Result => Vec::new(),
            })
        });
        Arc::clone(docs)
    }

    /// A microdata property's value, as the HTML standard defines it.
    fn item_value(&self, el: ElementRef<'_>) -> Option<String> {
        let v = el.value();
        let attr = match v.name() {
            "meta" => "content",
            "a" | "area" | "link" => "href",
            "audio" | "embed" | "iframe" | "img" | "source" | "track" | "video" => "src",
            "data" | "meter" => "value",
            "time" if v.attr("datetime").is_some() => "datetime",
            _ if v.attr("content").is_some() => "content",
            _ => return Some(self.text(el, None)),
        };
        v.attr(attr).map(|value| value.trim().to_string())
    }
}

fn post_process(rule: &Rule, value: String) -> Option<String> {
    let value = match &rule.unwrap {
        Some(param) => unwrap_redirect(&value, param).unwrap_or(value),
        None => value,
    };
    let value = match &rule.regex {
        Some(re) => {
            let caps = re.captures(&value)?;
            let m = caps.get(1).or_else(|| caps.get(0))?;
            m.as_str().trim().to_string()
        }
        None => value,
    };
    (!value.is_empty()).then_some(value)
}

/// The URL carried, URL-encoded, in query parameter `param` of the link `href` (absolute or
/// relative), when it has one.
fn unwrap_redirect(href: &str, param: &str) -> Option<String> {
    static ANY: LazyLock<url::Url> = LazyLock::new(|| {
        // A constant, valid URL: relative links only need some base to read their query.
        url::Url::parse("http://link.invalid/").expect("valid URL")
    });
    let link = ANY.join(href.trim()).ok()?;
    link.query_pairs()
        .find(|(name, _)| name == param)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Sites;
    use std::path::Path;

    /// The fixture site with extra rules, from a site file written for the test.
    fn site_with(fields: &str) -> Site {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sites");
        let text = std::fs::read_to_string(dir.join("fixture.toml")).unwrap();
        let text = text
            .replace("name = \"fixture\"", "name = \"t\"\nhidden = \".sr-only\"")
            .replace(
                "[listing.fields]\n",
                &format!("[listing.fields]\n{fields}\n"),
            )
            .replace("title = \"h1.title\"\n", "");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("t.toml"), text).unwrap();
        Sites::load(tmp.path()).unwrap().get("t").unwrap().clone()
    }

    fn title(site: &Site) -> &Field {
        site.fields.title.as_ref().unwrap()
    }

    #[test]
    fn text_reads_like_a_browser_shows_it() {
        let site = site_with(r##"title = { css = "#t", exclude = ".x" }"##);
        let html = "<div id=t><span class=sr-only>Details about&nbsp;</span>US&nbsp;<b>$5.99</b>\
            (approx. <span>ILS 188.28</span>)<div>next</div>line<script>var a=1;</script>\
            <span class=x>Read more</span></div>";
        let doc = Document::parse(html, &site);
        let got = doc.first(title(&site));
        assert_eq!(
            got.as_deref(),
            Some("US $5.99(approx. ILS 188.28) next line")
        );
    }

    #[test]
    fn rules_are_tried_in_order_and_a_regex_miss_falls_through() {
        let site = site_with(r#"title = [{ css = "h1", regex = '^(\d+)$' }, "h2", "h1"]"#);
        let doc = Document::parse("<h1>Lamp</h1><h2></h2>", &site);
        assert_eq!(doc.first(title(&site)).as_deref(), Some("Lamp"));
        let trace = doc.trace(title(&site));
        let values: Vec<_> = trace.iter().map(|t| t.value.as_deref()).collect();
        assert_eq!(values, [None, None, Some("Lamp")]);
    }

    #[test]
    fn jsonld_paths_search_arrays_and_graphs_and_join_several_paths() {
        let site = site_with(
            r#"title = { jsonld = ["offers.priceCurrency", "offers.price"] }
description_url = { jsonld = "image" }"#,
        );
        let html = r#"<script type="application/ld+json">{"@type":"BreadcrumbList"}</script>
            <script type=application/ld+json>{"@graph":[{"@type":"Product","image":["a.jpg","b.jpg"],
            "offers":[{"priceCurrency":"EUR","price":164.0}]}]}</script>
            <script type="application/ld+json">not json</script>"#;
        let doc = Document::parse(html, &site);
        assert_eq!(doc.first(title(&site)).as_deref(), Some("EUR 164.0"));
        let images = site.fields.description_url.as_ref().unwrap();
        assert_eq!(doc.all(images), ["a.jpg", "b.jpg"]);
    }

    #[test]
    fn jsonld_rules_pick_nodes_by_type_through_graphs_arrays_and_nested_offers() {
        let site = site_with(
            r#"title = { jsonld = "name", type = "Product" }
description_url = { jsonld = "offers.price", type = "Product" }
item_id = { jsonld = "@graph.1.name" }
status_text = { jsonld = ["priceCurrency", "price"], type = "Offer" }"#,
        );
        let html = r#"<script type="application/ld+json">[{"@type":"Organization","name":"Shop"},
            {"@type":"BreadcrumbList","name":"Crumbs"}]</script>
            <script type="application/ld+json">{"@context":"https://schema.org","@graph":[
            {"@type":"WebPage","name":"Page"},{"@type":["Product","Thing"],"name":"Lamp",
            "offers":{"@type":"AggregateOffer","lowPrice":"9.99","highPrice":"19.99",
            "offers":[{"@type":"Offer","price":"9.99","priceCurrency":"CAD"}]}}]}</script>"#;
        let doc = Document::parse(html, &site);
        let f = &site.fields;
        assert_eq!(doc.first(title(&site)).as_deref(), Some("Lamp"));
        let price = doc.first(f.description_url.as_ref().unwrap());
        assert_eq!(price.as_deref(), Some("9.99"));
        let second = doc.first(f.item_id.as_ref().unwrap());
        assert_eq!(second.as_deref(), Some("Lamp"));
        let offer = doc.first(f.status_text.as_ref().unwrap());
        assert_eq!(offer.as_deref(), Some("CAD 9.99"));
        let untyped = site_with(r#"title = { jsonld = "name" }"#);
        assert_eq!(doc.first(title(&untyped)).as_deref(), Some("Shop"));
    }

    #[test]
    fn a_type_needs_a_jsonld_rule() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"),
        )
        .unwrap()
        .replace(
            "title = \"h1.title\"",
            "title = { css = \"h1\", type = \"Product\" }",
        );
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("t.toml"), text).unwrap();
        let sites = Sites::load(tmp.path()).unwrap();
        let err = sites.get("t").unwrap_err().to_string();
        assert!(err.contains("listing.fields.title.type"), "{err}");
    }

    #[test]
    fn raw_html_rules_read_embedded_json_and_flags_need_only_presence() {
        let site = site_with(
            r#"title = { html = '"listingStatus":"([A-Z]+)"' }
auction = ".bid"
best_offer = { html = 'bestOffer":true' }"#,
        );
        let html = r#"<div class="bid"></div><script>x={"listingStatus":"ENDED"}</script>"#;
        let doc = Document::parse(html, &site);
        assert_eq!(doc.first(title(&site)).as_deref(), Some("ENDED"));
        assert!(doc.present(site.fields.auction.as_ref().unwrap()));
        assert!(!doc.present(site.fields.best_offer.as_ref().unwrap()));
    }

    #[test]
    fn page_wide_rules_read_nothing_inside_a_result_row() {
        let site = site_with(r#"title = [{ jsonld = "name" }, ".t"]"#);
        let html = r#"<script type="application/ld+json">{"name":"Page"}</script>
            <ul><li><span class=t>Row</span></li></ul>"#;
        let doc = Document::parse(html, &site);
        let row = doc
            .html
            .select(&Selector::parse("li").unwrap())
            .next()
            .unwrap();
        let row = Scope::Element(row);
        assert_eq!(doc.first_in(row, title(&site)).as_deref(), Some("Row"));
        assert_eq!(doc.first(title(&site)).as_deref(), Some("Page"));
    }

    #[test]
    fn json_rules_read_script_documents_and_javascript_variables_including_lists() {
        let site = site_with(
            r#"title = { json = "props.pageProps.product.name", script = "script#__NEXT_DATA__" }
description_url = { json = "search.items.url", var = "window.__INITIAL_STATE__" }
item_id = { json = "sku", var = "runParams", type = "Product" }
status_text = { json = ["price.currency", "price.amount"], var = "window.__STATE__" }
bids = { json = "..next_page.url", var = "deepState" }"#,
        );
        let html = r#"<script id="__NEXT_DATA__" type="application/json">
            {"props":{"pageProps":{"product":{"name":"Desk Lamp"}}}}</script>
            <script>if (window.__INITIAL_STATE__ == null) {}
            window.__INITIAL_STATE__ = {"search":{"items":[{"url":"/i/1"},{"url":"/i/2"}]}};
            var runParams = {"data":[{"@type":"Offer","sku":"x"},{"@type":"Product","sku":"SKU-9"}]};
            window.__STATE__ = JSON.parse("{\"price\":{\"amount\":1299,\"currency\":\"TRY\"}}");
            var deepState = {"a":[{"b":1},{"pager":{"next_page":{"url":"https:\u002F\u002Fx"}}}]};
            </script>"#;
        let doc = Document::parse(html, &site);
        let f = &site.fields;
        assert_eq!(doc.first(title(&site)).as_deref(), Some("Desk Lamp"));
        assert_eq!(
            doc.all(f.description_url.as_ref().unwrap()),
            ["/i/1", "/i/2"]
        );
        assert_eq!(
            doc.first(f.item_id.as_ref().unwrap()).as_deref(),
            Some("SKU-9")
        );
        let price = doc.first(f.status_text.as_ref().unwrap());
        assert_eq!(price.as_deref(), Some("TRY 1299"));
        let deep = doc.first(f.bids.as_ref().unwrap());
        assert_eq!(
            deep.as_deref(),
            Some("https://x"),
            "a `..key` path at any depth, unescaped"
        );
        let trace = doc.trace(title(&site));
        assert_eq!(
            trace[0].label,
            "json in script#__NEXT_DATA__ props.pageProps.product.name"
        );
    }

    #[test]
    fn microdata_and_meta_rules_read_values_as_browsers_expose_them() {
        let site = site_with(
            r#"title = { meta = "og:title" }
description_url = { itemprop = "image" }
item_id = { itemprop = "sku" }
status_text = { itemprop = "price" }
translated_title = { meta = "product:condition" }"#,
        );
        let html = r#"<meta property="og:title" content=" Lamp ">
            <meta name="product:condition" content="new">
            <div itemscope itemtype="https://schema.org/Product">
            <img itemprop="image" src="/a.jpg"><link itemprop="image" href="/b.jpg">
            <span itemprop="sku">  SKU 1 </span>
            <span itemprop="price offers" content="12.50">12,50 €</span></div>"#;
        let doc = Document::parse(html, &site);
        let f = &site.fields;
        assert_eq!(doc.first(title(&site)).as_deref(), Some("Lamp"));
        assert_eq!(
            doc.all(f.description_url.as_ref().unwrap()),
            ["/a.jpg", "/b.jpg"]
        );
        assert_eq!(
            doc.first(f.item_id.as_ref().unwrap()).as_deref(),
            Some("SKU 1")
        );
        let price = doc.first(f.status_text.as_ref().unwrap());
        assert_eq!(price.as_deref(), Some("12.50"));
        let condition = doc.first(f.translated_title.as_ref().unwrap());
        assert_eq!(condition.as_deref(), Some("new"));
    }

    #[test]
    fn new_sources_are_validated_with_the_key_named() {
        for (rule, expected) in [
            (r#"{ json = "a" }"#, "exactly one of `script`"),
            (
                r#"{ json = "a", script = "s", var = "v" }"#,
                "exactly one of `script`",
            ),
            (r#"{ css = "h1", var = "v" }"#, "only apply to `json`"),
            (
                r#"{ json = "a", script = "[[" }"#,
                "listing.fields.title.script",
            ),
            (r#"{ itemprop = "a]b" }"#, "is not a name"),
            (r#"{ meta = "" }"#, "listing.fields.title.meta"),
            (
                r#"{ meta = "og:title", itemprop = "name" }"#,
                "exactly one of",
            ),
        ] {
            let text = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/fixture.toml"),
            )
            .unwrap()
            .replace("title = \"h1.title\"", &format!("title = {rule}"));
            let tmp = tempfile::tempdir().unwrap();
            std::fs::write(tmp.path().join("t.toml"), text).unwrap();
            let sites = Sites::load(tmp.path()).unwrap();
            let err = sites.get("t").unwrap_err().to_string();
            assert!(err.contains(expected), "{rule}: {err}");
            assert!(err.contains("listing.fields.title"), "{rule}: {err}");
        }
    }
}
