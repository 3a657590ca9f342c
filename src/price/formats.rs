//! Price texts as real marketplaces show them, one row per format, read with and without a
//! declared currency: the table behind the money decision order (rule, page, site, symbol).

use super::*;

fn cur(code: &str) -> Currency {
    Currency::parse(code).unwrap()
}

/// (text, declared currency, minor units, currency read)
type Row = (&'static str, Option<&'static str>, i64, &'static str);

const ROWS: &[Row] = &[
    // Dollars: prefixed forms are unambiguous; a bare `$` is the declared dollar, else USD.
    ("CDN$ 9.99", None, 999, "CAD"),
    ("CDN$ 9.99", Some("USD"), 999, "CAD"),
    ("C$ 12.50", None, 1250, "CAD"),
    ("CA$1,299.00", None, 129_900, "CAD"),
    ("A$ 49.95", None, 4995, "AUD"),
    ("AU $1,049.00", None, 104_900, "AUD"),
    ("NZ$ 89.00", None, 8900, "NZD"),
    ("R$ 1.299,00", None, 129_900, "BRL"),
    ("R$1.299,90", Some("USD"), 129_990, "BRL"),
    ("MX$ 1,299.00", None, 129_900, "MXN"),
    ("HK$ 388", None, 38800, "HKD"),
    ("S$ 24.90", None, 2490, "SGD"),
    ("US $19.99", None, 1999, "USD"),
    ("US $19.99", Some("CAD"), 1999, "USD"),
    ("US$19.99", Some("MXN"), 1999, "USD"),
    ("NT$1,290", None, 129_000, "TWD"),
    ("$9.99", None, 999, "USD"),
    ("$9.99", Some("CAD"), 999, "CAD"),
    ("$ 1,299.00", Some("MXN"), 129_900, "MXN"),
    ("$1.299,00", Some("ARS"), 129_900, "ARS"),
    ("$9.99", Some("EUR"), 999, "USD"),
    ("9.99", Some("CAD"), 999, "CAD"),
    // Euro, pound.
    ("1.234,56 €", None, 123_456, "EUR"),
    ("1.234,56 €", Some("USD"), 123_456, "EUR"),
    ("€ 1.234,56", None, 123_456, "EUR"),
    ("€12.99", None, 1299, "EUR"),
    ("12,99 EUR", Some("GBP"), 1299, "EUR"),
    ("£12.99", None, 1299, "GBP"),
    ("£ 150", Some("EGP"), 15000, "EGP"),
    // Yen and yuan: `¥` is JPY unless the page declares CNY.
    ("¥12,800", None, 12800, "JPY"),
    ("¥12,800", Some("JPY"), 12800, "JPY"),
    ("¥128.00", Some("CNY"), 12800, "CNY"),
    ("￥3,980", Some("CNY"), 398_000, "CNY"),
    ("12,800円", None, 12800, "JPY"),
    ("128.00元", None, 12800, "CNY"),
    ("1,290 元", Some("TWD"), 129_000, "TWD"),
    ("₩39,000", None, 39000, "KRW"),
    // Central and eastern Europe, Turkey.
    ("12 345,67 zł", None, 1_234_567, "PLN"),
    ("12\u{a0}345,67\u{a0}zł", None, 1_234_567, "PLN"),
    ("1 299,00 Kč", None, 129_900, "CZK"),
    ("27.887,50 TL", None, 2_788_750, "TRY"),
    ("₺27.887,50", None, 2_788_750, "TRY"),
    ("2 499 ₽", None, 249_900, "RUB"),
    ("12 990 Ft", Some("HUF"), 1_299_000, "HUF"),
    // Nordic kroner: only the declared currency says which.
    ("1 299 kr", Some("SEK"), 129_900, "SEK"),
    ("kr 499,-", Some("NOK"), 49900, "NOK"),
    ("499,00 kr.", Some("DKK"), 49900, "DKK"),
    ("CHF 1'299.00", None, 129_900, "CHF"),
    // South Asia.
    ("₹1,23,456", None, 12_345_600, "INR"),
    ("₹ 1,299.00", None, 129_900, "INR"),
    ("Rs. 2,499", Some("PKR"), 249_900, "PKR"),
    ("Rs. 2,499", None, 249_900, "INR"),
    // Others.
    ("AED 1,299.00", None, 129_900, "AED"),
    ("R 1 299,00", Some("ZAR"), 129_900, "ZAR"),
];

#[test]
fn every_real_format_reads_to_its_amount_and_currency() {
    let mut failures = Vec::new();
    for &(text, declared, minor, code) in ROWS {
        let got = parse_money(text, declared.map(cur));
        if got != Ok(Money::new(minor, cur(code))) {
            failures.push(format!("{text:?} declared {declared:?}: {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_shared_symbol_without_a_declared_member_is_its_usual_currency_or_ambiguous() {
    assert!(matches!(
        parse_money("499 kr", None),
        Err(PriceError::Ambiguous(_))
    ));
    assert!(matches!(
        parse_money("499 kr", Some(cur("EUR"))),
        Err(PriceError::Ambiguous(_))
    ));
    assert_eq!(
        parse_money("¥500", Some(cur("USD"))),
        Ok(Money::new(500, cur("JPY")))
    );
}

#[test]
fn a_range_with_a_shared_symbol_takes_the_declared_currency() {
    let range = parse_price_range("$10.00 - $20.00", Some(cur("AUD"))).unwrap();
    assert_eq!(
        (range.low, range.high),
        (Money::new(1000, cur("AUD")), Money::new(2000, cur("AUD")))
    );
}
