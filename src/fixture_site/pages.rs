//! HTML of every page the fixture site serves. All dynamic text goes through
//! [`escape`]; listing values on item pages are filled by JavaScript with
//! `textContent`, never by the server.

use std::fmt::Write as _;

use super::TruthListing;

/// Escapes text for use in HTML content and double- or single-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
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

/// Percent-encodes a query-string value (unreserved characters stay as they are).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The common page frame; `title` is escaped, `head` and `body` are raw HTML.
fn layout(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// Site header with the search form (pre-filled with `query`).
fn header(query: &str) -> String {
    format!(
        "<header class=\"site-header\"><a class=\"logo\" href=\"/\">Fixture Market</a>\n\
         <form class=\"search-form\" action=\"/search\" method=\"get\">\
         <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"Search listings\">\
         <button type=\"submit\">Search</button></form></header>\n",
        escape(query)
    )
}

/// `GET /`.
pub(crate) fn home() -> String {
    let body = format!(
        "{}<main id=\"home\"><h1>Welcome to Fixture Market</h1>\n\
         <p>Search the catalogue, e.g. <a href=\"/search?q=lamp\">lamp</a>.</p></main>\n",
        header("")
    );
    layout("Fixture Market", "", &body)
}

/// `GET /search`: `rows` are this page's listings; `total` is the query's listing count.
pub(crate) fn search(
    query: &str,
    page: usize,
    total: usize,
    per_page: usize,
    rows: &[TruthListing],
) -> String {
    let mut results = String::new();
    for (i, listing) in rows.iter().enumerate() {
        if i == 2 {
            results.push_str(SPONSORED_ROW);
        }
        results.push_str(&result_row(listing));
    }
    if (1..=2).contains(&rows.len()) {
        results.push_str(SPONSORED_ROW);
    }
    let mut body = format!(
        "{}<main id=\"search\">\n<h1 class=\"search-heading\">Results for “{}”</h1>\n<ol id=\"results\">\n{results}</ol>\n",
        header(query),
        escape(query)
    );
    if rows.is_empty() {
        body.push_str("<p class=\"no-results\">No results</p>\n");
    } else {
        body.push_str(&pagination(query, page, total.div_ceil(per_page)));
    }
    let _ = writeln!(
        body,
        "<div id=\"search-ready\" data-count=\"{total}\"></div>\n</main>"
    );
    layout(&format!("{query} — Search | Fixture Market"), "", &body)
}

/// The advert shown on every non-empty result page; scrapers must skip it.
const SPONSORED_ROW: &str = "<li class=\"result sponsored\" data-sponsored=\"1\">\
<a class=\"result-link\" href=\"/promo/1\"><span class=\"result-title\">Sponsored: Deluxe Cleaning Kit</span></a> \
<span class=\"result-price\">US $19.99</span></li>\n";

/// One search result (gone listings show as "Listing ID" with price "—").
fn result_row(listing: &TruthListing) -> String {
    let id = &listing.external_id;
    let fallback = format!("Listing {id}");
    let title = listing.title.as_deref().unwrap_or(&fallback);
    let price = listing.price_text.as_deref().unwrap_or("—");
    format!(
        "<li class=\"result\" data-listing-id=\"{id}\"><a class=\"result-link\" href=\"/item/{id}\">\
         <span class=\"result-title\">{}</span></a> <span class=\"result-price\">{}</span></li>\n",
        escape(title),
        escape(price)
    )
}

/// "Page N of M" plus previous/next links (next only when there is a next page).
fn pagination(query: &str, page: usize, pages: usize) -> String {
    let href = |n: usize| escape(&format!("/search?q={}&page={n}", url_encode(query)));
    let mut nav = String::from("<nav class=\"pagination\">");
    if page > 1 {
        let _ = write!(
            nav,
            "<a class=\"prev\" href=\"{}\">Previous</a> ",
            href(page - 1)
        );
    }
    let _ = write!(
        nav,
        "<span class=\"page-info\">Page {page} of {pages}</span>"
    );
    if page < pages {
        let _ = write!(
            nav,
            " <a class=\"next\" href=\"{}\">Next</a>",
            href(page + 1)
        );
    }
    nav.push_str("</nav>\n");
    nav
}

/// A listing page whose script allocates until V8 gives up: the renderer process dies with an
/// out-of-memory crash every time it is loaded.
pub(crate) fn renderer_killer() -> String {
    "<!doctype html><html><head><title>Heavy listing</title></head><body><h1>Loading…</h1>\n\
     <script>const hoard = []; for (;;) { hoard.push(new Array(1 << 20).fill(1.5)); }</script>\n\
     </body></html>"
        .to_string()
}

/// `GET /item/ID` for a live listing: an empty shell that JavaScript fills in.
pub(crate) fn item_shell(base_url: &str, id: &str, render_delay_ms: u64) -> String {
    let head = format!(
        "<link rel=\"canonical\" href=\"{}/item/{id}\">\n\
         <script src=\"/static/vendor-analytics.js\" async></script>\n",
        escape(base_url)
    );
    let script = ITEM_SCRIPT
        .replace("__ID__", id)
        .replace("__DELAY__", &render_delay_ms.to_string());
    let body = format!("{}{ITEM_MAIN}<script>{script}</script>\n", header(""));
    layout(&format!("Item {id} | Fixture Market"), &head, &body)
}

/// The listing markup; every field is empty until the script runs.
const ITEM_MAIN: &str = r#"<main id="listing">
<h1 class="title"></h1>
<div class="price"></div>
<div class="condition"></div>
<div class="seller"><span class="name"></span> <span class="score"></span></div>
<div class="shipping"></div>
<div class="location"></div>
<table class="specifics"><tbody></tbody></table>
<div class="description"></div>
<div class="gallery"></div>
</main>
"#;

/// Fetches `/api/item/ID` after the render delay and fills the shell.
const ITEM_SCRIPT: &str = r#"
(function () {
  var main = document.getElementById("listing");
  function put(sel, value) {
    var el = main.querySelector(sel);
    if (el && value !== null && value !== undefined) { el.textContent = String(value); }
  }
  function group(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function fill(d) {
    put("h1.title", d.title); put(".price", d.price_text); put(".condition", d.condition);
    put(".seller .name", d.seller);
    if (d.seller_score !== null) { put(".seller .score", "(" + group(d.seller_score) + ")"); }
    put(".shipping", d.shipping); put(".location", d.location); put(".description", d.description);
    var body = main.querySelector("table.specifics tbody");
    Object.keys(d.specifics || {}).forEach(function (key) {
      var tr = document.createElement("tr"), th = document.createElement("th"), td = document.createElement("td");
      th.textContent = key; td.textContent = d.specifics[key];
      tr.appendChild(th); tr.appendChild(td); body.appendChild(tr);
    });
    var gallery = main.querySelector(".gallery");
    (d.images || []).forEach(function (src) {
      var img = document.createElement("img"); img.src = src; img.alt = ""; gallery.appendChild(img);
    });
    if (d.status === "ended") {
      var banner = document.createElement("div");
      banner.className = "ended-banner"; banner.textContent = "This listing has ended";
      main.insertBefore(banner, main.firstChild);
    }
    main.setAttribute("data-ready", "1");
  }
  setTimeout(function () {
    fetch("/api/item/__ID__", { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(fill)
      .catch(function (e) { main.setAttribute("data-error", String(e)); });
  }, __DELAY__);
})();
"#;

/// 404 for an unknown or gone listing.
pub(crate) fn gone() -> String {
    let body = format!(
        "{}<main id=\"gone\"><h1 class=\"gone\">This listing is no longer available</h1>\n\
         <p><a href=\"/\">Back to the home page</a></p></main>\n",
        header("")
    );
    layout("Listing not found | Fixture Market", "", &body)
}

/// 404 for any other path.
pub(crate) fn not_found() -> String {
    layout("Not Found", "", "<h1>Page not found</h1>\n")
}

/// 403 captcha page (no listing content); with `vendor` worded as a bot vendor's captcha page,
/// whose heading is also a built-in challenge marker.
pub(crate) fn captcha(vendor: bool) -> String {
    let heading = match vendor {
        true => "Pardon Our Interruption",
        false => "Security Measure",
    };
    let body = format!(
        "<main id=\"security\"><h1>{heading}</h1>\n\
        <p>Please verify yourself to continue</p>\n\
        <form id=\"captcha_form\" method=\"post\" onsubmit=\"return false\">\
        <div class=\"captcha-box\"><label><input type=\"checkbox\" name=\"human\"> I am human</label></div>\
        <button type=\"submit\">Verify</button></form></main>\n"
    );
    layout(heading, "", &body)
}

/// 503 JS challenge: sets the `clearance` cookie after ~300 ms and reloads.
pub(crate) fn challenge(token: &str) -> String {
    let body = format!(
        "<main id=\"challenge\"><h1>Checking your browser before accessing the site</h1>\n\
         <p>Checking your browser before accessing. This takes a moment.</p>\n\
         <div id=\"challenge-running\"></div></main>\n\
         <script>setTimeout(function () {{\n  document.cookie = \"clearance={}; path=/; max-age=86400\";\n  \
         location.reload();\n}}, 300);</script>\n",
        escape(token)
    );
    layout("Just a moment...", "", &body)
}

/// 429 page.
pub(crate) fn rate_limited() -> String {
    layout(
        "Too Many Requests",
        "",
        "<h1>Too Many Requests</h1>\n<p>Slow down and retry later.</p>\n",
    )
}

/// Random 503 page.
pub(crate) fn unavailable() -> String {
    layout(
        "Service Unavailable",
        "",
        "<h1>Service temporarily unavailable</h1>\n<p>Please retry shortly.</p>\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_encoding() {
        assert_eq!(
            escape("<a href='x'>\"Tom & Jerry\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;Tom &amp; Jerry&quot;&lt;/a&gt;"
        );
        assert_eq!(escape("café Größe"), "café Größe");
        assert_eq!(url_encode("brass lamp&x=é"), "brass%20lamp%26x%3D%C3%A9");
    }
}
