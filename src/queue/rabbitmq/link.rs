//! The RabbitMQ connection behind a [`super::RabbitMqQueue`], reopened when it dies: every
//! operation asks [`Links::current`] for the live connection and its confirm-mode publisher.
//! lapin's own auto-recovery is off, so that exactly one connection (ours) ever consumes: a
//! recovering connection in the background would replay consumers nobody reads from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::RwLock;

use super::{QueueNames, RETRY_TIERS_SECS, WORK_TTL_MS};
use crate::queue::QueueError;
use crate::store::redact;

/// How long opening a connection (TCP, handshake, topology) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// One connection and its publisher channel.
#[derive(Clone)]
pub(super) struct Link {
    pub conn: Arc<Connection>,
    pub publisher: Channel,
}

impl Link {
    /// Connects, opens the publisher in confirm mode and declares the topology.
    async fn open(url: &str, names: &QueueNames) -> Result<Link, QueueError> {
        let connect_err = |source| QueueError::Connect {
            host: redact(url),
            source,
        };
        let props = ConnectionProperties::default().with_connection_name("scrapefarm".into());
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props))
            .await
            .map_err(|_| connect_err(io_error(std::io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(connect_err)?;
        let publisher = open_publisher(&conn).await?;
        declare(&publisher, names).await?;
        Ok(Link {
            conn: Arc::new(conn),
            publisher,
        })
    }
}

/// The current [`Link`] of a queue, shared by its clones.
pub(super) struct Links {
    url: String,
    pub names: QueueNames,
    link: RwLock<Link>,
    /// Set by [`Links::close`]: no reconnect after that.
    closed: AtomicBool,
}

impl Links {
    /// Connects (an error if the broker cannot be reached now).
    pub async fn connect(url: &str, names: QueueNames) -> Result<Links, QueueError> {
        let link = Link::open(url, &names).await?;
        Ok(Links {
            url: url.to_string(),
            names,
            link: RwLock::new(link),
            closed: AtomicBool::new(false),
        })
    }

    /// The live link, reopened first if its connection (or only its publisher) died.
    pub async fn current(&self) -> Result<Link, QueueError> {
        {
            let link = self.link.read().await;
            if link.conn.status().connected() && link.publisher.status().connected() {
                return Ok(link.clone());
            }
        }
        if self.closed.load(Ordering::SeqCst) {
            let closed = io_error(std::io::ErrorKind::NotConnected, "the queue was closed");
            return Err(QueueError::Broker(closed));
        }
        let mut link = self.link.write().await;
        if !link.conn.status().connected() {
            tracing::warn!(host = %redact(&self.url), "RabbitMQ connection lost; reconnecting.");
            *link = Link::open(&self.url, &self.names).await?;
            tracing::info!("Reconnected to RabbitMQ.");
        } else if !link.publisher.status().connected() {
            link.publisher = open_publisher(&link.conn).await?;
        }
        Ok(link.clone())
    }

    /// Closes the connection for good.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let conn = self.link.read().await.conn.clone();
        let _ = conn.close(200, "bye".into()).await;
    }
}

async fn open_publisher(conn: &Connection) -> Result<Channel, QueueError> {
    let publisher = conn.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(publisher)
}

/// Declares the queues of `names`, idempotently.
async fn declare(ch: &Channel, names: &QueueNames) -> Result<(), QueueError> {
    let declare = |name: String, args: FieldTable| {
        ch.queue_declare(name.into(), QueueDeclareOptions::durable(), args)
    };
    let mut work = FieldTable::default();
    work.insert("x-message-ttl".into(), AMQPValue::LongInt(WORK_TTL_MS));
    work.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    work.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(names.dead().into()),
    );
    declare(names.work.clone(), work).await?;
    declare(names.dead(), FieldTable::default()).await?;
    for tier in RETRY_TIERS_SECS {
        let mut args = FieldTable::default();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongInt(tier as i32 * 1000),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(names.work.clone().into()),
        );
        declare(names.retry(tier), args).await?;
    }
    Ok(())
}

/// A lapin I/O error, for failures that lapin itself does not report.
pub(super) fn io_error(kind: std::io::ErrorKind, what: &str) -> lapin::Error {
    lapin::Error::from(std::io::Error::new(kind, what.to_string()))
}
