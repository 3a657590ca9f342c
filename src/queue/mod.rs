//! Queue (stage 1): where jobs come from and where retried and dead jobs go. Two implementations
//! behind one trait: RabbitMQ (lapin) for the farm, and an embedded queue persisted in the store's
//! database for single-machine runs (a killed `crawl` resumes). `AnyQueue` picks one at run time.

pub mod embedded;
pub mod rabbitmq;

use std::future::Future;
use std::time::Duration;

pub use embedded::EmbeddedQueue;
pub use rabbitmq::{DeadSweep, QueueNames, RabbitMqQueue};

use crate::domain::Job;

/// The largest job body a queue accepts (a publish above it is refused); `Job::parse` caps
/// deliveries with the same number before parsing.
pub use crate::domain::MAX_JOB_BYTES;

/// One hand-over of a job.
pub struct Delivery {
    pub body: Vec<u8>,
    /// 1-based attempt number.
    pub attempt: u32,
    /// This attempt was handed over before and not settled (its consumer died, closed, or gave
    /// it back): the pipeline counts such deliveries so that a job that kills its worker ends
    /// dead-lettered. RabbitMQ's own flag; the embedded queue's claim counter since the last
    /// publish or retry.
    pub redelivered: bool,
    pub acker: Acker,
}

/// How a delivery is acknowledged; each queue knows its own.
pub enum Acker {
    RabbitMq(rabbitmq::Ticket),
    Embedded(embedded::Lease),
}

/// What to do with a delivery once the pipeline is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle<'a> {
    Ack,
    /// Deliver again after the delay with the next attempt number (confirmed before the ack).
    Retry(Duration),
    /// Park in the dead-letter queue with the reason.
    Dead(&'a str),
    /// Give the delivery back untouched (the store is down).
    Requeue,
}

/// Message counts, for `status` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepths {
    pub ready: u64,
    /// Delivered and not yet settled; `None` when the queue cannot tell (RabbitMQ without its
    /// management API: AMQP reports only ready messages).
    pub unacked: Option<u64>,
    pub retrying: u64,
    pub dead: u64,
    pub consumers: u64,
}

/// A dead-lettered job as read back from the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadJob {
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
    pub reason: String,
    pub attempt: u32,
}

impl DeadJob {
    /// The job, if the body is one.
    pub fn job(&self) -> Option<Job> {
        Job::parse(&self.body).ok()
    }
}

