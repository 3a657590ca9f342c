//! Money parsing: display price text → integer minor units + ISO currency. (stage: extract)
//!
//! Money is never a float: a [`Money`] is an `i64` count of the currency's minor unit (cents,
//! pence, yen, fils) plus an ISO 4217 [`Currency`]. Amounts with more decimals than the
//! currency has are rejected, never rounded.
//!
//! # How a price text is read
//! 1. **Normalise.** Every Unicode space (NBSP U+00A0, narrow NBSP U+202F, thin space, ...)
//!    becomes `' '`; full-width digits, `，`, `．`, `＄`, `￥`, `￡` become their ASCII/half-width
//!    forms; dashes and the minus sign become `'-'`; `～`/`〜` become `'~'`; `’` becomes `'\''`.
//! 2. **Find amounts.** An amount is a run of ASCII digits joined by single `.`, `,` or `'`
//!    followed by a digit, or by a space followed by exactly three digits (`28 643,11`).
//! 3. **Find the currency.** Upper-case ISO 4217 codes anywhere in the text win over symbols
//!    (`CAD $5` is CAD). Codes that are also English words (`TOP`, `ALL`, `TRY`, ...) only count
//!    when nothing but spaces and symbols separates them from the amount. Two different codes,
//!    or two different symbols, are [`PriceError::Ambiguous`]. Symbols: `US $`/`US$` USD,
//!    `C $`/`CA $`/`CDN$` CAD, `AU $`/`A $` AUD, `NZ $`, `HK $`, `S $`/`SG $`, `MX $`, `NT $`,
//!    `R$` BRL, `€`, `円` JPY, `CN ¥`/`RMB` CNY, `руб`/`₽` RUB, `zł` PLN, `Kč` CZK, `₩` KRW,
//!    `₺`/`TL` TRY and a few more. Symbols several currencies share take the declared currency
//!    (the page's or site's) when it is one of theirs, else their usual one: `$` USD (or any
//!    dollar or peso), `¥` JPY (or CNY), `£` GBP (or EGP, …), `₹`/`Rs.` INR (or PKR, …), `元`
//!    CNY (or TWD); `kr` has no usual one and is ambiguous unless DKK, ISK, NOK or SEK is
//!    declared. With no marker at all the declared currency is used.
//! 4. **Read the number** (the separator heuristic):
//!    * no separator: an integer;
//!    * the last separator is a space or `'`: it groups thousands, there are no decimals;
//!    * the last separator occurs more than once (`1,234,567`): it groups thousands;
//!    * the last separator differs from an earlier one (`1.234,56`, `3,500.00`, `1'234.50`):
//!      it is the decimal separator and the earlier ones group thousands;
//!    * a single separator not followed by exactly three digits (`12,99`, `0.5`): decimal;
//!    * a single separator followed by exactly three digits (`3.500`, `12,345`): thousands,
//!      unless the currency's exponent is 3 (`KWD 1.500`) or the integer part starts with `0`
//!      (`0,500`), where it is decimal.
//!
//!    Thousands groups must be consistent: one separator kind, a first group of 1–3 digits,
//!    a last group of 3 and middle groups of 2–3 (so Indian `1,23,456` is accepted).
//! 5. **Check.** A minus sign before the amount is [`PriceError::Negative`]; extra decimals are
//!    [`PriceError::TooPrecise`] unless they are zeros; too large is [`PriceError::Overflow`].
//!
//! A text with more than one amount is ambiguous for [`parse_money`]; [`parse_price_range`]
//! accepts exactly two joined by `to`, `bis`, `-`, `–`, `~`, `～`, `à`, `a`, `hasta`, `até`,
//! `tot` or `до`.

// Over 450 lines: the money parser and its tables (symbols, ISO codes) that must be read together.

use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// An ISO 4217 currency code: three upper-case ASCII letters.
///
/// Serialized as its code string (`"USD"`); deserializing validates it like [`Currency::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a code of exactly three ASCII letters, in any case, into its upper-case form.
    /// Any three letters are accepted; recognising codes inside price text uses the ISO list.
    pub fn parse(code: &str) -> Result<Currency, PriceError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_alphabetic) => Ok(Currency([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(PriceError::InvalidCode(excerpt(code))),
        }
    }

    /// The code, e.g. `"EUR"`.
    pub fn as_str(&self) -> &str {
        // Every constructor stores three ASCII letters, so the fallback is unreachable.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Number of minor-unit decimals per ISO 4217: 0 for JPY, KRW, CLP, ISK, VND, ...;
    /// 3 for KWD, BHD, JOD, OMR, TND, IQD, LYD; 4 for CLF, UYW; 2 for everything else.
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            b"BIF" | b"CLP" | b"DJF" | b"GNF" | b"ISK" | b"JPY" | b"KMF" | b"KRW" | b"PYG"
            | b"RWF" | b"UGX" | b"UYI" | b"VND" | b"VUV" | b"XAF" | b"XOF" | b"XPF" => 0,
            b"BHD" | b"IQD" | b"JOD" | b"KWD" | b"LYD" | b"OMR" | b"TND" => 3,
            b"CLF" | b"UYW" => 4,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = PriceError;

    fn try_from(code: String) -> Result<Currency, PriceError> {
        Currency::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.as_str().to_owned()
    }
}

/// An amount of money: integer minor units (cents for USD, yen for JPY) of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    /// Money of `minor` minor units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Decimal string with exactly exponent() decimals and '.' separator, e.g. "1234.56", "12345" for JPY.
    pub fn to_decimal_string(&self) -> String {
        let exponent = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{abs}");
        }
        let unit = 10u64.pow(exponent);
        let width = exponent as usize;
        format!("{sign}{}.{:0width$}", abs / unit, abs % unit)
    }
}

