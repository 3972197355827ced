//! `sandpit logs --json` lines and `GET /api/v1/projects/{project}/logs/{target}` pages.
//!
//! Following over HTTP is polling with a cursor: each page carries the `cursor` to pass as
//! `after` for the lines written since (the server keeps nothing between requests).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sandpit_ops::logs::{Line, Page, Sources};

/// One line of a log (`logs --json` prints one per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// When the line was written (read from the component's pipe), RFC 3339 UTC, microseconds.
    pub ts: String,
    pub component: String,
    /// `stdout`, `stderr`, `sandpit` (the supervisor's marks: starts, restarts, stops), or
    /// `unknown` (a line from before logs had timestamps).
    pub stream: String,
    /// The line without its newline; bytes that are not UTF-8 are replaced.
    pub line: String,
}

impl LogLine {
    /// How a person reads it: a mark as `sandpit: …`, output as the component wrote it.
    pub fn display_text(&self) -> String {
        match self.stream.as_str() {
            "sandpit" => format!("sandpit: {}", self.line),
            _ => self.line.clone(),
        }
    }
}

impl From<&Line> for LogLine {
    fn from(line: &Line) -> LogLine {
        LogLine {
            ts: sandpit_runtime::logs::format_time(line.record.time),
            component: line.component.to_string(),
            stream: line.record.stream.as_str().to_owned(),
            line: line.record.text.clone(),
        }
    }
}

/// A page of a biome's logs, every component interleaved in time (or one component's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    pub biome: String,
    /// The components whose logs are read, in the biome's order.
    pub components: Vec<String>,
    /// Whether no component was named (lines then say which component wrote them).
    pub whole_biome: bool,
    pub lines: Vec<LogLine>,
    /// Pass it back as `after` for the lines written after these.
    pub cursor: String,
}

impl LogPage {
    pub fn new(sources: &Sources, page: &Page) -> LogPage {
        LogPage {
            biome: sources.biome.to_string(),
            components: sources
                .components
                .iter()
                .map(|(name, _)| name.to_string())
                .collect(),
            whole_biome: sources.whole_biome,
            lines: page.lines.iter().map(LogLine::from).collect(),
            cursor: page.cursor.encode(),
        }
    }
}
