//! The commands of a run in one module directory: `init`, `apply` (directly or of a saved plan),
//! `plan -out`, `destroy`, `output -json`, `state list` — each with the run's environment, its
//! log, and its failures classified.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend_override;
use crate::binary::Terraform;
use crate::environment::{self, Additions};
use crate::error::TerraformError;
use crate::failure::FailureKind;
use crate::outputs::{self, Output};
use crate::plan_summary::PlanSummary;
use crate::process::{self, Finished, Invocation, Stdout};

/// How long a command waits for the state's lock by default ([`Run::new`]).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// How a run is set up.
#[derive(Clone)]
pub struct Run {
    /// The module's directory (an extracted artifact). The runner writes into it: `.terraform/`,
    /// the lock file of providers, and [`crate::BACKEND_OVERRIDE_FILE`].
    pub dir: PathBuf,
    /// Where provider plugins are cached (`TF_PLUGIN_CACHE_DIR`); created when missing.
    pub plugin_cache_dir: PathBuf,
    /// Terraform's http backend; `None` = local state in `dir` (for `validate`, tests and
    /// benchmarks).
    pub backend: Option<HttpBackend>,
    /// Passed as `TF_VAR_<name>` (values only in the environment, never on a command line).
    pub vars: BTreeMap<String, String>,
    /// Every line terraform prints is appended to it (created, with its directory, when
    /// missing). JSON documents (`output -json`, `show -json`) are not: they hold values.
    pub log: PathBuf,
    /// `-lock-timeout`: how long a command waits for another's lock on the state.
    pub lock_timeout: Duration,
    /// `TF_CLI_CONFIG_FILE` to pass, if any.
    pub cli_config_file: Option<PathBuf>,
    /// Set last, over everything else.
    pub extra_env: Vec<(String, String)>,
}