/// A price range; a single price is a range with `low == high`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRange {
    pub low: Money,
    pub high: Money,
}

/// Why a price text could not be read. Texts in errors are cut to 64 characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceError {
    #[error("price text is empty")]
    Empty,
    #[error("no amount in price text {0:?}")]
    NoAmount(String),
    #[error("no currency marker in {0:?} and no default currency")]
    UnknownCurrency(String),
    #[error("ambiguous price text {0:?} (several amounts or currencies, or a bare \"kr\")")]
    Ambiguous(String),
    #[error("amount in {0:?} does not fit in i64 minor units")]
    Overflow(String),
    #[error("{0:?} is not a three-letter currency code")]
    InvalidCode(String),
    #[error("negative amount in {0:?} is not a price")]
    Negative(String),
    #[error("amount in {0:?} has more decimals than its currency allows")]
    TooPrecise(String),
    #[error("amount in {0:?} has malformed digit grouping")]
    Malformed(String),
    #[error("price range {0:?} runs from high to low")]
    InvertedRange(String),
}

/// Parse one price text. `declared` is the currency the page or site declares: it is used when
/// the text carries no currency marker ("12.99") and settles a symbol several currencies share
/// (`$` on a page declaring CAD is CAD; `kr` on one declaring SEK is SEK). An ISO code or an
/// unambiguous symbol in the text (`EUR`, `€`, `CDN$`, `R$`) wins over it.
pub fn parse_money(text: &str, declared: Option<Currency>) -> Result<Money, PriceError> {
    let normalized = apart(&normalize(text));
    let text = non_empty(&normalized)?;
    let amounts = find_amounts(text);
    let amount = match amounts.as_slice() {
        [] => return Err(PriceError::NoAmount(excerpt(text))),
        [one] => one.clone(),
        _ => return Err(PriceError::Ambiguous(excerpt(text))),
    };
    let currency = detect_currency(text, &amounts, declared)?
        .or(declared)
        .ok_or_else(|| PriceError::UnknownCurrency(excerpt(text)))?;
    money_at(text, amount, currency)
}

/// Parse a price or a range ("$10.00 to $20.00", "EUR 17,72 bis EUR 18,66", "3,858 円 ～ 13,507 円", "£5.99 to £14.99"); a single price gives low == high.
///
/// A side without a currency marker takes the other side's (`US $10.00 - 20.00`); two
/// different currencies are ambiguous, and `low > high` is [`PriceError::InvertedRange`].
pub fn parse_price_range(text: &str, declared: Option<Currency>) -> Result<PriceRange, PriceError> {
    let normalized = apart(&normalize(text));
    let text = non_empty(&normalized)?;
    match find_amounts(text).as_slice() {
        [] => Err(PriceError::NoAmount(excerpt(text))),
        [_] => parse_money(text, declared).map(|m| PriceRange { low: m, high: m }),
        [first, second] => parse_two(text, first.clone(), second.clone(), declared),
        _ => Err(PriceError::Ambiguous(excerpt(text))),
    }
}

/// Parse a count such as "(12,345)", "12.345", "159", "1,106 ratings" → 12345 etc.
///
/// Reads the first number in the text; every separator in it groups thousands. Returns `None`
/// when there is no number, it is not a whole count (`4.5`), it carries a unit or suffix we do
/// not read (`10K+`, `5kg`), it is negative, or it overflows.
pub fn parse_count(text: &str) -> Option<i64> {
    let text = normalize(text);
    let amount = find_amounts(&text).into_iter().next()?;
    let followed_by_letter = text[amount.end..]
        .chars()
        .next()
        .is_some_and(char::is_alphabetic);
    if followed_by_letter || has_sign_before(&text[..amount.start]) {
        return None;
    }
    let (groups, seps) = split_run(&text[amount]);
    if !valid_grouping(&groups, &seps) {
        return None;
    }
    digits_value(groups.iter().flat_map(|g| g.bytes()))
}

