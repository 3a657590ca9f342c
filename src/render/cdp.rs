//! The CDP renderer (chromiumoxide, the default): one Chromium per process on a persistent profile
//! (`slot`), N pooled tabs (`pool`; each page is rendered by `navigate`). The browser is relaunched
//! when it dies and retired after N pages or above a memory ceiling (`retire`); tabs that hang
//! are closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chromiumoxide::Page as Tab;
use chromiumoxide::cdp::browser_protocol::network::ResourceType;
use chromiumoxide::cdp::js_protocol::heap_profiler::CollectGarbageParams;
use deadpool::Runtime;
use deadpool::managed::{Object, Pool, PoolError};

use super::navigate::render_in;
use super::pool::TabManager;
use super::slot::BrowserSlot;
use super::{BrowserSettings, Page, RenderError, RenderRequest, Renderer};

/// Pages between two forced garbage collections (`purge_memory`).
pub const PURGE_EVERY: u64 = 100;

/// Runs a full garbage collection in the tab's renderer. With one renderer per site, every page
/// of the browser's life runs in the same renderer, and V8 left the documents of pages long gone
/// to a major collection that, on small pages, hardly ever came: 226 dead documents were still
/// held after ~700 fixture pages and the renderer's PSS climbed 95 → 219 MiB over a browser's
/// life (a collection brought them to 5). A simulated memory-pressure signal did not help.
async fn purge_memory(tab: &Tab) {
    let collect = CollectGarbageParams::default();
    let done = tokio::time::timeout(Duration::from_secs(5), tab.execute(collect)).await;
    if !matches!(done, Ok(Ok(_))) {
        tracing::debug!("The renderer's garbage collection did not answer.");
    }
}

/// Renders pages in pooled tabs of one Chromium.
pub struct CdpRenderer {
    slot: Arc<BrowserSlot>,
    /// Pages rendered, for `purge_memory` every `PURGE_EVERY`.
    rendered: AtomicU64,
    pool: Pool<TabManager>,
    nav_timeout: Duration,
}

impl CdpRenderer {
    /// Launches the browser now, so a missing Chromium or a locked profile fails at start.
    pub async fn launch(settings: BrowserSettings) -> Result<CdpRenderer, RenderError> {
        let nav_timeout = settings.nav_timeout;
        let tabs = settings.tabs.max(1);
        // Images are kept out by a launch flag (see `launch`); fonts and media by Fetch.
        let block = if settings.block_resources {
            vec![ResourceType::Font, ResourceType::Media]
        } else {
            Vec::new()
        };
        let slot = Arc::new(BrowserSlot::launch(settings).await?);
        let manager = TabManager {
            slot: slot.clone(),
            block,
        };
        let pool = Pool::builder(manager)
            .max_size(tabs)
            .wait_timeout(Some(Duration::from_secs(120)))
            .create_timeout(Some(Duration::from_secs(30)))
            .recycle_timeout(Some(Duration::from_secs(10)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| RenderError::Browser(format!("Failed to build the tab pool: {e}")))?;
        Ok(CdpRenderer {
            slot,
            rendered: AtomicU64::new(0),
            pool,
            nav_timeout,
        })
    }

    pub fn slot(&self) -> &Arc<BrowserSlot> {
        &self.slot
    }

    async fn tab(&self) -> Result<Object<TabManager>, RenderError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => e,
            PoolError::Timeout(_) => RenderError::PoolExhausted,
            other => RenderError::Browser(other.to_string()),
        })
    }
}

impl Renderer for CdpRenderer {
    async fn render(&self, request: &RenderRequest) -> Result<Page, RenderError> {
        let shared = self.slot.shared().await;
        let rendered = self.render_in_pool(request).await;
        drop(shared);
        self.slot.page_done().await;
        rendered
    }

    async fn reset_identity(&self) -> Result<(), RenderError> {
        self.slot.clear_cookies().await
    }

    async fn close(&self) {
        self.pool.close();
        self.slot.close(Duration::from_secs(5)).await;
    }
}

impl CdpRenderer {
    /// Renders in a pooled tab; a tab that failed is closed, and a dead browser retired.
    async fn render_in_pool(&self, request: &RenderRequest) -> Result<Page, RenderError> {
        let tab = self.tab().await?;
        match render_in(&tab.tab, request, self.nav_timeout).await {
            Ok(page) => {
                let rendered = self.rendered.fetch_add(1, Ordering::Relaxed) + 1;
                if rendered.is_multiple_of(PURGE_EVERY) {
                    purge_memory(&tab.tab).await;
                }
                Ok(page)
            }
            Err(e) => {
                // A tab that failed may hang or belong to a dead browser: never reuse it.
                let broken = Object::take(tab);
                if !self.slot.is_alive().await {
                    self.slot.retire(broken.generation).await;
                } else {
                    self.slot.close_tab(broken.tab);
                }
                Err(e)
            }
        }
    }
}
