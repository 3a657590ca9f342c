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
    // One row per format seen on a marketplace, by currency.
    ("₺1.299,00", None, 129_900, "TRY"),
    ("1.299,00 TL", None, 129_900, "TRY"),
    ("1 299,00 zł", None, 129_900, "PLN"),
    ("1\u{202f}299,00\u{a0}zł", None, 129_900, "PLN"),
    ("₹1,29,999", None, 12_999_900, "INR"),
    ("₹ 1,29,999.50", None, 12_999_950, "INR"),
    ("¥1,299", Some("CNY"), 129_900, "CNY"),
    ("¥ 149.00", Some("CNY"), 14900, "CNY"),
    ("￥1,299.00", Some("CNY"), 129_900, "CNY"),
    ("￥1,299", None, 1299, "JPY"),
    ("NT$ 1,290", None, 129_000, "TWD"),
    ("NT$1,290", Some("USD"), 129_000, "TWD"),
    ("₩1,299,000", None, 1_299_000, "KRW"),
    ("1,299,000원", None, 1_299_000, "KRW"),
    ("1,299,000 원", None, 1_299_000, "KRW"),
    ("R$ 1.299,90", None, 129_990, "BRL"),
    ("R$1.299,90", None, 129_990, "BRL"),
    ("$ 1,299", Some("MXN"), 129_900, "MXN"),
    ("MX$1,299.00", None, 129_900, "MXN"),
    ("1 299 ₽", None, 129_900, "RUB"),
    ("1\u{202f}299,50 ₽", None, 129_950, "RUB"),
    ("1 299 руб.", None, 129_900, "RUB"),
    ("1 299 Kč", None, 129_900, "CZK"),
    ("1.299,00 Kč", None, 129_900, "CZK"),
    ("12 990 Ft", None, 1_299_000, "HUF"),
    ("12.990 Ft", None, 1_299_000, "HUF"),
    ("1 299 kr", Some("SEK"), 129_900, "SEK"),
    ("1.299,00 kr.", Some("DKK"), 129_900, "DKK"),
    ("kr 1 299", Some("NOK"), 129_900, "NOK"),
    ("kr. 1.299", Some("DKK"), 129_900, "DKK"),
    ("1'299.00 CHF", None, 129_900, "CHF"),
    ("CHF 1’299.90", None, 129_990, "CHF"),
    ("R1 299.00", Some("ZAR"), 129_900, "ZAR"),
    ("AED 1,299", None, 129_900, "AED"),
    ("1,299.00 د.إ", None, 129_900, "AED"),
    ("د.إ 1,299", None, 129_900, "AED"),
    ("¥1,299", None, 1299, "JPY"),
    ("1,299円", None, 1299, "JPY"),
    ("1.299,00 €", None, 129_900, "EUR"),
    ("€1,299.00", None, 129_900, "EUR"),
    ("1\u{202f}299,00\u{a0}€", None, 129_900, "EUR"),
    ("£1,299.00", None, 129_900, "GBP"),
    ("$1,299.00", None, 129_900, "USD"),
    ("US $1,299.00", None, 129_900, "USD"),
    ("CA$1,299.00", None, 129_900, "CAD"),
    ("$1,299.00", Some("CAD"), 129_900, "CAD"),
    ("A$1,299.00", None, 129_900, "AUD"),
    ("$1,299.00", Some("AUD"), 129_900, "AUD"),
    ("NZ$1,299.00", None, 129_900, "NZD"),
    ("$1,299.00", Some("NZD"), 129_900, "NZD"),
    ("HK$1,299.00", None, 129_900, "HKD"),
    ("$1,299.00", Some("HKD"), 129_900, "HKD"),
    ("S$1,299.00", None, 129_900, "SGD"),
    ("$1,299.00", Some("SGD"), 129_900, "SGD"),
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

/// How a marketplace writes an amount: the thousands separator, the decimal mark, Indian
/// (lakh) grouping, and whether the symbol comes first and with a space.
#[derive(Debug, Clone, Copy)]
struct Style {
    group: &'static str,
    decimal: &'static str,
    lakh: bool,
    before: bool,
    space: &'static str,
}

/// Groups of the integer digits, separated by `group` (3-3-3, or 3 then 2-2 for lakh).
fn grouped(int: u64, group: &str, lakh: bool) -> String {
    let digits = int.to_string();
    let (head, last3) = digits.split_at(digits.len().saturating_sub(3));
    let size = if lakh { 2 } else { 3 };
    let mut parts: Vec<&str> = Vec::new();
    let mut rest = head;
    while rest.len() > size {
        let (a, b) = rest.split_at(rest.len() - size);
        parts.insert(0, b);
        rest = a;
    }
    if !rest.is_empty() {
        parts.insert(0, rest);
    }
    parts.push(last3);
    parts.join(group)
}

