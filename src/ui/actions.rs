//! `/ui/searches`: searches and watches, and the actions a write key may take on them — create
//! a search, run it now, delete it; create and delete a watch — each a POST form carrying the
//! session's CSRF token that calls the same `tracker` operation as the JSON API, then sends the
//! browser back to the page (post/redirect/get). Fired alerts are listed with their delivery
//! state. Read keys see the lists without the forms, and their posts are refused.

use std::fmt::Write;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::listings::given;
use super::page::{document, escape, money, time, watch_rule};
use super::session::Session;
use super::{UiError, UiState};
use crate::tracker::watches::{AlertView, WatchRequest, WatchView};
use crate::tracker::{SearchRequest, SearchView, Tracker, TrackerError};

pub fn router() -> axum::Router<UiState> {
    axum::Router::new()
        .route("/ui/searches", get(page).post(create_search))
        .route("/ui/searches/{id}/run", post(run_search))
        .route("/ui/searches/{id}/pause", post(pause_search))
        .route("/ui/searches/{id}/resume", post(resume_search))
        .route("/ui/searches/{id}/delete", post(delete_search))
        .route("/ui/watches", post(create_watch))
        .route("/ui/watches/{id}/delete", post(delete_watch))
}

/// A form with only its CSRF token.
#[derive(Deserialize)]
struct Token {
    csrf: String,
}

#[derive(Deserialize)]
struct SearchForm {
    csrf: String,
    site: String,
    query: String,
    max_pages: Option<String>,
    every: Option<String>,
}

#[derive(Deserialize)]
struct WatchForm {
    csrf: String,
    site: String,
    external_id: String,
    below_minor: Option<String>,
    drop_percent: Option<String>,
    currency: Option<String>,
    webhook_url: String,
}

/// A number typed into a form, or `None` when the field is empty.
fn number(field: &str, text: &Option<String>) -> Result<Option<i64>, UiError> {
    match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| UiError::bad_request(format!("{field} {t:?}: expected a whole number"))),
    }
}

/// Runs `operation` when the form is this session's and the key may act, then sends the
/// browser back to the page. The operation is a future: nothing of it runs before the check.
async fn act<T>(
    session: &Session,
    csrf: &str,
    operation: impl Future<Output = Result<T, TrackerError>>,
) -> Result<Response, UiError> {
    session.check_action(csrf)?;
    operation.await.map_err(UiError::tracker)?;
    Ok(Redirect::to("/ui/searches").into_response())
}

async fn create_search(
    State(state): State<UiState>,
    session: Session,
    Form(form): Form<SearchForm>,
) -> Result<Response, UiError> {
    let request = SearchRequest {
        site: form.site.trim().to_string(),
        query: Some(form.query.trim().to_string()),
        urls: None,
        max_pages: number("max_pages", &form.max_pages)?,
        every: given(&form.every),
    };
    act(
        &session,
        &form.csrf,
        state.app.tracker.create_search(&request),
    )
    .await
}

async fn run_search(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<Token>,
) -> Result<Response, UiError> {
    act(&session, &form.csrf, state.app.tracker.run_search(id)).await
}

async fn pause_search(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<Token>,
) -> Result<Response, UiError> {
    act(&session, &form.csrf, state.app.tracker.pause_schedule(id)).await
}

async fn resume_search(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<Token>,
) -> Result<Response, UiError> {
    act(&session, &form.csrf, state.app.tracker.resume_schedule(id)).await
}

async fn delete_search(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<Token>,
) -> Result<Response, UiError> {
    act(&session, &form.csrf, state.app.tracker.delete_search(id)).await
}

async fn create_watch(
    State(state): State<UiState>,
    session: Session,
    Form(form): Form<WatchForm>,
) -> Result<Response, UiError> {
    let request = WatchRequest {
        search_id: None,
        site: Some(form.site.trim().to_string()),
        external_id: Some(form.external_id.trim().to_string()),
        below_minor: number("below_minor", &form.below_minor)?,
        drop_percent: number("drop_percent", &form.drop_percent)?,
        currency: given(&form.currency),
        webhook_url: form.webhook_url.trim().to_string(),
    };
    // The secret is shown once by the API; the dashboard never displays it.
    act(
        &session,
        &form.csrf,
        state.app.tracker.create_watch(&request),
    )
    .await
}

async fn delete_watch(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<Token>,
) -> Result<Response, UiError> {
    act(&session, &form.csrf, state.app.tracker.delete_watch(id)).await
}

async fn page(State(state): State<UiState>, session: Session) -> Result<Response, UiError> {
    let body = render(&state.app.tracker, &session).await?;
    Ok(document("Searches and watches", Some(&session), &body))
}

/// A one-button POST form to `action`, or nothing for a read key.
/// Pause or Resume for a search with a schedule; nothing for one without.
fn schedule_button(session: &Session, search: &SearchView) -> String {
    match (&search.every, search.paused) {
        (None, _) => String::new(),
        (Some(_), false) => button(
            session,
            &format!("/ui/searches/{}/pause", search.id),
            "Pause",
        ),
        (Some(_), true) => button(
            session,
            &format!("/ui/searches/{}/resume", search.id),
            "Resume",
        ),
    }
}

fn button(session: &Session, action: &str, label: &str) -> String {
    if !session.can_act() {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" \
         value=\"{}\"><button type=\"submit\">{}</button></form>",
        escape(action),
        escape(&session.csrf),
        escape(label)
    )
}

