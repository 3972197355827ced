//! Untrusted text as it appears inside a message: in backticks, with what a terminal would
//! hide or act on escaped, and cut short.
//!
//! A NUL byte or an escape sequence echoed raw makes a message say nothing ("contains ``") or
//! rewrite the user's terminal; a 10,000-character value echoed whole buries the point.

use std::fmt;

/// How many characters of the text a message shows before `…`.
pub const SHOWN_CHARS: usize = 64;

/// `raw` for a message: `` `a\0b` ``. Displays in backticks, escaping control characters and
/// the invisible characters that reorder or hide text (bidi overrides, zero-width spaces), and
/// showing at most [`SHOWN_CHARS`] characters.
pub fn quoted(raw: &str) -> Quoted<'_> {
    Quoted(raw)
}

/// See [`quoted`].
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(&'a str);

/// Whether `c` would not show as itself in a terminal.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' // zero-width spaces and marks
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{feff}' // zero-width no-break space
        )
}

/// `text` with the characters [`quoted`] escapes escaped, whole and without backticks: for
/// messages that come from elsewhere (a parser's) and may echo input.
pub fn escape_hidden(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        push_shown(&mut escaped, c);
    }
    escaped
}

fn push_shown(out: &mut String, c: char) {
    if !hidden(c) {
        out.push(c);
        return;
    }
    match c {
        '\0' => out.push_str("\\0"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        other => out.push_str(&format!("\\u{{{:x}}}", u32::from(other))),
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = String::from("`");
        for (index, c) in self.0.chars().enumerate() {
            if index == SHOWN_CHARS {
                shown.push('…');
                break;
            }
            push_shown(&mut shown, c);
        }
        shown.push('`');
        f.write_str(&shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let long = "a".repeat(100);
        let cases: &[(&str, &str)] = &[
            ("grade-api", "`grade-api`"),
            ("", "``"),
            ("a\0b", "`a\\0b`"),
            ("a\nb\tc", "`a\\nb\\tc`"),
            ("\u{1b}[31mred", "`\\u{1b}[31mred`"),
            ("abc\u{202e}def", "`abc\\u{202e}def`"),
            ("zero\u{200b}width", "`zero\\u{200b}width`"),
            ("gradé ✓", "`gradé ✓`"),
        ];
        for (raw, shown) in cases {
            assert_eq!(quoted(raw).to_string(), *shown, "{raw:?}");
        }
        assert_eq!(quoted(&long).to_string(), format!("`{}…`", "a".repeat(64)));
        assert_eq!(
            escape_hidden("key `a\0` in `b\u{1b}`"),
            "key `a\\0` in `b\\u{1b}`"
        );
    }
}
