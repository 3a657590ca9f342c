//! Charts drawn on the server as inline SVG (no script, no library): a listing's price history,
//! one point per observation with its time and price in `data-` attributes, and a bar chart of
//! counts per minute for the fleet page. Both scale to the page's width through their
//! `viewBox`, so they stay readable on a phone. Coordinates are pixels; money stays integer
//! minor units in the labels and attributes.

use std::fmt::Write;

use super::page::escape;
use crate::report::money_text;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
/// Room for the price labels on the left and the dates below.
const LEFT: f64 = 128.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

/// One observed price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricePoint {
    /// Epoch ms.
    pub observed_at: i64,
    pub price_minor: i64,
}

/// `value` of `[low, high]` placed on `[from, to]` (the middle when the range is empty).
fn scale(value: i64, (low, high): (i64, i64), (from, to): (f64, f64)) -> f64 {
    if high == low {
        return (from + to) / 2.0;
    }
    from + (value - low) as f64 / (high - low) as f64 * (to - from)
}

/// `2026-12-08 01:02`, UTC.
fn short_time(ms: i64) -> String {
    let full = crate::snapshot::format_time(ms);
    full.get(..16).unwrap_or(&full).to_string()
}

/// The axes, with a label at each price in `prices` and each time in `times`.
fn axes(out: &mut String, prices: &[(f64, String)], times: &[(f64, String)]) {
    let (x0, y0, x1) = (LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT);
    let _ = write!(
        out,
        "<g class=\"axes\"><line x1=\"{x0}\" y1=\"{TOP}\" x2=\"{x0}\" y2=\"{y0}\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\"/>"
    );
    for (y, label) in prices {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 6.0,
            y + 4.0,
            escape(label)
        );
    }
    for (i, (x, label)) in times.iter().enumerate() {
        // The end labels grow inwards, so none is cut off at the chart's edge.
        let anchor = match (times.len(), i) {
            (1, _) => "middle",
            (_, 0) => "start",
            _ => "end",
        };
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            y0 + 20.0,
            escape(label)
        );
    }
    out.push_str("</g>");
}

/// The price-history chart of `points` (oldest first) in `currency`, titled `title`.
pub fn price_chart(title: &str, points: &[PricePoint], currency: &str) -> String {
    let mut out = format!(
        "<svg class=\"chart price-chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"price-chart-title\" data-currency=\"{}\" data-points=\"{}\">\
         <title id=\"price-chart-title\">{}</title>",
        escape(currency),
        points.len(),
        escape(title)
    );
    if points.is_empty() {
        out.push_str(
            "<text x=\"320\" y=\"150\" text-anchor=\"middle\">No observations yet</text></svg>",
        );
        return out;
    }
    let prices = (
        points.iter().map(|p| p.price_minor).min().unwrap_or(0),
        points.iter().map(|p| p.price_minor).max().unwrap_or(0),
    );
    let times = (
        points.iter().map(|p| p.observed_at).min().unwrap_or(0),
        points.iter().map(|p| p.observed_at).max().unwrap_or(0),
    );
    let (x_span, y_span) = (
        (LEFT + 12.0, WIDTH - RIGHT - 12.0),
        (HEIGHT - BOTTOM - 12.0, TOP + 12.0),
    );
    let mid = prices.0 + (prices.1 - prices.0) / 2;
    let mut price_labels: Vec<i64> = vec![prices.0, mid, prices.1];
    price_labels.dedup();
    let price_labels: Vec<(f64, String)> = price_labels
        .into_iter()
        .map(|p| (scale(p, prices, y_span), money_text(p, currency)))
        .collect();
    let mut time_labels = vec![(scale(times.0, times, x_span), short_time(times.0))];
    if times.1 != times.0 {
        time_labels.push((scale(times.1, times, x_span), short_time(times.1)));
    }
    axes(&mut out, &price_labels, &time_labels);
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|p| {
            (
                scale(p.observed_at, times, x_span),
                scale(p.price_minor, prices, y_span),
            )
        })
        .collect();
    plot(&mut out, points, &xy, currency);
    out.push_str("</svg>");
    out
}

