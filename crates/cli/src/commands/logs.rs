//! `sandpit logs [BIOME] [COMPONENT] [-f] [--tail N] [--since WHEN] [--json]`
//!
//! Without a component, every component of the biome interleaved in time, each line prefixed
//! with its component's name (coloured on a terminal unless `NO_COLOR`); with one, that
//! component's lines as it wrote them. The supervisor's marks (starts, restarts and how the
//! previous run ended, stops) read `sandpit: …`. `--json` prints one JSON object per line
//! (see `output::LogLineJson`).

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::SystemTime;

use sandpit_domain::Name;
use sandpit_ops::logs::Line;
use sandpit_ops::Context;

use crate::output;

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
    let mut printer = Printer {
        json,
        prefixed: sources.whole_biome,
        colour: std::io::stdout().is_terminal() && crate::settings::colour_allowed(),
        width: sources
            .components
            .iter()
            .map(|(name, _)| name.as_str().len())
            .max()
            .unwrap_or(0),
        colours: BTreeMap::new(),
    };
    for (name, _) in &sources.components {
        printer.colour_of(name);
    }
    let window = sandpit_ops::logs::window(args.since, args.tail);
    sandpit_ops::logs::show(sources, window, args.follow, |lines| printer.print(lines)).await?;
    Ok(ExitCode::SUCCESS)
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
    colours: BTreeMap<Name, u8>,
}

impl Printer {
    fn colour_of(&mut self, name: &Name) -> u8 {
        let next = COLOURS[self.colours.len() % COLOURS.len()];
        *self.colours.entry(name.clone()).or_insert(next)
    }

    fn print(&mut self, lines: &[Line]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for line in lines {
            if self.json {
                let json = output::LogLineJson::new(line);
                serde_json::to_writer(&mut out, &json)?;
                writeln!(out)?;
                continue;
            }
            let text = line.record.display_text();
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
