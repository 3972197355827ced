//! Located problems in `sandpit.toml`: what is wrong, where (line:column), and what to do.

use std::fmt;

use crate::schema::FILE_NAME;

/// One problem, located at 1-based line and column (columns counted in characters).
///
/// Every problem refuses the file: there are no warnings, because a typo that is only warned
/// about (`heatlh`) is found after a build and a health timeout instead of before any work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// `sandpit.toml:12:7: <message>`, then `  hint: <hint>` on a second line when there is one.
    pub fn render(&self, file_label: &str) -> String {
        let mut rendered = format!(
            "{file_label}:{}:{}: {}",
            self.line, self.column, self.message
        );
        if let Some(hint) = &self.hint {
            rendered.push_str("\n  hint: ");
            rendered.push_str(hint);
        }
        rendered
    }
}

/// Everything wrong with a file that could not be accepted, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rendered: Vec<String> = self.errors.iter().map(|d| d.render(FILE_NAME)).collect();
        f.write_str(&rendered.join("\n"))
    }
}

impl std::error::Error for Diagnostics {}

/// Collects problems by byte offset while the file is checked; turned into line and column once
/// at the end, so the checking code only ever handles spans.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    source: &'a str,
    found: Vec<(usize, String, Option<String>)>,
}

impl<'a> Sink<'a> {
    pub fn new(source: &'a str) -> Self {
        Sink {
            source,
            found: Vec::new(),
        }
    }

    pub fn error(&mut self, at: usize, message: impl Into<String>, hint: Option<String>) {
        self.found.push((at, message.into(), hint));
    }

    pub fn has_errors(&self) -> bool {
        !self.found.is_empty()
    }

    /// The problems sorted by position (stable, so same-place problems keep the order they were
    /// found in).
    pub fn finish(self) -> Diagnostics {
        let mut found = self.found;
        found.sort_by_key(|(at, _, _)| *at);
        let errors = found
            .into_iter()
            .map(|(at, message, hint)| {
                let (line, column) = line_column(self.source, at);
                Diagnostic {
                    line,
                    column,
                    message,
                    hint,
                }
            })
            .collect();
        Diagnostics { errors }
    }
}

/// 1-based line and character column of a byte offset.
fn line_column(source: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// `raw` written as a TOML basic string, for hints that suggest a value to write: quotes,
/// backslashes and control characters escaped, so the suggestion can be pasted back.
pub(crate) fn toml_string(raw: &str) -> String {
    let mut written = String::from("\"");
    for c in raw.chars() {
        match c {
            '"' => written.push_str("\\\""),
            '\\' => written.push_str("\\\\"),
            c if c.is_control() => written.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => written.push(c),
        }
    }
    written.push('"');
    written
}

pub(crate) use sandpit_domain::suggestion::did_you_mean;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_character_columns() {
        let source = "ab\nçé = 1\n";
        assert_eq!(line_column(source, 0), (1, 1));
        assert_eq!(line_column(source, 3), (2, 1));
        // `=` is the fourth character of line 2 but byte 8 of the file.
        assert_eq!(line_column(source, source.find('=').unwrap()), (2, 4));
        assert_eq!(line_column(source, 999), (3, 1));
    }
}