/// The two-amount case of [`parse_price_range`]: split at the range word between the amounts.
fn parse_two(
    text: &str,
    first: Range<usize>,
    second: Range<usize>,
    declared: Option<Currency>,
) -> Result<PriceRange, PriceError> {
    let sep = RANGE_SEP_RE
        .find(&text[first.end..second.start])
        .ok_or_else(|| PriceError::Ambiguous(excerpt(text)))?;
    let (left, right_start) = (&text[..first.end + sep.start()], first.end + sep.end());
    let right = &text[right_start..];
    let second = second.start - right_start..second.end - right_start;
    let left_cur = detect_currency(left, std::slice::from_ref(&first), declared)?;
    let right_cur = detect_currency(right, std::slice::from_ref(&second), declared)?;
    let currency = match (left_cur, right_cur) {
        (Some(a), Some(b)) if a != b => return Err(PriceError::Ambiguous(excerpt(text))),
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => declared.ok_or_else(|| PriceError::UnknownCurrency(excerpt(text)))?,
    };
    let low = money_at(left, first, currency)?;
    let high = money_at(right, second, currency)?;
    if low.minor > high.minor {
        return Err(PriceError::InvertedRange(excerpt(text)));
    }
    Ok(PriceRange { low, high })
}

/// The trimmed text, or [`PriceError::Empty`].
fn non_empty(text: &str) -> Result<&str, PriceError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PriceError::Empty);
    }
    Ok(text)
}

/// Reads the amount at `amount` in `text` as money of `currency`.
fn money_at(text: &str, amount: Range<usize>, currency: Currency) -> Result<Money, PriceError> {
    if has_sign_before(&text[..amount.start]) {
        return Err(PriceError::Negative(excerpt(text)));
    }
    let minor = to_minor(&text[amount], currency.exponent(), text)?;
    Ok(Money::new(minor, currency))
}

/// Maps look-alike characters to the ASCII forms the parser reads (see the module docs).
fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF10}'..='\u{FF19}' => char::from_digit(u32::from(c) - 0xFF10, 10).unwrap_or(c),
            c if c.is_whitespace() => ' ',
            '\u{FF0C}' => ',',
            '\u{FF0E}' => '.',
            '\u{FF04}' => '$',
            '\u{FFE5}' => '¥',
            '\u{FFE1}' => '£',
            '\u{2019}' | '\u{FF07}' => '\'',
            '\u{FF5E}' | '\u{301C}' => '~',
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' | '\u{FF0D}' => '-',
            c => c,
        })
        .collect()
}

/// A price text with a space between a letter and a digit that touch (`1299zł`, `TL1.299`,
/// `1.299,00EUR`), so a currency word written against its amount reads as a word. Counts do not
/// go through this: `10K+` must stay a number with a suffix.
fn apart(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    let mut prev: Option<char> = None;
    for c in text.chars() {
        let touching = prev.is_some_and(|p| {
            (p.is_ascii_digit() && c.is_alphabetic()) || (p.is_alphabetic() && c.is_ascii_digit())
        });
        if touching {
            out.push(' ');
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// Byte ranges of the amounts in a normalized text (see the module docs for what joins digits).
fn find_amounts(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut amounts = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = digits_end(bytes, i);
        while let Some(next) = group_after(bytes, end) {
            end = next;
        }
        amounts.push(start..end);
        i = end;
    }
    amounts
}

/// Index just past the digits starting at `from`.
fn digits_end(bytes: &[u8], from: usize) -> usize {
    let count = bytes[from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    from + count
}

/// If a separator at `at` continues the amount, the index just past the digit group after it.
fn group_after(bytes: &[u8], at: usize) -> Option<usize> {
    let sep = *bytes.get(at)?;
    let end = digits_end(bytes, at + 1);
    let digits = end - (at + 1);
    match sep {
        b'.' | b',' | b'\'' if digits > 0 => Some(end),
        b' ' if digits == 3 => Some(end),
        _ => None,
    }
}

/// Whether a minus sign that is not a hyphen inside a word (`Buy-It-Now`) precedes the amount.
fn has_sign_before(prefix: &str) -> bool {
    let mut prev: Option<char> = None;
    for c in prefix.chars() {
        if c == '-' && !prev.is_some_and(char::is_alphanumeric) {
            return true;
        }
        prev = Some(c);
    }
    false
}

/// Splits an amount run into its digit groups and the separators between them.
fn split_run(run: &str) -> (Vec<&str>, Vec<char>) {
    let groups = run.split(|c: char| !c.is_ascii_digit()).collect();
    let seps = run.chars().filter(|c| !c.is_ascii_digit()).collect();
    (groups, seps)
}

/// Converts an amount run to minor units of a currency with `exponent` decimals.
/// `text` is the whole price text, for error messages.
fn to_minor(run: &str, exponent: u32, text: &str) -> Result<i64, PriceError> {
    let (groups, seps) = split_run(run);
    let (int_groups, frac) = match groups.split_last() {
        Some((last, init)) if last_separator_is_decimal(&groups, &seps, exponent) => (init, *last),
        _ => (groups.as_slice(), ""),
    };
    let int_seps = &seps[..int_groups.len().saturating_sub(1)];
    if !valid_grouping(int_groups, int_seps) {
        return Err(PriceError::Malformed(excerpt(text)));
    }
    let frac = fit_fraction(frac, exponent).ok_or_else(|| PriceError::TooPrecise(excerpt(text)))?;
    let digits = int_groups
        .iter()
        .flat_map(|g| g.bytes())
        .chain(frac.bytes());
    digits_value(digits).ok_or_else(|| PriceError::Overflow(excerpt(text)))
}

/// The separator heuristic (module docs, step 4): is the last separator the decimal one?
fn last_separator_is_decimal(groups: &[&str], seps: &[char], exponent: u32) -> bool {
    let Some(&last) = seps.last() else {
        return false;
    };
    if last == ' ' || last == '\'' || seps.iter().filter(|&&c| c == last).count() > 1 {
        return false;
    }
    if seps.len() > 1 {
        return true;
    }
    let tail_len = groups.last().map_or(0, |g| g.len());
    let leading_zero = groups.first().is_some_and(|g| g.starts_with('0'));
    tail_len != 3 || exponent == 3 || leading_zero
}

/// Whether digit groups joined by thousands separators are well formed (module docs, step 4).
fn valid_grouping(groups: &[&str], seps: &[char]) -> bool {
    let Some((first, rest)) = groups.split_first() else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return true;
    };
    seps.windows(2).all(|w| w[0] == w[1])
        && (1..=3).contains(&first.len())
        && last.len() == 3
        && middle.iter().all(|g| (2..=3).contains(&g.len()))
}

/// The fraction digits padded or cut to `exponent` digits; `None` if a cut digit is not zero.
fn fit_fraction(frac: &str, exponent: u32) -> Option<String> {
    let width = exponent as usize;
    match frac.get(width..) {
        Some(extra) if extra.bytes().any(|b| b != b'0') => None,
        Some(_) => Some(frac[..width].to_owned()),
        None => Some(format!("{frac:0<width$}")),
    }
}

/// The value of a sequence of ASCII digits, or `None` on overflow.
fn digits_value(mut digits: impl Iterator<Item = u8>) -> Option<i64> {
    digits.try_fold(0i64, |acc, d| {
        acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// Symbol markers in the order they are tried; the longest prefixed `$` forms come first.
static SYMBOL_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b(?:US|CDN|CA|AU|NZ|HK|SG|MX|NT|C|A|S|R) ?\$|\$",
        r"|\bCN ?¥|¥|円|元|\bRMB\b",
        r"|€|£|₹|₽|₩|원|₺|₱|₫|₪|฿|₴|₦|د\.إ",
        r"|(?i:\b(?:rs|руб|zł|kč|kr)\b\.?)|\bTL\b|\bFt\b",
    ))
    // A constant pattern, checked by every test that parses a price.
    .expect("symbol pattern is valid")
});

/// Words and marks that join the two ends of a price range.
static RANGE_SEP_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\b(?:to|bis|hasta|até|tot|до)\b)|\b[aà]\b|[-~]")
        // A constant pattern, checked by the range tests.
        .expect("range separator pattern is valid")
});