/// `minor` units of a currency with `exponent` decimals, written in `style` with `symbol`.
fn written(minor: u64, exponent: u32, symbol: &str, style: Style) -> String {
    let unit = 10u64.pow(exponent);
    let mut amount = grouped(minor / unit, style.group, style.lakh);
    if exponent > 0 {
        let width = exponent as usize;
        amount += &format!("{}{:0width$}", style.decimal, minor % unit);
    }
    match style.before {
        true => format!("{symbol}{}{amount}", style.space),
        false => format!("{amount}{}{symbol}", style.space),
    }
}

/// (currency, declared currency, symbols as marketplaces write them)
const SYMBOLS: &[(&str, Option<&str>, &[&str])] = &[
    ("TRY", None, &["TL", "₺"]),
    ("PLN", None, &["zł"]),
    ("INR", None, &["₹", "Rs."]),
    ("CNY", Some("CNY"), &["¥", "￥", "元"]),
    ("TWD", None, &["NT$"]),
    ("KRW", None, &["₩", "원"]),
    ("BRL", None, &["R$"]),
    ("MXN", Some("MXN"), &["$", "MX$"]),
    ("RUB", None, &["₽", "руб."]),
    ("CZK", None, &["Kč"]),
    ("HUF", None, &["Ft"]),
    ("SEK", Some("SEK"), &["kr"]),
    ("NOK", Some("NOK"), &["kr", "kr."]),
    ("DKK", Some("DKK"), &["kr.", "kr"]),
    ("CHF", None, &["CHF"]),
    ("ZAR", Some("ZAR"), &["R"]),
    ("AED", None, &["AED", "د.إ"]),
    ("JPY", None, &["¥", "円", "￥"]),
    ("EUR", None, &["€", "EUR"]),
    ("GBP", None, &["£"]),
    ("USD", None, &["$", "US $", "US$"]),
    ("CAD", None, &["CA$", "C$", "CDN$"]),
    ("AUD", None, &["A$", "AU$"]),
    ("NZD", None, &["NZ$"]),
    ("HKD", None, &["HK$"]),
    ("SGD", None, &["S$"]),
];

/// Every grouping style: `,` `.` space, narrow no-break space, `'`, and the Indian lakh.
fn styles() -> impl Strategy<Value = Style> {
    let marks = prop::sample::select(vec![
        (",", ".", false),
        (".", ",", false),
        (" ", ",", false),
        ("\u{202f}", ",", false),
        ("\u{a0}", ",", false),
        ("'", ".", false),
        ("’", ".", false),
        (",", ".", true),
    ]);
    (
        marks,
        any::<bool>(),
        prop::sample::select(vec!["", " ", "\u{a0}"]),
    )
        .prop_map(|((group, decimal, lakh), before, space)| Style {
            group,
            decimal,
            lakh,
            before,
            space,
        })
}

use proptest::prelude::*;

proptest! {
    #[test]
    fn every_currency_in_every_style_reads_back(
        minor in 0u64..10_000_000_000,
        (code, declared, symbols) in prop::sample::select(SYMBOLS.to_vec()),
        pick in any::<prop::sample::Index>(),
        style in styles(),
    ) {
        let currency = cur(code);
        let symbol = symbols[pick.index(symbols.len())];
        let text = written(minor, currency.exponent(), symbol, style);
        let want = Money::new(i64::try_from(minor).unwrap(), currency);
        prop_assert_eq!(parse_money(&text, declared.map(cur)), Ok(want), "{:?}", text);
    }
}

#[test]
fn the_writer_groups_like_marketplaces_do() {
    let style = Style {
        group: ",",
        decimal: ".",
        lakh: true,
        before: true,
        space: "",
    };
    assert_eq!(written(129_999_900, 2, "₹", style), "₹12,99,999.00");
    let style = Style {
        group: "\u{202f}",
        decimal: ",",
        lakh: false,
        before: false,
        space: " ",
    };
    assert_eq!(written(129_950, 2, "₽", style), "1\u{202f}299,50 ₽");
    assert_eq!(
        written(
            1299,
            0,
            "円",
            Style {
                before: false,
                space: "",
                ..style
            }
        ),
        "1\u{202f}299円"
    );
}
