//! Guards before a job renders: work already done (stored since the job was published, or a
//! duplicate copy of a retry that already ran) is acked without a page, and a job whose worker
//! keeps dying with it is dead-lettered instead of being handed out again.

use super::{Disposition, Pipeline};
use crate::domain::Job;
use crate::metrics::{self, DeadLetterReason};
use crate::render::Renderer;
use crate::site::Site;
use crate::store::StoreError;
use crate::telemetry::Stats;

/// Renders of one attempt started and never finished after which the job is dead-lettered:
/// enough to ride out a broker restart, a store outage and a pod eviction, few enough that a
/// page which kills its worker every time stops after a handful of crashes (each one costs a
/// browser and its in-flight pages). Jobs that were only prefetched beside it are not counted.
pub const MAX_UNFINISHED_RENDERS: u32 = 3;

impl<R: Renderer> Pipeline<R> {
    /// For a redelivered job: a dead letter when its renders keep dying unfinished
    /// ([`MAX_UNFINISHED_RENDERS`]: the page kills or hangs whoever renders it), a halt when the
    /// count cannot be read.
    pub(super) async fn unfinished_renders(&self, job: &Job, attempt: u32) -> Option<Disposition> {
        match self.store.render_starts(&job.id, attempt).await {
            Ok(n) if n >= MAX_UNFINISHED_RENDERS => {
                let reason = format!(
                    "rendering it started {n} times and never finished: the worker holding it \
                     died (crash, out of memory or killed) or hung each time"
                );
                metrics::dead_letter(&job.site, DeadLetterReason::UnfinishedRenders);
                Some(Disposition::DeadLetter { reason })
            }
            Ok(_) => None,
            Err(e) => Some(self.store_failed(&job.site, e, attempt)),
        }
    }

    /// Whether this delivery is a second copy of a retry that already ran: a worker that died
    /// between publishing a retry and acking the original leaves the original to be redelivered,
    /// which publishes the same retry again. A fresh (not redelivered) copy of attempt N whose
    /// attempt N was already logged is that duplicate: the copy that ran took care of what came
    /// next, so dropping this one loses nothing. Attempt 1 is exempt (`dlq requeue` starts a job
    /// over at attempt 1 under the same id).
    pub(super) async fn duplicate_copy(
        &self,
        job: &Job,
        attempt: u32,
        redelivered: bool,
    ) -> Result<bool, StoreError> {
        if redelivered || attempt <= 1 {
            return Ok(false);
        }
        let ran = self.store.attempt_logged(&job.id, attempt).await?;
        if ran {
            tracing::debug!(url = %job.url, attempt, "Duplicate copy of a retry that already ran; dropped.");
            Stats::bump(&self.stats.skipped);
        }
        Ok(ran)
    }

    /// Whether the listing was enriched after this job was published: then a redelivered or
    /// duplicated job is already done and the page is not rendered again.
    pub(super) async fn already_satisfied(
        &self,
        job: &Job,
        site: &Site,
        external_id: &str,
    ) -> Result<bool, StoreError> {
        if job.published_at <= 0 {
            return Ok(false);
        }
        let done = self
            .store
            .enriched_since(&site.name, external_id, job.published_at)
            .await?;
        if done {
            tracing::debug!(url = %job.url, "Already stored since this job was published.");
            Stats::bump(&self.stats.skipped);
        }
        Ok(done)
    }
}
