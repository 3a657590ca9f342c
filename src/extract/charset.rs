//! The character encoding of HTML bytes read from a file (a saved page): a byte-order mark, the
//! HTTP header's charset, `<meta charset>` or `<meta http-equiv=Content-Type>` in the first
//! 1,024 bytes, else UTF-8 when the bytes are valid UTF-8, else windows-1252 — the order of the
//! HTML standard's encoding sniffing, without the guesswork of its last step. Decoding never
//! fails; a byte the encoding cannot map becomes U+FFFD and is counted.

use encoding_rs::Encoding;

/// A page decoded, with the encoding used and how it was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub html: String,
    /// The WHATWG name, e.g. `windows-1252`, `Shift_JIS`, `UTF-8`.
    pub encoding: &'static str,
    pub source: CharsetSource,
    /// Whether some bytes had no mapping in the encoding (replaced by U+FFFD).
    pub had_errors: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharsetSource {
    ByteOrderMark,
    HttpHeader,
    Meta,
    ValidUtf8,
    Fallback,
}

/// How far `<meta>` declarations are looked for, as browsers do.
const PRESCAN_BYTES: usize = 1024;

/// Decodes `bytes`, an HTML document, given its `Content-Type` header when known.
pub fn decode_html(bytes: &[u8], content_type: Option<&str>) -> Decoded {
    let (encoding, source) = sniff(bytes, content_type);
    let (html, had_errors) = match source {
        CharsetSource::ByteOrderMark => {
            let (html, _, had_errors) = encoding.decode(bytes);
            (html, had_errors)
        }
        _ => encoding.decode_without_bom_handling(bytes),
    };
    Decoded {
        html: html.into_owned(),
        encoding: encoding.name(),
        source,
        had_errors,
    }
}

fn sniff(bytes: &[u8], content_type: Option<&str>) -> (&'static Encoding, CharsetSource) {
    if let Some((encoding, _)) = Encoding::for_bom(bytes) {
        return (encoding, CharsetSource::ByteOrderMark);
    }
    if let Some(encoding) = content_type.and_then(charset_param).and_then(label) {
        return (encoding, CharsetSource::HttpHeader);
    }
    if let Some(encoding) = meta_charset(&bytes[..bytes.len().min(PRESCAN_BYTES)]) {
        return (encoding, CharsetSource::Meta);
    }
    if std::str::from_utf8(bytes).is_ok() {
        return (encoding_rs::UTF_8, CharsetSource::ValidUtf8);
    }
    (encoding_rs::WINDOWS_1252, CharsetSource::Fallback)
}

/// An encoding label as HTML means it: UTF-16 labels in a document read as bytes mean UTF-8.
fn label(name: &str) -> Option<&'static Encoding> {
    let encoding = Encoding::for_label(name.trim().as_bytes())?;
    Some(
        if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
            encoding_rs::UTF_8
        } else {
            encoding
        },
    )
}

/// `charset=` of a `Content-Type` value, unquoted.
fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches(['"', '\'']))
    })
}

/// The first `<meta charset=…>` or `<meta http-equiv="Content-Type" content="…charset=…">`.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    // The prescan reads ASCII only; other bytes cannot be part of a declaration.
    let text: String = head
        .iter()
        .map(|&b| if b.is_ascii() { b as char } else { ' ' })
        .collect();
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<meta") {
        let start = from + at;
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(encoding) = attribute(tag, "charset").and_then(label) {
            return Some(encoding);
        }
        let is_content_type =
            attribute(tag, "http-equiv").is_some_and(|v| v.eq_ignore_ascii_case("content-type"));
        let declared = attribute(tag, "content")
            .filter(|_| is_content_type)
            .and_then(|content| charset_param(&format!("x;{content}")).and_then(label));
        if declared.is_some() {
            return declared;
        }
        from = end;
    }
    None
}

