//! Element text as a browser's `innerText` gives it, the one way every field reads text: the
//! contents of scripts, styles and hidden elements are left out; whitespace inside text runs
//! collapses to one space as `white-space: normal` renders it; block boundaries and `<br>` are
//! line breaks, paragraphs a blank line, table cells a tab; spaces at the ends of lines go; and
//! `<pre>` keeps its whitespace. Adjacent inline elements join as written ("US" + "$5" is
//! "US$5" without a space between the tags, "US $5" with one), adjacent blocks never run
//! together ("Apple" + "iPhone 13" in two `div`s is "Apple\niPhone 13").

use scraper::{ElementRef, Node};

/// Contents of these elements are never text a reader sees.
const NON_TEXT_TAGS: [&str; 9] = [
    "script", "style", "noscript", "template", "iframe", "head", "svg", "object", "video",
];

/// Elements rendered as blocks (or list items, table parts, flex rows) by the default style
/// sheet: their text starts and ends a line.
const BLOCK_TAGS: [&str; 46] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "legend",
    "li",
    "main",
    "menu",
    "nav",
    "ol",
    "option",
    "pre",
    "search",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
    "html",
];

/// Blocks a blank line sets apart (their default margins).
const PARAGRAPH_TAGS: [&str; 1] = ["p"];

/// One piece of rendered text.
enum Piece {
    /// A text run, whitespace already collapsed.
    Text(String),
    /// Text inside `<pre>`, kept as written.
    Pre(String),
    /// A `<br>`.
    Newline,
    /// Between two cells of a table row.
    Tab,
    /// A block boundary: at least this many line breaks (0 for inline elements).
    Break(usize),
}

/// The `innerText` of `el`: lines separated by `\n`, no leading or trailing whitespace, children
/// for which `skip` holds left out (with their text).
pub fn inner_text(el: ElementRef<'_>, skip: &dyn Fn(&ElementRef<'_>) -> bool) -> String {
    let mut pieces = Vec::new();
    collect(el, skip, false, &mut pieces);
    assemble(pieces)
}