/// Runs of ASCII letters: candidate ISO codes.
static WORD_RE: LazyLock<Regex> =
    // A constant pattern, checked by every test that parses a price.
    LazyLock::new(|| Regex::new(r"[A-Za-z]+").expect("word pattern is valid"));

/// What a currency symbol says.
enum Symbol {
    Known(Currency),
    /// A symbol several currencies use (`$`, `¥`, `£`, `kr`, `Rs`): the declared currency when it
    /// is one of `members`, else the `usual` one (`$` alone is USD), else ambiguous (`kr`).
    Shared {
        usual: Option<Currency>,
        members: &'static [&'static str],
    },
}

impl Symbol {
    /// The currency this symbol means on a page that declares `declared`.
    fn resolve(&self, declared: Option<Currency>) -> Option<Currency> {
        match self {
            Symbol::Known(c) => Some(*c),
            Symbol::Shared { usual, members } => declared
                .filter(|d| members.contains(&d.as_str()))
                .or(*usual),
        }
    }
}

/// Currencies written with a bare `$` (dollars and pesos).
const DOLLARS: &[&str] = &[
    "USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN", "TWD", "ARS", "CLP", "COP", "UYU", "BSD",
    "BBD", "BZD", "BMD", "BND", "FJD", "GYD", "JMD", "KYD", "LRD", "NAD", "SBD", "SRD", "TTD",
    "XCD", "CUP", "DOP", "BRL",
];
const YEN_YUAN: &[&str] = &["JPY", "CNY"];
const POUNDS: &[&str] = &["GBP", "EGP", "GIP", "FKP", "SHP", "SYP", "LBP", "SSP"];
const KRONER: &[&str] = &["DKK", "ISK", "NOK", "SEK"];
const RUPEES: &[&str] = &["INR", "PKR", "LKR", "NPR", "MUR", "SCR"];
const YUAN: &[&str] = &["CNY", "TWD"];

/// The currency of a text, from its ISO codes or else its symbols; `None` if it has no marker.
/// `amounts` are the amount ranges in `text`, used to accept word-like codes next to them;
/// `declared` (the page's or site's currency) settles a symbol several currencies share.
fn detect_currency(
    text: &str,
    amounts: &[Range<usize>],
    declared: Option<Currency>,
) -> Result<Option<Currency>, PriceError> {
    match iso_codes(text, amounts).as_slice() {
        [] => {}
        [one] => return Ok(Some(*one)),
        _ => return Err(PriceError::Ambiguous(excerpt(text))),
    }
    let mut found = None;
    for symbol in SYMBOL_RE.find_iter(text).filter_map(|m| symbol(m.as_str())) {
        let currency = symbol
            .resolve(declared)
            .ok_or_else(|| PriceError::Ambiguous(excerpt(text)))?;
        if found.is_some_and(|f| f != currency) {
            return Err(PriceError::Ambiguous(excerpt(text)));
        }
        found = Some(currency);
    }
    Ok(found)
}

