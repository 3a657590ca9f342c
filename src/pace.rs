//! Politeness: per-site pacing shared by every tab of a worker and, through the store's `site_pace`
//! row, by every worker. Requests to a site are spaced at its current rate; a 429 halves the rate
//! and pauses the site for the Retry-After (for all workers, which read the shared row), success
//! raises it again slowly (additive increase), and the shared slowdown decays when the site is
//! quiet. A block cools this worker's profile down for the site.

use std::collections::HashMap;
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
            let now = Instant::now();
            let slot = pace.next_slot.max(pace.paused_until).max(now);
            pace.next_slot = slot + Duration::from_secs_f64(1.0 / pace.rate);
            slot
        };
        tokio::time::sleep_until(slot).await;
        Ok(())
    }

    /// A page came back fine: speed up — by 5% per page up to 80% of the rate that last drew a
    /// 429, then by a thousandth of the maximum per page, so the limit is probed rarely.
    pub fn on_success(&self, site: &str) {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pace) = sites.get_mut(site) {
            let step = if pace.rate < 0.8 * pace.ceiling {
                pace.rate * 0.05
            } else {
                pace.max_rate / 1000.0
            };
            pace.rate = (pace.rate + step).min(pace.max_rate);
            pace.ceiling = pace.ceiling.max(pace.rate);
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
            // Several tabs see the same 429 burst: only the first one lowers the ceiling.
            if pace.rate > pace.ceiling / 2.0 + f64::EPSILON {
                pace.ceiling = pace.rate;
                pace.rate = (pace.rate / 2.0).max(MIN_RATE);
            }
            pace.paused_until = pace.paused_until.max(Instant::now() + retry_after);
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
        pace.last_sync = Some(Instant::now());
        let Some((pause_left_ms, rate_milli, age_ms)) = shared else {
            return Ok(());
        };
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
        }
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

    #[test]
    fn a_shared_slowdown_recovers_when_the_site_is_quiet() {
        assert_eq!(shared_rate(2000, 0), 2.0);
        assert!((shared_rate(2000, 15_000) - 4.0).abs() < 1e-9);
        assert!(shared_rate(2000, 60_000) > 30.0);
    }
}
