//! Domain words shared by every stage: a job (what the queue hands out), a listing's status, and the
//! record that extraction produces. Money lives in `price`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::price::Money;

/// Largest job body we accept; anything bigger is malformed (a listing job is a URL and a few ids).
pub const MAX_JOB_BYTES: usize = 64 * 1024;

/// Longest listing URL we accept (browsers and servers commonly stop near 8 KiB; listing URLs
/// are far shorter).
pub const MAX_URL_BYTES: usize = 4096;
/// Longest listing id we accept: real ids are a few dozen characters, and PostgreSQL cannot index
/// a key above ~2.7 KB at all.
pub const MAX_LISTING_ID_CHARS: usize = 200;

/// One listing URL to enrich. Serialized as JSON in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Unique per publish: a redelivery of the same job keeps it, so writes keyed by it are
    /// idempotent, while a second search of the same listing gets a new one.
    #[serde(default)]
    pub id: String,
    /// Site definition name, e.g. `fixture` or `ebay`.
    pub site: String,
    /// Absolute listing URL.
    pub url: String,
    /// The search that found it, when it came from a search.
    #[serde(default)]
    pub search_id: Option<i64>,
    /// The run of that search that published it (1 for its first collection). Each run observes
    /// the listing's price once more; bodies published before runs existed carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// When it was published (epoch ms; 0 when unknown). A listing enriched after this moment
    /// already satisfies the job, so a redelivered or duplicated job is not rendered again.
    #[serde(default)]
    pub published_at: i64,
}

/// Why a job body could not be turned into a [`Job`].
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job body is {0} bytes, over the {MAX_JOB_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("job body is not a valid job: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("job has an empty {0}")]
    Empty(&'static str),
}

impl Job {
    /// Validates a queue body into a job.
    pub fn parse(body: &[u8]) -> Result<Job, JobError> {
        if body.len() > MAX_JOB_BYTES {
            return Err(JobError::TooLarge(body.len()));
        }
        let mut job: Job = serde_json::from_slice(body)?;
        if job.site.trim().is_empty() {
            return Err(JobError::Empty("site"));
        }
        if job.url.trim().is_empty() {
            return Err(JobError::Empty("url"));
        }
        if job.id.trim().is_empty() {
            // Jobs published by other tools may carry no id: the body itself identifies them.
            use sha2::{Digest, Sha256};
            job.id = hex::encode(&Sha256::digest(body)[..8]);
        }
        Ok(job)
    }

    /// A new job id: publish time in ms, the process id and a per-process sequence number.
    pub fn new_id(now_ms: i64, seq: u64) -> String {
        // The process id keeps two publishers of the same millisecond (two concurrent crawls,
        // an enqueue beside a serve) from minting the same id: a job's attempts are keyed by it.
        format!("{now_ms}-{}-{seq:06}", std::process::id())
    }

    /// The queue body for this job.
    pub fn to_body(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(self).expect("a Job always serializes")
    }
}

/// Lifecycle of a listing row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListingStatus {
    Pending,
    Active,
    Ended,
    Gone,
    Failed,
}

impl ListingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ListingStatus::Pending => "pending",
            ListingStatus::Active => "active",
            ListingStatus::Ended => "ended",
            ListingStatus::Gone => "gone",
            ListingStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ListingStatus> {
        Some(match text {
            "pending" => ListingStatus::Pending,
            "active" => ListingStatus::Active,
            "ended" => ListingStatus::Ended,
            "gone" => ListingStatus::Gone,
            "failed" => ListingStatus::Failed,
            _ => return None,
        })
    }
}

/// The fields extracted from one listing page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub external_id: String,
    pub title: Option<String>,
    pub price: Option<Money>,
    pub condition: Option<String>,
    pub seller: Option<String>,
    pub seller_score: Option<i64>,
    pub shipping: Option<String>,
    pub location: Option<String>,
    pub specifics: BTreeMap<String, String>,
    pub description: Option<String>,
    pub images: Vec<String>,
    pub ended: bool,
    /// The item number the page itself shows (it can differ from the URL's id, e.g. the featured
    /// listing of a catalog product page).
    #[serde(default)]
    pub item_id: Option<String>,
    /// The title as shown to this viewer when it differs from `title` (a machine translation).
    #[serde(default)]
    pub translated_title: Option<String>,
    /// The struck-through reference price ("Was", "List price").
    #[serde(default)]
    pub was_price: Option<Money>,
    /// The fixed price; for an auction with Buy It Now, the price next to the current bid.
    #[serde(default)]
    pub buy_it_now_price: Option<Money>,
    /// The listing is an auction (then `price` is the current bid).
    #[serde(default)]
    pub auction: bool,
    #[serde(default)]
    pub bids: Option<i64>,
    /// The seller accepts offers.
    #[serde(default)]
    pub best_offer: bool,
    /// Why the listing is no longer on sale ("Sold on ...", "This listing has ended").
    #[serde(default)]
    pub status_text: Option<String>,
    /// Where the description lives when the page frames it in from elsewhere.
    #[serde(default)]
    pub description_url: Option<String>,
    /// The maker's brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// The seller's stock-keeping unit.
    #[serde(default)]
    pub sku: Option<String>,
    /// GTIN / EAN / UPC / ISBN, digits as the page gives them.
    #[serde(default)]
    pub gtin: Option<String>,
    /// The manufacturer's part number.
    #[serde(default)]
    pub mpn: Option<String>,
    /// Stock state: a schema.org name (`InStock`, `OutOfStock`, `PreOrder`, …) when the page
    /// uses one, else the page's text.
    #[serde(default)]
    pub availability: Option<String>,
    /// Average review rating as the page gives it (not money: a plain number).
    #[serde(default)]
    pub rating: Option<f64>,
    #[serde(default)]
    pub review_count: Option<i64>,
    /// The site's own fields (`[listing.extra]` of its definition), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// Fields whose rules read values but none could be parsed (a price text no rule reads):
    /// field name → what each rule read and why it failed. Not stored yet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_errors: BTreeMap<String, String>,
}

