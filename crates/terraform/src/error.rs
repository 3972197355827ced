//! What can go wrong when sandpit runs terraform, each failure named for what failed.

use std::io;
use std::path::PathBuf;

/// A terraform command that did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    /// The binary is not on the PATH given (or the path given is not an executable file).
    #[error("`{name}` was not found{looked}: {hint}", looked = looked_where(.searched))]
    NotFound {
        name: String,
        /// Where it was looked for: the PATH's directories, or the path itself.
        searched: Vec<PathBuf>,
        hint: &'static str,
    },
    /// A command exited unsuccessfully for a reason not classified below.
    #[error("`{command}` failed ({status}) in `{dir}`:\n{tail}\nthe whole output is in `{log}`", status = exit_status(*.code), dir = .dir.display(), log = .log.display())]
    Failed {
        /// What ran, without its arguments: `terraform apply`.
        command: String,
        /// The exit code; `None` when a signal ended the process.
        code: Option<i32>,
        /// The module directory it ran in.
        dir: PathBuf,
        /// The last lines of its output, colour-free.
        tail: String,
        /// The log every line of its output was appended to.
        log: PathBuf,
    },
    /// `apply PLAN` refused a plan made before the state last changed.
    #[error("the saved plan `{plan}` is stale: the state changed after it was made, so terraform refused to apply it; make a new plan (and have it approved again)\nthe whole output is in `{log}`", plan = .plan.display(), log = .log.display())]
    StalePlan {
        command: String,
        plan: PathBuf,
        tail: String,
        log: PathBuf,
    },
    /// Another operation holds the state's lock (and kept it past the lock timeout).
    #[error("`{command}` could not take the state lock: another operation holds it:\n{tail}\nwait for that operation to finish; if it crashed, clear its lock (`sandpit tf unlock`)\nthe whole output is in `{log}`", log = .log.display())]
    Locked {
        command: String,
        tail: String,
        log: PathBuf,
    },
    /// A variable that cannot be passed as `TF_VAR_<name>`.
    #[error("variable {name} cannot be passed to terraform: {problem}", name = sandpit_domain::quoted(.name))]
    InvalidVariable { name: String, problem: &'static str },
    /// Terraform printed something this runner does not understand (e.g. a binary that is not
    /// terraform, or a format from a much newer version).
    #[error("`{command}` printed something unexpected ({problem}):\n{output}")]
    UnexpectedOutput {
        command: String,
        problem: String,
        output: String,
    },
    /// A file or process operation of the runner itself.
    #[error("could not {what} `{path}`: {source}", path = .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn looked_where(searched: &[PathBuf]) -> String {
    match searched {
        [] => " (no PATH to look on)".to_owned(),
        dirs => {
            let listed: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(" (looked in {})", listed.join(":"))
        }
    }
}

fn exit_status(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "ended by a signal".to_owned(),
    }
}
