//! Build execution: check the version out once, run each component's build command in a scrubbed
//! environment, package the output deterministically and store it with its provenance; reuse the
//! bytes of components whose inputs did not change.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::SystemTime;

use sandpit_artifact::{
    package_dir, ArtifactStore, PackageError, Provenance, StoreError, StoredArtifact,
};
use sandpit_domain::{ArtifactName, ComponentKind, Name, Version};
use sandpit_spec::model::{Component, Spec};

use crate::git::{GitError, Repository};
use crate::plan::{plan, ComponentInput, PlannedStep};

/// How many lines of a failed build's output are shown in the error.
const TAIL_LINES: usize = 20;

/// Everything one build needs; settings (the environment builds see included) are handed in.
#[derive(Debug)]
pub struct BuildRequest<'a> {
    pub repo: &'a Repository,
    /// What the artifacts are named for.
    pub version: Version,
    /// What is checked out: the commit id, or the snapshot tree id for a dirty version.
    pub treeish: String,
    pub spec: &'a Spec,
    pub store: &'a ArtifactStore,
    /// Build logs are written here as `<component>-<version>.log`.
    pub log_dir: PathBuf,
    pub sandpit_version: &'a str,
    /// The only variables from the caller's environment a build sees (PATH, HOME, LANG…).
    pub base_env: Vec<(String, String)>,
    /// Where the project sits inside the repository (see [`Repository::prefix`]).
    pub project_prefix: String,
    /// Validates and describes model components; `None` fails the build of any model.
    pub models: Option<&'a dyn ModelInspector>,
    /// Validates terraform components' root modules; `None` fails the build of any of them.
    pub terraform: Option<&'a dyn ModuleValidator>,
}

/// Checks a terraform component's root module when it is built (`terraform init
/// -backend=false` and `validate`), so an invalid module fails the build, located, and never
/// reaches an environment. Handed in so that building does not depend on Terraform.
pub trait ModuleValidator: std::fmt::Debug {
    /// Whether the binary can be used at all; what is missing otherwise (asked first, so a
    /// missing binary is not blamed on a module).
    fn binary_ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// Validates the module in `module_dir` without writing into it. Problems are reported as
    /// lines `<shown_as>/<file>:<line>:<column>: …`, `shown_as` being where the module is in
    /// the project.
    fn validate(&self, module_dir: &Path, shown_as: &str) -> Result<(), String>;
}

/// Checks a model file when it is built and describes it (its inputs and outputs) for the
/// artifact's `model.json`. The model engine implements it; it is handed in so that building
/// does not depend on an inference runtime.
pub trait ModelInspector: std::fmt::Debug {
    /// Whether the engine can be used at all (found and loaded); what is missing otherwise.
    /// Asked before the first model is checked, so a missing engine is not blamed on a model.
    fn engine_ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// The `model.json` text, or what is wrong with the model (e.g. the unsupported operator).
    fn inspect(&self, onnx: &[u8]) -> Result<String, String>;
}

/// The name of the metadata file written next to a model in its artifact.
pub const MODEL_METADATA_FILE: &str = "model.json";

/// Hears about a build as it happens (progress bars, server logs).
pub trait BuildProgress {
    /// A build command is about to run; its output goes to `log`.
    fn started(&mut self, component: &Name, log: &Path);
    /// One line of a build command's output (stdout and stderr interleaved).
    fn output_line(&mut self, component: &Name, line: &str);
    /// A component is done, built or reused.
    fn finished(&mut self, component: &Name, outcome: &ComponentOutcome);
}

/// A [`BuildProgress`] that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;

impl BuildProgress for NoProgress {
    fn started(&mut self, _: &Name, _: &Path) {}
    fn output_line(&mut self, _: &Name, _: &str) {}
    fn finished(&mut self, _: &Name, _: &ComponentOutcome) {}
}

/// Whether a component's artifact was built now or its bytes reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Built,
    Reused,
}

