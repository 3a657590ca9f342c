//! A pass over the dead-letter queue, one message at a time, for `dlq list` and `dlq requeue`.
//! Each message is taken with `basic.get` and left unacked on the sweep's own channel: a picked
//! one is republished to the work queue (confirmed) and only then acked, so a crash between the
//! two leaves it in both queues (a duplicate the store's upsert absorbs), never in neither. The
//! others stay unacked until the sweep closes, so `basic.get` never returns a message twice, and
//! the broker then puts them back in the dead-letter queue in their order.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, ShortString};
use lapin::{BasicProperties, Channel};

use super::{RabbitMqQueue, attempt_of};
use crate::queue::{DeadJob, QueueError};

/// How long one `basic.get` or ack of the sweep may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// An open pass over the dead-letter queue; see the module comment. Close it with [`close`].
///
/// [`close`]: DeadSweep::close
pub struct DeadSweep {
    queue: RabbitMqQueue,
    channel: Channel,
    /// Messages seen and not picked: unacked until the channel closes.
    left: Vec<lapin::Acker>,
}

/// A dead message taken from the queue and not yet settled.
pub struct TakenDead {
    dead: DeadJob,
    acker: lapin::Acker,
}

impl TakenDead {
    pub fn dead(&self) -> &DeadJob {
        &self.dead
    }
}

impl DeadSweep {
    pub(super) async fn open(queue: RabbitMqQueue) -> Result<DeadSweep, QueueError> {
        let channel = queue.links.consuming().await?.conn.create_channel().await?;
        Ok(DeadSweep {
            queue,
            channel,
            left: Vec::new(),
        })
    }

    /// The next dead message not seen yet by this sweep, unacked; `None` once all were seen.
    pub async fn take_next(&mut self) -> Result<Option<TakenDead>, QueueError> {
        let dead_queue = self.queue.links.names.dead();
        let get = self
            .channel
            .basic_get(dead_queue.into(), BasicGetOptions::default());
        let got = tokio::time::timeout(STEP_TIMEOUT, get)
            .await
            .map_err(|_| timed_out("take a dead message"))??;
        Ok(got.map(|msg| {
            let delivery = msg.delivery;
            TakenDead {
                dead: DeadJob {
                    reason: header_string(&delivery.properties, "x-reason").unwrap_or_default(),
                    attempt: attempt_of(&delivery.properties),
                    body: delivery.data,
                },
                acker: delivery.acker,
            }
        }))
    }

    /// Publishes the job to the work queue (attempt 1) and waits for the broker's confirm.
    /// The dead message is still there until [`DeadSweep::ack`].
    pub async fn republish(&self, taken: &TakenDead) -> Result<(), QueueError> {
        let work = &self.queue.links.names.work;
        self.queue.publish_to(work, &taken.dead.body, 1, None).await
    }

    /// Removes the dead message for good; call it only after [`DeadSweep::republish`].
    pub async fn ack(&mut self, taken: TakenDead) -> Result<(), QueueError> {
        let ack = taken.acker.ack(BasicAckOptions::default());
        tokio::time::timeout(STEP_TIMEOUT, ack)
            .await
            .map_err(|_| timed_out("ack a dead message"))??;
        Ok(())
    }

    /// Keeps the message in the dead-letter queue (it returns there when the sweep closes).
    pub fn leave(&mut self, taken: TakenDead) {
        self.left.push(taken.acker);
    }

    /// Ends the sweep: every message taken and not acked goes back to the dead-letter queue.
    pub async fn close(self) {
        tracing::debug!(left = self.left.len(), "Dead-letter sweep done.");
        let close = self.channel.close(200, "sweep done".into());
        if tokio::time::timeout(STEP_TIMEOUT, close).await.is_err() {
            tracing::warn!(
                "Closing the dead-letter sweep timed out; the broker requeues its messages when the connection closes."
            );
        }
    }
}

fn timed_out(what: &'static str) -> QueueError {
    QueueError::TimedOut {
        what,
        after: STEP_TIMEOUT,
    }
}

fn header_string(props: &BasicProperties, name: &str) -> Option<String> {
    match props
        .headers()
        .as_ref()?
        .inner()
        .get(&ShortString::from(name))?
    {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}