/// The value of attribute `name` in a lower-cased tag's text, quoted or not.
fn attribute<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().last();
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        if !before.is_some_and(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let Some(value) = after.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_ascii_whitespace() || c == '/')
                .next()
                .unwrap_or(""),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(text: &str, encoding: &'static Encoding) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding.encode(text);
        assert!(!unmappable, "{text} in {}", encoding.name());
        bytes.into_owned()
    }

    #[test]
    fn iso_8859_1_declared_by_meta_charset_is_read_as_windows_1252() {
        let page = "<html><head><meta charset=\"ISO-8859-1\"><title>Zuverlässigkeit</title>";
        let decoded = decode_html(&encoded(page, encoding_rs::WINDOWS_1252), None);
        assert!(decoded.html.contains("Zuverlässigkeit"), "{}", decoded.html);
        assert_eq!(decoded.encoding, "windows-1252");
        assert_eq!(decoded.source, CharsetSource::Meta);
        assert!(!decoded.had_errors);
    }

    #[test]
    fn windows_1252_euro_sign_declared_by_http_equiv_survives() {
        let page = "<head><META HTTP-EQUIV='Content-Type' CONTENT='text/html; charset=windows-1252'>\
                    </head><p class=price>12,50 €</p>";
        let bytes = encoded(page, encoding_rs::WINDOWS_1252);
        assert!(bytes.contains(&0x80), "€ is byte 0x80 in windows-1252");
        let decoded = decode_html(&bytes, None);
        assert!(decoded.html.contains("12,50 €"), "{}", decoded.html);
        assert_eq!(decoded.source, CharsetSource::Meta);
    }

    #[test]
    fn shift_jis_from_the_http_header_wins_over_the_meta_tag() {
        let page = "<meta charset=utf-8><h1>ニンテンドースイッチ 本体</h1><p>￥32,978</p>";
        let bytes = encoded(page, encoding_rs::SHIFT_JIS);
        let decoded = decode_html(&bytes, Some("text/html; charset=\"Shift_JIS\""));
        assert!(
            decoded.html.contains("ニンテンドースイッチ 本体"),
            "{}",
            decoded.html
        );
        assert!(decoded.html.contains("￥32,978"));
        assert_eq!(
            (decoded.encoding, decoded.source),
            ("Shift_JIS", CharsetSource::HttpHeader)
        );
    }

    #[test]
    fn shift_jis_declared_by_meta_without_a_header() {
        let page = "<meta http-equiv=content-type content=\"text/html;charset=shift_jis\"><h1>中古 カメラ</h1>";
        let decoded = decode_html(&encoded(page, encoding_rs::SHIFT_JIS), None);
        assert!(decoded.html.contains("中古 カメラ"), "{}", decoded.html);
        assert_eq!(decoded.encoding, "Shift_JIS");
    }

    #[test]
    fn a_byte_order_mark_wins_and_is_removed() {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice("<meta charset=windows-1252><p>Grüße</p>".as_bytes());
        let decoded = decode_html(&bytes, Some("text/html; charset=iso-8859-1"));
        assert_eq!(decoded.source, CharsetSource::ByteOrderMark);
        assert!(decoded.html.starts_with("<meta"), "BOM removed");
        assert!(decoded.html.contains("Grüße"));
    }

    #[test]
    fn undeclared_pages_are_utf8_when_valid_else_windows_1252() {
        let utf8 = decode_html("<p>Grüße — 9,99 €</p>".as_bytes(), None);
        assert_eq!(
            (utf8.encoding, utf8.source),
            ("UTF-8", CharsetSource::ValidUtf8)
        );
        assert!(utf8.html.contains("Grüße — 9,99 €"));
        let latin = decode_html(
            &encoded("<p>Grüße 9,99 €</p>", encoding_rs::WINDOWS_1252),
            None,
        );
        assert_eq!(
            (latin.encoding, latin.source),
            ("windows-1252", CharsetSource::Fallback)
        );
        assert!(latin.html.contains("Grüße 9,99 €"), "{}", latin.html);
    }

    #[test]
    fn unknown_labels_and_utf16_labels_are_handled_as_browsers_do() {
        let page = "<meta charset=\"x-no-such-charset\"><meta charset=utf-16><p>é</p>";
        let decoded = decode_html(page.as_bytes(), None);
        assert_eq!(
            (decoded.encoding, decoded.source),
            ("UTF-8", CharsetSource::Meta)
        );
        assert!(decoded.html.contains("<p>é</p>"));
        assert_eq!(charset_param("text/html"), None);
        assert_eq!(charset_param("text/html; Charset='EUC-JP'"), Some("EUC-JP"));
    }

    #[test]
    fn a_declaration_after_the_first_1024_bytes_is_not_seen() {
        let page = format!("{}<meta charset=windows-1252>", " ".repeat(1100));
        let decoded = decode_html(page.as_bytes(), None);
        assert_eq!(decoded.source, CharsetSource::ValidUtf8);
    }
}
