//! Shared server state: configuration, counters, the id → listing registry.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, USER_AGENT};

use super::data::{self, mix};
use super::defences::Defender;
use super::price_steps;
use super::{Counters, FixtureConfig, TruthListing};

/// Locks a mutex, ignoring poisoning (every critical section leaves consistent state).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Requests,
    ListingPages,
    ApiCalls,
    SearchPages,
    Challenges,
    RateLimited,
    Captchas,
    ServerErrors,
    NotFound,
}

/// Lock-free request counters.
#[derive(Debug, Default)]
pub(crate) struct CounterSet([AtomicU64; 9]);

impl CounterSet {
    pub(crate) fn bump(&self, counter: Counter) {
        self.0[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let get = |c: Counter| self.0[c as usize].load(Ordering::Relaxed);
        Counters {
            requests: get(Counter::Requests),
            listing_pages: get(Counter::ListingPages),
            api_calls: get(Counter::ApiCalls),
            search_pages: get(Counter::SearchPages),
            challenges: get(Counter::Challenges),
            rate_limited: get(Counter::RateLimited),
            captchas: get(Counter::Captchas),
            server_errors: get(Counter::ServerErrors),
            not_found: get(Counter::NotFound),
        }
    }

    pub(crate) fn reset(&self) {
        self.0.iter().for_each(|c| c.store(0, Ordering::Relaxed));
    }
}

/// Which (query, index) each known listing id came from.
#[derive(Debug, Default)]
struct Registry {
    ids: HashMap<u32, (Arc<str>, usize)>,
    queries: HashSet<Arc<str>>,
}

/// Everything the request handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: FixtureConfig,
    pub(crate) base_url: String,
    pub(crate) counters: CounterSet,
    pub(crate) defender: Defender,
    registry: Mutex<Registry>,
    visitor_seq: AtomicU64,
    /// The price step every listing is shown at (see `price_steps`); 0 = the plain catalogue.
    price_step: AtomicU32,
    /// Listing pages served past the defences, per requested id: what tests count renders by.
    served: Mutex<HashMap<String, u64>>,
}

impl AppState {
    pub(crate) fn new(mut config: FixtureConfig, base_url: String) -> Self {
        config.per_page = config.per_page.max(1);
        config.listings_per_query = config.listings_per_query.min(data::MAX_LISTINGS);
        AppState {
            defender: Defender::new(config.defences.clone(), config.seed),
            config,
            base_url,
            counters: CounterSet::default(),
            registry: Mutex::default(),
            visitor_seq: AtomicU64::new(0),
            price_step: AtomicU32::new(0),
            served: Mutex::default(),
        }
    }

    /// Number of listings for a normalised query (none for the empty query).
    pub(crate) fn total(&self, query: &str) -> usize {
        if query.is_empty() {
            0
        } else {
            self.config.listings_per_query
        }
    }

    /// Makes the ids of `query`'s listings resolvable on `/item/ID`.
    pub(crate) fn register(&self, query: &str) {
        let total = self.total(query);
        let mut registry = lock(&self.registry);
        if total == 0 || registry.queries.contains(query) {
            return;
        }
        let query: Arc<str> = Arc::from(query);
        for index in 0..total {
            let id = data::listing_id(self.config.seed, &query, index);
            registry
                .ids
                .entry(id)
                .or_insert_with(|| (Arc::clone(&query), index));
        }
        registry.queries.insert(query);
    }

    /// Listings `range` of `query` (registering the query first).
    pub(crate) fn listings(&self, query: &str, range: std::ops::Range<usize>) -> Vec<TruthListing> {
        let query = data::normalise_query(query);
        self.register(&query);
        let end = range.end.min(self.total(&query));
        (range.start.min(end)..end)
            .map(|i| self.at_step(data::listing(self.config.seed, &self.base_url, &query, i)))
            .collect()
    }

    /// The whole ground truth of `query`.
    pub(crate) fn ground_truth(&self, query: &str) -> Vec<TruthListing> {
        self.listings(query, 0..usize::MAX)
    }

    /// The listing behind a registered id (gone listings included).
    pub(crate) fn lookup(&self, id: &str) -> Option<TruthListing> {
        let id: u32 = id.parse().ok()?;
        let (query, index) = lock(&self.registry).ids.get(&id).cloned()?;
        let listing = data::listing(self.config.seed, &self.base_url, &query, index);
        Some(self.at_step(listing))
    }

    /// Moves every listing's price to step `step` (see `price_steps`).
    pub(crate) fn set_price_step(&self, step: u32) {
        self.price_step.store(step, Ordering::Relaxed);
    }

    pub(crate) fn price_step(&self) -> u32 {
        self.price_step.load(Ordering::Relaxed)
    }

    /// `listing` at the current price step.
    fn at_step(&self, listing: TruthListing) -> TruthListing {
        price_steps::at_step(listing, self.config.seed, self.price_step())
    }

    /// Records that the page of listing `id` was served past the defences.
    pub(crate) fn count_served(&self, id: &str) {
        *lock(&self.served).entry(id.to_string()).or_default() += 1;
    }

    /// Listing pages served past the defences so far, per id.
    pub(crate) fn served(&self) -> HashMap<String, u64> {
        lock(&self.served).clone()
    }

    /// A fresh, deterministic-per-sequence visitor id for the `visitor` cookie.
    pub(crate) fn new_visitor_id(&self) -> String {
        let n = self.visitor_seq.fetch_add(1, Ordering::Relaxed);
        format!(
            "v{:012x}",
            mix(self.config.seed ^ mix(n)) & 0xffff_ffff_ffff
        )
    }
}

/// The value of cookie `name` in the request, if any.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// Client identity for the defences: the `visitor` cookie, else the User-Agent.
pub(crate) fn client_identity(headers: &HeaderMap) -> String {
    match cookie(headers, "visitor") {
        Some(visitor) => format!("visitor:{visitor}"),
        None => {
            let agent = headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("ua:{agent}")
        }
    }
}
