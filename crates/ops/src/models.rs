//! The environment's shared model endpoint: started by the daemon (one `sandpit model-server`
//! per environment, supervised like the database), told which models each biome has, and
//! reached by services through `SANDPIT_MODELS_URL`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use sandpit_domain::Name;
use sandpit_runtime::process::Program;
use sandpit_runtime::protocol::{InstanceKey, InstanceSpec, ReplyBody, Request};
use sandpit_spec::Spec;
use serde::Serialize;

use crate::daemon_connection;
use crate::Context;

/// The registration name of an environment's base (biome names never start with `_`).
pub const BASE: &str = "_base";

/// A running endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub port: u16,
}

impl Endpoint {
    /// What a biome's services get as `SANDPIT_MODELS_URL`: under it, plain model names resolve
    /// to the biome's versions (falling back to the base's). The base uses the root.
    pub fn url_for(&self, biome: Option<&Name>) -> String {
        match biome {
            Some(biome) => format!("http://127.0.0.1:{}/biomes/{biome}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }
}

/// One model a biome (or base) registers with the endpoint.
#[derive(Debug, Clone, Serialize)]
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

fn registrations_dir(context: &Context, project: &Name, env: &Name) -> PathBuf {
    state_dir(context, project, env).join("registrations")
}

fn read_or_choose_port(path: &Path) -> anyhow::Result<u16> {
    if let Some(port) = fs::read_to_string(path)
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        return Ok(port);
    }
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port();
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
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
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
    match daemon_connection::request(context, &Request::EnsureInstance { instance }, |_, m| {
        on_event(m)
    })
    .await?
    {
        ReplyBody::Instance(_) => Ok(Endpoint { port }),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client with no TLS and no proxy always builds")
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
    let response = client()
        .put(&url)
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
    let response = client()
        .delete(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach the model endpoint at {url}"))?;
    if !response.status().is_success() && response.status() != reqwest::StatusCode::NOT_FOUND {
        bail!(
            "the model endpoint could not unregister `{biome}` ({})",
            response.status()
        );
    }
    Ok(())
}

/// Registers `biome`'s models (from `store`, where the chosen digests are) with the environment's
/// endpoint, starting it if needed, and returns the variables its components get. Nothing when
/// the project has no models.
pub async fn attach(
    context: &Context,
    spec: &Spec,
    env: &Name,
    biome: Option<&Name>,
    store: &sandpit_artifact::store::ArtifactStore,
    artifacts: &std::collections::BTreeMap<Name, crate::release::Chosen>,
    on_event: &mut dyn FnMut(&str),
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let models: Vec<&sandpit_spec::Component> = spec
        .components
        .values()
        .filter(|c| c.kind == sandpit_domain::ComponentKind::Model)
        .collect();
    if models.is_empty() {
        return Ok(Default::default());
    }
    let endpoint = ensure_endpoint(context, spec, env, on_event).await?;
    let saved = registrations_dir(context, &spec.project.name, env);
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
    let label = biome
        .map(Name::to_string)
        .unwrap_or_else(|| BASE.to_owned());
    // Saved first, so an endpoint restarted by the daemon serves the same models again.
    fs::create_dir_all(&saved)?;
    fs::write(
        saved.join(format!("{label}.json")),
        serde_json::to_vec_pretty(&serde_json::json!({ "models": registrations }))?,
    )?;
    register(&endpoint, &label, &registrations).await?;
    on_event(&format!(
        "registered {} model(s) with the model endpoint of `{env}`",
        registrations.len()
    ));
    Ok(std::collections::BTreeMap::from([(
        "SANDPIT_MODELS_URL".to_owned(),
        endpoint.url_for(biome),
    )]))
}

/// Unregisters a biome's models, if it registered any (whatever `sandpit.toml` says now).
pub async fn detach(
    context: &Context,
    spec: &Spec,
    env: &Name,
    biome: &Name,
) -> anyhow::Result<()> {
    let project = &spec.project.name;
    let saved = registrations_dir(context, project, env).join(format!("{biome}.json"));
    if !saved.exists() {
        return Ok(());
    }
    fs::remove_file(&saved).with_context(|| format!("cannot remove {}", saved.display()))?;
    let port = fs::read_to_string(state_dir(context, project, env).join("port"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    match port {
        Some(port) => unregister(&Endpoint { port }, biome.as_str())
            .await
            .or_else(|error| {
                // An endpoint that is not running has nothing registered to forget; when it starts
                // again it reads the saved registrations, which no longer include this biome.
                if error.to_string().contains("cannot reach") {
                    Ok(())
                } else {
                    Err(error)
                }
            }),
        None => Ok(()),
    }
}

/// Checks model components at build time with ONNX Runtime (so a model the engine cannot serve
/// fails the build, naming the operator) and describes them for `model.json`.
#[derive(Debug)]
pub struct EngineInspector {
    engine: sandpit_models::OrtEngine,
}

impl sandpit_build::execute::ModelInspector for EngineInspector {
    fn inspect(&self, onnx: &[u8]) -> Result<String, String> {
        let metadata = sandpit_models::inspect(&self.engine, onnx).map_err(|e| e.to_string())?;
        Ok(serde_json::to_string_pretty(&metadata).expect("metadata always serialises"))
    }
}

/// Where ONNX Runtime's library is: `ORT_DYLIB_PATH`, else asked of `SANDPIT_PYTHON` (or `python3`).
pub fn onnxruntime_library(context: &Context) -> anyhow::Result<PathBuf> {
    let explicit = context
        .process_env
        .get("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let python = context
        .process_env
        .get("SANDPIT_PYTHON")
        .cloned()
        .unwrap_or_else(|| "python3".to_owned());
    Ok(sandpit_models::locate_onnxruntime(
        explicit.as_deref(),
        &python,
    )?)
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
    let library = onnxruntime_library(context)?;
    Ok(Some(EngineInspector {
        engine: sandpit_models::OrtEngine::new(&library)?,
    }))
}