/// What [`BuildProgress::finished`] is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentOutcome {
    pub outcome: Outcome,
    pub artifact: StoredArtifact,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    pub version: Version,
    /// In build order (dependencies first).
    pub components: Vec<ComponentReport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentReport {
    pub name: Name,
    pub kind: ComponentKind,
    pub outcome: Outcome,
    pub artifact: StoredArtifact,
    /// The build log, when a build command ran.
    pub log: Option<PathBuf>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("component `{component}`: its path `{path}` does not exist at {treeish}; commit it or fix `path` in sandpit.toml")]
    ComponentPathMissing {
        component: Name,
        path: String,
        treeish: String,
    },
    #[error("could not create the build directory `{path}`: {source}")]
    Workspace { path: PathBuf, source: io::Error },
    #[error("could not write the build log `{path}`: {source}")]
    Log { path: PathBuf, source: io::Error },
    #[error("could not start the build of `{component}` (`sh -c {command}`): {source}")]
    SpawnFailed {
        component: Name,
        command: String,
        source: io::Error,
    },
    #[error(
        "the build of `{component}` failed ({status}); full log in `{}`{}",
        log_path.display(),
        format_tail(tail)
    )]
    CommandFailed {
        component: Name,
        status: String,
        log_path: PathBuf,
        tail: Vec<String>,
    },
    #[error(
        "component `{component}`: the build finished but its output directory `{output}` does not exist \
         (looked for `{}`); make the build write there or fix `output` in sandpit.toml",
        path.display()
    )]
    OutputMissing {
        component: Name,
        output: String,
        path: PathBuf,
    },
    #[error("component `{component}`: the output directory `{output}` leads outside the checkout; make it a real directory")]
    OutputEscapes { component: Name, output: String },
    #[error("model `{component}`: `{file}` is not in its build output (looked for `{}`); fix `file` in sandpit.toml or make the build write it", path.display())]
    ModelFileMissing {
        component: Name,
        file: String,
        path: PathBuf,
    },
    #[error("model `{component}`: `{file}` cannot be served: {detail}")]
    ModelRejected {
        component: Name,
        file: String,
        detail: String,
    },
    #[error("model `{component}` cannot be checked: {detail}")]
    ModelEngineMissing { component: Name, detail: String },
    #[error("terraform component `{component}`: its module is invalid:\n{detail}")]
    ModuleInvalid { component: Name, detail: String },
    #[error("terraform component `{component}` cannot be checked: {detail}")]
    TerraformMissing { component: Name, detail: String },
    #[error("component `{component}`: could not package its output: {source}")]
    Package {
        component: Name,
        source: PackageError,
    },
}

fn format_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last lines:\n{}", tail.join("\n"))
    }
}

