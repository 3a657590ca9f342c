//! The rule a watch applies to a new price observation: a pure function of the watch's rule,
//! the listing's previous observation and the new one (integers only, no floats), so every edge
//! — equality, currency mismatch, first observation — is unit-tested without a database.

use serde::Serialize;

/// What a watch fires on, and in which currency.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchRule {
    /// Fires when a price is first seen below this many minor units, or crosses below it.
    pub below_minor: Option<i64>,
    /// Fires when a price is at least this many percent (1–99) below the previous observation
    /// in the same currency.
    pub drop_percent: Option<i64>,
    /// When set, only prices in this ISO code count.
    pub currency: Option<String>,
}

/// An observed price: integer minor units and an ISO code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed<'a> {
    pub minor: i64,
    pub currency: &'a str,
}

/// Why an alert fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Below,
    Drop,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Below => "below",
            Reason::Drop => "drop",
        }
    }
}

impl WatchRule {
    /// Whether observing `new` after `previous` (the listing's observation before it, if any)
    /// fires this rule. A previous price in another currency says nothing about this one and
    /// counts as absent. `below` is strict (a price equal to the threshold is not below it) and
    /// wins when both rules fire (one alert per watch and observation). `drop` needs
    /// `new * 100 <= previous * (100 - p)`, in integers, and a price that actually fell.
    pub fn fires(&self, previous: Option<Observed<'_>>, new: Observed<'_>) -> Option<Reason> {
        if self.currency.as_deref().is_some_and(|c| c != new.currency) {
            return None;
        }
        let previous = previous.filter(|p| p.currency == new.currency);
        if let Some(threshold) = self.below_minor {
            let was_below = previous.is_some_and(|p| p.minor < threshold);
            if new.minor < threshold && !was_below {
                return Some(Reason::Below);
            }
        }
        if let (Some(percent), Some(previous)) = (self.drop_percent, previous) {
            let (new_minor, old) = (i128::from(new.minor), i128::from(previous.minor));
            let dropped = new_minor * 100 <= old * (100 - i128::from(percent));
            if new_minor < old && dropped {
                return Some(Reason::Drop);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minor: i64, currency: &str) -> Observed<'_> {
        Observed { minor, currency }
    }

    fn below(threshold: i64) -> WatchRule {
        WatchRule {
            below_minor: Some(threshold),
            ..WatchRule::default()
        }
    }

    fn drop(percent: i64) -> WatchRule {
        WatchRule {
            drop_percent: Some(percent),
            ..WatchRule::default()
        }
    }

    #[test]
    fn below_fires_when_first_seen_below_or_crossing_below() {
        let rule = below(1000);
        assert_eq!(rule.fires(None, at(999, "USD")), Some(Reason::Below));
        assert_eq!(
            rule.fires(None, at(1000, "USD")),
            None,
            "equal is not below"
        );
        assert_eq!(rule.fires(None, at(1001, "USD")), None);
        let crossing = rule.fires(Some(at(1000, "USD")), at(999, "USD"));
        assert_eq!(crossing, Some(Reason::Below), "from the threshold itself");
        let crossing = rule.fires(Some(at(5000, "USD")), at(1, "USD"));
        assert_eq!(crossing, Some(Reason::Below));
    }

    #[test]
    fn below_does_not_fire_again_while_the_price_stays_below() {
        let rule = below(1000);
        assert_eq!(rule.fires(Some(at(999, "USD")), at(500, "USD")), None);
        assert_eq!(rule.fires(Some(at(500, "USD")), at(500, "USD")), None);
        assert_eq!(rule.fires(Some(at(500, "USD")), at(1000, "USD")), None);
        assert_eq!(rule.fires(Some(at(500, "USD")), at(2000, "USD")), None);
    }

    #[test]
    fn drop_fires_at_exactly_the_percent_and_beyond_in_integer_math() {
        let rule = drop(25);
        assert_eq!(
            rule.fires(Some(at(1000, "USD")), at(750, "USD")),
            Some(Reason::Drop)
        );
        assert_eq!(rule.fires(Some(at(1000, "USD")), at(751, "USD")), None);
        assert_eq!(
            rule.fires(Some(at(1000, "USD")), at(1, "USD")),
            Some(Reason::Drop)
        );
        // 4 → 3 is exactly 25 %: 3 * 100 <= 4 * 75.
        assert_eq!(
            rule.fires(Some(at(4, "JPY")), at(3, "JPY")),
            Some(Reason::Drop)
        );
        assert_eq!(rule.fires(Some(at(3, "JPY")), at(3, "JPY")), None);
        let huge = rule.fires(Some(at(i64::MAX, "USD")), at(i64::MAX / 2, "USD"));
        assert_eq!(huge, Some(Reason::Drop), "no overflow");
    }

    #[test]
    fn drop_needs_a_previous_observation_and_a_fall() {
        let rule = drop(10);
        assert_eq!(rule.fires(None, at(1, "USD")), None, "first observation");
        assert_eq!(rule.fires(Some(at(1000, "USD")), at(1000, "USD")), None);
        assert_eq!(rule.fires(Some(at(1000, "USD")), at(2000, "USD")), None);
        assert_eq!(rule.fires(Some(at(0, "USD")), at(0, "USD")), None);
    }

    #[test]
    fn a_previous_price_in_another_currency_is_no_comparison() {
        assert_eq!(
            drop(10).fires(Some(at(100_000, "JPY")), at(500, "USD")),
            None
        );
        let rule = below(1000);
        let switched = rule.fires(Some(at(500, "EUR")), at(900, "USD"));
        assert_eq!(switched, Some(Reason::Below), "first seen below in USD");
    }

    #[test]
    fn a_watch_in_one_currency_ignores_prices_in_others() {
        let rule = WatchRule {
            below_minor: Some(1000),
            drop_percent: Some(10),
            currency: Some("EUR".into()),
        };
        assert_eq!(rule.fires(None, at(1, "USD")), None);
        assert_eq!(rule.fires(Some(at(5000, "USD")), at(1, "USD")), None);
        assert_eq!(rule.fires(None, at(1, "EUR")), Some(Reason::Below));
        assert_eq!(
            rule.fires(Some(at(5000, "EUR")), at(4500, "EUR")),
            Some(Reason::Drop)
        );
    }

    #[test]
    fn below_wins_when_both_rules_fire() {
        let rule = WatchRule {
            below_minor: Some(1000),
            drop_percent: Some(50),
            currency: None,
        };
        let both = rule.fires(Some(at(2000, "USD")), at(900, "USD"));
        assert_eq!(both, Some(Reason::Below));
        let only_drop = rule.fires(Some(at(900, "USD")), at(400, "USD"));
        assert_eq!(only_drop, Some(Reason::Drop));
        assert_eq!(rule.fires(Some(at(900, "USD")), at(800, "USD")), None);
    }
}
