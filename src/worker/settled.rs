//! After a delivery is settled for good (acked or dead-lettered), the job's search learns how it
//! ended: `store::search_jobs` counts it and, when it was the search's last pending job, marks
//! the search done. Retries and give-backs are not an end: the job comes back.

use crate::domain::Job;
use crate::pipeline::{Disposition, Pipeline};

/// Records the end of the job in `body` for its search, if it has one. A failure here costs
/// only the count (the listing is stored): it is logged, never retried.
pub(super) async fn record<R>(pipeline: &Pipeline<R>, body: &[u8], disposition: &Disposition) {
    let dead_lettered = match disposition {
        Disposition::Ack => false,
        Disposition::DeadLetter { .. } => true,
        Disposition::Retry { .. } | Disposition::GiveBack | Disposition::Halt { .. } => return,
    };
    let Ok(job) = Job::parse(body) else {
        return;
    };
    if job.search_id.is_none() {
        return;
    }
    let external_id = pipeline
        .sites
        .get(&job.site)
        .ok()
        .and_then(|site| site.listing_id(&job.url));
    match pipeline
        .store
        .settle_search_job(&job, external_id.as_deref(), dead_lettered)
        .await
    {
        Ok(true) => tracing::info!(search_id = job.search_id, "Search done: every job settled."),
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(%error, search_id = job.search_id, "Could not count a settled job for its search.")
        }
    }
}