/// Builds every component of `request.spec` at `request.version`: components whose inputs are
/// unchanged reuse stored bytes under the new name; the rest are checked out (once), built,
/// packaged and stored. The temporary checkout is removed in every case.
pub fn build(
    request: BuildRequest<'_>,
    progress: &mut dyn BuildProgress,
) -> Result<BuildReport, BuildError> {
    let components = request.spec.start_order();

    // Look everything up first so planning itself stays pure.
    let mut inputs = Vec::new();
    let mut already_named: BTreeMap<Name, StoredArtifact> = BTreeMap::new();
    let mut by_input: BTreeMap<(Name, String), StoredArtifact> = BTreeMap::new();
    // Every tree the components read, looked up with one git process.
    let tree_paths: Vec<String> = components
        .iter()
        .flat_map(|component| {
            std::iter::once(&component.path)
                .chain(&component.inputs)
                .map(|path| join_paths(&request.project_prefix, path))
        })
        .collect();
    let mut trees = request
        .repo
        .tree_ids(&request.treeish, &tree_paths)?
        .into_iter()
        .zip(tree_paths);
    for component in &components {
        let mut next_tree = || {
            let (tree, path) = trees.next().expect("one tree per path asked");
            tree.ok_or_else(|| BuildError::ComponentPathMissing {
                component: component.name.clone(),
                path,
                treeish: request.treeish.clone(),
            })
        };
        let input_tree = next_tree()?;
        let mut extra_trees = Vec::new();
        for input in &component.inputs {
            extra_trees.push((input.clone(), next_tree()?));
        }
        let name = ArtifactName::new(component.name.clone(), request.version.clone());
        if let Some(existing) = intact(request.store.get(&name))? {
            already_named.insert(component.name.clone(), existing);
        } else {
            let key = crate::plan::input_key(component, &input_tree, &extra_trees);
            if let Some(existing) = intact(request.store.find_by_input(&component.name, &key))? {
                by_input.insert((component.name.clone(), key), existing);
            }
        }
        inputs.push(ComponentInput {
            component,
            input_tree,
            extra_trees,
        });
    }
    let lookup = |name: &Name, key: &str| {
        already_named
            .get(name)
            .cloned()
            .or_else(|| by_input.get(&(name.clone(), key.to_owned())).cloned())
    };
    let steps = plan(&inputs, &lookup);

    let workspace = if steps.iter().any(PlannedStep::is_build) {
        let workspace = Workspace(
            tempfile::Builder::new()
                .prefix("sandpit-build-")
                .tempdir()
                .map_err(|source| BuildError::Workspace {
                    path: std::env::temp_dir(),
                    source,
                })?,
        );
        request
            .repo
            .extract(&request.treeish, &workspace.path().join("src"))?;
        Some(workspace)
    } else {
        None
    };

    // Asked only when something is built (one git process fewer for an `up` that reuses all).
    let builder = if steps.iter().any(PlannedStep::is_build) {
        request.repo.user_email().ok().flatten()
    } else {
        None
    };
    let mut reports = Vec::new();
    for (step, input) in steps.iter().zip(&inputs) {
        let component = input.component;
        let name = ArtifactName::new(component.name.clone(), request.version.clone());
        let (outcome, artifact, log) = match step {
            PlannedStep::Reuse {
                existing,
                input_key,
                input_tree,
                ..
            } => {
                let artifact = if existing.name == name {
                    existing.as_ref().clone()
                } else {
                    let mut provenance = existing.provenance.clone();
                    provenance.reused_from = Some(
                        existing
                            .provenance
                            .reused_from
                            .clone()
                            .unwrap_or_else(|| existing.name.file_name()),
                    );
                    provenance.version = request.version.clone();
                    provenance.commit = request.version.commit().clone();
                    provenance.input_tree = input_tree.clone();
                    provenance.input_key = input_key.clone();
                    request.store.alias(&name, existing, provenance)?
                };
                (Outcome::Reused, artifact, None)
            }
            PlannedStep::Build {
                input_key,
                input_tree,
                ..
            } => {
                let workspace = workspace
                    .as_ref()
                    .expect("a checkout exists whenever something is built");
                let built = build_one(
                    &request,
                    progress,
                    workspace.path(),
                    component,
                    &name,
                    input_tree,
                    input_key,
                    builder.clone(),
                )?;
                (Outcome::Built, built.0, built.1)
            }
        };
        progress.finished(
            &component.name,
            &ComponentOutcome {
                outcome,
                artifact: artifact.clone(),
            },
        );
        reports.push(ComponentReport {
            name: component.name.clone(),
            kind: component.kind,
            outcome,
            artifact,
            log,
        });
    }
    drop(workspace);
    Ok(BuildReport {
        version: request.version.clone(),
        components: reports,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_one(
    request: &BuildRequest<'_>,
    progress: &mut dyn BuildProgress,
    workspace: &Path,
    component: &Component,
    name: &ArtifactName,
    input_tree: &str,
    input_key: &str,
    builder: Option<String>,
) -> Result<(StoredArtifact, Option<PathBuf>), BuildError> {
    let checkout = workspace.join("src");
    let component_dir = checkout.join(join_paths(&request.project_prefix, &component.path));
    let started_at = now();

    let log = match &component.build {
        Some(command) => {
            let log_path = request
                .log_dir
                .join(format!("{}-{}.log", component.name, request.version));
            progress.started(&component.name, &log_path);
            run_build_command(
                request,
                progress,
                component,
                command,
                &component_dir,
                &log_path,
            )?;
            Some(log_path)
        }
        None => None,
    };

    let output_dir = if component.output == "." {
        component_dir.clone()
    } else {
        component_dir.join(&component.output)
    };
    if !output_dir.is_dir() {
        return Err(BuildError::OutputMissing {
            component: component.name.clone(),
            output: component.output.clone(),
            path: output_dir,
        });
    }
    let escapes = match (output_dir.canonicalize(), checkout.canonicalize()) {
        (Ok(output), Ok(root)) => !output.starts_with(root),
        _ => true,
    };
    if escapes {
        return Err(BuildError::OutputEscapes {
            component: component.name.clone(),
            output: component.output.clone(),
        });
    }

    if component.kind == ComponentKind::Model {
        describe_model(request, component, &output_dir)?;
    }
    if component.kind == ComponentKind::Terraform {
        validate_module(request, component, &output_dir)?;
    }

    let artifacts_dir = workspace.join("artifacts");
    fs::create_dir_all(&artifacts_dir).map_err(|source| BuildError::Workspace {
        path: artifacts_dir.clone(),
        source,
    })?;
    let zip_path = artifacts_dir.join(name.file_name());
    let summary = package_dir(
        &output_dir,
        &zip_path,
        request.spec.project.max_artifact_size,
    )
    .map_err(|source| BuildError::Package {
        component: component.name.clone(),
        source,
    })?;
    let provenance = Provenance {
        component: component.name.clone(),
        kind: component.kind,
        version: request.version.clone(),
        commit: request.version.commit().clone(),
        input_tree: input_tree.to_owned(),
        input_key: input_key.to_owned(),
        build_command: component.build.clone(),
        builder,
        sandpit_version: request.sandpit_version.to_owned(),
        started_at,
        finished_at: now(),
        digest: summary.digest.clone(),
        size: summary.zip_bytes,
        reused_from: None,
    };
    let stored = request.store.put(name, &zip_path, provenance)?;
    let _ = fs::remove_file(&zip_path);
    Ok((stored, log))
}

/// Loads the model with the engine (so a model it cannot serve fails the build, not the first
/// request) and writes its description next to it.
fn describe_model(
    request: &BuildRequest<'_>,
    component: &Component,
    output_dir: &Path,
) -> Result<(), BuildError> {
    let file = component.file.clone().unwrap_or_default();
    let path = output_dir.join(&file);
    let bytes = fs::read(&path).map_err(|_| BuildError::ModelFileMissing {
        component: component.name.clone(),
        file: file.clone(),
        path: path.clone(),
    })?;
    let inspector = request
        .models
        .ok_or_else(|| BuildError::ModelEngineMissing {
            component: component.name.clone(),
            detail: "no model engine is available in this build".to_owned(),
        })?;
    inspector
        .engine_ready()
        .map_err(|detail| BuildError::ModelEngineMissing {
            component: component.name.clone(),
            detail,
        })?;
    let description = inspector
        .inspect(&bytes)
        .map_err(|detail| BuildError::ModelRejected {
            component: component.name.clone(),
            file: file.clone(),
            detail,
        })?;
    let metadata_path = output_dir.join(MODEL_METADATA_FILE);
    fs::write(&metadata_path, description).map_err(|source| BuildError::Workspace {
        path: metadata_path,
        source,
    })
}

/// Validates a terraform component's module (its artifact's bytes are the directory as
/// committed; the validator works on a copy).
fn validate_module(
    request: &BuildRequest<'_>,
    component: &Component,
    module_dir: &Path,
) -> Result<(), BuildError> {
    let validator = request
        .terraform
        .ok_or_else(|| BuildError::TerraformMissing {
            component: component.name.clone(),
            detail: "Terraform is not available in this build".to_owned(),
        })?;
    validator
        .binary_ready()
        .map_err(|detail| BuildError::TerraformMissing {
            component: component.name.clone(),
            detail,
        })?;
    validator
        .validate(module_dir, &component.path)
        .map_err(|detail| BuildError::ModuleInvalid {
            component: component.name.clone(),
            detail,
        })
}

/// Runs `sh -c <command>` in `dir` with only the base environment, the SANDPIT_* variables and
/// the component's own `env`; streams its output to the log and to `progress`.
fn run_build_command(
    request: &BuildRequest<'_>,
    progress: &mut dyn BuildProgress,
    component: &Component,
    command: &str,
    dir: &Path,
    log_path: &Path,
) -> Result<(), BuildError> {
    let log_error = |source| BuildError::Log {
        path: log_path.to_owned(),
        source,
    };
    fs::create_dir_all(&request.log_dir).map_err(log_error)?;
    let mut log = File::create(log_path).map_err(log_error)?;

    let commit = request.version.commit();
    let source_date_epoch = request.repo.commit_time(commit)?;
    let spawn_error = |source| BuildError::SpawnFailed {
        component: component.name.clone(),
        command: command.to_owned(),
        source,
    };
    let mut child = Command::new("sh")
        .arg("-c")
        // One stream keeps stdout and stderr in the order they were written (two pipes read on
        // two threads would interleave them arbitrarily); the stderr pipe only catches what the
        // shell says before this line runs.
        .arg(format!("exec 2>&1\n{command}"))
        .current_dir(dir)
        .env_clear()
        .envs(request.base_env.iter().map(|(k, v)| (k, v)))
        .env("SANDPIT_COMPONENT", component.name.as_str())
        .env("SANDPIT_SHA", commit.as_str())
        .env("SANDPIT_VERSION", request.version.to_string())
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
        .envs(component.env.iter())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;

    // Both pipes are drained on their own threads (a full stderr pipe must never block stdout);
    // lines meet here so the log and `progress` see one interleaved stream.
    let (sender, receiver) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buffer = Vec::new();
            while let Ok(read) = reader.read_until(b'\n', &mut buffer) {
                if read == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&buffer)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                if sender.send(line).is_err() {
                    break;
                }
                buffer.clear();
            }
        })
    })
    .collect();
    drop(sender);

    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let mut write_result = Ok(());
    for line in receiver {
        if write_result.is_ok() {
            write_result = writeln!(log, "{line}");
        }
        progress.output_line(&component.name, &line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait().map_err(spawn_error)?;
    write_result.and_then(|()| log.flush()).map_err(log_error)?;
    if !status.success() {
        return Err(BuildError::CommandFailed {
            component: component.name.clone(),
            status: status.to_string(),
            log_path: log_path.to_owned(),
            tail: tail.into_iter().collect(),
        });
    }
    Ok(())
}

/// The temporary checkout. Removed when dropped — on success and on every error path — even
/// when a build left read-only directories behind (Go's module cache does).
struct Workspace(tempfile::TempDir);

impl Workspace {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        fn make_writable(dir: &Path) {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
            if let Ok(listing) = fs::read_dir(dir) {
                for item in listing.flatten() {
                    if item.file_type().is_ok_and(|kind| kind.is_dir()) {
                        make_writable(&item.path());
                    }
                }
            }
        }
        make_writable(self.0.path());
        // The TempDir field is dropped next and removes the tree.
    }
}

/// `prefix/path` with `.` and empty parts dropped, `/`-separated; `""` for the repository root.
fn join_paths(prefix: &str, path: &str) -> String {
    prefix
        .split('/')
        .chain(path.split('/'))
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A stored artifact whose bytes were modified or lost is rebuilt (and its blob stored again),
/// never reused and never a reason for the build to fail.
fn intact(
    found: Result<Option<StoredArtifact>, StoreError>,
) -> Result<Option<StoredArtifact>, StoreError> {
    match found {
        Err(StoreError::DigestMismatch { .. } | StoreError::BlobMissing { .. }) => Ok(None),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::join_paths;

    #[test]
    fn joins_prefix_and_component_path() {
        let cases = [
            ("", ".", ""),
            ("", "api", "api"),
            ("proj", ".", "proj"),
            ("proj", "svc/api", "proj/svc/api"),
            ("a/b", "c", "a/b/c"),
        ];
        for (prefix, path, expected) in cases {
            assert_eq!(join_paths(prefix, path), expected, "{prefix:?} + {path:?}");
        }
    }
}
