//! Search result pages: result rows as elements or as objects of the page's embedded JSON state,
//! each read into a hit (listing id, URL, title, and the price as money as well as text), plus
//! the next page and the announced total.

use scraper::ElementRef;
use url::Url;

use super::page;
use super::rules::{Document, Scope};
use super::{SearchPage, absolute, link_base, listing_price, matches_self_or_inside};
use crate::domain::SearchHit;
use crate::price::{self, Currency, Money};
use crate::site::{Results, SearchDef, Site};

/// Parses one search result page into hits (skipped rows and foreign links left out) and the
/// next page. A site without `[search]` finds nothing.
pub fn extract_search(html: &str, url: &str, site: &Site) -> SearchPage {
    let doc = Document::parse(html, site);
    let mut page = SearchPage::default();
    let Some(search) = &site.search else {
        return page;
    };
    let reader = HitReader {
        doc: &doc,
        search,
        base: link_base(&doc, url, site),
        site,
        currency: page::declared_currency(&doc).or(site.default_currency),
    };
    let mut add = |hit: Result<SearchHit, &'static str>| {
        page.rows += 1;
        match hit {
            Ok(hit) => page.hits.push(hit),
            Err(reason) => *page.dropped.entry(reason).or_default() += 1,
        }
    };
    match &search.result {
        Results::Css(rows) => doc.html.select(rows).for_each(|row| add(reader.row(row))),
        Results::Json(rule) => doc
            .json_objects(rule)
            .iter()
            .for_each(|object| add(reader.hit(Scope::Object(object)))),
    }
    page.next_page = search.next_page.as_ref().and_then(|field| {
        doc.candidates(field)
            .find_map(|(_, href)| absolute(Some(&reader.base), &href))
    });
    page.result_count = search
        .result_count
        .as_ref()
        .and_then(|f| doc.first(f))
        .and_then(|text| price::parse_count(&text))
        .and_then(|n| u64::try_from(n).ok());
    page
}

/// Reads result rows of one page into hits.
struct HitReader<'r, 'a> {
    doc: &'r Document<'a>,
    search: &'r SearchDef,
    base: Url,
    site: &'r Site,
    /// The page's declared currency, else the site's default: what a price rule without its
    /// own currency settles a bare or shared symbol with.
    currency: Option<Currency>,
}

impl HitReader<'_, '_> {
    /// One result element as a hit, or why it is not one.
    fn row(&self, row: ElementRef<'_>) -> Result<SearchHit, &'static str> {
        let skipped = self
            .search
            .skip
            .as_ref()
            .is_some_and(|skip| matches_self_or_inside(row, skip));
        match skipped {
            true => Err("skipped"),
            false => self.hit(Scope::Element(row)),
        }
    }

    /// The hit in one result (element or object), or why it is not one.
    fn hit(&self, scope: Scope<'_>) -> Result<SearchHit, &'static str> {
        let href = self
            .doc
            .first_in(scope, &self.search.link)
            .ok_or("no link")?;
        let link = absolute(Some(&self.base), &href).ok_or("not a URL")?;
        let external_id = self.site.listing_id(&link).ok_or("not a listing URL")?;
        let (price_text, price) = self.price(scope);
        Ok(SearchHit {
            external_id,
            url: link,
            title: self
                .search
                .title
                .as_ref()
                .and_then(|f| self.doc.first_in(scope, f)),
            price_text,
            price,
        })
    }

    /// The first price text of the result, and the first of its rules' texts that parses as
    /// money, in the money decision order: the rule's currency, the page's declared currency,
    /// the site's default, then the symbol in the text. A range reads as its low end.
    fn price(&self, scope: Scope<'_>) -> (Option<String>, Option<Money>) {
        let Some(field) = &self.search.price else {
            return (None, None);
        };
        let mut first = None;
        for rule in &field.rules {
            let Some(text) = self.doc.rule_first_in(scope, rule) else {
                continue;
            };
            let money = listing_price(&text, rule.currency.or(self.currency)).ok();
            let text = first.get_or_insert(text).clone();
            if money.is_some() {
                return (Some(text), money);
            }
        }
        (first, None)
    }
}
