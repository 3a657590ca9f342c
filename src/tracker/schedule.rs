//! Schedules of recurring searches: `every` as an interval (`"30m"`, `"6h"`, `"1d"`, at least
//! 10 s) or a 5-field cron expression (`"0 */6 * * *"`, UTC, via `croner`). Parsed once when a
//! search is created; the scheduler asks it for the next run time after now.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// The shortest interval a schedule may have: shorter would hammer the site and the queue.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// When a search runs again.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every this long after the previous run was started.
    Every(Duration),
    /// At the times a 5-field cron expression names (UTC).
    Cron(Box<Cron>),
}

/// Why an `every` value is not a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "`{0}` is not a schedule: use an interval such as \"30m\", \"6h\" or \"1d\" (s, m, h, d), or a 5-field cron expression"
    )]
    Unrecognised(String),
    #[error("`{0}` is shorter than the minimum interval of 10s")]
    TooShort(String),
    #[error("`{text}` is not a valid cron expression: {reason}")]
    Cron { text: String, reason: String },
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Schedule, ScheduleError> {
        let text = text.trim();
        if let Some(interval) = parse_interval(text) {
            let interval = interval.ok_or_else(|| ScheduleError::Unrecognised(text.into()))?;
            if interval < MIN_INTERVAL {
                return Err(ScheduleError::TooShort(text.into()));
            }
            return Ok(Schedule::Every(interval));
        }
        if text.split_whitespace().count() != 5 {
            return Err(ScheduleError::Unrecognised(text.into()));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
        let cron = parser.parse(text).map_err(|e| ScheduleError::Cron {
            text: text.into(),
            reason: e.to_string(),
        })?;
        Ok(Schedule::Cron(Box::new(cron)))
    }
}

/// `Some(None)` for a number-and-unit text that overflows; `None` when it is not one at all.
fn parse_interval(text: &str) -> Option<Option<Duration>> {
    let unit = text.chars().last()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds))
            .map(Duration::from_secs),
    )
}

impl Schedule {
    /// The first run time after `now` (epoch ms); `None` when a cron expression names no
    /// future time.
    pub fn next_after(&self, now_ms: i64) -> Option<i64> {
        match self {
            Schedule::Every(interval) => {
                let ms = i64::try_from(interval.as_millis()).ok()?;
                now_ms.checked_add(ms)
            }
            Schedule::Cron(cron) => {
                let now: DateTime<Utc> = DateTime::from_timestamp_millis(now_ms)?;
                let next = cron.find_next_occurrence(&now, false).ok()?;
                Some(next.timestamp_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(text: &str) -> Result<Schedule, ScheduleError> {
        text.parse()
    }

    #[test]
    fn intervals_parse_in_seconds_minutes_hours_and_days() {
        for (text, secs) in [("10s", 10), ("30m", 1800), ("6h", 21_600), ("1d", 86_400)] {
            match every(text).unwrap() {
                Schedule::Every(d) => assert_eq!(d, Duration::from_secs(secs), "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(
            every("6h").unwrap().next_after(1_000),
            Some(1_000 + 21_600_000)
        );
    }

    #[test]
    fn short_empty_and_malformed_intervals_are_refused() {
        assert_eq!(
            every("9s").unwrap_err(),
            ScheduleError::TooShort("9s".into())
        );
        assert_eq!(
            every("0m").unwrap_err(),
            ScheduleError::TooShort("0m".into())
        );
        for bad in [
            "",
            "h",
            "6",
            "6x",
            "-6h",
            "6 h",
            "1.5h",
            "99999999999999999999d",
            "six hours",
        ] {
            assert!(
                matches!(every(bad), Err(ScheduleError::Unrecognised(_))),
                "{bad:?}: {:?}",
                every(bad)
            );
        }
    }

    #[test]
    fn five_field_cron_expressions_give_the_next_time_in_utc() {
        let schedule = every("0 */6 * * *").unwrap();
        // 2026-01-01T01:30:00Z → 06:00 the same day.
        let now = DateTime::parse_from_rfc3339("2026-01-01T01:30:00Z").unwrap();
        let next = schedule.next_after(now.timestamp_millis()).unwrap();
        let expected = DateTime::parse_from_rfc3339("2026-01-01T06:00:00Z").unwrap();
        assert_eq!(next, expected.timestamp_millis());
    }

    #[test]
    fn cron_with_seconds_or_bad_fields_is_refused() {
        assert!(matches!(
            every("0 0 */6 * * *"),
            Err(ScheduleError::Unrecognised(_))
        ));
        assert!(matches!(
            every("61 * * * *"),
            Err(ScheduleError::Cron { .. })
        ));
    }
}
