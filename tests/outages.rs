//! Outages of the real RabbitMQ and PostgreSQL mid-run, without stopping the machine's services:
//! the farm reaches each one through an in-test TCP proxy that can cut every live connection and
//! refuse new ones (its port closes) for a while. A broker restart makes the worker reconnect; a
//! database outage makes it stop consuming and resume. Either way the run completes with every
//! listing stored once and equal to the ground truth.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{AMQP, Farm, PG_BASE, fleet};
use scrapefarm::fixture_site::FixtureConfig;
use scrapefarm::queue::{Queue, QueueNames, RabbitMqQueue};
use scrapefarm::store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A TCP proxy on 127.0.0.1 in front of a real service, with a switch.
struct Proxy {
    target: SocketAddr,
    port: u16,
    /// Cancelled by [`Proxy::cut`]: every connection forwarded so far ends.
    links: Arc<Mutex<CancellationToken>>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            target: target.parse().unwrap(),
            port: listener.local_addr().unwrap().port(),
            links: Arc::new(Mutex::new(CancellationToken::new())),
            acceptor: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, links) = (self.target, self.links.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let cut = links.lock().unwrap().clone();
                tokio::spawn(forward(client, target, cut));
            }
        });
        *self.acceptor.lock().unwrap() = Some(task);
    }

    /// Closes the port (new connections are refused) and drops every live connection.
    async fn cut(&self) {
        let acceptor = self.acceptor.lock().unwrap().take();
        if let Some(task) = acceptor {
            task.abort();
            let _ = task.await; // the listener is dropped once the task is
        }
        let links = std::mem::take(&mut *self.links.lock().unwrap());
        links.cancel();
    }

    /// Listens on the same port again.
    async fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "rebinding port {}: {e}",
                    self.port
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.serve(listener);
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, cut: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.cancelled() => {}
    }
}

/// The fixture's 200 listings of one search.
const QUERY: &str = "lamp";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rabbitmq_restart_mid_run_makes_the_worker_reconnect_and_loses_nothing() {
    fleet::show_logs();
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let farm = Farm::start_via(FixtureConfig::default(), PG_BASE, &amqp).await;
    let total = farm.enqueue(QUERY, 20).await.jobs_published;
    assert_eq!(total, farm.fixture.ground_truth(QUERY).len());
    // Watches the broker directly, not through the proxy.
    let broker = RabbitMqQueue::connect(AMQP, QueueNames::new(&farm.queue_name))
        .await
        .unwrap();
    let started = Instant::now();
    let run = farm.work("bunny", 4, Duration::from_secs(3));
    let restart = async {
        fleet::wait_until_stored(&farm.store, total * 3 / 10, Duration::from_secs(90)).await;
        proxy.cut().await;
        let cut_at = Instant::now();
        let gone = fleet::wait_for_consumers(&broker, 0, Duration::from_secs(5)).await;
        let held = broker.depths().await.unwrap().ready;
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(cut_at.elapsed())).await;
        proxy.restore().await;
        let back = fleet::wait_for_consumers(&broker, 1, Duration::from_secs(30)).await;
        eprintln!(
            "cut after {:?}: consumer gone after {gone:?} with {held} jobs ready, \
             back {back:?} after the 5 s outage",
            cut_at - started
        );
        assert!(held > 0, "the broker kept the unfinished jobs");
    };
    let (stats, ()) = tokio::join!(run, restart);
    eprintln!("{stats}\nrun took {:?}", started.elapsed());
    fleet::assert_stored_once_and_true(&farm, QUERY).await;
    broker.close().await;
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_outage_mid_run_pauses_the_worker_and_loses_nothing() {
    fleet::show_logs();
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let via = format!("postgres://postgres@127.0.0.1:{}", proxy.port);
    let farm = Farm::start_via(FixtureConfig::default(), &via, AMQP).await;
    let total = farm.enqueue(QUERY, 20).await.jobs_published;
    assert_eq!(total, farm.fixture.ground_truth(QUERY).len());
    // Watches the database directly, not through the proxy.
    let direct = Store::connect(&farm.db_url.replacen(&via, PG_BASE, 1), 2)
        .await
        .unwrap();
    let started = Instant::now();
    let run = farm.work("elephant", 4, Duration::from_secs(3));
    // Longer than the pool's 10 s acquire timeout, so that every store call fails and the worker
    // halts (a shorter outage is ridden out inside the pool).
    let outage = Duration::from_secs(15);
    let down = async {
        fleet::wait_until_stored(&direct, total * 3 / 10, Duration::from_secs(90)).await;
        proxy.cut().await;
        let cut_at = Instant::now();
        let paused = fleet::wait_for_consumers(&farm.queue, 0, outage).await;
        let frozen = fleet::stored_ids(&direct).await.len();
        tokio::time::sleep(outage.saturating_sub(cut_at.elapsed())).await;
        assert_eq!(
            fleet::stored_ids(&direct).await.len(),
            frozen,
            "nothing stored while the database is down"
        );
        proxy.restore().await;
        let back = fleet::wait_for_consumers(&farm.queue, 1, Duration::from_secs(30)).await;
        eprintln!(
            "cut after {:?} with {frozen} stored: consuming stopped after {paused:?}, \
             resumed {back:?} after the {outage:?} outage",
            cut_at - started
        );
    };
    let (stats, ()) = tokio::join!(run, down);
    eprintln!("{stats}\nrun took {:?}", started.elapsed());
    fleet::assert_stored_once_and_true(&farm, QUERY).await;
    direct.close().await;
    farm.cleanup().await;
}
