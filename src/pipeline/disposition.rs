//! What happens next: every attempt ends in a [`Disposition`] the worker acts on, and every
//! failure ([`AttemptError`]) says which one through `disposition()` — by cause, never by text.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::MAX_PAGE_BYTES;
use crate::classify::PageClass;
use crate::extract::ExtractError;
use crate::metrics::DeadLetterReason;
use crate::render::RenderError;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;

/// What the worker does with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Republish to a delay tier with the next attempt number, then ack.
    Retry {
        after: Duration,
        reason: String,
    },
    /// Park in the dead-letter queue with the reason, then ack.
    DeadLetter {
        reason: String,
    },
    /// The store is down: stop consuming and leave the delivery to the broker.
    Halt {
        reason: String,
    },
    /// Not attempted (the worker is shutting down): give the delivery back untouched.
    GiveBack,
}

/// Why an attempt did not store the listing.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The class, and what on the page showed it when that is not the obvious (a failed data
    /// request, a state the site declares).
    #[error("page classified as {}{}", .0.name(), .1.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Page(PageClass, Option<String>),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the worker is shutting down")]
    ShuttingDown,
    #[error("page too large: {0} bytes of HTML, over the {MAX_PAGE_BYTES}-byte limit")]
    TooLarge(usize),
}

/// Retry delays: exponential with jitter, computed by backon.
#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    pub min: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    /// 2 s doubling to 5 min: long enough that a blocked profile cools down, short enough that a
    /// transient 5xx is retried within the run.
    fn default() -> Self {
        BackoffPolicy {
            min: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// The delay before attempt `attempt + 1`, given that `attempt` (1-based) just failed.
    pub fn delay(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(attempt as usize)
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max)
    }
}

impl AttemptError {
    /// What happens next, before the attempt budget is considered.
    pub fn disposition(&self, attempt: u32, policy: &BackoffPolicy) -> Disposition {
        let reason = self.to_string();
        match self {
            // The database refused this listing's row: waiting will not change its mind.
            AttemptError::Store(e) if e.is_rejected() => Disposition::DeadLetter { reason },
            AttemptError::Store(_) => Disposition::Halt { reason },
            // A full or failing disk is the worker's problem, not the job's: halt until it
            // takes writes again instead of burning every job's attempts.
            AttemptError::Snapshot(e) if e.is_disk_fault() => Disposition::Halt { reason },
            AttemptError::ShuttingDown => Disposition::GiveBack,
            AttemptError::Extract(_) | AttemptError::TooLarge(_) => {
                Disposition::DeadLetter { reason }
            }
            AttemptError::Page(PageClass::RateLimited { retry_after }, _) => Disposition::Retry {
                after: *retry_after,
                reason,
            },
            AttemptError::Page(PageClass::Blocked, _) => Disposition::Retry {
                // Blocks cool down slower than transient errors.
                after: policy.delay(attempt + 2),
                reason,
            },
            _ => Disposition::Retry {
                after: policy.delay(attempt),
                reason,
            },
        }
    }
}

/// The `reason` label of a failure that dead-letters its job; `exhausted`: it would have been
/// retried but the attempt budget is spent.
pub(super) fn dead_letter_reason(error: &AttemptError, exhausted: bool) -> DeadLetterReason {
    match error {
        _ if exhausted => DeadLetterReason::AttemptsExhausted,
        AttemptError::Extract(_) => DeadLetterReason::ExtractError,
        AttemptError::TooLarge(_) => DeadLetterReason::TooLarge,
        AttemptError::Store(_) => DeadLetterReason::Rejected,
        // Nothing else dead-letters before its budget is spent.
        _ => DeadLetterReason::AttemptsExhausted,
    }
}

/// The attempt log's name for a failure.
pub(super) fn outcome_of(error: &AttemptError) -> &'static str {
    match error {
        AttemptError::Page(class, _) => class.name(),
        AttemptError::Render(_) => "render_error",
        AttemptError::Extract(_) => "extract_error",
        AttemptError::Snapshot(_) => "snapshot_error",
        AttemptError::Store(_) => "store_error",
        AttemptError::ShuttingDown => "shutting_down",
        AttemptError::TooLarge(_) => "too_large",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_twice_the_cap() {
        let policy = BackoffPolicy::default();
        let first = policy.delay(1);
        assert!(first >= policy.min && first <= policy.min * 2, "{first:?}");
        for attempt in 1..20 {
            let d = policy.delay(attempt);
            assert!(d >= policy.min, "{attempt}: {d:?}");
            assert!(d <= policy.max * 2, "{attempt}: {d:?}");
        }
        assert!(policy.delay(8) >= Duration::from_secs(256));
    }

    #[test]
    fn errors_map_to_dispositions() {
        let policy = BackoffPolicy::default();
        let limited = AttemptError::Page(
            PageClass::RateLimited {
                retry_after: Duration::from_secs(9),
            },
            Some("its data request http://x/api answered 429".into()),
        );
        assert!(matches!(
            limited.disposition(1, &policy),
            Disposition::Retry { after, reason } if after == Duration::from_secs(9)
                && reason.ends_with("rate_limited (its data request http://x/api answered 429)")
        ));
        let extract = AttemptError::Extract(ExtractError::NoTitle);
        assert!(matches!(
            extract.disposition(1, &policy),
            Disposition::DeadLetter { .. }
        ));
        let refused = sqlx::Error::Protocol("index row size 6016 exceeds btree maximum".into());
        let unavailable = AttemptError::Store(StoreError::from(refused));
        assert!(matches!(
            unavailable.disposition(1, &policy),
            Disposition::Halt { .. }
        ));
        let rejected = AttemptError::Store(StoreError::Rejected(sqlx::Error::RowNotFound));
        assert!(matches!(
            rejected.disposition(1, &policy),
            Disposition::DeadLetter { .. }
        ));
        let full = AttemptError::Snapshot(SnapshotError::Write {
            path: "x".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert!(matches!(
            full.disposition(1, &policy),
            Disposition::Halt { .. }
        ));
        let too_large = AttemptError::TooLarge(MAX_PAGE_BYTES + 1);
        assert!(matches!(
            too_large.disposition(1, &policy),
            Disposition::DeadLetter { reason } if reason.contains("page too large")
        ));
        let crashed = AttemptError::Render(RenderError::Crashed { url: "u".into() });
        assert!(matches!(
            crashed.disposition(1, &policy),
            Disposition::Retry { .. }
        ));
        let blocked = AttemptError::Page(PageClass::Blocked, None);
        assert!(matches!(
            blocked.disposition(1, &policy),
            Disposition::Retry { after, .. } if after >= Duration::from_secs(8)
        ));
    }
}
