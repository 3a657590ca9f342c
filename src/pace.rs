//! Politeness: per-site pacing shared by every tab of a worker and, through the store's `site_pace`
//! row, by every worker. Requests to a site are spaced at its current rate; a 429 halves the rate
//! and pauses the site for the Retry-After (for all workers, which read the shared row), success
//! raises it again slowly (additive increase), and the shared slowdown decays when the site is
//! quiet. A block cools this worker's profile down for the site.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::classify::MAX_RETRY_AFTER;
use crate::store::{Store, StoreError};

/// How often a worker re-reads the shared pace of a site.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Slowest pace we fall to, in requests per second.
const MIN_RATE: f64 = 0.5;
/// A shared slowdown doubles back every this long when nobody reports a new 429.
const RECOVERY_HALF_LIFE_MS: f64 = 15_000.0;
/// How long the rate that last drew a 429 is what a new worker starts from.
const LEARNED_FOR_MS: i64 = 3_600_000;

/// The window over which the rate actually achieved is measured.
const ACHIEVED_WINDOW: Duration = Duration::from_secs(2);

/// The pace of one site in this worker.
#[derive(Debug, Clone)]
struct SitePace {
    max_rate: f64,
    rate: f64,
    /// The rate at which the site last said 429: approached quickly, passed slowly.
    ceiling: f64,
    next_slot: Instant,
    paused_until: Instant,
    last_sync: Option<Instant>,
    /// Slots handed out within the last [`ACHIEVED_WINDOW`]: the rate the site really saw,
    /// which is lower than `rate` when the tabs, not the pace, are the limit.
    granted: VecDeque<Instant>,
    /// When a 429 last lowered the rate.
    last_cut: Option<Instant>,
}

/// Paces requests per site.
pub struct Pacer {
    store: Store,
    sites: Mutex<HashMap<String, SitePace>>,
}

impl Pacer {
    pub fn new(store: Store) -> Pacer {
        Pacer {
            store,
            sites: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for this worker's next slot on `site` (at most `max_rps` per second).
    pub async fn acquire(&self, site: &str, max_rps: u32) -> Result<(), StoreError> {
        if self.needs_sync(site) {
            self.sync(site).await?;
        }
        let slot = {
            let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
            let pace = sites
                .entry(site.to_string())
                .or_insert_with(|| SitePace::new(max_rps));
            pace.grant(Instant::now())
        };
        tokio::time::sleep_until(slot).await;
        Ok(())
    }

    /// A page came back fine: speed up (see [`SitePace::succeeded`]).
    pub fn on_success(&self, site: &str) {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pace) = sites.get_mut(site) {
            pace.succeeded();
        }
    }

    /// The site answered 429: halve the rate, pause it for `retry_after`, and tell every worker.
    pub async fn on_rate_limited(
        &self,
        site: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        let rate = {
            let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
            let Some(pace) = sites.get_mut(site) else {
                return Ok(());
            };
            pace.limited(Instant::now(), retry_after);
            pace.rate
        };
        tracing::info!(
            site,
            rate,
            ?retry_after,
            "Rate limited; slowing the site down."
        );
        self.store
            .slow_site(site, retry_after, (rate * 1000.0) as i64)
            .await
    }

    /// The profile was blocked on `site`: this worker leaves the site alone for `cooldown`.
    pub fn cool_down(&self, site: &str, cooldown: Duration) {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pace) = sites.get_mut(site) {
            pace.paused_until = pace.paused_until.max(Instant::now() + cooldown);
        }
    }

    /// How long this worker still leaves `site` alone (a shared pause or a cooldown).
    pub fn paused_for(&self, site: &str) -> Duration {
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites.get(site).map_or(Duration::ZERO, |p| {
            p.paused_until.saturating_duration_since(Instant::now())
        })
    }

    /// Reads the shared pace of `site` now (normally done at most once a second by `acquire`).
    pub async fn refresh(&self, site: &str, max_rps: u32) -> Result<(), StoreError> {
        self.sites
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(site.to_string())
            .or_insert_with(|| SitePace::new(max_rps));
        self.sync(site).await
    }

    /// The current rate of a site in this worker (requests per second).
    pub fn rate(&self, site: &str) -> Option<f64> {
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites.get(site).map(|p| p.rate)
    }

    fn needs_sync(&self, site: &str) -> bool {
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites
            .get(site)
            .is_none_or(|p| p.last_sync.is_none_or(|t| t.elapsed() >= SYNC_EVERY))
    }

