//! The WebDriver session of the `webdriver` renderer: chromedriver spawned on a port it picks,
//! one session on the claimed profile with `tabs` windows, resources blocked per window through
//! chromedriver's CDP passthrough, and a teardown that leaves no process behind.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::error::CmdError;
use fantoccini::wd::{
    Capabilities, TimeoutConfiguration, WebDriverCompatibleCommand, WindowHandle,
};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::render::confine::{self, Sandbox};
use crate::render::{BrowserSettings, RenderError, profile};

/// Upper bound on one command that does not navigate (switch, script, source, screenshot).
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Images, fonts and media never fetched when `block_resources` is set (`Network.setBlockedURLs`).
const BLOCKED_URLS: [&str; 13] = [
    "*.png", "*.jpg", "*.jpeg", "*.gif", "*.webp", "*.svg", "*.woff", "*.woff2", "*.ttf", "*.otf",
    "*.mp4", "*.webm", "*.mp3",
];

/// The live chromedriver, its one session and the session's windows.
pub(super) struct Session {
    pub driver: Child,
    pub client: Client,
    pub windows: Vec<WindowHandle>,
    /// Index of the session's current window.
    pub current: usize,
    pub generation: u64,
    /// Drains chromedriver's output; it ends when chromedriver exits, and `shut_down` waits for it.
    pub drain: JoinHandle<()>,
}

/// A chromedriver command sent to the current window's DevTools session
/// (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct CdpCommand(&'static str, Value);

impl WebDriverCompatibleCommand for CdpCommand {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session.unwrap_or_default();
        base.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.0, "params": self.1 }).to_string();
        (http::Method::POST, Some(body))
    }
}

/// Runs one WebDriver command with [`COMMAND_TIMEOUT`].
pub(super) async fn command<T>(
    cmd: impl Future<Output = Result<T, CmdError>>,
) -> Result<T, RenderError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, cmd).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(RenderError::Browser(format!(
            "WebDriver command failed: {e}"
        ))),
        Err(_) => Err(RenderError::Browser("a WebDriver command timed out".into())),
    }
}

/// Spawns chromedriver on a port it picks itself and returns it with that port and the task
/// that drains its output.
/// chromedriver (and the Chromium it starts, which inherits its environment) gets only
/// `confine::browser_env`: never the worker's credentials.
async fn spawn_chromedriver(
    chromedriver: &Path,
) -> Result<(Child, u16, JoinHandle<()>), RenderError> {
    let mut driver = Command::new(chromedriver)
        .args(["--port=0", "--log-level=SEVERE"])
        .env_clear()
        .envs(confine::browser_env_of_process())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            RenderError::Browser(format!(
                "Failed to start chromedriver at {}: {e} (apt-get install chromium-driver)",
                chromedriver.display()
            ))
        })?;
    let stdout = driver.stdout.take();
    let port = match stdout {
        Some(out) => tokio::time::timeout(Duration::from_secs(20), read_port(out)).await,
        None => Ok(None),
    };
    match port {
        Ok(Some((port, drain))) => Ok((driver, port, drain)),
        _ => {
            let _ = driver.kill().await;
            Err(RenderError::Browser(
                "chromedriver did not report its port".into(),
            ))
        }
    }
}

/// Reads chromedriver's "started successfully on port N." line, then keeps draining its output
/// in a task (returned, kept by the session) so it never blocks on a full pipe.
async fn read_port(out: ChildStdout) -> Option<(u16, JoinHandle<()>)> {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.split("on port ").nth(1)
            && line.contains("started successfully")
        {
            let port = rest.trim_end_matches('.').trim().parse().ok()?;
            let drain =
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Some((port, drain));
        }
    }
    None
}

