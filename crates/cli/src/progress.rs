//! Build progress: a spinner per component showing its latest output line on a terminal, plain
//! lines otherwise (logs in CI stay readable), nothing at all for `--json`.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sandpit_build::execute::{BuildProgress, ComponentOutcome};
use sandpit_domain::Name;

pub struct TerminalProgress {
    interactive: bool,
    colour: bool,
    quiet: bool,
    current: Option<ProgressBar>,
}

impl TerminalProgress {
    pub fn new(quiet: bool) -> TerminalProgress {
        TerminalProgress {
            interactive: std::io::stderr().is_terminal(),
            colour: crate::settings::colour_allowed(),
            quiet,
            current: None,
        }
    }
}

impl BuildProgress for TerminalProgress {
    fn started(&mut self, component: &Name, log: &Path) {
        if self.quiet {
            return;
        }
        if self.interactive {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(if self.colour {
                    "{spinner} {prefix:.bold} {wide_msg}"
                } else {
                    "{spinner} {prefix} {wide_msg}"
                })
                .expect("static template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
            );
            bar.set_prefix(component.to_string());
            bar.set_message("building…");
            bar.enable_steady_tick(Duration::from_millis(100));
            self.current = Some(bar);
        } else {
            eprintln!("  {component}: building (log: {})", log.display());
        }
    }

    fn output_line(&mut self, _component: &Name, line: &str) {
        if let Some(bar) = &self.current {
            bar.set_message(line.to_owned());
        }
    }

    fn finished(&mut self, component: &Name, outcome: &ComponentOutcome) {
        if let Some(bar) = self.current.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            eprintln!(
                "  {component}: {} {}",
                crate::commands::build::outcome_word(outcome.outcome),
                outcome.artifact.name.file_name()
            );
        }
    }
}
