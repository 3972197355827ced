//! Reading terraform's output as it streams by: which failure it reports (pure, line by line),
//! the colour-free form of each line, and the last lines kept for the error message.

use std::collections::VecDeque;

/// How many lines of output a failure carries.
pub(crate) const TAIL_LINES: usize = 20;
/// Longer lines are cut in the tail (the log keeps them whole).
const TAIL_LINE_CHARS: usize = 400;

/// A failure terraform names in words, told apart from every other failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// "Error: Saved plan is stale".
    StalePlan,
    /// "Error: Error acquiring the state lock".
    Locked,
    /// "No state file was found!" (`state list` before any apply with local state).
    NoState,
}

/// The failure a line of output announces, if any. Terraform's error headlines are stable
/// across 1.x (and OpenTofu keeps them); the box-drawing prefix of a coloured terminal is
/// gone with `-no-color`, but a leading `│ ` is tolerated all the same.
pub(crate) fn failure_in(line: &str) -> Option<FailureKind> {
    let text = line.trim_start_matches(['│', '╷', '╵', ' ']).trim_end();
    if text.starts_with("Error: Saved plan is stale") {
        Some(FailureKind::StalePlan)
    } else if text.starts_with("Error: Error acquiring the state lock") {
        Some(FailureKind::Locked)
    } else if text.starts_with("No state file was found!") {
        Some(FailureKind::NoState)
    } else {
        None
    }
}

/// `line` without ANSI escape sequences (CSI `ESC [ … final`, `ESC ( B`-like designations and
/// any other `ESC x` pair) or a
/// trailing carriage return: `-no-color` should make this a no-op, but some messages (and
/// OpenTofu's) have been seen coloured regardless, and the tail goes into error messages.
pub(crate) fn colour_free(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte in @..=~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // `ESC ( B` and the like: intermediates (space to `/`), then one final byte.
            Some(c) if (' '..='/').contains(&c) => {
                for c in chars.by_ref() {
                    if !(' '..='/').contains(&c) {
                        break;
                    }
                }
            }
            Some(_) | None => {}
        }
    }
    if out.ends_with('\r') {
        out.pop();
    }
    out
}

/// The last [`TAIL_LINES`] lines seen, and the first classified failure among all of them.
#[derive(Debug, Default)]
pub(crate) struct OutputWatch {
    lines: VecDeque<String>,
    pub(crate) failure: Option<FailureKind>,
}

impl OutputWatch {
    /// Takes one colour-free line.
    pub(crate) fn observe(&mut self, line: &str) {
        if self.failure.is_none() {
            self.failure = failure_in(line);
        }
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        let cut: String = line.chars().take(TAIL_LINE_CHARS).collect();
        self.lines.push_back(cut);
    }

    /// The kept lines, without the blank lines terraform surrounds its messages with.
    pub(crate) fn tail(&self) -> String {
        let lines: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let start = lines.iter().position(|l| !l.trim().is_empty());
        let end = lines.iter().rposition(|l| !l.trim().is_empty());
        match (start, end) {
            (Some(start), Some(end)) => lines[start..=end].join("\n"),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart_by_their_headline() {
        // Lines as terraform 1.11 prints them with -no-color (captured).
        let cases: &[(&str, Option<FailureKind>)] = &[
            ("Error: Saved plan is stale", Some(FailureKind::StalePlan)),
            ("│ Error: Saved plan is stale", Some(FailureKind::StalePlan)),
            (
                "Error: Error acquiring the state lock",
                Some(FailureKind::Locked),
            ),
            (
                "│ Error: Error acquiring the state lock\r",
                Some(FailureKind::Locked),
            ),
            ("No state file was found!", Some(FailureKind::NoState)),
            (
                "The given plan file can no longer be applied because the state was changed by",
                None,
            ),
            ("Error: local-exec provisioner error", None),
            ("Error message: resource temporarily unavailable", None),
            // A resource named after the message is not the message.
            ("  # terraform_data.stale will be created", None),
            ("", None),
        ];
        for (line, expected) in cases {
            assert_eq!(failure_in(line), *expected, "{line:?}");
        }
    }

    #[test]
    fn escape_sequences_and_carriage_returns_are_dropped() {
        let cases = [
            ("plain", "plain"),
            (
                "\u{1b}[31mNo state file was found!\u{1b}[0m\u{1b}[0m",
                "No state file was found!",
            ),
            ("\u{1b}[1m\u{1b}[33mWarning:\u{1b}[0m x", "Warning: x"),
            ("done\r", "done"),
            ("\u{1b}(Bok", "ok"),
            ("\u{1b}=keypad", "keypad"),
            ("cut at the end \u{1b}[", "cut at the end "),
            ("unicode │ stays", "unicode │ stays"),
        ];
        for (raw, clean) in cases {
            assert_eq!(colour_free(raw), clean, "{raw:?}");
        }
    }

    #[test]
    fn the_tail_keeps_the_last_lines_without_surrounding_blanks() {
        let mut watch = OutputWatch::default();
        for n in 0..30 {
            watch.observe(&format!("line {n}"));
        }
        watch.observe("");
        watch.observe("");
        let tail = watch.tail();
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES - 2);
        assert_eq!(lines.first(), Some(&"line 12"));
        assert_eq!(lines.last(), Some(&"line 29"));
        assert_eq!(OutputWatch::default().tail(), "");
    }

    #[test]
    fn the_first_failure_seen_is_kept_even_once_out_of_the_tail() {
        let mut watch = OutputWatch::default();
        watch.observe("Error: Error acquiring the state lock");
        for n in 0..40 {
            watch.observe(&format!("Lock Info line {n}"));
        }
        watch.observe("Error: Saved plan is stale");
        assert_eq!(watch.failure, Some(FailureKind::Locked));
        assert!(!watch.tail().contains("acquiring"));
    }

    #[test]
    fn long_lines_are_cut_in_the_tail() {
        let mut watch = OutputWatch::default();
        watch.observe(&"x".repeat(5000));
        assert_eq!(watch.tail().chars().count(), TAIL_LINE_CHARS);
    }
}
