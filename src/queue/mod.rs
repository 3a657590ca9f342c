//! Queue (stage 1): where jobs come from and where retried and dead jobs go. RabbitMQ (lapin) for
//! the farm.

pub mod rabbitmq;

pub use rabbitmq::{Acker, Consumer, DeadJob, QueueNames, RabbitMqQueue};

/// One hand-over of a job by the broker.
pub struct Delivery {
    pub body: Vec<u8>,
    /// 1-based attempt number, from the `x-attempt` header.
    pub attempt: u32,
    pub acker: Acker,
}

/// Message counts, for `status` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepths {
    pub ready: u64,
    pub retrying: u64,
    pub dead: u64,
    pub consumers: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("Failed to connect to RabbitMQ at {host}: {source}")]
    Connect { host: String, source: lapin::Error },
    #[error("RabbitMQ error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm a publish to {0}")]
    NotConfirmed(String),
}