mod body_text {
    pub fn serialize<S: serde::Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = String::from_utf8_lossy(body).chars().take(500).collect();
        s.serialize_str(&text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("Failed to connect to RabbitMQ at {host}: {source}")]
    Connect { host: String, source: lapin::Error },
    #[error("RabbitMQ error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm a publish to {0}")]
    NotConfirmed(String),
    #[error("RabbitMQ did not answer within {after:?} to {what}")]
    TimedOut { what: &'static str, after: Duration },
    #[error("embedded queue error: {0}")]
    Embedded(#[from] sqlx::Error),
    /// The lease expired and another consumer took the job: this result is dropped, theirs counts.
    #[error("the lease on embedded job {0} expired and another consumer took it")]
    LeaseLost(i64),
    #[error("a job body of {size} bytes is over the {max}-byte limit; not published")]
    TooLarge { size: usize, max: usize },
}

/// Refuses a body over [`MAX_JOB_BYTES`].
fn check_size(body: &[u8]) -> Result<(), QueueError> {
    if body.len() > MAX_JOB_BYTES {
        return Err(QueueError::TooLarge {
            size: body.len(),
            max: MAX_JOB_BYTES,
        });
    }
    Ok(())
}

/// Where jobs come from. Implemented by [`RabbitMqQueue`] and [`EmbeddedQueue`].
pub trait Queue: Clone + Send + Sync + 'static {
    type Consumer: Consumer;

    /// Publishes a job (attempt 1), durably.
    fn publish(&self, job: &Job) -> impl Future<Output = Result<(), QueueError>> + Send {
        self.publish_raw(job.to_body())
    }
    /// Publishes an arbitrary body (other producers; tests of malformed input); refuses one over
    /// [`MAX_JOB_BYTES`].
    fn publish_raw(&self, body: Vec<u8>) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Starts delivering jobs, at most `prefetch` unsettled at once.
    fn consume(
        &self,
        prefetch: u16,
        tag: &str,
    ) -> impl Future<Output = Result<Self::Consumer, QueueError>> + Send;
    fn settle(
        &self,
        delivery: &Delivery,
        how: Settle<'_>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    fn depths(&self) -> impl Future<Output = Result<QueueDepths, QueueError>> + Send;
    /// The dead-lettered jobs, left in place.
    fn dead_jobs(&self) -> impl Future<Output = Result<Vec<DeadJob>, QueueError>> + Send;
    /// Moves dead jobs accepted by `pick` back to the work queue (attempt 1); returns how many.
    fn requeue_dead(
        &self,
        pick: &(dyn Fn(&DeadJob) -> bool + Sync),
    ) -> impl Future<Output = Result<usize, QueueError>> + Send;
    /// Empties every queue of this farm.
    fn purge_all(&self) -> impl Future<Output = Result<(), QueueError>> + Send;
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// A stream of deliveries.
pub trait Consumer: Send {
    /// The next delivery; `None` when the consumer ended (connection gone).
    fn next(&mut self) -> impl Future<Output = Option<Result<Delivery, QueueError>>> + Send;
    /// Stops new deliveries; those already received can still be settled.
    fn cancel(&mut self) -> impl Future<Output = ()> + Send;
    /// Ends consumption; unsettled deliveries go back to the queue.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// A queue chosen at run time.
#[derive(Clone)]
pub enum AnyQueue {
    RabbitMq(RabbitMqQueue),
    Embedded(EmbeddedQueue),
}

/// The consumer of an [`AnyQueue`].
pub enum AnyConsumer {
    RabbitMq(Box<rabbitmq::RabbitMqConsumer>),
    Embedded(embedded::EmbeddedConsumer),
}

macro_rules! delegate {
    ($self:ident, $q:ident => $e:expr) => {
        match $self {
            AnyQueue::RabbitMq($q) => $e,
            AnyQueue::Embedded($q) => $e,
        }
    };
}

impl Queue for AnyQueue {
    type Consumer = AnyConsumer;

    async fn publish_raw(&self, body: Vec<u8>) -> Result<(), QueueError> {
        delegate!(self, q => q.publish_raw(body).await)
    }
    async fn consume(&self, prefetch: u16, tag: &str) -> Result<AnyConsumer, QueueError> {
        Ok(match self {
            AnyQueue::RabbitMq(q) => {
                AnyConsumer::RabbitMq(Box::new(q.consume(prefetch, tag).await?))
            }
            AnyQueue::Embedded(q) => AnyConsumer::Embedded(q.consume(prefetch, tag).await?),
        })
    }
    async fn settle(&self, delivery: &Delivery, how: Settle<'_>) -> Result<(), QueueError> {
        delegate!(self, q => q.settle(delivery, how).await)
    }
    async fn depths(&self) -> Result<QueueDepths, QueueError> {
        delegate!(self, q => q.depths().await)
    }
    async fn dead_jobs(&self) -> Result<Vec<DeadJob>, QueueError> {
        delegate!(self, q => q.dead_jobs().await)
    }
    async fn requeue_dead(
        &self,
        pick: &(dyn Fn(&DeadJob) -> bool + Sync),
    ) -> Result<usize, QueueError> {
        delegate!(self, q => q.requeue_dead(pick).await)
    }
    async fn purge_all(&self) -> Result<(), QueueError> {
        delegate!(self, q => q.purge_all().await)
    }
    async fn close(&self) {
        delegate!(self, q => q.close().await)
    }
}

impl Consumer for AnyConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        match self {
            AnyConsumer::RabbitMq(c) => c.next().await,
            AnyConsumer::Embedded(c) => c.next().await,
        }
    }
    async fn cancel(&mut self) {
        match self {
            AnyConsumer::RabbitMq(c) => c.cancel().await,
            AnyConsumer::Embedded(c) => c.cancel().await,
        }
    }
    async fn close(self) {
        match self {
            AnyConsumer::RabbitMq(c) => c.close().await,
            AnyConsumer::Embedded(c) => c.close().await,
        }
    }
}