/// Chromium as in `cdp::launch`, plus the background-throttling switches chromiumoxide adds by
/// default: the windows not in front must keep running their timers.
fn capabilities(settings: &BrowserSettings, sandbox: &Sandbox) -> Capabilities {
    let args = [
        "--headless=new",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--disable-background-timer-throttling",
        "--disable-backgrounding-occluded-windows",
        "--disable-renderer-backgrounding",
        "--window-size=1366,768",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if !sandbox.is_on() {
        args.push("--no-sandbox".into());
    }
    args.push(format!(
        "--user-data-dir={}",
        settings.profile_dir.display()
    ));
    let mut caps = Capabilities::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("pageLoadStrategy".into(), json!("none"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": settings.chrome, "args": args }),
    );
    caps
}

/// Starts chromedriver and a session with `tabs` windows, blocking resources in each.
pub(super) async fn start_session(
    settings: &BrowserSettings,
    chromedriver: &Path,
    generation: u64,
) -> Result<Session, RenderError> {
    // The caller claimed the profile (`profile::claim`, which also killed orphans of a dead
    // worker); a browser this process still runs on it makes Chromium exit at once below.
    let dir = &settings.profile_dir;
    let sandbox = confine::detect_in_background(&settings.chrome).await?;
    let (mut driver, port, drain) = spawn_chromedriver(chromedriver).await?;
    let connect = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities(settings, &sandbox))
        .connect(&format!("http://127.0.0.1:{port}"))
        .await;
    let client = match connect {
        Ok(client) => client,
        Err(e) => {
            let _ = driver.kill().await;
            drain.abort();
            return Err(session_refused(dir, &e.to_string()));
        }
    };
    let mut session = Session {
        driver,
        client,
        windows: Vec::new(),
        current: 0,
        generation,
        drain,
    };
    match open_windows(&mut session, settings).await {
        Ok(()) => {
            tracing::info!(profile = %dir.display(), port, sandbox = sandbox.is_on(), "chromedriver session started.");
            Ok(session)
        }
        Err(e) => {
            shut_down(session, dir, Duration::ZERO).await;
            Err(e)
        }
    }
}

/// Clears every cookie of the browser, for all sites; WebDriver's own delete-all only clears
/// the current document's.
pub(super) async fn clear_cookies(client: &Client) -> Result<(), RenderError> {
    let clear = CdpCommand("Network.clearBrowserCookies", json!({}));
    command(client.issue_cmd(clear)).await.map(|_| ())
}

/// Why chromedriver refused the session, in words that say what to do.
fn session_refused(dir: &Path, reason: &str) -> RenderError {
    // Chromium hands its command line to the browser already running on the user-data-dir and
    // exits; chromedriver reports that as "Chrome instance exited" (older: "already in use").
    let in_use = ["Chrome instance exited", "already in use"];
    if in_use.iter().any(|text| reason.contains(text)) {
        return RenderError::Browser(format!(
            "profile {} is in use by another Chromium; run each renderer on its own profile \
             (chromedriver: {reason})",
            dir.display()
        ));
    }
    RenderError::Browser(format!(
        "chromedriver could not start Chromium on profile {}: {reason}",
        dir.display()
    ))
}

async fn open_windows(
    session: &mut Session,
    settings: &BrowserSettings,
) -> Result<(), RenderError> {
    let timeouts = TimeoutConfiguration::new(
        Some(COMMAND_TIMEOUT),
        Some(settings.nav_timeout),
        Some(Duration::ZERO),
    );
    command(session.client.update_timeouts(timeouts)).await?;
    session
        .windows
        .push(command(session.client.window()).await?);
    for _ in 1..settings.tabs.max(1) {
        let created = command(session.client.new_window(false)).await?;
        session.windows.push(created.handle);
    }
    for (index, handle) in session.windows.iter().enumerate() {
        command(session.client.switch_to_window(handle.clone())).await?;
        session.current = index;
        if settings.block_resources {
            let client = &session.client;
            command(client.issue_cmd(CdpCommand("Network.enable", json!({})))).await?;
            let urls = json!({ "urls": BLOCKED_URLS });
            command(client.issue_cmd(CdpCommand("Network.setBlockedURLs", urls))).await?;
        }
    }
    Ok(())
}

/// Ends the session, so chromedriver quits Chromium and reaps it, then kills and reaps
/// chromedriver, then kills whatever still runs on the profile (a browser that did not quit in
/// `grace`). The order matters: a browser still running when its driver is killed is orphaned and
/// would keep the profile locked.
pub(super) async fn shut_down(session: Session, profile_dir: &Path, grace: Duration) {
    let Session {
        mut driver,
        client,
        mut drain,
        ..
    } = session;
    let _ = tokio::time::timeout(grace, client.close()).await;
    let _ = driver.kill().await;
    // chromedriver's pipe closed with it, so the drain ends; abort it if a child still holds it.
    if tokio::time::timeout(Duration::from_secs(1), &mut drain)
        .await
        .is_err()
    {
        drain.abort();
    }
    let orphans = profile::kill_orphans(profile_dir);
    if orphans > 0 {
        tracing::warn!(orphans, profile = %profile_dir.display(), "Killed Chromium left by chromedriver.");
    }
}
