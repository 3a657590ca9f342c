//! `/ui/listings`: the listings table — title, site, status, current price, its change since
//! the first and the previous observation, last seen — with filters (site, search, status,
//! text, currency and price range), a sort order and keyset pagination (`after=KEY_ID`), so the
//! thousandth page costs what the first does.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::page::{change, document, escape, money, time};
use super::session::Session;
use super::{UiError, UiState};
use crate::price::Currency;
use crate::store::Store;
use crate::store::dashboard::{Keyset, ListingSort, TableQuery, TableRow};

/// Rows per page.
pub const PAGE_ROWS: u32 = 50;

const STATUSES: [&str; 5] = ["pending", "active", "ended", "gone", "failed"];

const SORTS: [(&str, ListingSort, &str); 5] = [
    ("oldest", ListingSort::Oldest, "First recorded first"),
    ("newest", ListingSort::Newest, "Last recorded first"),
    ("price", ListingSort::PriceLow, "Price, lowest first"),
    ("-price", ListingSort::PriceHigh, "Price, highest first"),
    ("seen", ListingSort::RecentlySeen, "Last seen first"),
];

pub fn router() -> axum::Router<UiState> {
    axum::Router::new().route("/ui/listings", get(listings))
}

/// The table's query string, as the filter form sends it (empty fields mean no filter).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TableParams {
    pub site: Option<String>,
    pub search: Option<String>,
    pub status: Option<String>,
    pub q: Option<String>,
    pub currency: Option<String>,
    /// Lowest price in major units (`499.36`).
    pub min: Option<String>,
    pub max: Option<String>,
    pub sort: Option<String>,
    /// Where the page starts: `KEY_ID` of the previous page's last row (`_ID` without a key).
    pub after: Option<String>,
}

/// `text` without surrounding blanks, or `None` when that leaves nothing.
pub(super) fn given(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// `499.36` in minor units of a currency with `exponent` decimals; `None` when it is no amount.
fn to_minor(text: &str, exponent: u32) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > exponent as usize
    {
        return None;
    }
    let scale = 10i64.checked_pow(exponent)?;
    let padded = format!("{fraction:0<width$}", width = exponent as usize);
    let fraction: i64 = if padded.is_empty() {
        0
    } else {
        padded.parse().ok()?
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(fraction)
}

impl TableParams {
    /// The store's query for these parameters, or what is wrong with them.
    pub fn to_query(&self) -> Result<TableQuery, UiError> {
        let currency = given(&self.currency)
            .map(|c| {
                Currency::parse(&c).map_err(|_| {
                    UiError::bad_request(format!(
                        "currency {c:?}: expected a 3-letter ISO code such as USD"
                    ))
                })
            })
            .transpose()?;
        let exponent = currency.as_ref().map_or(2, Currency::exponent);
        let price = |field: &str, text: &Option<String>| -> Result<Option<i64>, UiError> {
            given(text)
                .map(|t| {
                    to_minor(&t, exponent).ok_or_else(|| {
                        UiError::bad_request(format!(
                            "{field} price {t:?}: expected an amount such as 499.36"
                        ))
                    })
                })
                .transpose()
        };
        let status = given(&self.status);
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(UiError::bad_request(format!(
                "status {s:?}: expected one of {}",
                STATUSES.join(", ")
            )));
        }
        let search_id = given(&self.search)
            .map(|s| {
                s.parse::<i64>().map_err(|_| {
                    UiError::bad_request(format!("search {s:?}: expected a search id"))
                })
            })
            .transpose()?;
        Ok(TableQuery {
            site: given(&self.site),
            search_id,
            status,
            text: given(&self.q),
            currency: currency.map(|c| c.as_str().to_string()),
            min_price_minor: price("lowest", &self.min)?,
            max_price_minor: price("highest", &self.max)?,
            sort: self.sort_order()?,
            after: given(&self.after).map(|a| parse_after(&a)).transpose()?,
            limit: PAGE_ROWS + 1,
        })
    }

    fn sort_order(&self) -> Result<ListingSort, UiError> {
        let Some(name) = given(&self.sort) else {
            return Ok(ListingSort::default());
        };
        SORTS
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, s, _)| *s)
            .ok_or_else(|| {
                UiError::bad_request(format!(
                    "sort {name:?}: expected oldest, newest, price, -price or seen"
                ))
            })
    }

    /// The query string of these filters, starting after `after`.
    fn link(&self, after: Option<Keyset>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let fields = [
            ("site", &self.site),
            ("search", &self.search),
            ("status", &self.status),
            ("q", &self.q),
            ("currency", &self.currency),
            ("min", &self.min),
            ("max", &self.max),
            ("sort", &self.sort),
        ];
        for (name, value) in fields {
            if let Some(value) = given(value) {
                query.append_pair(name, &value);
            }
        }
        if let Some(after) = after {
            let key = after.key.map(|k| k.to_string()).unwrap_or_default();
            query.append_pair("after", &format!("{key}_{}", after.id));
        }
        format!("/ui/listings?{}", query.finish())
    }
}

