//! Price parsing on arbitrary text: `parse_money`, `parse_price_range` and `parse_count` never
//! panic, with no declared currency or with one of each exponent (0, 2, 3), and a range's two
//! ends are in one currency.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrapefarm::price::{Currency, parse_count, parse_money, parse_price_range};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let declared = [None, Some("USD"), Some("JPY"), Some("KWD")]
        .map(|code| code.map(|c| Currency::parse(c).expect("a known code")));
    for currency in declared {
        if let Ok(money) = parse_money(text, currency) {
            let _ = money.to_decimal_string();
        }
        if let Ok(range) = parse_price_range(text, currency) {
            assert_eq!(range.low.currency, range.high.currency, "{text:?}");
        }
    }
    let _ = parse_count(text);
});
