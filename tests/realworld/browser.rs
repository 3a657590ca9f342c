//! Serving saved pages from 127.0.0.1 and rendering them in the real CDP renderer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use scrapefarm::render::{
    BrowserBuild, BrowserSettings, CdpRenderer, RenderRequest, build, profile,
};

type Pages = Arc<BTreeMap<String, Vec<u8>>>;

/// A local server answering fixed paths with fixed bytes; aborted on drop.
pub struct PageServer {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `pages` (path → bytes) as `text/html; charset=utf-8`, the way the site sent them: the
/// saved files are UTF-8 and the oldest carry no charset of their own.
pub async fn serve(pages: BTreeMap<String, Vec<u8>>) -> PageServer {
    async fn page(State(pages): State<Pages>, req: Request) -> Response {
        match pages.get(req.uri().path()) {
            Some(body) => {
                let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
                (html, body.clone()).into_response()
            }
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new()
        .fallback(page)
        .with_state(Arc::new(pages));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    PageServer { base, task }
}

/// One Chromium with one tab, as a worker runs it (images, fonts and media blocked).
pub async fn launch(profiles: &Path) -> CdpRenderer {
    // The worker's default build (`--cdp-browser auto`): the headless shell when installed.
    let chrome = build::pick_from_env(BrowserBuild::Auto)
        .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"));
    CdpRenderer::launch(BrowserSettings {
        chrome,
        profile_dir: profile::claim(profiles, "realworld").unwrap(),
        tabs: 1,
        nav_timeout: Duration::from_secs(30),
        block_resources: true,
        retire: Default::default(),
    })
    .await
    .expect("Chromium launches")
}

pub fn request(url: String, ready: &str, timeout: Duration) -> RenderRequest {
    RenderRequest {
        url,
        ready: Some(ready.to_string()),
        ready_timeout: timeout,
        screenshot: false,
        challenge: None,
        states: vec![],
    }
}

/// [`launch`] as the `extract` command's lazy launcher.
pub async fn try_launch(profiles: &Path) -> Result<CdpRenderer, scrapefarm::render::RenderError> {
    Ok(launch(profiles).await)
}
