//! Signing in to the dashboard: `/ui/login` takes an API key (form field `key`) and opens a
//! session, an HttpOnly, SameSite=Strict cookie holding a random token of which the store keeps
//! only the SHA-256, valid for [`SESSION_TTL_MS`]. Every page asks for a [`Session`]: without a
//! live one (no cookie, expired, signed out, or its key revoked since) it redirects to the login
//! page. Each session has its own CSRF token, which every form posts back.

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::page::{document, escape};
use super::{UiError, UiState};
use crate::api_key::{Scope, hash_key};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sf_session";

/// How long a session lasts: a working day, after which the key is asked for again.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// The signed-in user of a page.
#[derive(Debug, Clone)]
pub struct Session {
    pub key_name: String,
    /// `read` or `write`.
    pub scope: String,
    pub csrf: String,
}

impl Session {
    /// Whether this session may act (create, run, delete): a `write` key's.
    pub fn can_act(&self) -> bool {
        self.scope == Scope::Write.as_str()
    }

    /// Refuses a form whose CSRF token is not this session's, or a read key acting.
    pub fn check_action(&self, csrf: &str) -> Result<(), UiError> {
        if !constant_time_eq(csrf.as_bytes(), self.csrf.as_bytes()) {
            return Err(UiError::bad_request(
                "the form's CSRF token is not this session's; reload the page and try again",
            ));
        }
        if !self.can_act() {
            return Err(UiError(crate::api::problem::ApiError::Forbidden));
        }
        Ok(())
    }
}

pub fn router() -> axum::Router<UiState> {
    axum::Router::new()
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
}

/// The session cookie's token, if the request carries one.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// Compares two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// To the login page, dropping the cookie.
fn to_login() -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sf_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

impl FromRequestParts<UiState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Session, Response> {
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(to_login());
        };
        let store = &state.app.tracker.store;
        let token_hash = hash_key(&token);
        let found = store
            .ui_session(&token_hash)
            .await
            .map_err(|e| UiError::from(e).into_response())?;
        match found {
            Some(row) => Ok(Session {
                key_name: row.key_name,
                scope: row.scope,
                csrf: row.csrf,
            }),
            None => {
                // Expired, or its key revoked: the row is of no more use.
                let _ = store.delete_ui_session(&token_hash).await;
                Err(to_login())
            }
        }
    }
}

/// The sign-in form, with `problem` shown above it when the last attempt failed.
fn login_form(problem: Option<&str>) -> String {
    let alert = problem
        .map(|p| {
            format!(
                "<p role=\"alert\" class=\"error\" id=\"key-error\">{}</p>",
                escape(p)
            )
        })
        .unwrap_or_default();
    let described = if problem.is_some() {
        " aria-describedby=\"key-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    format!(
        "<h1>Sign in to scrapefarm</h1>{alert}\
         <form method=\"post\" action=\"/ui/login\" class=\"login\">\
         <label for=\"key\">API key</label>\
         <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"current-password\" \
         required autofocus{described}>\
         <p class=\"hint\">A key from <code>scrapefarm apikey create</code>: a read key shows \
         everything, a write key can also act.</p>\
         <button type=\"submit\">Sign in</button></form>"
    )
}

async fn login_page() -> Response {
    document("Sign in", None, &login_form(None))
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

/// A random 32-byte secret in hex.
fn secret() -> Result<String, UiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| UiError(crate::api::problem::ApiError::Internal))?;
    Ok(hex::encode(bytes))
}

async fn login(State(state): State<UiState>, Form(form): Form<LoginForm>) -> Response {
    match open_session(&state, form.key.trim()).await {
        Ok(Some(token)) => {
            let mut response = Redirect::to("/ui/listings").into_response();
            let cookie = format!(
                "{SESSION_COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
                SESSION_TTL_MS / 1000
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => {
            let body = login_form(Some("That key is unknown or revoked."));
            let mut response = document("Sign in", None, &body);
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
        Err(e) => e.into_response(),
    }
}

/// A new session's token for a live `key`; `None` for an unknown or revoked key.
async fn open_session(state: &UiState, key: &str) -> Result<Option<String>, UiError> {
    let store = &state.app.tracker.store;
    let key_hash = hash_key(key);
    if key.is_empty() || store.live_api_key(&key_hash).await?.is_none() {
        return Ok(None);
    }
    let (token, csrf) = (secret()?, secret()?);
    store
        .create_ui_session(&hash_key(&token), &key_hash, &csrf, SESSION_TTL_MS)
        .await?;
    tracing::info!("Dashboard session opened.");
    Ok(Some(token))
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(state): State<UiState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if !constant_time_eq(form.csrf.as_bytes(), session.csrf.as_bytes()) {
        return UiError::bad_request("the sign-out form's CSRF token is not this session's")
            .into_response();
    }
    if let Some(token) = cookie_token(&headers)
        && let Err(e) = state
            .app
            .tracker
            .store
            .delete_ui_session(&hash_key(&token))
            .await
    {
        return UiError::from(e).into_response();
    }
    to_login()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sf_session=abc; b=2"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some("abc"));
        headers.insert(header::COOKIE, HeaderValue::from_static("sf_session="));
        assert_eq!(cookie_token(&headers), None);
    }

    #[test]
    fn only_the_sessions_own_token_passes_and_only_for_a_write_key() {
        let mut session = Session {
            key_name: "k".into(),
            scope: "write".into(),
            csrf: "abc".into(),
        };
        assert!(session.check_action("abc").is_ok());
        assert!(session.check_action("abd").is_err());
        assert!(session.check_action("").is_err());
        session.scope = "read".into();
        assert!(session.check_action("abc").is_err());
    }
}
