//! Price steps: a deterministic way to move the marketplace's prices, with ground truth per
//! step, for the watch and alert tests (`FixtureSite::set_price_step`, or
//! `POST /__admin/price-step/{n}` on `scrapefarm fixture-site`).
//!
//! Step 0 is the catalogue exactly as [`data::listing`] makes it. Step `k` applies one change
//! per step, in order, to every live listing's price of step `k - 1`; which change is a pure
//! function of `(seed, external id, step)`:
//! - 30 % of listings **drop** by 25–50 % (rounded down, so `new * 100 <= old * 75` always
//!   holds; never below 1 minor unit);
//! - 20 % **rise** by 5–30 % (at least 1 minor unit);
//! - the other half stay **unchanged**.
//!
//! Gone listings have no price and stay gone; the price text is re-rendered in the listing's
//! display style.

use super::TruthListing;
use super::data::{PriceStyle, mix};

/// What step `step` does to one listing's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Down by this many percent (25–50).
    Drop(i64),
    /// Up by this many percent (5–30).
    Rise(i64),
    Unchanged,
}

/// The change step `step` (≥ 1) makes to the listing `external_id`.
pub(crate) fn change(seed: u64, external_id: &str, step: u32) -> Change {
    let id: u64 = external_id.parse().unwrap_or(0);
    let roll = mix(seed ^ mix(u64::from(step) ^ 0x5052_4943_4553) ^ mix(id));
    let (kind, amount) = (roll % 100, (roll >> 32) as i64);
    match kind {
        0..30 => Change::Drop(25 + amount % 26),
        30..50 => Change::Rise(5 + amount % 26),
        _ => Change::Unchanged,
    }
}

/// `minor` after `change`, in integers.
pub(crate) fn apply(minor: i64, change: Change) -> i64 {
    match change {
        Change::Drop(percent) => (minor * (100 - percent) / 100).max(1),
        Change::Rise(percent) => minor + (minor * percent / 100).max(1),
        Change::Unchanged => minor,
    }
}

/// The listing as it stands at `step` (step 0 leaves it untouched).
pub(crate) fn at_step(mut listing: TruthListing, seed: u64, step: u32) -> TruthListing {
    let Some(mut minor) = listing.price_minor else {
        return listing;
    };
    if step == 0 {
        return listing;
    }
    for k in 1..=step {
        minor = apply(minor, change(seed, &listing.external_id, k));
    }
    let style = PriceStyle::for_index(listing.rank.saturating_sub(1));
    listing.price_minor = Some(minor);
    listing.price_text = Some(style.format(minor));
    listing
}

#[cfg(test)]
mod tests {
    use super::super::data;
    use super::*;

    fn catalogue(step: u32) -> Vec<TruthListing> {
        (0..200)
            .map(|i| at_step(data::listing(42, "http://h", "lamp", i), 42, step))
            .collect()
    }

    #[test]
    fn step_zero_is_the_catalogue_exactly() {
        let plain: Vec<_> = (0..200)
            .map(|i| data::listing(42, "http://h", "lamp", i))
            .collect();
        assert_eq!(catalogue(0), plain);
    }

    #[test]
    fn each_step_drops_some_prices_by_a_quarter_raises_some_and_keeps_the_rest() {
        for step in 1..=3 {
            let (before, after) = (catalogue(step - 1), catalogue(step));
            let (mut dropped, mut rose, mut same) = (0, 0, 0);
            for (old, new) in before.iter().zip(&after) {
                assert_eq!(old.external_id, new.external_id);
                let (Some(o), Some(n)) = (old.price_minor, new.price_minor) else {
                    assert_eq!(old.status, "gone");
                    continue;
                };
                match change(42, &old.external_id, step) {
                    Change::Drop(_) => {
                        assert!(n * 100 <= o * 75, "{o} → {n}");
                        dropped += 1;
                    }
                    Change::Rise(_) => {
                        assert!(n > o, "{o} → {n}");
                        rose += 1;
                    }
                    Change::Unchanged => {
                        assert_eq!(n, o);
                        same += 1;
                    }
                }
                assert_eq!(old.title, new.title, "only the price moves");
                assert_ne!(new.price_text, None);
            }
            assert!(
                dropped > 30 && rose > 20 && same > 60,
                "{dropped} {rose} {same}"
            );
        }
        assert_eq!(catalogue(2), catalogue(2), "deterministic");
    }

    #[test]
    fn price_text_follows_the_moved_price() {
        for listing in catalogue(1) {
            if let Some(minor) = listing.price_minor {
                let style = PriceStyle::for_index(listing.rank - 1);
                assert_eq!(listing.price_text, Some(style.format(minor)));
            }
        }
    }
}
