//! The environment's shared model endpoint: started by the daemon (one `sandpit model-server`
//! per environment, supervised like the database), told which models each biome has, and
//! reached by services through `SANDPIT_MODELS_URL`.
//!
//! What each target registered is saved as `projects/<p>/models/<env>/registrations/<label>.json`
//! (`_base` or the biome's name): the endpoint restores it after a restart, and
//! [`served_models`] reads it for `sandpit trace`. A biome is answered by the endpoint only while
//! it is registered, so a biome whose branch declares no models still registers (with none of
//! its own, falling back to the base's) when the environment's endpoint serves anything.
//!
//! The endpoint's state directory (`projects/<p>/models/<env>/`) is private (0700): it holds the
//! registration token (`token`, 0600) that registering and unregistering send as
//! `Authorization: Bearer`, the saved registrations and the endpoint's log. The endpoint is given
//! the token file's path, never the token, and the two artifact stores it may open: the
//! environment's own and the project's build store (biomes run from it).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use sandpit_domain::Name;
use sandpit_models::credential::{self, Token};
use sandpit_runtime::process::Program;
use sandpit_runtime::protocol::{InstanceKey, InstanceSpec};
use sandpit_spec::Spec;
use serde::{Deserialize, Serialize};

use crate::daemon_connection;
use crate::Context;

/// The registration name of an environment's base (biome names never start with `_`).
pub const BASE: &str = "_base";

/// A running endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub port: u16,
    /// What registering with it takes (sent as `Authorization: Bearer`).
    pub token: Token,
}

impl Endpoint {
    /// What a biome's services get as `SANDPIT_MODELS_URL`: under it, plain model names resolve
    /// to the biome's versions (falling back to the base's). The base uses the root.
    pub fn url_for(&self, biome: Option<&Name>) -> String {
        url_for_port(self.port, biome)
    }
}

/// One model a biome (or base) registers with the endpoint; also the saved file's entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub name: String,
    pub artifact: String,
    pub digest: String,
    /// The artifact file (the endpoint verifies its digest before loading).
    pub path: PathBuf,
    /// The ONNX file inside the artifact.
    pub file: String,
}

fn state_dir(context: &Context, project: &Name, env: &Name) -> PathBuf {
    context
        .home
        .join("projects")
        .join(project.as_str())
        .join("models")
        .join(env.as_str())
}

/// What `biome`'s services get as `SANDPIT_MODELS_URL` (the base's for `None`), by the port the
/// environment's endpoint was given; `None` when the environment never had an endpoint.
pub fn models_url(
    context: &Context,
    project: &Name,
    env: &Name,
    biome: Option<&Name>,
) -> Option<String> {
    let port: u16 = fs::read_to_string(state_dir(context, project, env).join("port"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(url_for_port(port, biome))
}

fn url_for_port(port: u16, biome: Option<&Name>) -> String {
    match biome {
        Some(biome) => format!("http://127.0.0.1:{port}/biomes/{biome}"),
        None => format!("http://127.0.0.1:{port}"),
    }
}

/// Whether a biome (or [`BASE`]) still has a saved registration with the environment's endpoint.
pub fn is_registered(context: &Context, project: &Name, env: &Name, label: &str) -> bool {
    registrations_dir(context, project, env)
        .join(format!("{label}.json"))
        .exists()
}

fn registrations_dir(context: &Context, project: &Name, env: &Name) -> PathBuf {
    state_dir(context, project, env).join("registrations")
}

/// The registration token's file, in the endpoint's private state directory.
fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("token")
}

/// Creates the endpoint's state directory, or makes an existing one private again (0700): the
/// token, the registrations and the log are nobody else's business.
fn private_state_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (mode 0700)", dir.display()))
}

/// The saved file's shape: `{"models": [...]}`, the body of the registration API.
#[derive(Debug, Serialize, Deserialize)]
struct SavedFile {
    models: Vec<Registration>,
}

/// One saved registration file: whose it is and what it registers.
#[derive(Debug)]
pub struct SavedRegistration {
    /// [`BASE`] or the biome's name, from the file name.
    pub label: String,
    /// The file.
    pub path: PathBuf,
    /// The models it registers (possibly none), or why the file cannot be used.
    pub models: Result<Vec<Registration>, String>,
}

impl SavedRegistration {
    /// The biome it registers; `None` for the base.
    pub fn biome(&self) -> Option<&str> {
        (self.label != BASE).then_some(self.label.as_str())
    }
}

