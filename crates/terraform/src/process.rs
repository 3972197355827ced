//! The one module that starts terraform processes: a scrubbed environment, stdin null, every
//! line of output appended to the run's log (stdout and stderr through one pipe, so in the
//! order they were written) and watched for the failures terraform names.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::environment::{self, is_scrubbed};
use crate::error::TerraformError;
use crate::failure::{colour_free, OutputWatch};

/// One terraform command.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    pub(crate) binary: &'a Path,
    /// `terraform` or `tofu`, for the log and messages.
    pub(crate) program: String,
    /// The module directory it runs in.
    pub(crate) dir: &'a Path,
    /// Everything after the binary; never a secret (those travel in `env`).
    pub(crate) args: Vec<OsString>,
    /// Set on top of the inherited, scrubbed environment; later entries win.
    pub(crate) env: Vec<(OsString, OsString)>,
}

impl Invocation<'_> {
    /// `terraform apply`: the program and its subcommand(s), for messages.
    pub(crate) fn command_name(&self) -> String {
        let words: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .take_while(|a| !a.starts_with('-'))
            .collect();
        format!("{} {}", self.program, words.join(" "))
            .trim_end()
            .to_owned()
    }
}

/// Where stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stdout {
    /// Into the log with stderr (human output).
    Logged,
    /// Kept apart and returned, never logged: `-json` documents, which hold output values,
    /// sensitive ones too, and the plan's variables. Only stderr goes to the log.
    Captured,
}

/// How a command ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    /// The logged lines' tail and classification.
    pub(crate) watch: OutputWatch,
    /// Stdout, when [`Stdout::Captured`].
    pub(crate) stdout: Vec<u8>,
}

/// Runs `invocation` to its end, appending its output to `log` (when given).
pub(crate) fn run(
    invocation: &Invocation<'_>,
    stdout: Stdout,
    log: Option<&Path>,
) -> Result<Finished, TerraformError> {
    let mut log = match log {
        Some(path) => Some(LogFile::open(path)?),
        None => None,
    };
    if let Some(log) = log.as_mut() {
        let args: Vec<String> = invocation
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        log.line(&format!(
            "$ {} {} (in {})",
            invocation.program,
            args.join(" "),
            invocation.dir.display()
        ));
    }
    let spawn_error = |source| TerraformError::Io {
        what: "run",
        path: invocation.binary.to_path_buf(),
        source,
    };
    let mut command = command(invocation.binary, &invocation.env);
    command.args(&invocation.args).current_dir(invocation.dir);
    let mut watch = OutputWatch::default();
    let (status, captured) = match stdout {
        Stdout::Logged => {
            let (reader, writer) = io::pipe().map_err(spawn_error)?;
            let writer_for_stderr = writer.try_clone().map_err(spawn_error)?;
            command.stdout(writer).stderr(writer_for_stderr);
            let mut child = command.spawn().map_err(spawn_error)?;
            // The command holds the pipe's write ends: dropped, the read below ends when
            // terraform (and anything it started that kept them) has exited.
            drop(command);
            each_line(reader, |line| observe(line, &mut watch, log.as_mut()));
            (child.wait().map_err(spawn_error)?, Vec::new())
        }
        Stdout::Captured => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            let output = command
                .spawn()
                .and_then(|child| child.wait_with_output())
                .map_err(spawn_error)?;
            each_line(output.stderr.as_slice(), |line| {
                observe(line, &mut watch, log.as_mut())
            });
            (output.status, output.stdout)
        }
    };
    if let Some(log) = log.as_mut() {
        log.line(&format!("# {} ended: {status}", invocation.command_name()));
        log.finish()?;
    }
    Ok(Finished {
        status,
        watch,
        stdout: captured,
    })
}

