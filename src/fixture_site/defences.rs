//! Anti-bot defences for listing pages: token-bucket rate limit, JS challenge,
//! captcha with per-client cooldown, and random server errors.
//!
//! Order of checks for each `/item/*` request: rate limit (every request takes
//! a token), JS challenge, captcha (cooldown first), random 503.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Defences;
use super::data::{SplitMix64, mix};
use super::state::lock;

/// Why a listing request is not served normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 429; the client may retry after this many seconds (≥ 1).
    RateLimited { retry_after_secs: u64 },
    /// 503 JS challenge page.
    Challenge,
    /// 403 captcha page.
    Captcha,
    /// Random 503.
    Unavailable,
}

/// A global token bucket: `rate` tokens per second, burst `capacity`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rps: u32, now: Instant) -> Self {
        let rate = f64::from(rps.max(1));
        TokenBucket {
            rate,
            capacity: rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes a token, or says how many whole seconds until one is available.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// The defences' configuration plus their mutable state.
#[derive(Debug)]
pub(crate) struct Defender {
    config: Defences,
    rng: Mutex<SplitMix64>,
    bucket: Option<Mutex<TokenBucket>>,
    cooldowns: Mutex<HashMap<String, Instant>>,
    clearance: String,
}

impl Defender {
    pub(crate) fn new(config: Defences, seed: u64) -> Self {
        let now = Instant::now();
        Defender {
            bucket: config
                .rate_limit_rps
                .map(|rps| Mutex::new(TokenBucket::new(rps, now))),
            config,
            rng: Mutex::new(SplitMix64::new(mix(seed ^ 0xDEFE_0CE5))),
            cooldowns: Mutex::default(),
            clearance: format!("{:016x}", mix(seed ^ 0xC1EA_4A4C)),
        }
    }

    /// The `clearance` cookie value that lets a client past the JS challenge.
    pub(crate) fn clearance_token(&self) -> &str {
        &self.clearance
    }

    /// Decides what to do with one listing request from `identity`.
    pub(crate) fn check(
        &self,
        identity: &str,
        clearance: Option<&str>,
        now: Instant,
    ) -> Option<Verdict> {
        if let Some(bucket) = &self.bucket
            && let Err(retry_after_secs) = lock(bucket).take(now)
        {
            return Some(Verdict::RateLimited { retry_after_secs });
        }
        if clearance != Some(self.clearance.as_str()) && self.roll(self.config.challenge_rate) {
            return Some(Verdict::Challenge);
        }
        if self.captcha(identity, now) {
            return Some(Verdict::Captcha);
        }
        if self.roll(self.config.error_rate) {
            return Some(Verdict::Unavailable);
        }
        None
    }

    /// Decides what to do with one data API request from `identity` (when `api` is on): the
    /// page's defences but the JS challenge, which an XHR cannot pass.
    pub(crate) fn check_api(&self, identity: &str, now: Instant) -> Option<Verdict> {
        if !self.config.api {
            return None;
        }
        if let Some(bucket) = &self.bucket
            && let Err(retry_after_secs) = lock(bucket).take(now)
        {
            return Some(Verdict::RateLimited { retry_after_secs });
        }
        if self.captcha(identity, now) {
            return Some(Verdict::Captcha);
        }
        self.roll(self.config.error_rate)
            .then_some(Verdict::Unavailable)
    }

    /// How long the data API takes to answer for listing `id`.
    pub(crate) fn api_latency(&self, id: &str) -> Duration {
        let c = &self.config;
        let draw = (mix(id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)))
            % 10_000) as f64
            / 10_000.0;
        match draw < c.slow_api_rate {
            true => Duration::from_millis(c.slow_api_ms),
            false => Duration::from_millis(c.api_latency_ms),
        }
    }

    /// Whether captcha pages use a bot vendor's wording.
    pub(crate) fn vendor_captcha(&self) -> bool {
        self.config.vendor_captcha
    }

    /// True when `identity` is in a cooldown or draws a new captcha (which starts one).
    fn captcha(&self, identity: &str, now: Instant) -> bool {
        let mut cooldowns = lock(&self.cooldowns);
        if cooldowns.get(identity).is_some_and(|until| *until > now) {
            return true;
        }
        if !self.roll(self.config.captcha_rate) {
            return false;
        }
        if cooldowns.len() > 10_000 {
            cooldowns.retain(|_, until| *until > now);
        }
        let until = now + Duration::from_secs(self.config.captcha_cooldown_secs);
        cooldowns.insert(identity.to_string(), until);
        true
    }

    /// True with probability `p` (never for p ≤ 0, always for p ≥ 1).
    fn roll(&self, p: f64) -> bool {
        if p <= 0.0 || p.is_nan() {
            false
        } else if p >= 1.0 {
            true
        } else {
            lock(&self.rng).next_f64() < p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captcha_cooldown_applies_to_one_identity_only() {
        let defences = Defences {
            captcha_rate: 1.0,
            captcha_cooldown_secs: 60,
            ..Defences::default()
        };
        let mut defender = Defender::new(defences, 1);
        let now = Instant::now();
        assert_eq!(defender.check("ua:a", None, now), Some(Verdict::Captcha));
        defender.config.captcha_rate = 0.0;
        assert_eq!(
            defender.check("ua:a", None, now + Duration::from_secs(30)),
            Some(Verdict::Captcha)
        );
        assert_eq!(defender.check("ua:b", None, now), None);
        assert_eq!(
            defender.check("ua:a", None, now + Duration::from_secs(61)),
            None
        );
    }

    #[test]
    fn token_bucket_refills_over_time() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(2, now);
        assert!(bucket.take(now).is_ok());
        assert!(bucket.take(now).is_ok());
        assert_eq!(bucket.take(now), Err(1));
        assert!(bucket.take(now + Duration::from_millis(600)).is_ok());
    }
}
