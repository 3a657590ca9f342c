//! `/ui/fleet`: the farm at a glance — the workers' heartbeats (alive or not, pages, rate,
//! browser memory, last error), the queue depths, pages per minute over the last hour (from
//! the attempts the store logs, one per rendered page), the outcome mix per site and the
//! latest debug snapshots. The page refreshes itself every 10 s without script.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::chart::bar_chart;
use super::page::{document, escape, time};
use super::session::Session;
use super::snapshots::{debug_snapshots, debug_table};
use super::{UiError, UiState};
use crate::queue::{Queue, QueueDepths};
use crate::store::workers::{LISTED_FOR, WorkerRow};

/// The window of the rate chart and the outcome mix.
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

pub fn router() -> axum::Router<UiState> {
    axum::Router::new().route("/ui/fleet", get(fleet))
}

async fn fleet(State(state): State<UiState>, session: Session) -> Result<Response, UiError> {
    let body = render(&state).await?;
    let mut response = document("Fleet", Some(&session), &body);
    response
        .headers_mut()
        .insert("refresh", axum::http::HeaderValue::from_static("10"));
    Ok(response)
}

/// The page body.
pub async fn render(state: &UiState) -> Result<String, UiError> {
    let store = &state.app.tracker.store;
    let now = store.db_now_ms().await?;
    let workers = store.workers(LISTED_FOR).await?;
    let depths = state.app.queue.depths().await;
    let since = now - HOUR_MS;
    let per_minute = store.attempts_per_minute(since).await?;
    let outcomes = store.outcomes_by_site(since).await?;
    let mut body = String::from("<h1>Fleet</h1><p class=\"hint\">Refreshes every 10 seconds.</p>");
    body += &workers_section(&workers);
    body += &match depths {
        Ok(d) => queue_section(&d),
        Err(e) => format!(
            "<h2>Queue</h2><p role=\"alert\">The queue cannot be read: {}</p>",
            escape(&e.to_string())
        ),
    };
    body += &rate_section(now, &per_minute);
    body += &outcome_section(&outcomes);
    body += "<section aria-labelledby=\"h-debug\"><h2 id=\"h-debug\">Latest debug snapshots</h2>";
    let mut kept = debug_snapshots(&state.snapshots);
    kept.truncate(20);
    body += &debug_table(&kept, &outcomes);
    body += "</section>";
    Ok(body)
}

fn workers_section(workers: &[WorkerRow]) -> String {
    let mut out =
        String::from("<section aria-labelledby=\"h-workers\"><h2 id=\"h-workers\">Workers</h2>");
    if workers.is_empty() {
        return out + "<p>No worker has sent a heartbeat in the last hour.</p></section>";
    }
    out += "<div class=\"scroll\"><table class=\"workers\"><thead><tr><th scope=\"col\">Worker</th>\
            <th scope=\"col\">State</th><th scope=\"col\">Host</th><th scope=\"col\" class=\"num\">Tabs</th>\
            <th scope=\"col\" class=\"num\">Pages</th><th scope=\"col\" class=\"num\">Pages/min</th>\
            <th scope=\"col\" class=\"num\">Browser memory</th><th scope=\"col\">Last seen</th>\
            <th scope=\"col\">Last error</th></tr></thead><tbody>";
    for w in workers {
        let memory = w
            .memory_bytes
            .map(|b| format!("{} MiB", b / (1024 * 1024)))
            .unwrap_or_else(|| "—".into());
        let _ = write!(
            out,
            "<tr data-worker=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\" data-pages=\"{}\">{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td>\
             <td>{}</td><td>{}</td></tr>",
            escape(&w.id),
            escape(&w.id),
            if w.alive { "alive" } else { "gone" },
            escape(&w.host),
            w.concurrency,
            w.pages,
            w.pages,
            w.pages_per_min,
            escape(&memory),
            escape(&time(Some(w.seen_at))),
            escape(w.last_error.as_deref().unwrap_or("—"))
        );
    }
    out + "</tbody></table></div></section>"
}

fn queue_section(d: &QueueDepths) -> String {
    let unacked = d
        .unacked
        .map(|n| n.to_string())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "<section aria-labelledby=\"h-queue\"><h2 id=\"h-queue\">Queue</h2><dl class=\"depths\">\
         <dt>Ready</dt><dd>{}</dd><dt>Unacked</dt><dd>{}</dd><dt>Retrying</dt><dd>{}</dd>\
         <dt>Dead</dt><dd>{}</dd><dt>Consumers</dt><dd>{}</dd></dl></section>",
        d.ready,
        escape(&unacked),
        d.retrying,
        d.dead,
        d.consumers
    )
}

/// Pages per minute for each of the last 60 minutes, oldest first, from (minute, count) rows.
fn minutes(now: i64, rows: &[(i64, i64)]) -> Vec<i64> {
    let last = now / MINUTE_MS;
    let by_minute: BTreeMap<i64, i64> = rows.iter().copied().collect();
    (last - 59..=last)
        .map(|m| by_minute.get(&m).copied().unwrap_or(0))
        .collect()
}

fn rate_section(now: i64, rows: &[(i64, i64)]) -> String {
    let counts = minutes(now, rows);
    let total: i64 = counts.iter().sum();
    format!(
        "<section aria-labelledby=\"h-rate\"><h2 id=\"h-rate\">Pages per minute, last hour</h2>\
         <figure>{}<figcaption>{total} pages in the last hour (attempts logged by the workers).</figcaption></figure></section>",
        bar_chart(
            "Pages rendered per minute over the last hour",
            &counts,
            "60 min ago",
            "now"
        )
    )
}

fn outcome_section(rows: &[(String, String, i64)]) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"h-outcomes\"><h2 id=\"h-outcomes\">Outcomes per site, last hour</h2>",
    );
    if rows.is_empty() {
        return out + "<p>No attempt in the last hour.</p></section>";
    }
    out += "<table><thead><tr><th scope=\"col\">Site</th><th scope=\"col\">Outcome</th><th scope=\"col\" class=\"num\">Attempts</th></tr></thead><tbody>";
    for (site, outcome, n) in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td></tr>",
            escape(site),
            escape(outcome)
        );
    }
    out + "</tbody></table></section>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_chart_has_sixty_minutes_with_gaps_as_zero() {
        let now = 100 * MINUTE_MS + 5;
        let counts = minutes(now, &[(100, 7), (98, 2), (10, 99)]);
        assert_eq!(counts.len(), 60);
        assert_eq!(counts[59], 7);
        assert_eq!(counts[57], 2);
        assert_eq!(
            counts.iter().sum::<i64>(),
            9,
            "a minute outside the hour is not drawn"
        );
    }
}