/// `<binary> version -json` (in no module, logged nowhere): the version it reports.
pub(crate) fn version_json(binary: &Path) -> Result<String, TerraformError> {
    let command_name = format!("{} version -json", binary.display());
    let output = command(binary, &[])
        .args(["version", "-json"])
        .output()
        .map_err(|source| TerraformError::Io {
            what: "run",
            path: binary.to_path_buf(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let unexpected = |problem: String| TerraformError::UnexpectedOutput {
        command: command_name.clone(),
        problem,
        output: format!("{}{}", stdout, String::from_utf8_lossy(&output.stderr))
            .lines()
            .map(colour_free)
            .take(20)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if !output.status.success() {
        return Err(unexpected(format!(
            "{}; is it terraform or OpenTofu?",
            output.status
        )));
    }
    crate::binary::version_from_json(&stdout)
        .map_err(|problem| unexpected(format!("{problem}; is it terraform or OpenTofu?")))
}

/// A command for `binary` with stdin null and the environment every terraform process gets:
/// the caller's, minus the variables [`is_scrubbed`] names, plus `env`.
fn command(binary: &Path, env: &[(OsString, OsString)]) -> Command {
    // The names (never the values) of the inherited variables are listed here only to remove
    // the ones that would steer terraform: `Command` inherits the environment but can only
    // remove variables by exact name, and these are families (`TF_VAR_*`). Settings are still
    // read only by the CLI's settings module.
    command_over(binary, std::env::vars_os().map(|(name, _)| name), env)
}

/// [`command`] over the inherited variables' names given.
fn command_over(
    binary: &Path,
    inherited: impl Iterator<Item = OsString>,
    env: &[(OsString, OsString)],
) -> Command {
    let mut command = Command::new(binary);
    command.stdin(Stdio::null());
    for name in inherited.filter(|name| is_scrubbed(name)) {
        command.env_remove(name);
    }
    for (name, value) in environment::base() {
        command.env(name, value);
    }
    command.envs(env.iter().map(|(n, v)| (n, v)));
    command
}

/// Calls `each` with every line of `reader` (lossily decoded, colour-free), the last one too
/// when it has no newline. A read error ends the lines: the process is waited for next, and
/// its exit status says whether it succeeded.
fn each_line(reader: impl io::Read, mut each: impl FnMut(&str)) {
    let mut reader = BufReader::new(reader);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if buffer.last() == Some(&b'\n') {
                    buffer.pop();
                }
                each(&colour_free(&String::from_utf8_lossy(&buffer)));
            }
        }
    }
}

fn observe(line: &str, watch: &mut OutputWatch, log: Option<&mut LogFile>) {
    watch.observe(line);
    if let Some(log) = log {
        log.line(line);
    }
}

/// The run's log, appended to. A write that fails does not stop the reading (terraform would
/// block on a full pipe); the first failure is reported once the command has ended.
struct LogFile {
    path: PathBuf,
    file: io::BufWriter<File>,
    failed: Option<io::Error>,
}

impl LogFile {
    fn open(path: &Path) -> Result<LogFile, TerraformError> {
        let io_error = |source| TerraformError::Io {
            what: "open the log",
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_error)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error)?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file: io::BufWriter::new(file),
            failed: None,
        })
    }

    fn line(&mut self, line: &str) {
        if self.failed.is_none() {
            if let Err(e) = writeln!(self.file, "{line}") {
                self.failed = Some(e);
            }
        }
    }

    fn finish(&mut self) -> Result<(), TerraformError> {
        let result = match self.failed.take() {
            Some(e) => Err(e),
            None => self.file.flush(),
        };
        result.map_err(|source| TerraformError::Io {
            what: "append to the log",
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbed_inherited_variables_are_removed_and_the_run_sets_its_own() {
        let inherited = [
            "PATH",
            "HOME",
            "TF_VAR_sha",
            "TF_CLI_ARGS_apply",
            "TF_LOG",
            "TF_HTTP_PASSWORD",
        ]
        .map(OsString::from);
        let env = vec![(OsString::from("TF_VAR_sha"), OsString::from("from-the-run"))];
        let command = command_over(Path::new("terraform"), inherited.into_iter(), &env);
        let mut set: Vec<(String, Option<String>)> = command
            .get_envs()
            .map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        set.sort();
        let expected: Vec<(String, Option<String>)> = [
            ("CHECKPOINT_DISABLE", Some("1")),
            ("TF_CLI_ARGS_apply", None),
            ("TF_HTTP_PASSWORD", None),
            ("TF_INPUT", Some("0")),
            ("TF_IN_AUTOMATION", Some("1")),
            ("TF_LOG", None),
            ("TF_VAR_sha", Some("from-the-run")),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.map(str::to_owned)))
        .collect();
        // PATH and HOME are inherited untouched (not listed: `Command` passes them through).
        assert_eq!(set, expected);
    }

    #[test]
    fn the_command_name_is_the_program_and_its_subcommands() {
        let cases: &[(&[&str], &str)] = &[
            (&["apply", "-auto-approve"], "terraform apply"),
            (&["state", "list", "-no-color"], "terraform state list"),
            (&["show", "-json", "/tmp/plan"], "terraform show"),
            (&[], "terraform"),
        ];
        for (args, name) in cases {
            let invocation = Invocation {
                binary: Path::new("/usr/bin/terraform"),
                program: "terraform".to_owned(),
                dir: Path::new("/m"),
                args: args.iter().map(OsString::from).collect(),
                env: Vec::new(),
            };
            assert_eq!(invocation.command_name(), *name);
        }
    }
}