/// `KEY_ID` or `_ID` as written by [`TableParams::link`].
fn parse_after(text: &str) -> Result<Keyset, UiError> {
    let bad = || UiError::bad_request(format!("after {text:?}: not a position this page wrote"));
    let (key, id) = text.split_once('_').ok_or_else(bad)?;
    let key = match key {
        "" => None,
        k => Some(k.parse().map_err(|_| bad())?),
    };
    Ok(Keyset {
        key,
        id: id.parse().map_err(|_| bad())?,
    })
}

/// Reads the page of the table `params` ask for: its rows, and where the next page starts.
pub async fn table_page(
    store: &Store,
    params: &TableParams,
) -> Result<(Vec<TableRow>, Option<Keyset>), UiError> {
    let query = params.to_query()?;
    let mut rows = store.listing_table(&query).await?;
    let next = (rows.len() > PAGE_ROWS as usize).then(|| {
        rows.truncate(PAGE_ROWS as usize);
        rows.last().map(|r| r.keyset(query.sort))
    });
    Ok((rows, next.flatten()))
}

async fn listings(
    State(state): State<UiState>,
    session: Session,
    Query(params): Query<TableParams>,
) -> Result<Response, UiError> {
    let body = render(&state.app.tracker.store, &params).await?;
    Ok(document("Listings", Some(&session), &body))
}

/// The whole page body: filters, table and pagination.
pub async fn render(store: &Store, params: &TableParams) -> Result<String, UiError> {
    let (rows, next) = table_page(store, params).await?;
    let sites = store.listing_sites().await?;
    let mut body = String::from("<h1>Listings</h1>");
    body += &filters(params, &sites);
    body += &table(&rows);
    body += "<nav aria-label=\"Pages\" class=\"pages\">";
    if given(&params.after).is_some() {
        let _ = write!(
            body,
            "<a href=\"{}\">First page</a> ",
            escape(&params.link(None))
        );
    }
    if let Some(next) = next {
        let _ = write!(
            body,
            "<a href=\"{}\" rel=\"next\">Next page</a>",
            escape(&params.link(Some(next)))
        );
    }
    body += "</nav>";
    Ok(body)
}

/// A `<select>` of `options` (value, label) with `current` selected, after an "any" option.
fn select(
    name: &str,
    label: &str,
    options: &[(String, String)],
    current: &Option<String>,
) -> String {
    let current = given(current).unwrap_or_default();
    let mut out = format!(
        "<label for=\"f-{name}\">{label}</label><select id=\"f-{name}\" name=\"{name}\"><option value=\"\">Any</option>"
    );
    for (value, text) in options {
        let selected = if *value == current { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{}\"{selected}>{}</option>",
            escape(value),
            escape(text)
        );
    }
    out + "</select>"
}

/// A text input named `name` holding `value`.
fn input(name: &str, label: &str, kind: &str, value: &Option<String>) -> String {
    format!(
        "<label for=\"f-{name}\">{label}</label><input id=\"f-{name}\" name=\"{name}\" type=\"{kind}\" value=\"{}\">",
        escape(&given(value).unwrap_or_default())
    )
}