impl Run {
    /// A run in `dir` with local state, no variables, the default lock timeout.
    pub fn new(
        dir: impl Into<PathBuf>,
        plugin_cache_dir: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Run {
        Run {
            dir: dir.into(),
            plugin_cache_dir: plugin_cache_dir.into(),
            backend: None,
            vars: BTreeMap::new(),
            log: log.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            cli_config_file: None,
            extra_env: Vec::new(),
        }
    }
}

/// Variable values may be secrets: `Debug` shows their names only.
impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("dir", &self.dir)
            .field("plugin_cache_dir", &self.plugin_cache_dir)
            .field("backend", &self.backend)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("log", &self.log)
            .field("lock_timeout", &self.lock_timeout)
            .field("cli_config_file", &self.cli_config_file)
            .field(
                "extra_env",
                &self.extra_env.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Terraform's http backend settings, passed only as environment variables
/// (`TF_HTTP_ADDRESS`, `TF_HTTP_LOCK_ADDRESS`, `TF_HTTP_UNLOCK_ADDRESS` — all `address` —,
/// `TF_HTTP_USERNAME`, `TF_HTTP_PASSWORD`).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpBackend {
    pub address: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBackend")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// `terraform init -input=false`: with the http backend (`-reconfigure`: the state lives in
/// sandpit, so nothing is ever migrated from an earlier backend of the directory), or with
/// `-backend=false` for local state.
pub fn init(terraform: &Terraform, run: &Run) -> Result<(), TerraformError> {
    let mut args = vec!["init", "-input=false", "-no-color"];
    let lock_timeout = lock_timeout_arg(run.lock_timeout);
    match run.backend {
        Some(_) => args.extend(["-reconfigure", lock_timeout.as_str()]),
        None => args.push("-backend=false"),
    }
    logged(terraform, run, os_args(&args))
}

/// `terraform apply -auto-approve -input=false -lock-timeout=…`.
pub fn apply(terraform: &Terraform, run: &Run) -> Result<(), TerraformError> {
    let lock_timeout = lock_timeout_arg(run.lock_timeout);
    let args = [
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        &lock_timeout,
    ];
    logged(terraform, run, os_args(&args))
}

/// `terraform plan -out=PLAN`, then `terraform show -json PLAN`: what applying it would do.
/// A relative `plan` is relative to the module directory (terraform's working directory); keep
/// plans elsewhere, absolute. The plan file holds the variables' values: keep it as private as
/// they are. [`apply_plan`] applies it later (after an [`init`] of the same module).
pub fn plan_to_file(
    terraform: &Terraform,
    run: &Run,
    plan: &Path,
) -> Result<PlanSummary, TerraformError> {
    let lock_timeout = lock_timeout_arg(run.lock_timeout);
    let mut out = OsString::from("-out=");
    out.push(plan);
    let mut args = os_args(&["plan", "-input=false", "-no-color", &lock_timeout]);
    args.push(out);
    logged(terraform, run, args)?;
    let mut args = os_args(&["show", "-json", "-no-color"]);
    args.push(plan.as_os_str().to_owned());
    let (finished, invocation_name) = captured(terraform, run, args)?;
    let document = String::from_utf8_lossy(&finished.stdout);
    PlanSummary::from_show_json(&document).map_err(|problem| TerraformError::UnexpectedOutput {
        command: invocation_name,
        problem,
        // The document holds the plan's values: only its length is told.
        output: format!("({} bytes of output, not shown)", finished.stdout.len()),
    })
}

/// `terraform apply PLAN`: exactly the saved plan. A plan made before the state last changed
/// is refused by terraform: [`TerraformError::StalePlan`].
pub fn apply_plan(terraform: &Terraform, run: &Run, plan: &Path) -> Result<(), TerraformError> {
    let lock_timeout = lock_timeout_arg(run.lock_timeout);
    let mut args = os_args(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        &lock_timeout,
    ]);
    args.push(plan.as_os_str().to_owned());
    match logged(terraform, run, args) {
        Err(TerraformError::StalePlan {
            command, tail, log, ..
        }) => Err(TerraformError::StalePlan {
            command,
            plan: plan.to_path_buf(),
            tail,
            log,
        }),
        other => other,
    }
}

/// `terraform destroy -auto-approve -input=false -lock-timeout=…`.
pub fn destroy(terraform: &Terraform, run: &Run) -> Result<(), TerraformError> {
    let lock_timeout = lock_timeout_arg(run.lock_timeout);
    let args = [
        "destroy",
        "-auto-approve",
        "-input=false",
        "-no-color",
        &lock_timeout,
    ];
    logged(terraform, run, os_args(&args))
}

/// `terraform output -json`: every root output, sensitive ones flagged (and hidden from `Debug`).
/// Before any apply: none.
pub fn outputs(
    terraform: &Terraform,
    run: &Run,
) -> Result<BTreeMap<String, Output>, TerraformError> {
    let (finished, command) = captured(terraform, run, os_args(&["output", "-json", "-no-color"]))?;
    let document = String::from_utf8_lossy(&finished.stdout);
    outputs::from_output_json(&document).map_err(|problem| TerraformError::UnexpectedOutput {
        command,
        problem,
        output: format!(
            "({} bytes of output, not shown: it holds the values)",
            finished.stdout.len()
        ),
    })
}

/// `terraform state list`: the address of every object in the state (what exists, e.g. after
/// an apply that failed half-way). Before any apply: none.
pub fn state_list(terraform: &Terraform, run: &Run) -> Result<Vec<String>, TerraformError> {
    let args = os_args(&["state", "list", "-no-color"]);
    let invocation = invocation(terraform, run, args)?;
    let finished = process::run(&invocation, Stdout::Captured, Some(&run.log))?;
    if !finished.status.success() && finished.watch.failure == Some(FailureKind::NoState) {
        return Ok(Vec::new());
    }
    check(&invocation, run, &finished)?;
    Ok(String::from_utf8_lossy(&finished.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// `-lock-timeout=…` in milliseconds (terraform reads Go durations).
fn lock_timeout_arg(timeout: Duration) -> String {
    format!("-lock-timeout={}ms", timeout.as_millis())
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The invocation of `args` for `run`, after making the directory match the run: the plugin
/// cache exists and the backend override is present exactly when the run has a backend
/// (every command, not only `init`: each reads the configuration, and a directory used with
/// both kinds of run must never keep a stale one).
fn invocation<'a>(
    terraform: &'a Terraform,
    run: &'a Run,
    args: Vec<OsString>,
) -> Result<Invocation<'a>, TerraformError> {
    let env = environment::additions(Additions {
        plugin_cache_dir: &run.plugin_cache_dir,
        cli_config_file: run.cli_config_file.as_deref(),
        vars: &run.vars,
        backend: run.backend.as_ref(),
        extra_env: &run.extra_env,
    })?;
    fs::create_dir_all(&run.plugin_cache_dir).map_err(|source| TerraformError::Io {
        what: "create the plugin cache",
        path: run.plugin_cache_dir.clone(),
        source,
    })?;
    backend_override::apply_to(&run.dir, run.backend.is_some())?;
    Ok(Invocation {
        binary: terraform.binary(),
        program: terraform.program_name(),
        dir: &run.dir,
        args,
        env,
    })
}

/// Runs a command whose whole output goes to the log; `Ok` when it succeeded.
fn logged(terraform: &Terraform, run: &Run, args: Vec<OsString>) -> Result<(), TerraformError> {
    let invocation = invocation(terraform, run, args)?;
    let finished = process::run(&invocation, Stdout::Logged, Some(&run.log))?;
    check(&invocation, run, &finished)
}

/// Runs a command whose stdout is a document (not logged); its stderr goes to the log.
fn captured(
    terraform: &Terraform,
    run: &Run,
    args: Vec<OsString>,
) -> Result<(Finished, String), TerraformError> {
    let invocation = invocation(terraform, run, args)?;
    let finished = process::run(&invocation, Stdout::Captured, Some(&run.log))?;
    check(&invocation, run, &finished)?;
    Ok((finished, invocation.command_name()))
}

/// The error a finished command's output and status make, if any.
fn check(
    invocation: &Invocation<'_>,
    run: &Run,
    finished: &Finished,
) -> Result<(), TerraformError> {
    if finished.status.success() {
        return Ok(());
    }
    let command = invocation.command_name();
    let tail = finished.watch.tail();
    let log = run.log.clone();
    Err(match finished.watch.failure {
        Some(FailureKind::StalePlan) => TerraformError::StalePlan {
            command,
            // Which plan is known to `apply_plan`, which fills it in.
            plan: PathBuf::new(),
            tail,
            log,
        },
        Some(FailureKind::Locked) => TerraformError::Locked { command, tail, log },
        Some(FailureKind::NoState) | None => TerraformError::Failed {
            command,
            code: finished.status.code(),
            dir: run.dir.clone(),
            tail,
            log,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeouts_are_go_durations_in_milliseconds() {
        let cases = [
            (Duration::ZERO, "-lock-timeout=0ms"),
            (Duration::from_millis(1500), "-lock-timeout=1500ms"),
            (Duration::from_secs(60), "-lock-timeout=60000ms"),
            (Duration::from_micros(999), "-lock-timeout=0ms"),
        ];
        for (timeout, arg) in cases {
            assert_eq!(lock_timeout_arg(timeout), arg);
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let mut run = Run::new("/m", "/cache", "/log");
        run.vars.insert("token".into(), "s3cr3t-var".into());
        run.extra_env.push(("API_KEY".into(), "s3cr3t-env".into()));
        run.backend = Some(HttpBackend {
            address: "http://127.0.0.1:9/state".into(),
            username: "sandpit".into(),
            password: "s3cr3t-password".into(),
        });
        let shown = format!("{run:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        for name in ["token", "API_KEY", "127.0.0.1:9", "sandpit"] {
            assert!(shown.contains(name), "{name} in {shown}");
        }
    }
}
