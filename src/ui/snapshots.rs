//! Stored pages, shown as the farm saw them: `/ui/snapshots/{id}` frames the snapshot in a
//! `sandbox` iframe beside its screenshot thumbnail; the page itself (`…/html`) is served with
//! [`SNAPSHOT_CSP`], so none of its scripts runs and nothing is fetched from the network, even
//! opened on its own. Debug snapshots (one per failure signature, `snapshots/debug/<site>/`)
//! are listed with how many attempts ended that way, and shown the same way.

use std::fmt::Write;
use std::path::Path as FsPath;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::page::{document, escape, time};
use super::session::Session;
use super::{UiError, UiState};
use crate::snapshot;
use crate::store::SnapshotEntry;

/// The policy of a stored page: a sandbox (no script, no forms, an opaque origin), nothing from
/// the network, images only when inlined and inline styles, so the page looks as it did.
pub const SNAPSHOT_CSP: &str =
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'";

pub fn router() -> axum::Router<UiState> {
    axum::Router::new()
        .route("/ui/snapshots/{id}", get(snapshot_page))
        .route("/ui/snapshots/{id}/html", get(snapshot_html))
        .route("/ui/snapshots/{id}/screenshot", get(snapshot_screenshot))
        .route("/ui/debug/{site}/{signature}", get(debug_page))
        .route("/ui/debug/{site}/{signature}/html", get(debug_html))
        .route(
            "/ui/debug/{site}/{signature}/screenshot",
            get(debug_screenshot),
        )
}

/// Stored HTML as a response under the sandbox policy.
fn sandboxed(html: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, SNAPSHOT_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// A JPEG file under the snapshot root.
fn jpeg(root: &FsPath, relative: &str) -> Result<Response, UiError> {
    let path = snapshot::resolve(root, relative).map_err(|e| UiError::not_found(e.to_string()))?;
    let bytes = std::fs::read(&path)
        .map_err(|_| UiError::not_found(format!("no screenshot at {relative}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

/// The frame and thumbnail of a stored page whose routes start with `base`.
fn framed(heading: &str, facts: &str, base: &str, has_screenshot: bool) -> String {
    let thumb = if has_screenshot {
        format!(
            "<figure><img src=\"{base}/screenshot\" alt=\"Screenshot of the page as rendered\" \
             class=\"thumb\"><figcaption>Screenshot thumbnail</figcaption></figure>"
        )
    } else {
        "<p>No screenshot was kept.</p>".into()
    };
    format!(
        "<h1>{}</h1>{facts}{thumb}<p><a href=\"{base}/html\">Open the page alone</a> (still \
         sandboxed: no script runs)</p><iframe class=\"snapshot\" sandbox src=\"{base}/html\" \
         title=\"{}\" referrerpolicy=\"no-referrer\"></iframe>",
        escape(heading),
        escape(heading)
    )
}

/// The snapshot row `id`, or a 404.
async fn entry(state: &UiState, id: i64) -> Result<SnapshotEntry, UiError> {
    let found = state.app.tracker.store.snapshot_entry(id).await?;
    found.ok_or_else(|| UiError::not_found(format!("no snapshot {id}")))
}

async fn snapshot_page(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let entry = entry(&state, id).await?;
    let listing = format!(
        "/ui/listings/{}/{}",
        super::listings::encode(&entry.site),
        super::listings::encode(&entry.external_id)
    );
    let facts = format!(
        "<p>Listing <a href=\"{}\">{}/{}</a>, captured {}, HTTP {}, {} bytes of HTML, sha256 <code>{}</code>.</p>",
        escape(&listing),
        escape(&entry.site),
        escape(&entry.external_id),
        escape(&time(Some(entry.captured_at))),
        entry
            .http_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "—".into()),
        entry.html_bytes,
        escape(&entry.sha256)
    );
    let heading = format!("Snapshot {id}");
    let body = framed(
        &heading,
        &facts,
        &format!("/ui/snapshots/{id}"),
        entry.screenshot_path.is_some(),
    );
    Ok(document(&heading, Some(&session), &body))
}

async fn snapshot_html(
    State(state): State<UiState>,
    _session: Session,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let entry = entry(&state, id).await?;
    let html = snapshot::read_html(&state.snapshots, &entry.path)
        .map_err(|e| UiError::not_found(format!("snapshot {id} cannot be read: {e}")))?;
    Ok(sandboxed(html))
}

async fn snapshot_screenshot(
    State(state): State<UiState>,
    _session: Session,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let entry = entry(&state, id).await?;
    let path = entry
        .screenshot_path
        .ok_or_else(|| UiError::not_found(format!("snapshot {id} has no screenshot")))?;
    jpeg(&state.snapshots, &path)
}

/// One kept debug snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugSnapshot {
    pub site: String,
    /// `<outcome>-<http status>`.
    pub signature: String,
    /// When it was written (the file's time), epoch ms.
    pub written_at: Option<i64>,
    pub has_screenshot: bool,
}

/// The debug snapshots under `root/debug`, newest first.
pub fn debug_snapshots(root: &FsPath) -> Vec<DebugSnapshot> {
    let mut found = Vec::new();
    let Ok(sites) = std::fs::read_dir(root.join("debug")) else {
        return found;
    };
    for site in sites.flatten() {
        let site_name = site.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(site.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(signature) = name.strip_suffix(".html.zst") else {
                continue;
            };
            let written_at = file
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_millis() as i64)
                });
            let has_screenshot = site.path().join(format!("{signature}.thumb.jpg")).exists();
            found.push(DebugSnapshot {
                site: site_name.clone(),
                signature: signature.into(),
                written_at,
                has_screenshot,
            });
        }
    }
    found.sort_by(|a, b| {
        b.written_at
            .cmp(&a.written_at)
            .then(a.signature.cmp(&b.signature))
    });
    found
}