/// The saved registrations in `dir` (`<label>.json`), sorted by label; none when `dir` does not
/// exist. A file that cannot be read or parsed, or whose name is neither [`BASE`] nor a biome
/// name, is returned with the reason rather than failing the others.
pub fn read_saved(dir: &Path) -> anyhow::Result<Vec<SavedRegistration>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot list the saved model registrations in {}",
                    dir.display()
                )
            })
        }
    };
    let mut saved = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| {
            format!(
                "cannot list the saved model registrations in {}",
                dir.display()
            )
        })?;
        let path = entry.path();
        // Only `<label>.json`: files being written are `.<label>.json.tmp`.
        let Some(label) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|label| !label.starts_with('.'))
            .map(str::to_owned)
        else {
            continue;
        };
        let models = if label != BASE && Name::parse(&label).is_err() {
            Err(format!(
                "`{label}` is neither `{BASE}` nor a biome name, so the file names no registration"
            ))
        } else {
            fs::read(&path)
                .map_err(|e| format!("cannot read it: {e}"))
                .and_then(|bytes| {
                    serde_json::from_slice::<SavedFile>(&bytes)
                        .map(|file| file.models)
                        .map_err(|e| format!("it is not a saved registration: {e}"))
                })
        };
        saved.push(SavedRegistration {
            label,
            path,
            models,
        });
    }
    saved.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(saved)
}

/// Writes `<label>.json` in `dir` atomically, so the endpoint never restores half a file.
fn save(dir: &Path, label: &str, models: &[Registration]) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{label}.json"));
    let partial = dir.join(format!(".{label}.json.tmp"));
    let body = serde_json::to_vec_pretty(&SavedFile {
        models: models.to_vec(),
    })?;
    fs::write(&partial, body).with_context(|| format!("cannot write {}", partial.display()))?;
    fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// One model an environment's endpoint serves, according to the saved registrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedModel {
    pub env: Name,
    /// `None` for the environment's base.
    pub biome: Option<Name>,
    /// The model's name (the component's).
    pub model: String,
    /// The artifact file name, `<component>-<version>.zip`.
    pub artifact: String,
    /// Its sha256 digest, `sha256:<hex>`.
    pub digest: String,
}

/// What every environment's endpoint of `project` serves, by the saved registrations: sorted by
/// environment, then the base before biomes, then model. A biome registered with no models of
/// its own (it falls back to the base's) has no entries. Nothing when no endpoint was ever set
/// up; an unreadable saved registration is an error naming the file.
pub fn served_models(context: &Context, project: &Name) -> anyhow::Result<Vec<ServedModel>> {
    let root = context
        .home
        .join("projects")
        .join(project.as_str())
        .join("models");
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", root.display())),
    };
    let mut envs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", root.display()))?;
        // Only environment directories live here; anything else is not sandpit's.
        if let Some(env) = entry.file_name().to_str().and_then(|n| Name::parse(n).ok()) {
            if entry.path().is_dir() {
                envs.push(env);
            }
        }
    }
    envs.sort();
    let mut served = Vec::new();
    for env in envs {
        for saved in read_saved(&registrations_dir(context, project, &env))? {
            let models = saved.models.as_ref().map_err(|reason| {
                anyhow::anyhow!(
                    "cannot use the saved model registration {}: {reason}\nhint: bring that target up again (`sandpit up <biome>`, or `sandpit deploy {env}` for the base) to rewrite it, or remove the file if the target is gone",
                    saved.path.display()
                )
            })?;
            let biome = saved
                .biome()
                .map(Name::parse)
                .transpose()
                .expect("read_saved accepts only `_base` and biome names");
            for model in models {
                served.push(ServedModel {
                    env: env.clone(),
                    biome: biome.clone(),
                    model: model.name.clone(),
                    artifact: model.artifact.clone(),
                    digest: model.digest.clone(),
                });
            }
        }
    }
    served.sort_by(|a, b| (&a.env, &a.biome, &a.model).cmp(&(&b.env, &b.biome, &b.model)));
    Ok(served)
}

