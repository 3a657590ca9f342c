//! scrapefarm: a browser-automation scraping farm.
//!
//! The flow of one job: queue → render → classify → extract → snapshot → store → settle.
//!
//! The modules, in that order:
//! 1. `queue` hands out jobs (one listing URL each) from RabbitMQ, or from the embedded queue in
//!    the store's database; `pace` spaces the requests to each site;
//! 2. `render` turns the URL into a page in headless Chromium (pooled tabs, persistent profile);
//! 3. `classify` says what the page is (content, ended, gone, challenge, blocked, rate limited…);
//! 4. `extract` reads the listing's fields as the site definition (`site`) says, with `price`
//!    turning price text into integer minor units;
//! 5. `snapshot` keeps the HTML, zstd-compressed, with its sha256;
//! 6. `store` writes the row, price observation, snapshot and attempt in one transaction;
//! 7. `pipeline` runs those stages for one job and says what to do with the delivery; `worker`
//!    consumes and settles deliveries; `collect` turns a search into jobs;
//! 8. `alerts` delivers the alerts that storing a price observation fired (the store writes
//!    them in the same transaction) to their watches' signed webhooks.
//!
//! The price tracker sits in front of the flow: `tracker` (searches with schedules and runs,
//! listings and their price history: the operations the CLI and the API share) and `api` (the
//! HTTP service of `scrapefarm serve`), with `ui`, the dashboard beside it.
//!
//! Around the flow: `domain` and `clock` (the words and the time every stage uses), `telemetry`,
//! the commands (`cli`, `app`, `api_key`, `crawl`, `export`, `operator`, `inspect`,
//! `report`) and `fixture_site`, the local marketplace the tests and the demo scrape.

// The words and the time every stage uses.
pub mod clock;
pub mod domain;
pub mod price;
pub mod site;

// The flow of one job, in order (each on its own line: rustfmt keeps a group sorted by name).
pub mod queue;

pub mod pace;

pub mod render;

pub mod classify;

pub mod extract;

pub mod snapshot;

pub mod store;

pub mod pipeline;

pub mod worker;

pub mod collect;

pub mod alerts;

pub mod telemetry;

// The price tracker: its operations, and the HTTP API in front of them.
pub mod tracker;

pub mod api;

// The dashboard: server-rendered pages over the same operations.
pub mod ui;

// One Prometheus registry per process, read by `/metrics`.
pub mod metrics;

// The commands, and the site they are tested against.
pub mod api_key;
pub mod app;
pub mod cli;
pub mod crawl;
pub mod export;
pub mod inspect;
pub mod operator;
pub mod report;

pub mod fixture_site;