/// Whitespace runs (including NBSP and other Unicode spaces) become one space; ends are trimmed.
/// A field's value is one line: this joins the lines of [`inner_text`].
pub fn collapse_whitespace(text: &str) -> String {
    text.split(char::is_whitespace)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the element is not rendered whatever the site's style sheets say: the `hidden`
/// attribute or an inline `display: none`.
fn not_rendered(el: &ElementRef<'_>) -> bool {
    let value = el.value();
    value.attr("hidden").is_some()
        || value.attr("style").is_some_and(|style| {
            let style: String = style.chars().filter(|c| !c.is_whitespace()).collect();
            style.to_ascii_lowercase().contains("display:none")
        })
}

fn collect(
    el: ElementRef<'_>,
    skip: &dyn Fn(&ElementRef<'_>) -> bool,
    pre: bool,
    out: &mut Vec<Piece>,
) {
    for child in el.children() {
        match child.value() {
            Node::Text(text) if pre => out.push(Piece::Pre(text.to_string())),
            Node::Text(text) => out.push(Piece::Text(collapse_run(text))),
            Node::Element(element) => {
                let Some(child) = ElementRef::wrap(child) else {
                    continue;
                };
                let name = element.name();
                if NON_TEXT_TAGS.contains(&name) || not_rendered(&child) || skip(&child) {
                    continue;
                }
                let lines = match name {
                    "br" => {
                        out.push(Piece::Newline);
                        continue;
                    }
                    "td" | "th" if follows_a_cell(&child) => {
                        out.push(Piece::Tab);
                        0
                    }
                    name if PARAGRAPH_TAGS.contains(&name) => 2,
                    name if BLOCK_TAGS.contains(&name) => 1,
                    _ => 0,
                };
                out.push(Piece::Break(lines));
                collect(child, skip, pre || name == "pre", out);
                out.push(Piece::Break(lines));
            }
            _ => {}
        }
    }
}

/// Whether a table cell has a cell before it in its row.
fn follows_a_cell(cell: &ElementRef<'_>) -> bool {
    cell.prev_siblings()
        .filter_map(ElementRef::wrap)
        .any(|s| matches!(s.value().name(), "td" | "th"))
}

/// Whitespace runs in a text node as `white-space: normal` renders them: one space each.
fn collapse_run(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        // NBSP is not collapsible: it is kept as written.
        if c.is_ascii_whitespace() || (c.is_whitespace() && c != '\u{a0}') {
            space = true;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    if space {
        out.push(' ');
    }
    out
}

/// Joins pieces: consecutive breaks become the largest of them, breaks at the ends go, and
/// collapsible spaces at the start or end of a line or cell, or doubled across inline
/// boundaries, go as a browser drops them.
fn assemble(pieces: Vec<Piece>) -> String {
    let mut out = String::new();
    let mut pending = 0;
    for piece in pieces {
        let (text, collapsible) = match piece {
            Piece::Break(lines) => {
                pending = pending.max(lines);
                continue;
            }
            Piece::Text(text) => (text, true),
            Piece::Pre(text) => (text, false),
            Piece::Newline => ("\n".to_string(), false),
            Piece::Tab => ("\t".to_string(), false),
        };
        if text.is_empty() {
            continue;
        }
        if pending > 0 && !out.is_empty() {
            trim_end_spaces(&mut out);
            out.push_str(&"\n".repeat(pending));
        }
        pending = 0;
        if !collapsible {
            if text.starts_with(['\n', '\t']) {
                trim_end_spaces(&mut out);
            }
            out.push_str(&text);
            continue;
        }
        let at_start = out.is_empty() || out.ends_with(['\n', '\t', ' ']);
        out.push_str(if at_start {
            text.trim_start_matches(' ')
        } else {
            &text
        });
    }
    trim_end_spaces(&mut out);
    out.trim_matches(['\n', '\t']).to_string()
}

/// Drops collapsible spaces at the end of the text so far (the end of a line or cell).
fn trim_end_spaces(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::{Html, Selector};

    fn text_of(html: &str) -> String {
        let doc = Html::parse_document(html);
        let sel = Selector::parse("#t").unwrap();
        inner_text(doc.select(&sel).next().unwrap(), &|_| false)
    }

    #[test]
    fn adjacent_blocks_never_run_together_and_inline_boundaries_keep_their_whitespace() {
        let html = r#"<div id=t><div class="brand">Apple</div><div class="name">iPhone 13</div>
            <span>128</span><span>GB</span> <b>Blue</b></div>"#;
        assert_eq!(text_of(html), "Apple\niPhone 13\n128GB Blue");
        assert_eq!(
            collapse_whitespace(&text_of(html)),
            "Apple iPhone 13 128GB Blue"
        );
    }

    #[test]
    fn breaks_paragraphs_and_cells_read_as_a_browser_renders_them() {
        let html = "<div id=t><h3 class=s-item__title>  Nintendo\n   Switch  OLED </h3>\
            <p>Brand new.<br>Sealed.</p><p>Ships today</p>\
            <table><tr><td>Colour</td><td>White</td></tr><tr><th>Size</th><td> 7\" </td></tr></table>\
            </div>";
        assert_eq!(
            text_of(html),
            "Nintendo Switch OLED\n\nBrand new.\nSealed.\n\nShips today\n\nColour\tWhite\nSize\t7\""
        );
    }

    #[test]
    fn scripts_hidden_elements_and_inline_hidden_styles_are_not_text() {
        let html = r#"<div id=t>US&nbsp;<b>$5.99</b><script>var a = 1;</script>
            <span hidden>secret</span><span style="display: none">gone</span>
            <style>.x{}</style><span style="color:red">shown</span></div>"#;
        assert_eq!(text_of(html), "US\u{a0}$5.99 shown");
    }

    #[test]
    fn preformatted_text_keeps_its_whitespace() {
        let html = "<div id=t>Size:<pre>  10 x 20\n  cm</pre>end</div>";
        assert_eq!(text_of(html), "Size:\n  10 x 20\n  cm\nend");
    }

    #[test]
    fn real_ebay_card_markup_reads_with_spaces_between_its_blocks() {
        let html = r#"<li id=t class="s-card"><div class="s-card__title"><span class="su-styled-text primary default">Apple iPhone 13 - 128GB - Midnight (Unlocked)</span><span class="clipped">Opens in a new window or tab</span></div><div class="s-card__subtitle"><span>Pre-Owned</span><span> · </span><span>Apple iPhone 13</span></div><div class="s-card__attribute-row"><span class="s-card__price">$249.99</span></div></li>"#;
        assert_eq!(
            collapse_whitespace(&text_of(html)),
            "Apple iPhone 13 - 128GB - Midnight (Unlocked)Opens in a new window or tab \
             Pre-Owned · Apple iPhone 13 $249.99"
        );
    }
}