/// How long a read of the endpoint's usage may take: it answers from memory, so anything
/// slower is an endpoint in trouble, and `ls` must not wait for it.
const USAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The memory each registration ([`BASE`] or a biome's name) of the environment's endpoint is
/// charged for its loaded models (`GET /sandpit/usage`); `None` when the endpoint cannot say —
/// it never had a port, or does not answer in time. Never starts the endpoint: the caller asks
/// only when the daemon reports it running.
pub(crate) async fn usage_of_running_endpoint(
    context: &Context,
    project: &Name,
    env: &Name,
) -> Option<std::collections::BTreeMap<String, u64>> {
    let port: u16 = fs::read_to_string(state_dir(context, project, env).join("port"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let response = client()
        .get(format!("http://127.0.0.1:{port}/sandpit/usage"))
        .timeout(USAGE_TIMEOUT)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.bytes().await.ok()?;
    let answer: sandpit_models::server::UsageAnswer = serde_json::from_slice(&body).ok()?;
    Some(
        answer
            .registrations
            .into_iter()
            .map(|r| (r.registration, r.bytes))
            .collect(),
    )
}

fn read_or_choose_port(path: &Path) -> anyhow::Result<u16> {
    if let Some(port) = fs::read_to_string(path)
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        return Ok(port);
    }
    let port = sandpit_runtime::port_offer::offer()?;
    fs::write(path, format!("{port}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(port)
}

/// Makes sure the environment's endpoint runs (started by the daemon, which restarts it if it
/// dies), with the environment's memory budget.
pub async fn ensure_endpoint(
    context: &Context,
    spec: &Spec,
    env: &Name,
    on_event: &mut dyn FnMut(&str),
) -> anyhow::Result<Endpoint> {
    let project = &spec.project.name;
    let dir = state_dir(context, project, env);
    let token = registration_token(&dir)?;
    let token_file = token_path(&dir);
    let port = read_or_choose_port(&dir.join("port"))?;
    let environment = spec.environments.get(env);
    let max_memory = environment
        .and_then(|e| e.models_max_memory)
        .map(|s| s.0)
        .unwrap_or(2 * 1024 * 1024 * 1024);
    let max_models = environment.and_then(|e| e.models_max_count).unwrap_or(64);
    let mut vars = context.base_env.clone();
    for name in ["ORT_DYLIB_PATH", "SANDPIT_PYTHON"] {
        if let Some(value) = context.process_env.get(name) {
            vars.push((name.to_owned(), value.clone()));
        }
    }
    let instance = InstanceSpec {
        key: InstanceKey {
            project: project.clone(),
            env: env.clone(),
            name: Name::parse("models").expect("valid"),
        },
        program: Program::Exec {
            path: context.executable.clone(),
            args: vec![
                "model-server".into(),
                "--port".into(),
                port.to_string(),
                "--max-memory".into(),
                max_memory.to_string(),
                "--max-models".into(),
                max_models.to_string(),
                "--registrations".into(),
                dir.join("registrations").display().to_string(),
                // The file's path, not the token: command lines are visible to every user.
                "--token-file".into(),
                token_file.display().to_string(),
                "--store".into(),
                crate::deployment::env_store_root(context, project, env)
                    .display()
                    .to_string(),
                "--store".into(),
                context
                    .artifact_store_root(project.as_str())
                    .display()
                    .to_string(),
            ],
        },
        working_dir: dir.clone(),
        env: vars,
        run_as: None,
        port,
        log: dir.join("model-server.log"),
        stop_signal: "SIGTERM".into(),
        start_timeout_secs: 30,
    };
    let client = daemon_connection::started(context).await?;
    daemon_connection::answer(client.ensure_instance(instance, |_, m| on_event(m)).await)?;
    Ok(Endpoint { port, token })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client with no TLS and no proxy always builds")
}

/// `request` with the endpoint's registration credential.
fn authorized(endpoint: &Endpoint, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.bearer_auth(endpoint.token.expose())
}

/// The registration token of the endpoint whose state directory is `dir`, written first when
/// missing or untrusted (the endpoint reads the file on every registration, so it follows).
fn registration_token(dir: &Path) -> anyhow::Result<Token> {
    private_state_dir(dir)?;
    let file = token_path(dir);
    credential::ensure_token_file(&file).with_context(|| {
        format!(
            "cannot write the model endpoint's registration token {}",
            file.display()
        )
    })
}

/// Replaces what `biome` (or [`BASE`]) serves. Nothing is loaded until first use.
pub async fn register(
    endpoint: &Endpoint,
    biome: &str,
    models: &[Registration],
) -> anyhow::Result<()> {
    let url = format!(
        "http://127.0.0.1:{}/sandpit/biomes/{biome}/models",
        endpoint.port
    );
    let body = serde_json::json!({ "models": models });
    let response = authorized(endpoint, client().put(&url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("cannot reach the model endpoint at {url}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        bail!("the model endpoint refused the models of `{biome}` ({status}): {text}");
    }
    Ok(())
}

/// Forgets what `biome` serves and unloads what nobody else uses.
pub async fn unregister(endpoint: &Endpoint, biome: &str) -> anyhow::Result<()> {
    let url = format!(
        "http://127.0.0.1:{}/sandpit/biomes/{biome}/models",
        endpoint.port
    );
    let response = authorized(endpoint, client().delete(&url))
        .send()
        .await
        .with_context(|| format!("cannot reach the model endpoint at {url}"))?;
    if !response.status().is_success() && response.status() != reqwest::StatusCode::NOT_FOUND {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        bail!("the model endpoint could not unregister `{biome}` ({status}): {text}");
    }
    Ok(())
}

/// What [`attach`] gives a release: its components' variables (`SANDPIT_MODELS_URL`) and where
/// the daemon unloads the target's models when it sleeps. Both empty when it has no models.
#[derive(Debug, Default)]
pub struct Attached {
    pub env: std::collections::BTreeMap<String, String>,
    pub registration: Option<sandpit_runtime::protocol::ModelsRegistration>,
}

impl Attached {
    fn at(
        context: &Context,
        spec: &Spec,
        env: &Name,
        endpoint: &Endpoint,
        label: &str,
        biome: Option<&Name>,
    ) -> Attached {
        Attached {
            env: std::collections::BTreeMap::from([(
                "SANDPIT_MODELS_URL".to_owned(),
                endpoint.url_for(biome),
            )]),
            registration: Some(sandpit_runtime::protocol::ModelsRegistration {
                port: endpoint.port,
                registration: label.to_owned(),
                token_file: token_path(&state_dir(context, &spec.project.name, env)),
            }),
        }
    }
}

/// Registers the models of `release`'s target (a biome, or the environment's base) from
/// `store`, where the chosen digests are, with the environment's endpoint, starting it if
/// needed, and returns the variables its components get. Nothing when the project has no
/// models. An overlay biome's `shared_models` (with the base's digest) are not registered: the
/// endpoint answers them with the base's registration.
pub async fn attach(
    context: &Context,
    release: &crate::release::Release<'_>,
    store: &sandpit_artifact::store::ArtifactStore,
    on_event: &mut dyn FnMut(&str),
) -> anyhow::Result<Attached> {
    let spec = release.spec;
    let env = &release.env;
    let biome = (release.biome != release.env).then_some(&release.biome);
    let artifacts = &release.artifacts;
    let shared = &release.shared_models;
    let declared = spec
        .components
        .values()
        .any(|c| c.kind == sandpit_domain::ComponentKind::Model);
    let models: Vec<&sandpit_spec::Component> = spec
        .components
        .values()
        .filter(|c| c.kind == sandpit_domain::ComponentKind::Model && !shared.contains(&c.name))
        .collect();
    let saved = registrations_dir(context, &spec.project.name, env);
    let label = biome
        .map(Name::to_string)
        .unwrap_or_else(|| BASE.to_owned());
    if !declared {
        return attach_without_models(context, spec, env, biome, &label, &saved, on_event).await;
    }
    let endpoint = ensure_endpoint(context, spec, env, on_event).await?;
    let mut registrations = Vec::new();
    for model in models {
        let Some(chosen) = artifacts.get(&model.name) else {
            bail!("no artifact was chosen for model `{}`", model.name);
        };
        let name = sandpit_domain::ArtifactName::parse(&chosen.artifact)
            .ok_or_else(|| anyhow::anyhow!("`{}` is not an artifact name", chosen.artifact))?;
        let stored = store.get(&name)?.ok_or_else(|| {
            anyhow::anyhow!(
                "{} is not in the artifact store {}",
                chosen.artifact,
                store.root().display()
            )
        })?;
        registrations.push(Registration {
            name: model.name.to_string(),
            artifact: chosen.artifact.clone(),
            digest: chosen.digest.to_string(),
            path: stored.file_path.clone(),
            file: model.file.clone().unwrap_or_default(),
        });
    }
    // Saved first, so an endpoint restarted by the daemon serves the same models again.
    save(&saved, &label, &registrations)?;
    register(&endpoint, &label, &registrations).await?;
    let answered_by_base = if shared.is_empty() {
        String::new()
    } else {
        format!(" ({} answered by the base's)", shared.len())
    };
    on_event(&format!(
        "registered {} model(s) with the model endpoint of `{env}`{answered_by_base}",
        registrations.len()
    ));
    Ok(Attached::at(context, spec, env, &endpoint, &label, biome))
}

/// [`attach`] for a commit that declares no models. When another target of the environment
/// serves models, this one registers with none of its own: a biome must be registered to be
/// answered (it then falls back to the base's models), and a base without models serves none.
/// Otherwise nothing is started, and a registration left from an earlier commit is withdrawn.
async fn attach_without_models(
    context: &Context,
    spec: &Spec,
    env: &Name,
    biome: Option<&Name>,
    label: &str,
    saved: &Path,
    on_event: &mut dyn FnMut(&str),
) -> anyhow::Result<Attached> {
    let saved_registrations = read_saved(saved)?;
    let others_serve = saved_registrations
        .iter()
        .any(|s| s.label != label && s.models.as_ref().is_ok_and(|m| !m.is_empty()));
    if others_serve {
        let endpoint = ensure_endpoint(context, spec, env, on_event).await?;
        save(saved, label, &[])?;
        register(&endpoint, label, &[]).await?;
        on_event(&format!(
            "registered with the model endpoint of `{env}` (no models of its own: the base's answer)"
        ));
        return Ok(Attached::at(context, spec, env, &endpoint, label, biome));
    }
    if saved_registrations.iter().any(|s| s.label == label) {
        withdraw(context, &spec.project.name, env, label).await?;
    }
    Ok(Default::default())
}

/// Removes `label`'s saved registration and unregisters it from the endpoint if it runs.
async fn withdraw(
    context: &Context,
    project: &Name,
    env: &Name,
    label: &str,
) -> anyhow::Result<()> {
    let saved = registrations_dir(context, project, env).join(format!("{label}.json"));
    if !saved.exists() {
        return Ok(());
    }
    fs::remove_file(&saved).with_context(|| format!("cannot remove {}", saved.display()))?;
    let dir = state_dir(context, project, env);
    let port = fs::read_to_string(dir.join("port"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    match port {
        Some(port) => unregister(
            &Endpoint {
                port,
                token: registration_token(&dir)?,
            },
            label,
        )
        .await
        .or_else(|error| {
            // An endpoint that is not running has nothing registered to forget; when it starts
            // again it reads the saved registrations, which no longer include this target.
            if error.to_string().contains("cannot reach") {
                Ok(())
            } else {
                Err(error)
            }
        }),
        None => Ok(()),
    }
}

/// Unregisters a biome's models, if it registered any (whatever `sandpit.toml` says now).
pub async fn detach(
    context: &Context,
    spec: &Spec,
    env: &Name,
    biome: &Name,
) -> anyhow::Result<()> {
    withdraw(context, &spec.project.name, env, biome.as_str()).await
}

/// Unregisters the models of an environment's base (after `sandpit env destroy`).
pub async fn detach_base(context: &Context, spec: &Spec, env: &Name) -> anyhow::Result<()> {
    withdraw(context, &spec.project.name, env, BASE).await
}

/// Checks model components at build time with ONNX Runtime (so a model the engine cannot serve
/// fails the build, naming the operator) and describes them for `model.json`. The engine is
/// found and loaded when the first model is actually built: a build that reuses every artifact
/// (most `up`s) never pays for loading ONNX Runtime.
#[derive(Debug)]
pub struct EngineInspector {
    context: Context,
    engine: std::sync::OnceLock<Result<sandpit_models::OrtEngine, String>>,
}

impl EngineInspector {
    fn engine(&self) -> Result<&sandpit_models::OrtEngine, String> {
        self.engine
            .get_or_init(|| {
                let library = onnxruntime_library(&self.context).map_err(|e| format!("{e:#}"))?;
                sandpit_models::OrtEngine::new(&library).map_err(|e| {
                    format!("{e}\nhint: run `sandpit doctor` to check every prerequisite")
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl sandpit_build::execute::ModelInspector for EngineInspector {
    fn engine_ready(&self) -> Result<(), String> {
        self.engine().map(drop)
    }

    fn inspect(&self, onnx: &[u8]) -> Result<String, String> {
        let metadata = sandpit_models::inspect(self.engine()?, onnx).map_err(|e| e.to_string())?;
        Ok(serde_json::to_string_pretty(&metadata).expect("metadata always serialises"))
    }
}

/// Finds ONNX Runtime's library: `ORT_DYLIB_PATH`, else the virtual environment beside sandpit's
/// executable (`target/python` for `target/debug/sandpit`, where the setup installs the wheel),
/// else asked of `SANDPIT_PYTHON` (or `python3`). `doctor` reports which one answered.
pub fn find_onnxruntime(
    context: &Context,
) -> Result<sandpit_models::FoundRuntime, sandpit_models::ModelError> {
    let explicit = context
        .process_env
        .get("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let python = context
        .process_env
        .get("SANDPIT_PYTHON")
        .filter(|p| !p.is_empty())
        .map(String::as_str)
        .unwrap_or("python3");
    sandpit_models::find_onnxruntime(&sandpit_models::RuntimeSearch {
        explicit: explicit.as_deref(),
        executable: Some(&context.executable),
        python,
    })
}

/// The path of ONNX Runtime's library ([`find_onnxruntime`]); not finding it points at `doctor`,
/// which names the command that installs it.
pub fn onnxruntime_library(context: &Context) -> anyhow::Result<PathBuf> {
    match find_onnxruntime(context) {
        Ok(found) => Ok(found.library),
        Err(error) => Err(anyhow::anyhow!(
            "{error}\nhint: run `sandpit doctor` to check every prerequisite"
        )),
    }
}

/// The inspector for a project with models; `None` when it has none (no engine is needed then).
pub fn inspector(context: &Context, spec: &Spec) -> anyhow::Result<Option<EngineInspector>> {
    if !spec
        .components
        .values()
        .any(|c| c.kind == sandpit_domain::ComponentKind::Model)
    {
        return Ok(None);
    }
    Ok(Some(EngineInspector {
        context: context.clone(),
        engine: std::sync::OnceLock::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn context(home: &Path) -> Context {
        let base = Context::for_home(home);
        Context {
            supervisor: sandpit_runtime::SupervisorConfig {
                log_max_bytes: 1024,
                ..base.supervisor.clone()
            },
            ..base
        }
    }

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn registration(model: &str, tag: &str) -> Registration {
        Registration {
            name: model.to_owned(),
            artifact: format!("{model}-{SHA}.zip"),
            digest: format!("sha256:{}", tag.repeat(64 / tag.len())),
            path: PathBuf::from(format!("/store/{model}-{tag}.zip")),
            file: "model.onnx".to_owned(),
        }
    }

    fn served(env: &str, biome: Option<&str>, registration: &Registration) -> ServedModel {
        ServedModel {
            env: name(env),
            biome: biome.map(name),
            model: registration.name.clone(),
            artifact: registration.artifact.clone(),
            digest: registration.digest.clone(),
        }
    }

    #[test]
    fn nothing_is_served_when_no_endpoint_was_ever_set_up() {
        let home = tempfile::tempdir().unwrap();
        let context = context(&home.path().join("never-created"));
        assert_eq!(served_models(&context, &name("ml")).unwrap(), []);
        assert_eq!(read_saved(&home.path().join("nope")).unwrap().len(), 0);
    }

    #[test]
    fn every_environment_lists_what_its_base_and_biomes_registered() {
        let home = tempfile::tempdir().unwrap();
        let context = context(home.path());
        let project = name("ml");
        let dev = registrations_dir(&context, &project, &name("dev"));
        let test = registrations_dir(&context, &project, &name("test"));
        let (grade, tonnage) = (registration("grade", "aa"), registration("tonnage", "bb"));
        let alice_grade = registration("grade", "cc");
        save(&dev, BASE, &[tonnage.clone(), grade.clone()]).unwrap();
        save(&dev, "alice", std::slice::from_ref(&alice_grade)).unwrap();
        save(&dev, "bob", &[]).unwrap();
        save(&test, BASE, std::slice::from_ref(&grade)).unwrap();
        // Not registrations: a file being written, another kind of file, a foreign directory.
        fs::write(dev.join(".carol.json.tmp"), "{half").unwrap();
        fs::write(dev.join("notes.txt"), "hello").unwrap();
        fs::create_dir_all(
            context
                .home
                .join("projects/ml/models/Not_An_Env/registrations"),
        )
        .unwrap();
        fs::write(
            context
                .home
                .join("projects/ml/models/Not_An_Env/registrations/_base.json"),
            "{broken",
        )
        .unwrap();
        // Another project's endpoint is not this one's.
        save(
            &registrations_dir(&context, &name("other"), &name("dev")),
            BASE,
            &[registration("x", "dd")],
        )
        .unwrap();

        assert_eq!(
            served_models(&context, &project).unwrap(),
            [
                served("dev", None, &grade),
                served("dev", None, &tonnage),
                served("dev", Some("alice"), &alice_grade),
                served("test", None, &grade),
            ]
        );
        // The writer and the reader agree; bob is registered, with none of his own.
        let saved = read_saved(&dev).unwrap();
        assert_eq!(
            saved
                .iter()
                .map(|s| (s.label.as_str(), s.biome(), s.models.clone().unwrap().len()))
                .collect::<Vec<_>>(),
            [
                ("_base", None, 2),
                ("alice", Some("alice"), 1),
                ("bob", Some("bob"), 0)
            ]
        );
        assert_eq!(saved[1].models, Ok(vec![alice_grade]));
    }

    #[test]
    fn the_endpoint_state_directory_is_made_private_and_keeps_its_token() {
        let home = tempfile::tempdir().unwrap();
        let context = context(home.path());
        let dir = state_dir(&context, &name("ml"), &name("dev"));
        // As an older sandpit left it: readable by everyone.
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let first = registration_token(&dir).unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&token_path(&dir)), 0o600);
        // Kept across calls (a running endpoint keeps accepting it) ...
        assert_eq!(registration_token(&dir).unwrap(), first);
        // ... unless someone else could have read it.
        fs::set_permissions(token_path(&dir), fs::Permissions::from_mode(0o640)).unwrap();
        let second = registration_token(&dir).unwrap();
        assert_ne!(second, first);
        assert_eq!(mode(&token_path(&dir)), 0o600);
        assert_eq!(
            credential::read_token_file(&token_path(&dir)).unwrap(),
            second
        );
    }

    #[test]
    fn an_unusable_saved_registration_is_reported_naming_the_file() {
        for (file, contents, reason) in [
            ("carol.json", "{not json", "not a saved registration"),
            (
                "carol.json",
                r#"{"models": [{"name": 1}]}"#,
                "not a saved registration",
            ),
            (
                "Bad_Name.json",
                r#"{"models": []}"#,
                "neither `_base` nor a biome name",
            ),
        ] {
            let home = tempfile::tempdir().unwrap();
            let context = context(home.path());
            let dir = registrations_dir(&context, &name("ml"), &name("dev"));
            save(&dir, BASE, &[registration("grade", "aa")]).unwrap();
            fs::write(dir.join(file), contents).unwrap();
            let error = format!("{:#}", served_models(&context, &name("ml")).unwrap_err());
            assert!(
                error.contains(&dir.join(file).display().to_string())
                    && error.contains(reason)
                    && error.contains("\nhint: "),
                "{file}: {error}"
            );
            // The others are still readable one by one (the endpoint restores them).
            let saved = read_saved(&dir).unwrap();
            assert!(saved.iter().any(|s| s.label == BASE && s.models.is_ok()));
            assert!(saved.iter().any(|s| s.models.is_err()));
        }
    }

    #[test]
    fn onnx_runtime_is_looked_for_only_when_a_model_is_checked() {
        use sandpit_build::execute::ModelInspector as _;
        let home = tempfile::tempdir().unwrap();
        let mut context = context(home.path());
        let missing = home.path().join("no-such-libonnxruntime.so");
        context.process_env = [("ORT_DYLIB_PATH".to_owned(), missing.display().to_string())].into();
        let spec = sandpit_spec::parse(
            "[project]\nname = \"p\"\n\n[models.scorer]\npath = \"models/scorer\"\nfile = \"scorer.onnx\"\n",
        )
        .unwrap();
        // Making the inspector finds nothing yet: a build that reuses the model never asks.
        let inspector = inspector(&context, &spec)
            .expect("no engine is needed to make the inspector")
            .expect("the project has a model");
        let error = inspector.engine_ready().unwrap_err();
        assert!(error.contains("no-such-libonnxruntime.so"), "{error}");
        assert!(error.contains("sandpit doctor"), "{error}");
        // Asked again, the answer is the same (looked for once).
        assert_eq!(inspector.engine_ready().unwrap_err(), error);
    }
}
