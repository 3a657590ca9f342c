//! Serving saved pages from 127.0.0.1 and rendering them in the real CDP renderer.

// Shared by several test crates, each of which uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use scrapefarm::render::{
    BrowserBuild, BrowserSettings, CdpRenderer, RenderRequest, build, profile,
};

/// Path (and query) → `Content-Type` and body.
type Pages = Arc<BTreeMap<String, (String, Vec<u8>)>>;

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
    let html = |body| ("text/html; charset=utf-8".to_string(), body);
    serve_typed(pages.into_iter().map(|(p, b)| (p, html(b))).collect()).await
}

/// Serves `pages` (path, or path and query → `Content-Type` and bytes): a request is answered by
/// its path and query, else by its path alone.
pub async fn serve_typed(pages: BTreeMap<String, (String, Vec<u8>)>) -> PageServer {
    async fn page(State(pages): State<Pages>, req: Request) -> Response {
        let uri = req.uri();
        let full = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        match pages.get(full).or_else(|| pages.get(uri.path())) {
            Some((content_type, body)) => {
                let typed = [(header::CONTENT_TYPE, content_type.clone())];
                (typed, body.clone()).into_response()
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

/// The browser's only way out: a proxy on 127.0.0.1 that refuses every request (403) and
/// records where it was going. Aborted on drop.
pub struct Sink {
    pub addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(refuse(stream, log.clone()));
            }
        });
        Sink { addr, seen, task }
    }

    /// The request lines refused so far (`CONNECT host:443 HTTP/1.1`, `GET http://… HTTP/1.1`).
    pub fn refused(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn refuse(mut stream: tokio::net::TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = vec![0; 4096];
    let n = stream.read(&mut head).await.unwrap_or(0);
    let line = String::from_utf8_lossy(&head[..n]);
    seen.lock()
        .unwrap()
        .push(line.lines().next().unwrap_or_default().to_string());
    let refused = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let _ = stream.write_all(refused.as_bytes()).await;
}

/// Chromium as the worker runs it (`launch`), with `tabs` tabs, confined to 127.0.0.1: every
/// other request goes to `sink` (loopback is not proxied), no host name resolves but 127.0.0.1
/// and localhost, and WebRTC may not send UDP around the proxy. The flags are added by a
/// wrapper script in `dir` standing in for the browser binary, so the renderer is the worker's.
pub async fn launch_confined(dir: &Path, tabs: usize, sink: &Sink) -> CdpRenderer {
    let chrome = build::pick_from_env(BrowserBuild::Auto)
        .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"));
    let flags = [
        format!("--proxy-server=http://{}", sink.addr),
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost".into(),
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".into(),
        "--disable-background-networking".into(),
    ];
    let quoted: Vec<String> = flags.iter().map(|f| format!("'{f}'")).collect();
    let wrapper = dir.join("chromium-confined.sh");
    let script = format!(
        "#!/bin/sh\nexec '{}' {} \"$@\"\n",
        chrome.display(),
        quoted.join(" ")
    );
    std::fs::write(&wrapper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    CdpRenderer::launch(BrowserSettings {
        chrome: wrapper,
        profile_dir: profile::claim(dir, "realworld").unwrap(),
        tabs,
        nav_timeout: Duration::from_secs(30),
        block_resources: true,
        retire: Default::default(),
    })
    .await
    .expect("Chromium launches")
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