/// The debug snapshots as a table, with the attempts per (site, outcome) from `counts`.
pub fn debug_table(kept: &[DebugSnapshot], counts: &[(String, String, i64)]) -> String {
    if kept.is_empty() {
        return "<p>No debug snapshot kept.</p>".into();
    }
    let mut out = String::from(
        "<table><thead><tr><th scope=\"col\">Site</th><th scope=\"col\">Signature</th>\
         <th scope=\"col\" class=\"num\">Attempts (last hour)</th><th scope=\"col\">Kept</th></tr></thead><tbody>",
    );
    for d in kept {
        let outcome = d
            .signature
            .rsplit_once('-')
            .map_or(d.signature.as_str(), |(o, _)| o);
        let count: i64 = counts
            .iter()
            .filter(|(s, o, _)| *s == d.site && o == outcome)
            .map(|(.., n)| n)
            .sum();
        let href = format!(
            "/ui/debug/{}/{}",
            super::listings::encode(&d.site),
            super::listings::encode(&d.signature)
        );
        let _ = write!(
            out,
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td class=\"num\">{count}</td><td>{}</td></tr>",
            escape(&d.site),
            escape(&href),
            escape(&d.signature),
            escape(&time(d.written_at))
        );
    }
    out + "</tbody></table>"
}

/// `debug/<site>/<signature><suffix>`, refusing names that are not one plain path segment.
fn debug_path(site: &str, signature: &str, suffix: &str) -> Result<String, UiError> {
    let plain = |s: &str| !s.is_empty() && !s.contains(['/', '\\']) && s != "." && s != "..";
    if !plain(site) || !plain(signature) {
        return Err(UiError::not_found("no such debug snapshot"));
    }
    Ok(format!("debug/{site}/{signature}{suffix}"))
}

async fn debug_page(
    State(state): State<UiState>,
    session: Session,
    Path((site, signature)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let html = debug_path(&site, &signature, ".html.zst")?;
    if !state.snapshots.join(&html).exists() {
        return Err(UiError::not_found(format!(
            "no debug snapshot {site}/{signature}"
        )));
    }
    let shot = state
        .snapshots
        .join(debug_path(&site, &signature, ".thumb.jpg")?)
        .exists();
    let heading = format!("Debug snapshot {site}/{signature}");
    let facts = "<p>The first page that failed this way, kept once per signature.</p>";
    let base = format!(
        "/ui/debug/{}/{}",
        super::listings::encode(&site),
        super::listings::encode(&signature)
    );
    Ok(document(
        &heading,
        Some(&session),
        &framed(&heading, facts, &base, shot),
    ))
}

async fn debug_html(
    State(state): State<UiState>,
    _session: Session,
    Path((site, signature)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let path = debug_path(&site, &signature, ".html.zst")?;
    let html = snapshot::read_html(&state.snapshots, &path).map_err(|e| {
        UiError::not_found(format!(
            "debug snapshot {site}/{signature} cannot be read: {e}"
        ))
    })?;
    Ok(sandboxed(html))
}

async fn debug_screenshot(
    State(state): State<UiState>,
    _session: Session,
    Path((site, signature)): Path<(String, String)>,
) -> Result<Response, UiError> {
    jpeg(
        &state.snapshots,
        &debug_path(&site, &signature, ".thumb.jpg")?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_never_leave_the_debug_folder() {
        assert!(debug_path("fixture", "blocked-403", ".html.zst").is_ok());
        assert!(debug_path("..", "x", "").is_err());
        assert!(debug_path("fixture", "../../etc/passwd", "").is_err());
        assert!(debug_path("fixture", "", "").is_err());
    }

    #[test]
    fn kept_debug_snapshots_are_found_with_their_screenshot() {
        let root = tempfile::tempdir().unwrap();
        snapshot::write_debug(root.path(), "fixture", "blocked-403", "<p>no</p>", None).unwrap();
        let kept = debug_snapshots(root.path());
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].site.as_str(), kept[0].signature.as_str()),
            ("fixture", "blocked-403")
        );
        let table = debug_table(&kept, &[("fixture".into(), "blocked".into(), 4)]);
        assert!(table.contains(">4<"), "{table}");
    }
}
