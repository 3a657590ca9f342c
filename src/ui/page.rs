//! The shared parts of every dashboard page: the HTML document around a page's body (with the
//! navigation and sign-out form), escaping, and how money and times read.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::session::Session;
use crate::report::money_text;

/// The policy of every dashboard page: only this origin's stylesheet, images and frames (the
/// snapshot sandbox), no script at all, and never framed by another site.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A whole page: `title`, the navigation when signed in, and `body` (already escaped HTML).
pub fn document(title: &str, session: Option<&Session>, body: &str) -> Response {
    let nav = session.map(navigation).unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · scrapefarm</title><link rel=\"stylesheet\" href=\"/ui/style.css\">\
         </head><body><a class=\"skip\" href=\"#main\">Skip to content</a>{nav}\
         <main id=\"main\" tabindex=\"-1\">{body}</main></body></html>\n",
        escape(title)
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

/// The links to every page and the sign-out form.
fn navigation(session: &Session) -> String {
    format!(
        "<header><nav aria-label=\"Dashboard\"><ul>\
         <li><a href=\"/ui/listings\">Listings</a></li>\
         <li><a href=\"/ui/searches\">Searches</a></li>\
         <li><a href=\"/ui/fleet\">Fleet</a></li></ul>\
         <form method=\"post\" action=\"/ui/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <span>Signed in as {} ({})</span> <button type=\"submit\">Sign out</button></form></nav></header>",
        escape(&session.csrf),
        escape(&session.key_name),
        escape(&session.scope)
    )
}

/// `USD 499.36`, or an em dash when there is no price.
pub fn money(minor: Option<i64>, currency: Option<&str>) -> String {
    match (minor, currency) {
        (Some(minor), Some(currency)) => money_text(minor, currency),
        _ => "—".into(),
    }
}

/// `+USD 10.00`, `−USD 5.00` or `±0` from `then` to `now`; an em dash when either is missing.
pub fn change(now: Option<i64>, then: Option<i64>, currency: Option<&str>) -> String {
    let (Some(now), Some(then), Some(currency)) = (now, then, currency) else {
        return "—".into();
    };
    let diff = now - then;
    match diff.signum() {
        0 => "±0".into(),
        1 => format!("+{}", money_text(diff, currency)),
        _ => format!("−{}", money_text(diff.abs(), currency)),
    }
}

/// What fires a watch: `below USD 4.99`, `drops 20% or more`, or both; a threshold without a
/// currency is shown in minor units, as the watch holds it.
pub fn watch_rule(watch: &crate::tracker::watches::WatchView) -> String {
    let below = watch.below_minor.map(|minor| match &watch.currency {
        Some(currency) => format!("below {}", money_text(minor, currency)),
        None => format!("below {minor} minor units (any currency)"),
    });
    let drop = watch.drop_percent.map(|p| format!("drops {p}% or more"));
    let rules: Vec<String> = below.into_iter().chain(drop).collect();
    match rules.is_empty() {
        true => "—".into(),
        false => rules.join(" or "),
    }
}

/// `2026-12-08 01:02:03 UTC`, or an em dash.
pub fn time(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => format!("{} UTC", crate::snapshot::format_time(ms)),
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_data_cannot_open_a_tag_or_leave_an_attribute() {
        assert_eq!(
            escape(r#"<script>"x"&'y'</script>"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn changes_read_as_signed_money() {
        assert_eq!(change(Some(49936), Some(39936), Some("USD")), "+USD 100.00");
        assert_eq!(change(Some(100), Some(150), Some("USD")), "−USD 0.50");
        assert_eq!(change(Some(100), Some(100), Some("USD")), "±0");
        assert_eq!(change(Some(100), None, Some("USD")), "—");
        assert_eq!(money(Some(49936), Some("USD")), "USD 499.36");
    }

    #[test]
    fn a_watch_threshold_keeps_its_currency_or_says_it_has_none() {
        let mut watch = crate::tracker::watches::WatchView {
            id: 1,
            search_id: Some(2),
            site: None,
            external_id: None,
            below_minor: Some(499),
            drop_percent: None,
            currency: Some("USD".into()),
            webhook_url: "http://127.0.0.1:9/hook".into(),
            created_at: 0,
        };
        assert_eq!(watch_rule(&watch), "below USD 4.99");
        watch.currency = None;
        watch.drop_percent = Some(20);
        assert_eq!(
            watch_rule(&watch),
            "below 499 minor units (any currency) or drops 20% or more"
        );
    }
}