/// `text` without NUL characters (PostgreSQL refuses them in text) and cut to at most `max`
/// characters, on a character boundary.
pub fn bounded_text(text: &str, max: usize) -> String {
    text.chars().filter(|c| *c != '\0').take(max).collect()
}

/// Longest text kept per field; a page can say anything, the row has to stay storable.
const MAX_SHORT_FIELD: usize = 2_000;
const MAX_DESCRIPTION: usize = 200_000;
const MAX_SPECIFICS: usize = 500;
const MAX_IMAGES: usize = 200;

impl Record {
    /// The record as the store keeps it: NUL stripped from every text and every field cut to a
    /// length no real listing reaches, so a hostile or broken page cannot produce a row the
    /// database refuses.
    pub fn bounded(&self) -> Record {
        let short = |t: &Option<String>| t.as_deref().map(|t| bounded_text(t, MAX_SHORT_FIELD));
        Record {
            external_id: bounded_text(&self.external_id, MAX_LISTING_ID_CHARS),
            title: short(&self.title),
            condition: short(&self.condition),
            seller: short(&self.seller),
            shipping: short(&self.shipping),
            location: short(&self.location),
            description: self
                .description
                .as_deref()
                .map(|t| bounded_text(t, MAX_DESCRIPTION)),
            specifics: self
                .specifics
                .iter()
                .take(MAX_SPECIFICS)
                .map(|(k, v)| {
                    let key = bounded_text(k, MAX_SHORT_FIELD);
                    (key, bounded_text(v, MAX_SHORT_FIELD))
                })
                .collect(),
            images: self
                .images
                .iter()
                .take(MAX_IMAGES)
                .map(|u| bounded_text(u, MAX_URL_BYTES))
                .collect(),
            item_id: short(&self.item_id),
            translated_title: short(&self.translated_title),
            status_text: short(&self.status_text),
            description_url: self
                .description_url
                .as_deref()
                .map(|u| bounded_text(u, MAX_URL_BYTES)),
            brand: short(&self.brand),
            sku: short(&self.sku),
            gtin: short(&self.gtin),
            mpn: short(&self.mpn),
            availability: short(&self.availability),
            rating: self.rating.filter(|r| r.is_finite()),
            extra: self
                .extra
                .iter()
                .take(MAX_SPECIFICS)
                .map(|(k, v)| {
                    (
                        bounded_text(k, MAX_SHORT_FIELD),
                        bounded_text(v, MAX_SHORT_FIELD),
                    )
                })
                .collect(),
            ..self.clone()
        }
    }
}

/// One result row on a search page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub external_id: String,
    pub url: String,
    pub title: Option<String>,
    /// The price as the page shows it.
    pub price_text: Option<String>,
    /// The price read from it as money (minor units + ISO currency), when it parses.
    #[serde(default)]
    pub price: Option<Money>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_round_trips_through_its_body() {
        let job = Job {
            id: "1-000001".into(),
            site: "fixture".into(),
            url: "http://127.0.0.1:1/item/1".into(),
            search_id: Some(7),
            run: Some(2),
            published_at: 1,
        };
        assert_eq!(Job::parse(&job.to_body()).unwrap(), job);
    }

    #[test]
    fn bounded_records_lose_nul_and_overlong_text_but_nothing_else() {
        let record = Record {
            title: Some("Lamp\0 shade".into()),
            description: Some("x".repeat(MAX_DESCRIPTION + 10)),
            specifics: [("Col\0or".to_string(), "é".repeat(5000))].into(),
            images: vec!["http://x/1.jpg".into(); MAX_IMAGES + 5],
            seller_score: Some(12),
            ..Record::default()
        };
        let kept = record.bounded();
        assert_eq!(kept.title.as_deref(), Some("Lamp shade"));
        assert_eq!(kept.description.unwrap().len(), MAX_DESCRIPTION);
        assert_eq!(kept.specifics["Color"].chars().count(), MAX_SHORT_FIELD);
        assert_eq!(kept.images.len(), MAX_IMAGES);
        assert_eq!(kept.seller_score, Some(12));
    }

    #[test]
    fn malformed_bodies_are_rejected_with_a_reason() {
        assert!(matches!(Job::parse(b"not json"), Err(JobError::Invalid(_))));
        assert!(matches!(
            Job::parse(br#"{"site":"fixture"}"#),
            Err(JobError::Invalid(_))
        ));
        assert!(matches!(
            Job::parse(br#"{"site":" ","url":"http://x/"}"#),
            Err(JobError::Empty("site"))
        ));
        let big = vec![b' '; MAX_JOB_BYTES + 1];
        assert!(matches!(Job::parse(&big), Err(JobError::TooLarge(_))));
    }
}
