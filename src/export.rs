//! `scrapefarm export`: stored listings to a file for spreadsheets and scripts — CSV (one column
//! per field, nested values as JSON text) or JSON lines (the objects of `listings --json`).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::app::open_existing_store;
use crate::cli::{Common, ExportArgs, ExportFormat};
use crate::report::ListingJson;
use crate::store::ListingFilter;

/// The columns of a CSV export without `--fields`, in order: every field of `listings --json`.
pub const DEFAULT_FIELDS: [&str; 39] = [
    "site",
    "external_id",
    "url",
    "status",
    "title",
    "price",
    "price_minor",
    "currency",
    "condition",
    "seller",
    "seller_score",
    "shipping",
    "location",
    "specifics",
    "description",
    "images",
    "snapshot",
    "attempts",
    "last_error",
    "brand",
    "sku",
    "gtin",
    "mpn",
    "availability",
    "rating",
    "review_count",
    "extra",
    "item_id",
    "translated_title",
    "was_price_minor",
    "was_currency",
    "buy_it_now_minor",
    "buy_it_now_currency",
    "auction",
    "best_offer",
    "bids",
    "status_text",
    "description_url",
    "field_errors",
];

/// The columns of `export --history`, in order.
pub const HISTORY_FIELDS: [&str; 7] = [
    "site",
    "external_id",
    "observed_at",
    "observed_at_ms",
    "price",
    "price_minor",
    "currency",
];

pub async fn export(common: &Common, args: &ExportArgs) -> anyhow::Result<()> {
    let known: &[&str] = if args.history {
        &HISTORY_FIELDS
    } else {
        &DEFAULT_FIELDS
    };
    let fields = chosen_fields(&args.fields, known)?;
    let store = open_existing_store(common).await?;
    let filter = ListingFilter {
        search_id: args.search,
        status: args.status.clone(),
        site: args.site.clone(),
    };
    let rows = store.listings(&filter).await?;
    let listings: Vec<Value> = match args.history {
        true => observations(&store, rows).await?,
        false => rows
            .into_iter()
            .map(|row| serde_json::to_value(ListingJson::from_row(row, None)))
            .collect::<Result<_, _>>()?,
    };
    store.close().await;
    let write = |out: &mut dyn Write| match args.format {
        ExportFormat::Csv => write_csv(out, &listings, &fields),
        ExportFormat::Jsonl => write_jsonl(out, &listings, args.fields.as_ref().map(|_| &fields)),
    };
    if args.out.as_os_str() == "-" {
        return write(&mut std::io::stdout().lock());
    }
    write_file(&args.out, write)?;
    let what = if args.history {
        "price observations"
    } else {
        "listings"
    };
    println!(
        "Exported {} {what} to {}.",
        listings.len(),
        args.out.display()
    );
    Ok(())
}

/// Every price observation of `rows`, as objects with [`HISTORY_FIELDS`].
async fn observations(
    store: &crate::store::Store,
    rows: Vec<crate::store::ListingRow>,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for row in rows {
        for obs in store.price_history(row.id).await? {
            let price = crate::price::Currency::parse(&obs.currency)
                .ok()
                .map(|c| crate::price::Money::new(obs.price_minor, c).to_decimal_string());
            out.push(serde_json::json!({
                "site": row.site,
                "external_id": row.external_id,
                "observed_at": rfc3339(obs.observed_at),
                "observed_at_ms": obs.observed_at,
                "price": price,
                "price_minor": obs.price_minor,
                "currency": obs.currency,
            }));
        }
    }
    Ok(out)
}

/// Epoch ms as UTC RFC 3339 (`2026-12-07T22:15:44.123Z`); the number itself if out of range.
fn rfc3339(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    at.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `--fields a,b`: each must be one of `known`; none given means all of them.
fn chosen_fields(fields: &Option<Vec<String>>, known: &[&str]) -> anyhow::Result<Vec<String>> {
    let Some(fields) = fields else {
        return Ok(known.iter().map(|f| f.to_string()).collect());
    };
    let unknown: Vec<&str> = fields
        .iter()
        .map(String::as_str)
        .filter(|f| !known.contains(f))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "unknown field(s) {}; the fields are {}",
            unknown.join(", "),
            known.join(", ")
        );
    }
    Ok(fields.clone())
}

/// Writes through a temporary file renamed into place, so a failed export leaves no half file.
fn write_file(
    path: &Path,
    write: impl Fn(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let partial = path.with_file_name(name);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("Failed to create {}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = write(&mut out).and_then(|()| Ok(out.flush()?));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!("Failed to write {}", path.display())));
    }
    std::fs::rename(&partial, path)
        .with_context(|| format!("Failed to move the export into {}", path.display()))
}

/// A CSV cell: text as is, null as empty, numbers as written, lists and maps as JSON text.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn write_csv(out: &mut dyn Write, listings: &[Value], fields: &[String]) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(fields)?;
    for listing in listings {
        csv.write_record(fields.iter().map(|f| cell(&listing[f.as_str()])))?;
    }
    csv.flush()?;
    Ok(())
}

fn write_jsonl(
    out: &mut dyn Write,
    listings: &[Value],
    fields: Option<&Vec<String>>,
) -> anyhow::Result<()> {
    for listing in listings {
        let line = match fields {
            Some(fields) => {
                let picked: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|f| (f.clone(), listing[f.as_str()].clone()))
                    .collect();
                Value::Object(picked).to_string()
            }
            None => listing.to_string(),
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}
