//! The tab pool: deadpool objects are Chromium tabs of the one browser in a [`BrowserSlot`]. Tabs
//! are reused across pages (navigation resets them); a tab of a browser that has since been
//! relaunched, or one that has served too many pages, is retired and closed. Background work
//! (closing a tab, answering paused requests) runs as tasks of the slot, which ends them on close.

use std::sync::Arc;

use chromiumoxide::Page as Tab;
use chromiumoxide::cdp::browser_protocol::fetch::{
    self, ContinueRequestParams, EventRequestPaused, FailRequestParams, RequestPattern,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use futures::StreamExt;

use super::RenderError;
use super::slot::BrowserSlot;

/// Pages one tab serves before it is closed and replaced (bounds per-tab memory growth).
pub const TAB_MAX_USES: usize = 200;

/// A pooled tab and the browser generation it belongs to.
pub struct PooledTab {
    pub tab: Tab,
    pub generation: u64,
}

/// Creates and recycles tabs.
pub struct TabManager {
    pub slot: Arc<BrowserSlot>,
    /// Resource types failed before they are fetched (images, fonts, media).
    pub block: Vec<ResourceType>,
}

impl managed::Manager for TabManager {
    type Type = PooledTab;
    type Error = RenderError;

    async fn create(&self) -> Result<PooledTab, RenderError> {
        let (tab, generation) = self.slot.new_tab().await?;
        if !self.block.is_empty() {
            block_resources(&self.slot, &tab, &self.block)
                .await
                .map_err(|e| RenderError::Browser(format!("Failed to enable blocking: {e}")))?;
        }
        Ok(PooledTab { tab, generation })
    }

    async fn recycle(&self, obj: &mut PooledTab, metrics: &Metrics) -> RecycleResult<RenderError> {
        if obj.generation != self.slot.generation() {
            return Err(RecycleError::message("tab of a retired browser"));
        }
        if metrics.recycle_count >= TAB_MAX_USES {
            self.slot.close_tab(obj.tab.clone());
            return Err(RecycleError::message("tab served its pages"));
        }
        Ok(())
    }
}

/// Fails requests of the given resource types before they are sent; other requests are never
/// paused, so they cost nothing.
async fn block_resources(
    slot: &BrowserSlot,
    tab: &Tab,
    types: &[ResourceType],
) -> chromiumoxide::Result<()> {
    let mut paused = tab.event_listener::<EventRequestPaused>().await?;
    let handle = tab.clone();
    let blocked = types.to_vec();
    // A task of the slot: it ends with the tab's event stream, or when the slot closes.
    slot.spawn(async move {
        while let Some(ev) = paused.next().await {
            let result = if blocked.contains(&ev.resource_type) {
                let fail =
                    FailRequestParams::new(ev.request_id.clone(), ErrorReason::BlockedByClient);
                handle.execute(fail).await.map(|_| ())
            } else {
                let cont = ContinueRequestParams::new(ev.request_id.clone());
                handle.execute(cont).await.map(|_| ())
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "Fetch continue/fail failed.");
            }
        }
    });
    let patterns = types.iter().map(|t| {
        RequestPattern::builder()
            .url_pattern("*")
            .resource_type(t.clone())
            .build()
    });
    tab.execute(fetch::EnableParams::builder().patterns(patterns).build())
        .await?;
    Ok(())
}
