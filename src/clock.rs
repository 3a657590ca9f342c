//! This machine's clock, in the unit every stored time uses: milliseconds since the Unix epoch.
//! For a time two machines compare (a pause, "enriched since"), read the database's clock
//! instead (`Store::db_now_ms`); this one is for local stamps (a snapshot's capture time, ids,
//! cut-offs of local files).

use std::time::{SystemTime, UNIX_EPOCH};

/// One day in epoch milliseconds; stats group snapshots by UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// Milliseconds since the Unix epoch on this machine's clock (0 before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