    /// Adopts the shared pause and slowdown of other workers.
    async fn sync(&self, site: &str) -> Result<(), StoreError> {
        let shared = self.store.site_pace(site).await?;
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pace) = sites.get_mut(site) else {
            // First use: the entry is created by `acquire` right after; sync again then.
            return Ok(());
        };
        let first = pace.last_sync.is_none();
        pace.last_sync = Some(Instant::now());
        let Some((pause_left_ms, rate_milli, age_ms)) = shared else {
            return Ok(());
        };
        if first {
            pace.learn(rate_milli, age_ms);
        }
        if let Some(wait) = shared_pause(pause_left_ms) {
            pace.paused_until = pace.paused_until.max(Instant::now() + wait);
        }
        let recovered = shared_rate(rate_milli, age_ms).min(pace.max_rate);
        if recovered < pace.rate {
            pace.ceiling = pace.ceiling.min(pace.rate);
            pace.rate = recovered;
        }
        Ok(())
    }
}

impl SitePace {
    fn new(max_rps: u32) -> SitePace {
        let max_rate = f64::from(max_rps.max(1));
        SitePace {
            max_rate,
            rate: max_rate,
            ceiling: max_rate,
            next_slot: Instant::now(),
            paused_until: Instant::now(),
            last_sync: None,
            granted: VecDeque::new(),
            last_cut: None,
        }
    }

    /// A worker new to the site starts from what the fleet learned, not from the configured
    /// rate: the shared row holds the rate a worker fell to at its last 429 (half the rate the
    /// site saw then), so the site's tolerated rate is about twice that; the worker starts at 80%
    /// of it. A row older than [`LEARNED_FOR_MS`] is forgotten.
    fn learn(&mut self, rate_milli: i64, age_ms: i64) {
        if !(0..LEARNED_FOR_MS).contains(&age_ms) || rate_milli <= 0 {
            return;
        }
        let tolerated = (2.0 * rate_milli as f64 / 1000.0).clamp(MIN_RATE, self.max_rate);
        self.ceiling = tolerated;
        self.rate = self.rate.min(0.8 * tolerated).max(MIN_RATE);
    }

    /// The next slot at or after `now`, taken.
    fn grant(&mut self, now: Instant) -> Instant {
        let slot = self.next_slot.max(self.paused_until).max(now);
        self.next_slot = slot + Duration::from_secs_f64(1.0 / self.rate);
        while self
            .granted
            .front()
            .is_some_and(|t| slot.saturating_duration_since(*t) > ACHIEVED_WINDOW)
        {
            self.granted.pop_front();
        }
        self.granted.push_back(slot);
        slot
    }

    /// The rate the site saw over the last window, in requests per second.
    /// (Over the time since the window's first slot, so a worker that just started is not
    /// taken for a slow one.)
    fn achieved(&self, now: Instant) -> f64 {
        let mut recent = self
            .granted
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= ACHIEVED_WINDOW);
        let Some(first) = recent.next() else {
            return self.rate;
        };
        let span = now.saturating_duration_since(*first).as_secs_f64();
        (1 + recent.count()) as f64 / span.max(1.0 / self.rate)
    }

    /// Additive increase: by 5% per page up to 80% of the rate that last drew a 429, then by
    /// 1% of that rate per second up to it, and past it by 0.5% per second, so the limit is
    /// approached quickly and probed rarely.
    fn succeeded(&mut self) {
        let per_second = if self.rate < 0.8 * self.ceiling {
            self.rate * 0.05 * self.rate
        } else if self.rate < self.ceiling {
            0.01 * self.ceiling
        } else {
            0.005 * self.ceiling
        };
        // One success of `rate` a second: the step per success is the step per second ÷ rate.
        self.rate = (self.rate + per_second / self.rate).min(self.max_rate);
    }

    /// Multiplicative decrease on a 429: the ceiling becomes the rate the site really saw (not
    /// a configured rate the tabs never reached, which halving would not slow), the rate half of
    /// it, and the site pauses for the Retry-After. Several tabs see the same 429 burst: only
    /// the first one lowers the rate (the others answer within the pause it started, or within
    /// a second of it).
    fn limited(&mut self, now: Instant, retry_after: Duration) {
        let same_burst = now < self.paused_until
            || self
                .last_cut
                .is_some_and(|cut| now.saturating_duration_since(cut) < Duration::from_secs(1));
        if !same_burst {
            let seen = self.achieved(now).clamp(MIN_RATE, self.rate);
            self.ceiling = seen;
            self.rate = (seen / 2.0).max(MIN_RATE);
            self.last_cut = Some(now);
        }
        self.paused_until = self.paused_until.max(now + retry_after);
    }
}

