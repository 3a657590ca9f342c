//! The rules of a drafted site file: which element is the title (the one whose text the page's
//! `<title>` repeats), which is the price (the price-looking element nearest the title in the
//! tree), a CSS selector that finds each first, and the rules written out with their comments.

use std::collections::HashMap;

use scraper::{ElementRef, Html, Selector};

use super::{Candidate, JsonLd, attr, quote, selector, shown, text_of};
use crate::price::{self, Currency, Money, PriceError};

/// Elements whose text is never a title or a price.
const NOT_CONTENT: [&str; 10] = [
    "script", "style", "title", "meta", "link", "input", "button", "option", "select", "textarea",
];

/// Body elements whose `id`, `class` (or `itemprop`) mentions `word`, and the `h1`s.
fn named<'a>(doc: &'a Html, word: &str, h1: bool) -> Vec<ElementRef<'a>> {
    // A class that only colours text (`a-color-price`) says nothing of what the text is.
    let says = |name: &str| {
        let name = name.to_ascii_lowercase();
        name.contains(word) && !name.contains("color")
    };
    let mentions = |el: &ElementRef<'_>| {
        let v = el.value();
        let named = [v.id(), v.attr("itemprop")].into_iter().flatten();
        named.chain(v.classes()).any(says)
    };
    doc.select(&selector("body *"))
        .filter(|el| !NOT_CONTENT.contains(&el.value().name()))
        .filter(|el| (h1 && el.value().name() == "h1") || mentions(el))
        .collect()
}