async fn render(tracker: &Tracker, session: &Session) -> Result<String, UiError> {
    let searches = tracker.searches().await.map_err(UiError::tracker)?;
    let watches = tracker.watches().await.map_err(UiError::tracker)?;
    let alerts = tracker.alerts(None).await.map_err(UiError::tracker)?;
    let mut body = String::from("<h1>Searches and watches</h1>");
    if !session.can_act() {
        body += "<p class=\"hint\">This key may only read: sign in with a write key to act.</p>";
    }
    body += &searches_section(&searches, session);
    body += &watches_section(&watches, session);
    body += &alerts_section(&alerts);
    Ok(body)
}

fn searches_section(searches: &[SearchView], session: &Session) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"h-searches\"><h2 id=\"h-searches\">Searches</h2>\
         <div class=\"scroll\"><table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Site</th>\
         <th scope=\"col\">Query</th><th scope=\"col\">Every</th><th scope=\"col\">Next run</th>\
         <th scope=\"col\">Last run</th><th scope=\"col\" class=\"num\">Listings</th>\
         <th scope=\"col\">Actions</th></tr></thead><tbody>",
    );
    for s in searches {
        let query = match (&s.query, &s.urls) {
            (Some(q), _) => q.clone(),
            (None, Some(urls)) => format!("{} URLs", urls.len()),
            (None, None) => "—".into(),
        };
        let _ = write!(
            out,
            "<tr data-search-id=\"{id}\"><td><a href=\"/ui/listings?search={id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}{}{}</td></tr>",
            escape(&s.site),
            escape(&query),
            escape(s.every.as_deref().unwrap_or("—")),
            match s.paused {
                true => "paused".to_string(),
                false => escape(&time(s.next_run_at)),
            },
            escape(s.last_run_status.as_deref().unwrap_or("—")),
            s.listings,
            button(session, &format!("/ui/searches/{}/run", s.id), "Run now"),
            schedule_button(session, s),
            button(session, &format!("/ui/searches/{}/delete", s.id), "Delete"),
            id = s.id,
        );
    }
    out += "</tbody></table></div>";
    if session.can_act() {
        let _ = write!(
            out,
            "<h3>New search</h3><form method=\"post\" action=\"/ui/searches\" class=\"filters\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <div><label for=\"s-site\">Site</label><input id=\"s-site\" name=\"site\" required></div>\
             <div><label for=\"s-query\">Query</label><input id=\"s-query\" name=\"query\" required></div>\
             <div><label for=\"s-pages\">Search pages</label><input id=\"s-pages\" name=\"max_pages\" inputmode=\"numeric\"></div>\
             <div><label for=\"s-every\">Every (30m, 6h, cron)</label><input id=\"s-every\" name=\"every\"></div>\
             <div><button type=\"submit\">Create</button></div></form>",
            escape(&session.csrf)
        );
    }
    out + "</section>"
}

fn watches_section(watches: &[WatchView], session: &Session) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"h-watch-list\"><h2 id=\"h-watch-list\">Watches</h2><ul>",
    );
    for w in watches {
        let target = match (&w.site, &w.external_id, w.search_id) {
            (Some(site), Some(id), _) => format!("{site}/{id}"),
            (_, _, Some(search)) => format!("search {search}"),
            _ => "—".into(),
        };
        let rule = watch_rule(w);
        let _ = write!(
            out,
            "<li>Watch {}: {} {} → {} {}</li>",
            w.id,
            escape(&target),
            escape(&rule),
            escape(&w.webhook_url),
            button(session, &format!("/ui/watches/{}/delete", w.id), "Delete")
        );
    }
    out += "</ul>";
    if session.can_act() {
        let _ = write!(
            out,
            "<h3>New watch</h3><form method=\"post\" action=\"/ui/watches\" class=\"filters\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <div><label for=\"w-site\">Site</label><input id=\"w-site\" name=\"site\" required></div>\
             <div><label for=\"w-id\">Listing id</label><input id=\"w-id\" name=\"external_id\" required></div>\
             <div><label for=\"w-below\">Below (minor units)</label><input id=\"w-below\" name=\"below_minor\" inputmode=\"numeric\"></div>\
             <div><label for=\"w-drop\">Drop %</label><input id=\"w-drop\" name=\"drop_percent\" inputmode=\"numeric\"></div>\
             <div><label for=\"w-cur\">Currency</label><input id=\"w-cur\" name=\"currency\"></div>\
             <div><label for=\"w-hook\">Webhook URL</label><input id=\"w-hook\" name=\"webhook_url\" type=\"url\" required></div>\
             <div><button type=\"submit\">Create</button></div></form>",
            escape(&session.csrf)
        );
    }
    out + "</section>"
}

fn alerts_section(alerts: &[AlertView]) -> String {
    let mut out =
        String::from("<section aria-labelledby=\"h-alerts\"><h2 id=\"h-alerts\">Fired alerts</h2>");
    if alerts.is_empty() {
        return out + "<p>No alert has fired.</p></section>";
    }
    out += "<table><thead><tr><th scope=\"col\">Watch</th><th scope=\"col\">Reason</th>\
            <th scope=\"col\" class=\"num\">Price</th><th scope=\"col\">Fired</th>\
            <th scope=\"col\">Delivery</th><th scope=\"col\">Last error</th></tr></thead><tbody>";
    for a in alerts {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{} ({} attempts)</td><td>{}</td></tr>",
            a.watch_id,
            escape(&a.reason),
            escape(&money(Some(a.new_price_minor), Some(&a.currency))),
            escape(&time(Some(a.created_at))),
            escape(&a.state),
            a.attempts,
            escape(a.last_error.as_deref().unwrap_or("—"))
        );
    }
    out + "</tbody></table></section>"
}