/// The price line through `xy` and one point per observation (its time and price as data
/// attributes and a tooltip).
fn plot(out: &mut String, points: &[PricePoint], xy: &[(f64, f64)], currency: &str) {
    let line: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        out,
        "<polyline class=\"line\" points=\"{}\"/>",
        line.join(" ")
    );
    for (p, (x, y)) in points.iter().zip(xy) {
        let _ = write!(
            out,
            "<circle class=\"point\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" \
             data-observed-at=\"{}\" data-price-minor=\"{}\"><title>{} UTC: {}</title></circle>",
            p.observed_at,
            p.price_minor,
            escape(&short_time(p.observed_at)),
            escape(&money_text(p.price_minor, currency))
        );
    }
}

/// A bar chart of `counts`, one bar per entry, labelled `first` and `last` under its ends.
pub fn bar_chart(title: &str, counts: &[i64], first: &str, last: &str) -> String {
    let mut out = format!(
        "<svg class=\"chart bar-chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"bar-chart-title\"><title id=\"bar-chart-title\">{}</title>",
        escape(title)
    );
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    let y_span = (HEIGHT - BOTTOM, TOP + 4.0);
    let prices = [(0, "0".to_string()), (top, top.to_string())]
        .map(|(v, label)| (scale(v, (0, top), y_span), label));
    let times = [
        (LEFT + 4.0, first.to_string()),
        (WIDTH - RIGHT - 4.0, last.to_string()),
    ];
    axes(&mut out, &prices, &times);
    let slot = (WIDTH - RIGHT - LEFT) / counts.len().max(1) as f64;
    for (i, &count) in counts.iter().enumerate() {
        let y = scale(count, (0, top), y_span);
        let _ = write!(
            out,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
             data-count=\"{count}\"/>",
            LEFT + i as f64 * slot + 1.0,
            (slot - 2.0).max(1.0),
            (HEIGHT - BOTTOM - y).max(0.0)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: i64, minor: i64) -> PricePoint {
        PricePoint {
            observed_at: at,
            price_minor: minor,
        }
    }

    #[test]
    fn each_observation_is_one_point_carrying_its_time_and_price() {
        let points = [
            point(1_000, 49936),
            point(61_000, 37452),
            point(121_000, 44946),
        ];
        let svg = price_chart("Price of lamp", &points, "USD");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("data-observed-at=\"61000\" data-price-minor=\"37452\""));
        assert!(
            svg.contains("USD 499.36") && svg.contains("USD 374.52"),
            "{svg}"
        );
        assert!(svg.contains("viewBox=\"0 0 640 300\""));
    }

    #[test]
    fn lower_prices_sit_lower_and_later_times_further_right() {
        let svg = price_chart("t", &[point(0, 200), point(10, 100)], "EUR");
        let cx: Vec<f64> = attr_values(&svg, " cx=\"");
        let cy: Vec<f64> = attr_values(&svg, " cy=\"");
        assert!(cx[0] < cx[1]);
        assert!(
            cy[0] < cy[1],
            "SVG y grows downwards: the higher price is nearer the top"
        );
    }

    #[test]
    fn a_single_observation_and_none_still_draw() {
        assert_eq!(
            price_chart("t", &[point(5, 100)], "USD")
                .matches("<circle")
                .count(),
            1
        );
        assert!(price_chart("<t>", &[], "USD").contains("No observations yet"));
        assert!(!price_chart("<t>", &[], "USD").contains("<t>"));
    }

    #[test]
    fn bars_are_as_many_as_counts() {
        let svg = bar_chart("Pages", &[0, 3, 7], "a", "b");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("data-count=\"7\""));
    }

    fn attr_values(svg: &str, prefix: &str) -> Vec<f64> {
        svg.match_indices(prefix)
            .map(|(i, _)| {
                let rest = &svg[i + prefix.len()..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }
}