/// The element showing the listing's title: of the `h1`s and elements named `*title*`, the one
/// with the longest text that the page's `<title>` (or `og:title`) repeats; else the first `h1`.
pub fn title_element(doc: &Html) -> Option<(ElementRef<'_>, bool)> {
    // Every <title>: a page whose <head> ends early has its title in the body.
    let head: Vec<String> = doc.select(&selector("title")).map(text_of).collect();
    let head = head.join("\n");
    let og = attr(doc, r#"meta[property="og:title"]"#, "content").unwrap_or_default();
    let said = format!("{head}\n{og}").to_lowercase();
    let mut best: Option<(usize, ElementRef<'_>)> = None;
    let mut first_h1 = None;
    for el in named(doc, "title", true) {
        let text = text_of(el);
        let chars = text.chars().count();
        if el.value().name() == "h1" && chars > 0 && first_h1.is_none() {
            first_h1 = Some(el);
        }
        let repeated = (3..=400).contains(&chars) && said.contains(&text.to_lowercase());
        if repeated && best.is_none_or(|(n, _)| chars > n) {
            best = Some((chars, el));
        }
    }
    best.map(|(_, el)| (el, true))
        .or(first_h1.map(|el| (el, false)))
}

fn ident(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A selector whose first match in the page is `el`: its id, its tag with a class, with all its
/// classes, its tag alone, or one of those inside its nearest ancestor with an id.
pub fn unique_selector(doc: &Html, el: ElementRef<'_>) -> Option<String> {
    let tag = el.value().name();
    let mut options = Vec::new();
    if let Some(id) = el.value().id().filter(|id| ident(id)) {
        options.push(format!("#{id}"));
    }
    let mut classes: Vec<&str> = el.value().classes().filter(|c| ident(c)).collect();
    // A class that says what the element is reads better and changes less.
    classes.sort_by_key(|c| {
        let c = c.to_ascii_lowercase();
        !(c.contains("title") || c.contains("price") || c.contains("name"))
    });
    options.extend(classes.iter().map(|c| format!("{tag}.{c}")));
    if classes.len() > 1 {
        options.push(format!("{tag}.{}", classes.join(".")));
    }
    options.push(tag.to_string());
    let scope = el
        .ancestors()
        .filter_map(ElementRef::wrap)
        .find_map(|a| a.value().id().filter(|id| ident(id)));
    if let Some(scope) = scope {
        let scoped: Vec<String> = options.iter().map(|o| format!("#{scope} {o}")).collect();
        options.extend(scoped);
    }
    options.into_iter().find(|css| {
        Selector::parse(css)
            .ok()
            .and_then(|s| doc.select(&s).next())
            .is_some_and(|first| first.id() == el.id())
    })
}

pub(super) fn title_rules(
    doc: &Html,
    title: Option<(ElementRef<'_>, bool)>,
    jsonld: &JsonLd,
) -> Vec<Candidate> {
    let mut rules = Vec::new();
    if let Some((el, repeated)) = title
        && let Some(css) = unique_selector(doc, el)
    {
        let why = match repeated {
            true => format!(
                "the <{}> whose text the page's <title> repeats",
                el.value().name()
            ),
            false => "the first <h1> (the page's <title> repeats no element's text)".into(),
        };
        rules.push(Candidate {
            rule: quote(&css),
            comment: format!("{why}: {}", shown(&text_of(el))),
        });
    }
    if let Some((kind, name)) = &jsonld.product {
        rules.push(Candidate {
            rule: format!("{{ jsonld = \"name\", type = {} }}", quote(kind)),
            comment: format!("JSON-LD {kind} name: {}", shown(name)),
        });
    }
    if let Some(og) = attr(doc, r#"meta[property="og:title"]"#, "content") {
        rules.push(Candidate {
            rule: "{ meta = \"og:title\" }".into(),
            comment: format!(
                "OpenGraph title (may carry the site's name): {}",
                shown(&og)
            ),
        });
    }
    rules
}

/// A listing's price as extraction reads it: one amount, or the low end of a range.
fn money(text: &str, currency: Option<Currency>) -> Option<Money> {
    match price::parse_money(text, currency) {
        Err(PriceError::Ambiguous(_)) => price::parse_price_range(text, currency)
            .ok()
            .map(|range| range.low),
        other => other.ok(),
    }
}

/// The price-looking element nearest the title: short text that reads as money, in an element
/// named `*price*`, not struck through, whose lowest common ancestor with the title is deepest
/// (of those, one showing the amount the page declares, then the nearest in document order);
/// without a title, the first.
fn price_element<'a>(
    doc: &'a Html,
    title: Option<ElementRef<'a>>,
    currency: Option<Currency>,
    declared: Option<&str>,
) -> Option<(String, String)> {
    let order: HashMap<_, usize> = doc
        .root_element()
        .descendants()
        .enumerate()
        .map(|(i, node)| (node.id(), i))
        .collect();
    let title_line: Vec<_> = title
        .map(|t| t.ancestors().map(|a| a.id()).collect())
        .unwrap_or_default();
    let rank = |el: ElementRef<'_>| {
        let Some(t) = title else {
            return (0, order[&el.id()]);
        };
        let common = el
            .ancestors()
            .find_map(|a| title_line.iter().position(|id| *id == a.id()));
        let depth = common.map_or(0, |i| title_line.len() - i);
        (usize::MAX - depth, order[&el.id()].abs_diff(order[&t.id()]))
    };
    // The amount the page declares (JSON-LD, microdata), in minor units of any exponent.
    let declared = declared.and_then(|p| p.trim().parse::<f64>().ok());
    let shows_declared = |m: &Money| {
        let exponent = i32::try_from(m.currency.exponent()).unwrap_or(2);
        declared.is_some_and(|d| (m.minor as f64 / 10f64.powi(exponent) - d).abs() < 0.005)
    };
    // Elements named `*price*`, and their children (`.price-box > span`).
    let mut seen = std::collections::HashSet::new();
    let children = |el: ElementRef<'a>| el.children().filter_map(ElementRef::wrap);
    let mut found: Vec<_> = named(doc, "price", false)
        .into_iter()
        .flat_map(|el| std::iter::once(el).chain(children(el)))
        .filter(|el| seen.insert(el.id()))
        .filter_map(|el| {
            let text = text_of(el);
            let short = (1..=40).contains(&text.chars().count());
            // Money with at most a word beside it ("Now $19.99", "Price: €40.63+"), not a
            // sentence that holds a number ("4 payments starting at").
            let words = text.chars().filter(|c| c.is_alphabetic()).count() <= 6;
            let readable = short && words && text.chars().any(|c| c.is_ascii_digit());
            let price = (readable && !struck(el))
                .then(|| money(&text, currency))
                .flatten()?;
            Some((el, text, shows_declared(&price)))
        })
        .collect();
    // The nearest; of equally near ones, one showing the declared price.
    found.sort_by_key(|(el, _, declared)| {
        let (depth, distance) = rank(*el);
        (depth, !declared, distance)
    });
    found
        .into_iter()
        .find_map(|(el, text, _)| Some((unique_selector(doc, el)?, text)))
}

/// A price that is not the listing's: struck through or former ("was", list price), or an
/// instalment of a payment plan — or an element holding one.
fn struck(el: ElementRef<'_>) -> bool {
    let old = selector(
        "s, del, strike, [data-a-strike], [class*=previous], [class*=original], \
         [class*=strike], [class*=old-price], [class*=was-price], [class*=list-price], \
         [class*=bnpl], [class*=payment], [class*=installment], [class*=monthly]",
    );
    old.matches(&el)
        || el.select(&old).next().is_some()
        || el
            .ancestors()
            .take(3)
            .filter_map(ElementRef::wrap)
            .any(|a| old.matches(&a))
}

pub(super) fn price_rules(
    doc: &Html,
    title: Option<(ElementRef<'_>, bool)>,
    jsonld: &JsonLd,
    currency: Option<Currency>,
) -> Vec<Candidate> {
    let mut rules = Vec::new();
    let title = title.map(|(el, _)| el);
    let declared = jsonld
        .offer
        .as_ref()
        .map(|(_, _, price)| price.clone())
        .or_else(|| attr(doc, r#"[itemprop="price"]"#, "content"));
    let found = price_element(doc, title, currency, declared.as_deref());
    if let Some((css, text)) = found {
        let near = if title.is_some() {
            "nearest the title"
        } else {
            "first"
        };
        rules.push(Candidate {
            rule: quote(&css),
            comment: format!("the price-looking element {near}: {}", shown(&text)),
        });
    }
    if let Some((kind, prefix, price)) = &jsonld.offer {
        let paths = match &jsonld.currency {
            Some(_) => format!("[\"{prefix}priceCurrency\", \"{prefix}price\"]"),
            None => format!("\"{prefix}price\""),
        };
        rules.push(Candidate {
            rule: format!("{{ jsonld = {paths}, type = {} }}", quote(kind)),
            comment: format!(
                "JSON-LD {kind} price: {} {}",
                jsonld.currency.as_deref().unwrap_or(""),
                shown(price)
            ),
        });
    }
    if let Some(el) = doc.select(&selector(r#"[itemprop="price"]"#)).next() {
        let value = el
            .value()
            .attr("content")
            .map_or_else(|| text_of(el), str::to_string);
        rules.push(Candidate {
            rule: "{ itemprop = \"price\" }".into(),
            comment: format!("microdata price: {}", shown(&value)),
        });
    }
    for name in ["product:price:amount", "og:price:amount"] {
        if let Some(value) = attr(doc, &format!(r#"meta[property="{name}"]"#), "content") {
            rules.push(Candidate {
                rule: format!("{{ meta = \"{name}\" }}"),
                comment: format!("meta {name}: {}", shown(&value)),
            });
        }
    }
    rules
}

/// One field's rules, tried in order, each under its comment.
pub(super) fn field(name: &str, rules: &[Candidate]) -> String {
    if rules.is_empty() {
        return format!("# {name}: nothing on the page looked like one; write a rule.\n");
    }
    let mut text = format!("{name} = [\n");
    for rule in rules {
        text += &format!("  # {}\n  {},\n", rule.comment, rule.rule);
    }
    text + "]\n"
}

/// Fields the page declares outright: its images (`og:image`).
pub(super) fn other_fields(doc: &Html) -> String {
    match attr(doc, r#"meta[property="og:image"]"#, "content") {
        Some(image) => format!(
            "# OpenGraph image: {}\nimages = {{ meta = \"og:image\" }}\n",
            shown(&image)
        ),
        None => String::new(),
    }
}
