//! scrapefarm: a browser-automation scraping farm.
//!
//! The data flow, in module order:
//! 1. `queue` hands out jobs (one listing URL each) from RabbitMQ;
//! 2. `render` turns the URL into a page in headless Chromium (pooled tabs, persistent profile);
//! 3. `classify` says what the page is (content, ended, gone, challenge, blocked, rate limited…);
//! 4. `extract` reads the listing's fields as the site definition (`site`) says, with `price`
//!    turning price text into integer minor units;
//! 5. `snapshot` keeps the HTML, zstd-compressed, with its sha256;
//! 6. `store` writes the row, price observation, snapshot and attempt in one transaction;
//! 7. `pipeline` runs those stages for one job and says what to do with the delivery; `worker`
//!    consumes and settles deliveries; `collect` turns a search into jobs.

pub mod app;
pub mod classify;
pub mod cli;
pub mod collect;
pub mod crawl;
pub mod domain;
pub mod export;
pub mod extract;
pub mod fixture_site;
pub mod inspect;
pub mod operator;
pub mod pace;
pub mod pipeline;
pub mod price;
pub mod queue;
pub mod render;
pub mod report;
pub mod site;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod worker;