/// The distinct ISO codes in a text (upper-case, whole ASCII words).
fn iso_codes(text: &str, amounts: &[Range<usize>]) -> Vec<Currency> {
    let mut codes = Vec::new();
    for word in WORD_RE.find_iter(text) {
        let code = word.as_str();
        let is_code = code.bytes().all(|b| b.is_ascii_uppercase()) && ISO_CODES.contains(&code);
        if !is_code
            || (WORDLIKE_CODES.contains(&code) && !next_to_amount(text, word.range(), amounts))
        {
            continue;
        }
        if let Ok(currency) = Currency::parse(code)
            && !codes.contains(&currency)
        {
            codes.push(currency);
        }
    }
    codes
}

/// Whether only spaces and symbols (no letters or digits) separate `word` from an amount.
fn next_to_amount(text: &str, word: Range<usize>, amounts: &[Range<usize>]) -> bool {
    amounts.iter().any(|amount| {
        let gap = if amount.start >= word.end {
            &text[word.end..amount.start]
        } else if amount.end <= word.start {
            &text[amount.end..word.start]
        } else {
            return false;
        };
        !gap.chars().any(char::is_alphanumeric)
    })
}

/// The currency a matched symbol stands for.
fn symbol(matched: &str) -> Option<Symbol> {
    let key: String = matched
        .chars()
        .filter(|c| !matches!(c, ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    let shared = |usual: Option<&[u8; 3]>, members| {
        Some(Symbol::Shared {
            usual: usual.map(|c| Currency(*c)),
            members,
        })
    };
    let code: &[u8; 3] = match key.as_str() {
        "$" => return shared(Some(b"USD"), DOLLARS),
        "¥" => return shared(Some(b"JPY"), YEN_YUAN),
        "£" => return shared(Some(b"GBP"), POUNDS),
        "kr" => return shared(None, KRONER),
        "₹" | "rs" => return shared(Some(b"INR"), RUPEES),
        "元" => return shared(Some(b"CNY"), YUAN),
        "us$" => b"USD",
        "c$" | "ca$" | "cdn$" => b"CAD",
        "au$" | "a$" => b"AUD",
        "nz$" => b"NZD",
        "hk$" => b"HKD",
        "s$" | "sg$" => b"SGD",
        "mx$" => b"MXN",
        "nt$" => b"TWD",
        "r$" => b"BRL",
        "€" => b"EUR",
        "円" => b"JPY",
        "cn¥" | "rmb" => b"CNY",
        "₽" | "руб" => b"RUB",
        "zł" => b"PLN",
        "kč" => b"CZK",
        "₩" | "원" => b"KRW",
        "دإ" => b"AED",
        "ft" => b"HUF",
        "₺" | "tl" => b"TRY",
        "₱" => b"PHP",
        "₫" => b"VND",
        "₪" => b"ILS",
        "฿" => b"THB",
        "₴" => b"UAH",
        "₦" => b"NGN",
        _ => return None,
    };
    Some(Symbol::Known(Currency(*code)))
}

/// At most 64 characters of a text, for error messages.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Codes that are also common English words: they count only right next to an amount.
const WORDLIKE_CODES: &[&str] = &[
    "ALL", "BAM", "BOB", "CUP", "GEL", "LAK", "MAD", "MOP", "NAD", "PEN", "SOS", "TOP", "TRY",
];

/// Active ISO 4217 currency and fund codes (no metals or test codes), plus the recently
/// replaced HRK, SLL and ZWL that old listings still show.
const ISO_CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE",
    "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR", "ILS",
    "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
    "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
    "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
    "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

#[cfg(test)]
mod formats;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    /// Parses with no default currency and returns (minor, code).
    fn money(text: &str) -> (i64, String) {
        let m = parse_money(text, None).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        (m.minor, m.currency.to_string())
    }

    fn range(text: &str) -> (i64, i64, String) {
        let r = parse_price_range(text, None).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(r.low.currency, r.high.currency);
        (r.low.minor, r.high.minor, r.low.currency.to_string())
    }

    fn check(cases: &[(&str, i64, &str)]) {
        for &(text, minor, code) in cases {
            assert_eq!(money(text), (minor, code.to_owned()), "{text:?}");
        }
    }

    #[test]
    fn us_dollar_formats() {
        check(&[
            ("US $1,234.56", 123_456, "USD"),
            ("US $49.95", 4995, "USD"),
            ("$236.88", 23688, "USD"),
            ("US $1,000", 100_000, "USD"),
            ("US$5", 500, "USD"),
            ("Now: US $49.95", 4995, "USD"),
            ("US $24.99/ea", 2499, "USD"),
            ("Approximately US $3,971.45", 397_145, "USD"),
            ("  \n\tUS $49.95 \n ", 4995, "USD"),
            ("US\u{a0}$49.95", 4995, "USD"),
            ("Buy-It-Now: $5.00", 500, "USD"),
            ("TOP SELLER US $5.00", 500, "USD"),
            ("$1.2300", 123, "USD"),
        ]);
    }

    #[test]
    fn other_dollar_formats() {
        check(&[
            ("C $7.99", 799, "CAD"),
            ("CA $7.99", 799, "CAD"),
            ("C$7.99", 799, "CAD"),
            ("AU $5.10", 510, "AUD"),
            ("A $5.10", 510, "AUD"),
            ("NZ $12.00", 1200, "NZD"),
            ("HK $88.50", 8850, "HKD"),
            ("S $3.20", 320, "SGD"),
            ("MX $1,299.00", 129_900, "MXN"),
            ("NT$1,500", 150_000, "TWD"),
            ("R$ 1.234,56", 123_456, "BRL"),
            ("CAD $5.00", 500, "CAD"),
        ]);
    }

    #[test]
    fn euro_formats() {
        check(&[
            ("EUR 1.234,56", 123_456, "EUR"),
            ("EUR 10,79", 1079, "EUR"),
            ("1.234,56 €", 123_456, "EUR"),
            ("577,32 EUR", 57732, "EUR"),
            ("577,32EUR", 57732, "EUR"),
            ("EUR 3,500.00", 350_000, "EUR"),
            ("EUR 164,00", 16400, "EUR"),
            ("3.500 €", 350_000, "EUR"),
            ("€\u{a0}12,00", 1200, "EUR"),
            ("12.345,67 EUR", 1_234_567, "EUR"),
            ("1.234.567,89 €", 123_456_789, "EUR"),
        ]);
    }

    #[test]
    fn pound_formats() {
        check(&[
            ("£12.99", 1299, "GBP"),
            ("£3.95", 395, "GBP"),
            ("GBP 12.99", 1299, "GBP"),
            ("565,00 GBP", 56500, "GBP"),
        ]);
    }

    #[test]
    fn yen_yuan_won_formats() {
        check(&[
            ("JPY 12,345", 12345, "JPY"),
            ("¥12,345", 12345, "JPY"),
            ("1,928 円", 1928, "JPY"),
            (
                "\u{ffe5}\u{ff11}\u{ff12}\u{ff0c}\u{ff13}\u{ff14}\u{ff15}",
                12345,
                "JPY",
            ),
            ("JPY 12.345", 12345, "JPY"),
            ("¥100.00", 100, "JPY"),
            ("CN ¥12.50", 1250, "CNY"),
            ("CN¥12.50", 1250, "CNY"),
            ("RMB 12.50", 1250, "CNY"),
            ("12.50 元", 1250, "CNY"),
            ("₩10,000", 10000, "KRW"),
        ]);
    }

    #[test]
    fn rouble_rupee_franc_and_more() {
        check(&[
            ("28 643,11 руб.", 2_864_311, "RUB"),
            ("28\u{a0}643,11 руб.", 2_864_311, "RUB"),
            ("28\u{202f}643,11 руб.", 2_864_311, "RUB"),
            ("1 234 567 ₽", 123_456_700, "RUB"),
            ("Rs. 1,234.00", 123_400, "INR"),
            ("₹1,234", 123_400, "INR"),
            ("₹1,23,456.00", 12_345_600, "INR"),
            ("CHF 1'234.50", 123_450, "CHF"),
            ("CHF 1\u{2019}234.50", 123_450, "CHF"),
            ("12,99 zł", 1299, "PLN"),
            ("1 299 Kč", 129_900, "CZK"),
            ("TRY 150,00", 15000, "TRY"),
            ("KWD 1.500", 1500, "KWD"),
            ("KWD 1,500", 1500, "KWD"),
            ("SEK 100", 10000, "SEK"),
            ("100 kr SEK", 10000, "SEK"),
        ]);
    }

    #[test]
    fn default_currency_applies_only_without_a_marker() {
        let usd = Some(cur("USD"));
        assert_eq!(parse_money("0.99", usd), Ok(Money::new(99, cur("USD"))));
        assert_eq!(
            parse_money("12.99", Some(cur("eur"))),
            Ok(Money::new(1299, cur("EUR")))
        );
        assert_eq!(parse_money("£1.00", usd), Ok(Money::new(100, cur("GBP"))));
        assert_eq!(
            parse_money("0.99", None),
            Err(PriceError::UnknownCurrency("0.99".into()))
        );
        assert_eq!(
            parse_money("100 kr", Some(cur("NOK"))),
            Ok(Money::new(10000, cur("NOK")))
        );
    }

    #[test]
    fn rejects_bad_prices() {
        use PriceError::*;
        let err = |text: &str| parse_money(text, Some(cur("USD"))).unwrap_err();
        assert_eq!(err("   "), Empty);
        assert_eq!(err("Free"), NoAmount("Free".into()));
        assert!(matches!(err("kr 100"), Ambiguous(_)));
        assert!(matches!(err("100 kr"), Ambiguous(_)));
        assert!(matches!(err("USD EUR 5"), Ambiguous(_)));
        assert!(matches!(err("$5 €"), Ambiguous(_)));
        assert!(matches!(err("US $5.00 + US $2.00"), Ambiguous(_)));
        assert!(matches!(err("$10.00 - $20.00"), Ambiguous(_)));
        assert!(matches!(err("-$5.00"), Negative(_)));
        assert!(matches!(err("$-5.00"), Negative(_)));
        assert!(matches!(err("US \u{2212}$5.00"), Negative(_)));
        assert!(matches!(err("$1.2345"), TooPrecise(_)));
        assert!(matches!(err("$0.125"), TooPrecise(_)));
        assert!(matches!(err("JPY 12,5"), TooPrecise(_)));
        assert!(matches!(err("$1,23.45"), Malformed(_)));
        assert!(matches!(err("$1.234,567.89"), Malformed(_)));
        assert!(matches!(err("$99999999999999999999"), Overflow(_)));
        assert!(matches!(err("$92,233,720,368,547,758.08"), Overflow(_)));
        assert_eq!(
            money("$92,233,720,368,547,758.07"),
            (i64::MAX, "USD".into())
        );
    }

    #[test]
    fn long_texts_are_cut_in_errors() {
        let text = "x".repeat(200);
        let PriceError::NoAmount(shown) = parse_money(&text, None).unwrap_err() else {
            panic!("expected NoAmount");
        };
        assert_eq!(shown.chars().count(), 65);
    }

    #[test]
    fn ranges() {
        assert_eq!(range("$10.00 to $20.00"), (1000, 2000, "USD".into()));
        assert_eq!(range("EUR 17,72 bis EUR 18,66"), (1772, 1866, "EUR".into()));
        assert_eq!(range("3,858 円 ～ 13,507 円"), (3858, 13507, "JPY".into()));
        assert_eq!(range("3,858 円 〜 13,507 円"), (3858, 13507, "JPY".into()));
        assert_eq!(range("£5.99 to £14.99"), (599, 1499, "GBP".into()));
        assert_eq!(range("US $10.00 - US $20.00"), (1000, 2000, "USD".into()));
        assert_eq!(range("$10.00–$20.00"), (1000, 2000, "USD".into()));
        assert_eq!(range("US $10.00 - 20.00"), (1000, 2000, "USD".into()));
        assert_eq!(range("10 - 20 EUR"), (1000, 2000, "EUR".into()));
        assert_eq!(range("A $10.00 to A $20.00"), (1000, 2000, "AUD".into()));
        assert_eq!(range("  $5.00 "), (500, 500, "USD".into()));
    }

    #[test]
    fn bad_ranges() {
        use PriceError::*;
        let err = |text: &str| parse_price_range(text, None).unwrap_err();
        assert!(matches!(err("$20 - $10"), InvertedRange(_)));
        assert!(matches!(err("$10 - €20"), Ambiguous(_)));
        assert!(matches!(err("$10 $20"), Ambiguous(_)));
        assert!(matches!(err("$1 - $2 - $3"), Ambiguous(_)));
        assert!(matches!(err("10 - 20"), UnknownCurrency(_)));
        assert!(matches!(err("$10 to -$20"), Negative(_)));
        assert_eq!(err(""), Empty);
        assert!(matches!(err("n/a"), NoAmount(_)));
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("(12,345)"), Some(12345));
        assert_eq!(parse_count("12.345"), Some(12345));
        assert_eq!(parse_count("159"), Some(159));
        assert_eq!(parse_count("1,106 ratings"), Some(1106));
        assert_eq!(parse_count("1,106 product ratings"), Some(1106));
        assert_eq!(parse_count("12\u{a0}345 avis"), Some(12345));
        assert_eq!(parse_count("More than 10 available"), Some(10));
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("4.5"), None);
        assert_eq!(parse_count("10K+ sold"), None);
        assert_eq!(parse_count("-5"), None);
        assert_eq!(parse_count("no ratings"), None);
        assert_eq!(parse_count(""), None);
        assert_eq!(parse_count("99999999999999999999"), None);
    }

    #[test]
    fn currency_codes() {
        assert_eq!(cur("usd").as_str(), "USD");
        assert_eq!(cur("Eur").to_string(), "EUR");
        for bad in ["", "US", "USDX", "US1", "ÜSD", "U D"] {
            assert_eq!(
                Currency::parse(bad),
                Err(PriceError::InvalidCode(bad.into()))
            );
        }
        let exponents = [("JPY", 0), ("KRW", 0), ("CLP", 0), ("ISK", 0), ("VND", 0)]
            .into_iter()
            .chain([("HUF", 2), ("TWD", 2), ("USD", 2), ("EUR", 2), ("XYZ", 2)])
            .chain([
                ("KWD", 3),
                ("BHD", 3),
                ("JOD", 3),
                ("OMR", 3),
                ("TND", 3),
                ("CLF", 4),
            ]);
        for (code, exponent) in exponents {
            assert_eq!(cur(code).exponent(), exponent, "{code}");
        }
    }

    #[test]
    fn decimal_strings() {
        let s = |minor, code| Money::new(minor, cur(code)).to_decimal_string();
        assert_eq!(s(123_456, "USD"), "1234.56");
        assert_eq!(s(5, "USD"), "0.05");
        assert_eq!(s(-5, "USD"), "-0.05");
        assert_eq!(s(12345, "JPY"), "12345");
        assert_eq!(s(1500, "KWD"), "1.500");
        assert_eq!(s(i64::MIN, "USD"), "-92233720368547758.08");
    }

    #[test]
    fn serde_uses_code_strings() {
        let m = Money::new(1299, cur("GBP"));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"minor":1299,"currency":"GBP"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Currency>(r#""US""#).is_err());
        assert_eq!(
            serde_json::from_str::<Currency>(r#""eur""#).unwrap(),
            cur("EUR")
        );
    }

    /// `minor` as a decimal with `exponent` decimals, thousands grouped in threes.
    fn fmt_amount(minor: i64, exponent: u32, thousands: &str, decimal: &str) -> String {
        let unit = 10i64.pow(exponent);
        let digits = (minor / unit).to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push_str(thousands);
            }
            out.push(c);
        }
        if exponent > 0 {
            let width = exponent as usize;
            out += &format!("{decimal}{:0width$}", minor % unit);
        }
        out
    }

    fn us(minor: i64) -> String {
        fmt_amount(minor, 2, ",", ".")
    }

    fn eu(minor: i64) -> String {
        fmt_amount(minor, 2, ".", ",")
    }

    fn yen(minor: i64) -> String {
        fmt_amount(minor, 0, ",", "")
    }

    type Style = (fn(i64) -> String, &'static str);

    fn styles() -> Vec<Style> {
        vec![
            (|m| format!("US ${}", us(m)), "USD"),
            (|m| format!("EUR {}", eu(m)), "EUR"),
            (|m| format!("{} €", eu(m)), "EUR"),
            (|m| format!("£{}", us(m)), "GBP"),
            (|m| format!("C ${}", us(m)), "CAD"),
            (|m| format!("AU ${}", us(m)), "AUD"),
            (|m| format!("JPY {}", yen(m)), "JPY"),
            (|m| format!("¥{}", yen(m)), "JPY"),
            (|m| format!("{} EUR", eu(m)), "EUR"),
            (|m| format!("EUR {}", us(m)), "EUR"),
            (
                |m| format!("{} руб.", fmt_amount(m, 2, "\u{202f}", ",")),
                "RUB",
            ),
            (|m| format!("CHF {}", fmt_amount(m, 2, "'", ".")), "CHF"),
        ]
    }

    type RangeStyle = (fn(i64, i64) -> String, &'static str);

    fn range_styles() -> Vec<RangeStyle> {
        vec![
            (|a, b| format!("${} to ${}", us(a), us(b)), "USD"),
            (|a, b| format!("EUR {} bis EUR {}", eu(a), eu(b)), "EUR"),
            (|a, b| format!("{} 円 ～ {} 円", yen(a), yen(b)), "JPY"),
            (|a, b| format!("£{} - £{}", us(a), us(b)), "GBP"),
            (|a, b| format!("US ${} - {}", us(a), us(b)), "USD"),
        ]
    }

    proptest! {
        #[test]
        fn every_display_style_round_trips(minor in 0i64..100_000_000_000) {
            for (format, code) in styles() {
                let text = format(minor);
                prop_assert_eq!(parse_money(&text, None), Ok(Money::new(minor, cur(code))), "{}", text);
            }
        }

        #[test]
        fn ranges_round_trip(a in 0i64..100_000_000_000, b in 0i64..100_000_000_000) {
            let (low, high) = (a.min(b), a.max(b));
            for (format, code) in range_styles() {
                let text = format(low, high);
                let expected = PriceRange { low: Money::new(low, cur(code)), high: Money::new(high, cur(code)) };
                prop_assert_eq!(parse_price_range(&text, None), Ok(expected), "{}", text);
            }
        }

        #[test]
        fn decimal_string_round_trips(
            minor in 0i64..100_000_000_000,
            code in prop::sample::select(vec!["USD", "EUR", "GBP", "JPY", "KRW", "KWD", "BHD", "CLF", "HUF"]),
        ) {
            let money = Money::new(minor, cur(code));
            let prefixed = format!("{code} {}", money.to_decimal_string());
            let suffixed = format!("{} {code}", money.to_decimal_string());
            prop_assert_eq!(parse_money(&prefixed, None), Ok(money));
            prop_assert_eq!(parse_money(&suffixed, None), Ok(money));
        }

        #[test]
        fn grouped_counts_round_trip(n in 0i64..100_000_000_000) {
            prop_assert_eq!(parse_count(&format!("({})", yen(n))), Some(n));
            prop_assert_eq!(parse_count(&format!("{} ratings", fmt_amount(n, 0, ".", ""))), Some(n));
        }

        #[test]
        fn never_panics(text in "\\PC{0,40}") {
            let _ = parse_money(&text, None);
            let _ = parse_price_range(&text, None);
            let _ = parse_count(&text);
        }
    }
}