/// The wait a shared pause asks for, clamped to the longest Retry-After we honour: a row written
/// by a worker whose clock ran ahead (or a hostile Retry-After) cannot stall a site for longer.
fn shared_pause(pause_left_ms: i64) -> Option<Duration> {
    (pause_left_ms > 0).then(|| Duration::from_millis(pause_left_ms as u64).min(MAX_RETRY_AFTER))
}

/// The shared rate `age_ms` after it was lowered: it doubles back every half-life.
fn shared_rate(rate_milli: i64, age_ms: i64) -> f64 {
    let rate = rate_milli as f64 / 1000.0;
    rate * 2f64.powf(age_ms.max(0) as f64 / RECOVERY_HALF_LIFE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_pause_is_clamped_to_the_longest_retry_after() {
        assert_eq!(shared_pause(-5), None);
        assert_eq!(shared_pause(1500), Some(Duration::from_millis(1500)));
        assert_eq!(shared_pause(86_400_000), Some(MAX_RETRY_AFTER));
    }

    /// A site that allows `rps` requests a second (a token bucket, burst = rps), asked by
    /// `tabs` tabs whose pages take `page` each, `pages` in all, paced from `max_rps`: returns
    /// the 429s drawn and the run's length (virtual time; every page is retried until served).
    fn simulate(rps: f64, max_rps: u32, tabs: usize, page: Duration, pages: usize) -> (usize, f64) {
        let start = Instant::now();
        let mut pace = SitePace::new(max_rps);
        pace.next_slot = start;
        pace.paused_until = start;
        let (mut tokens, mut last) = (rps, start);
        let mut free: Vec<Instant> = vec![start; tabs];
        let (mut served, mut limited, mut end) = (0, 0, start);
        while served < pages {
            // The tab that frees first takes the next slot.
            let (i, at) = free
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .map(|(i, t)| (i, *t))
                .unwrap();
            let slot = pace.grant(at);
            tokens = (tokens + slot.saturating_duration_since(last).as_secs_f64() * rps).min(rps);
            last = slot;
            let done = slot + page;
            if tokens >= 1.0 {
                tokens -= 1.0;
                served += 1;
                pace.succeeded();
            } else {
                limited += 1;
                pace.limited(done, Duration::from_secs(1));
            }
            free[i] = done;
            end = end.max(done);
        }
        (limited, end.duration_since(start).as_secs_f64())
    }

    #[test]
    fn aimd_finds_a_sites_limit_from_a_configured_rate_five_times_too_high() {
        // 10 requests/s tolerated, 50 configured, 8 tabs of 300 ms pages: the tabs alone could
        // ask 26/s, so halving the configured rate would not slow them; halving what the site saw
        // does.
        let (limited, secs) = simulate(10.0, 50, 8, Duration::from_millis(300), 300);
        let rate = 300.0 / secs;
        eprintln!("{limited} 429s, {rate:.2} pages/s");
        assert!(
            limited as f64 / 300.0 <= 0.1,
            "{limited} 429s for 300 pages"
        );
        assert!(rate >= 7.0, "{rate:.1} pages/s of the 10 allowed");
    }

    #[test]
    fn aimd_leaves_a_site_that_never_limits_at_its_configured_rate() {
        let (limited, secs) = simulate(1000.0, 20, 4, Duration::from_millis(100), 400);
        assert_eq!(limited, 0);
        assert!(400.0 / secs > 19.0, "{:.1} pages/s", 400.0 / secs);
    }

    #[test]
    fn a_new_worker_starts_from_the_learned_rate_not_the_configured_one() {
        let mut fresh = SitePace::new(50);
        // Another worker fell to 4 requests/s at a 429 a minute ago: the site takes about 8.
        fresh.learn(4_000, 60_000);
        assert!((fresh.ceiling - 8.0).abs() < 1e-9);
        assert!((fresh.rate - 6.4).abs() < 1e-9);
        let mut stale = SitePace::new(50);
        stale.learn(4_000, 2 * LEARNED_FOR_MS);
        assert_eq!(stale.rate, 50.0);
    }

    #[test]
    fn a_shared_slowdown_recovers_when_the_site_is_quiet() {
        assert_eq!(shared_rate(2000, 0), 2.0);
        assert!((shared_rate(2000, 15_000) - 4.0).abs() < 1e-9);
        assert!(shared_rate(2000, 60_000) > 30.0);
    }
}