fn filters(params: &TableParams, sites: &[String]) -> String {
    let pairs = |items: &[&str]| {
        items
            .iter()
            .map(|s| (s.to_string(), s.to_string()))
            .collect::<Vec<_>>()
    };
    let sites: Vec<(String, String)> = sites.iter().map(|s| (s.clone(), s.clone())).collect();
    let sorts: Vec<(String, String)> = SORTS
        .iter()
        .map(|(n, _, l)| (n.to_string(), l.to_string()))
        .collect();
    let mut sort = select("sort", "Sort", &sorts, &params.sort);
    sort = sort.replacen("<option value=\"\">Any</option>", "", 1);
    format!(
        "<form method=\"get\" action=\"/ui/listings\" class=\"filters\" role=\"search\" aria-label=\"Filter listings\">\
         <div>{}</div><div>{}</div><div>{}</div><div>{}</div><div>{}</div><div>{}</div><div>{}</div><div>{sort}</div>\
         <div><button type=\"submit\">Filter</button> <a href=\"/ui/listings\">Clear</a></div></form>",
        input("q", "Title contains", "search", &params.q),
        select("site", "Site", &sites, &params.site),
        select("status", "Status", &pairs(&STATUSES), &params.status),
        input("search", "Search id", "text", &params.search),
        input("currency", "Currency", "text", &params.currency),
        input("min", "Lowest price", "text", &params.min),
        input("max", "Highest price", "text", &params.max),
    )
}

fn table(rows: &[TableRow]) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">No listing matches these filters.</p>".into();
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"listings\"><caption class=\"visually-hidden\">Listings</caption><thead><tr>\
         <th scope=\"col\">Title</th><th scope=\"col\">Site</th><th scope=\"col\">Status</th>\
         <th scope=\"col\" class=\"num\">Price</th><th scope=\"col\" class=\"num\">Since first</th>\
         <th scope=\"col\" class=\"num\">Since previous</th><th scope=\"col\">Last seen</th></tr></thead><tbody>",
    );
    for row in rows {
        let href = format!(
            "/ui/listings/{}/{}",
            encode(&row.site),
            encode(&row.external_id)
        );
        let title = row
            .title
            .clone()
            .unwrap_or_else(|| format!("({})", row.external_id));
        let currency = row.currency.as_deref();
        let _ = write!(
            out,
            "<tr data-external-id=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"when\">{}</td></tr>",
            escape(&row.external_id),
            escape(&href),
            escape(&title),
            escape(&row.site),
            escape(&row.status),
            escape(&money(row.price_minor, currency)),
            escape(&change(row.price_minor, row.first_minor, currency)),
            escape(&change(row.price_minor, row.previous_minor, currency)),
            escape(&time(row.last_enriched)),
        );
    }
    out + "</tbody></table></div>"
}

/// A path segment, percent-encoded.
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_minor_units_of_their_currency() {
        assert_eq!(to_minor("499.36", 2), Some(49936));
        assert_eq!(to_minor("499.3", 2), Some(49930));
        assert_eq!(to_minor("499", 2), Some(49900));
        assert_eq!(to_minor("1999", 0), Some(1999));
        assert_eq!(to_minor("1.5", 0), None);
        assert_eq!(to_minor("4.999", 2), None);
        assert_eq!(to_minor("-1", 2), None);
        assert_eq!(to_minor("", 2), None);
        assert_eq!(to_minor("99999999999999999999", 2), None);
    }

    #[test]
    fn the_next_page_link_keeps_the_filters_and_its_position() {
        let params = TableParams {
            site: Some("fixture".into()),
            q: Some("a&b".into()),
            sort: Some("-price".into()),
            ..TableParams::default()
        };
        let link = params.link(Some(Keyset {
            key: Some(4999),
            id: 7,
        }));
        assert_eq!(
            link,
            "/ui/listings?site=fixture&q=a%26b&sort=-price&after=4999_7"
        );
        let again = TableParams {
            after: Some("4999_7".into()),
            ..params
        };
        let query = again.to_query().unwrap();
        assert_eq!(
            query.after,
            Some(Keyset {
                key: Some(4999),
                id: 7
            })
        );
        assert_eq!(query.sort, ListingSort::PriceHigh);
    }

    #[test]
    fn bad_filters_are_refused_with_what_was_expected() {
        let bad = |p: TableParams| format!("{:?}", p.to_query().unwrap_err());
        assert!(
            bad(TableParams {
                min: Some("ten".into()),
                ..Default::default()
            })
            .contains("499.36")
        );
        assert!(
            bad(TableParams {
                status: Some("x".into()),
                ..Default::default()
            })
            .contains("pending")
        );
        assert!(
            bad(TableParams {
                after: Some("x".into()),
                ..Default::default()
            })
            .contains("position")
        );
        assert!(
            bad(TableParams {
                sort: Some("x".into()),
                ..Default::default()
            })
            .contains("oldest")
        );
    }
}
