//! Scoring extracted pages against their truth, and the field-accuracy table.

use std::collections::HashSet;

use scrapefarm::classify::classify;
use scrapefarm::domain::Record;
use scrapefarm::extract::{extract_listing, extract_search};
use scrapefarm::price::{Money, parse_price_range};
use scrapefarm::render::Page;
use scrapefarm::site::Site;

use super::truth::{ItemTruth, SearchTruth};

/// Fields checked on one page and what came out wrong.
pub struct Score {
    pub page: String,
    pub checked: usize,
    pub wrong: Vec<String>,
}

impl Score {
    pub fn new(page: &str) -> Score {
        Score {
            page: page.to_string(),
            checked: 0,
            wrong: Vec::new(),
        }
    }

    /// A page that could not be read at all: every field of it counts as wrong.
    pub fn failed(page: &str, fields: usize, why: String) -> Score {
        Score {
            page: page.to_string(),
            checked: fields,
            wrong: vec![why],
        }
    }

    pub fn check(&mut self, field: &str, got: Option<String>, want: &str) {
        self.checked += 1;
        if got.as_deref() != Some(want) {
            self.wrong
                .push(format!("{field}: got {got:?}, want {want:?}"));
        }
    }

    fn correct(&self) -> usize {
        self.checked.saturating_sub(self.wrong.len())
    }
}

/// Prints the accuracy table of `scores` under `title`.
pub fn print_table(title: &str, scores: &[Score]) {
    println!("\n{title}\n{:<62} {:>9}", "page", "correct");
    for s in scores {
        println!("{:<62} {:>4} / {:<3}", s.page, s.correct(), s.checked);
    }
    let right: usize = scores.iter().map(Score::correct).sum();
    let all: usize = scores.iter().map(|s| s.checked).sum();
    println!("{:<62} {:>4} / {:<3}", "total", right, all);
}

/// Every wrong field of every page, one per line.
pub fn wrong_fields(scores: &[Score]) -> Vec<String> {
    scores
        .iter()
        .flat_map(|s| s.wrong.iter().map(move |w| format!("{}: {w}", s.page)))
        .collect()
}

/// Prints the table and fails with every wrong field.
pub fn report(title: &str, scores: &[Score]) {
    print_table(title, scores);
    let wrong = wrong_fields(scores);
    assert!(
        wrong.is_empty(),
        "{} wrong fields:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn money(m: Option<Money>) -> Option<String> {
    m.map(|m| format!("{} {}", m.to_decimal_string(), m.currency.as_str()))
}

/// A record field by its `listings --json` name (or `specifics.<key>`), as text.
pub fn field_of(r: &Record, name: &str) -> Option<String> {
    if let Some(key) = name.strip_prefix("specifics.") {
        return r.specifics.get(key).cloned();
    }
    match name {
        "title" => r.title.clone(),
        "translated_title" => r.translated_title.clone(),
        "price" => money(r.price),
        "was_price" => money(r.was_price),
        "buy_it_now_price" => money(r.buy_it_now_price),
        "auction" => Some(r.auction.to_string()),
        "bids" => r.bids.map(|b| b.to_string()),
        "best_offer" => Some(r.best_offer.to_string()),
        "item_id" => r.item_id.clone(),
        "seller" => r.seller.clone(),
        "seller_score" => r.seller_score.map(|s| s.to_string()),
        "condition" => r.condition.clone(),
        "shipping" => r.shipping.clone(),
        "location" => r.location.clone(),
        "status_text" => r.status_text.clone(),
        "ended" => Some(r.ended.to_string()),
        other => panic!("truth names an unknown field `{other}`"),
    }
}

/// Classifies and extracts one item page and scores it against its truth.
pub fn score_item(truth: &ItemTruth, page: &Page, site: &Site) -> Score {
    let mut score = Score::new(truth.file);
    score.check(
        "class",
        Some(classify(page, site).name().into()),
        truth.class,
    );
    match extract_listing(&page.html, &page.url, site) {
        Ok(record) => {
            score.check("external_id", Some(record.external_id.clone()), truth.id);
            for (name, want) in truth.fields {
                score.check(name, field_of(&record, name), want);
            }
        }
        Err(e) => {
            score.checked += truth.fields.len() + 1;
            score.wrong.push(format!("extraction failed: {e}"));
        }
    }
    score
}

/// Fields [`score_search`] checks on every search page.
pub const SEARCH_FIELDS: usize = 10;

/// Parses one search page and scores it against its truth.
pub fn score_search(truth: &SearchTruth, html: &str, url: &str, site: &Site) -> Score {
    let mut score = Score::new(truth.file);
    let page = extract_search(html, url, site);
    let unique: HashSet<&str> = page.hits.iter().map(|h| h.external_id.as_str()).collect();
    let first = page.hits.first();
    let n = |v: usize| Some(v.to_string());
    score.check("rows", n(page.rows), &truth.rows.to_string());
    score.check("real", n(page.hits.len()), &truth.real.to_string());
    score.check("unique", n(unique.len()), &truth.unique.to_string());
    score.check(
        "first id",
        first.map(|h| h.external_id.clone()),
        truth.first_id,
    );
    let title = first.and_then(|h| h.title.clone());
    score.check("first title", title, truth.first_title);
    let price = first.and_then(|h| h.price_text.clone());
    score.check("first price", price.clone(), truth.first_price);
    // The displayed price must also read as money (a range as its two ends).
    let parsed = price.and_then(|p| parse_price_range(&p, None).ok());
    score.check("first price parses", parsed.map(|_| "yes".into()), "yes");
    let count = |c: Option<u64>| c.map_or("none".to_string(), |c| c.to_string());
    let got = Some(count(page.result_count));
    score.check("result count", got, &count(truth.result_count));
    let next = Some(page.next_page.is_some().to_string());
    score.check("next page", next, &truth.has_next.to_string());
    let unreadable: Vec<&str> = page
        .hits
        .iter()
        .map(|h| h.price_text.as_deref().unwrap_or("(none)"))
        .filter(|p| parse_price_range(p, None).is_err())
        .collect();
    score.check("every price parses", Some(format!("{unreadable:?}")), "[]");
    score
}
