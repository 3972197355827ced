//! `sandpit logs [BIOME] [COMPONENT] [-f] [--tail N] [--since WHEN] [--json]`
//!
//! Without a component, every component of the biome interleaved in time, each line prefixed
//! with its component's name (coloured on a terminal unless `NO_COLOR`); with one, that
//! component's lines as it wrote them. The supervisor's marks (starts, restarts and how the
//! previous run ended, stops) read `sandpit: …`. `--json` prints one JSON object per line
//! (`sandpit_server::wire::logs::LogLine`).
//!
//! With a control plane the lines come from the server's machine in pages; `-f` polls for the
//! lines after the last page's cursor.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::SystemTime;

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use sandpit_ops::Context;
use sandpit_server::wire::logs::{LogLine, LogPage};

use crate::remote::{path_segment, project_path, query_value, Remote};

/// How often `logs -f` asks a control plane for new lines.
const REMOTE_POLL_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (default: the current branch's, named as `up` names it).
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
    /// Only this component's log (default: every component's, interleaved in time).
    #[arg(value_parser = crate::arguments::name)]
    component: Option<String>,
    /// Keep printing what is written (by components started later too), until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// How many of the last lines to print first, over all the components shown together
    /// [default: 100, or every line with --since].
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Only lines written since then: a duration back from now (`10m`, `1h 30m`) or an RFC 3339
    /// time (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`).
    #[arg(long, value_name = "WHEN", value_parser = since)]
    since: Option<SystemTime>,
}

fn since(raw: &str) -> Result<SystemTime, String> {
    sandpit_runtime::logs::parse_since(raw, SystemTime::now())
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let sources =
        sandpit_ops::logs::sources(context, args.biome.as_deref(), args.component.as_deref())
            .await?;
    let components: Vec<String> = sources
        .components
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let mut printer = Printer::new(json, sources.whole_biome, &components);
    let window = sandpit_ops::logs::window(args.since, args.tail);
    sandpit_ops::logs::show(sources, window, args.follow, |lines| {
        let lines: Vec<LogLine> = lines.iter().map(LogLine::from).collect();
        printer.print(&lines)
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let biome = crate::checkout::biome_or_branch(args.biome, directory)?;
    let base = format!("{}/logs/{}", project_path(project), path_segment(&biome));
    let component = args
        .component
        .as_deref()
        .map(|c| format!("component={}&", query_value(c)))
        .unwrap_or_default();
    let mut first = format!("{base}?{component}");
    if let Some(since) = args.since {
        let since = sandpit_runtime::logs::format_time(since);
        first.push_str(&format!("since={}&", query_value(&since)));
    }
    if let Some(tail) = args.tail {
        first.push_str(&format!("tail={tail}&"));
    }
    let page: LogPage = remote
        .call(Method::GET, first.trim_end_matches(['&', '?']), None::<&()>)
        .await?;
    let mut printer = Printer::new(json, page.whole_biome, &page.components);
    if !printed(printer.print(&page.lines))? || !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut cursor = page.cursor;
    loop {
        tokio::time::sleep(REMOTE_POLL_INTERVAL).await;
        let next = format!("{base}?{component}after={}", query_value(&cursor));
        let page: LogPage = remote.call(Method::GET, &next, None::<&()>).await?;
        if !printed(printer.print(&page.lines))? {
            return Ok(ExitCode::SUCCESS);
        }
        cursor = page.cursor;
    }
}

/// Whether printing worked; a reader that went away (`logs -f | head`) is not an error.
fn printed(result: std::io::Result<()>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(anyhow::Error::from(error).context("cannot write the logs")),
    }
}

/// The colours prefixes take in turn (ANSI: cyan, yellow, green, magenta, blue, red).
const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

struct Printer {
    json: bool,
    /// Whether lines say which component wrote them (a whole biome).
    prefixed: bool,
    colour: bool,
    /// The longest component name so far, so the lines line up.
    width: usize,
    colours: BTreeMap<String, u8>,
}

impl Printer {
    /// For the lines of `components` (their colours assigned in that order).
    fn new(json: bool, prefixed: bool, components: &[String]) -> Printer {
        let mut printer = Printer {
            json,
            prefixed,
            colour: std::io::stdout().is_terminal() && crate::settings::colour_allowed(),
            width: components.iter().map(String::len).max().unwrap_or(0),
            colours: BTreeMap::new(),
        };
        for name in components {
            printer.colour_of(name);
        }
        printer
    }

    fn colour_of(&mut self, name: &str) -> u8 {
        let next = COLOURS[self.colours.len() % COLOURS.len()];
        *self.colours.entry(name.to_owned()).or_insert(next)
    }

    fn print(&mut self, lines: &[LogLine]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for line in lines {
            if self.json {
                serde_json::to_writer(&mut out, line)?;
                writeln!(out)?;
                continue;
            }
            let text = line.display_text();
            if !self.prefixed {
                writeln!(out, "{text}")?;
                continue;
            }
            let name = line.component.as_str();
            self.width = self.width.max(name.len());
            let width = self.width;
            if self.colour {
                let colour = self.colour_of(&line.component);
                writeln!(out, "\x1b[{colour}m{name:<width$} |\x1b[0m {text}")?;
            } else {
                writeln!(out, "{name:<width$} | {text}")?;
            }
        }
        out.flush()
    }
}
