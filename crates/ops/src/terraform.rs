//! Terraform components (`[terraform.<name>]`): applied for each environment base and biome, in
//! dependency order, before the processes that depend on them start; their state kept by
//! sandpit's own http backend (`sandpit_tfstate`, hosted by the daemon, one state and one
//! credential per project/environment/biome/component); their outputs handed to the components
//! that depend on them as `SANDPIT_TF_<NAME>_<OUTPUT>` (sensitive ones only as secret files);
//! destroyed with the biome.
//!
//! Files, under `projects/<p>/terraform/<env>/<biome or _base>/<component>/` (0700): `work/`,
//! the module extracted afresh from its verified artifact for every run (with the backend
//! override and `.terraform/`, kept so `sandpit exec` can run terraform against the same state),
//! `logs/<what>.log`, `sensitive/<VARIABLE>` (0600), `applied.json` ([`applied`]) and
//! `plans/` ([`saved_plan`]).
//!
//! A deployment into a protected environment is planned when it is recorded ([`plan_release`]:
//! `terraform plan -out`, the summary recorded as its `planned` step for the approvers), and
//! once approved applies exactly that saved plan — refused, before anything is changed, when
//! the state or the variables moved meanwhile ([`refuse_moved_plans`], [`apply_release`]).

mod applied;
mod record_file;
pub(crate) mod saved_plan;
pub(crate) mod state_document;

pub(crate) use saved_plan::PlanRefused;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sandpit_artifact::store::ArtifactStore;
use sandpit_domain::{ComponentKind, Digest, Name, Version};
use sandpit_spec::{Component, Spec};
use sandpit_terraform::{HttpBackend, Run, Terraform, TerraformError};
use sandpit_tfstate::{StateKey, StateStore};

use crate::config::ComponentVariables;
use crate::release::Release;
use crate::Context;

/// How long a run waits for another operation's lock on the same state before it says who
/// holds it (two `up`s of one biome never overlap — deployments take turns — so a lock held
/// this long is someone's hand-run terraform or a crashed run's leftover).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// What a target's terraform components give the components that depend on them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TerraformOutputs {
    /// Per terraform component: its plain outputs as variables, its sensitive ones as files.
    pub by_module: BTreeMap<Name, ComponentVariables>,
}

impl TerraformOutputs {
    /// What `component` gets: the outputs of every terraform component it depends on.
    pub fn for_component(&self, component: &Component) -> ComponentVariables {
        let mut variables = ComponentVariables::default();
        for dependency in &component.depends_on {
            if let Some(outputs) = self.by_module.get(dependency) {
                variables.env.extend(outputs.env.clone());
                variables.secret_env.extend(outputs.secret_env.clone());
            }
        }
        variables
    }
}

/// The state of terraform component `component` in `biome` of `env` (the base when equal).
pub fn state_key(project: &Name, env: &Name, biome: &Name, component: &Name) -> StateKey {
    StateKey {
        project: project.clone(),
        environment: env.clone(),
        biome: (biome != env).then(|| biome.clone()),
        component: component.clone(),
    }
}

/// The home's state store (the files the daemon's backend serves).
pub fn states(context: &Context) -> StateStore {
    sandpit_tfstate::home_store(&context.home)
}

/// Where sandpit keeps a state's working files (see the module's documentation).
pub fn state_dir(context: &Context, key: &StateKey) -> PathBuf {
    context
        .home
        .join("projects")
        .join(key.project.as_str())
        .join("terraform")
        .join(key.environment.as_str())
        .join(
            key.biome
                .as_ref()
                .map_or(sandpit_tfstate::BASE_SEGMENT, Name::as_str),
        )
        .join(key.component.as_str())
}

/// The provider plugin cache every run shares.
fn plugin_cache(context: &Context) -> PathBuf {
    context.home.join("terraform").join("plugin-cache")
}

/// The binary `[terraform] binary` names, looked up on the PATH components get.
pub fn find_binary(context: &Context, binary: &str) -> anyhow::Result<Terraform> {
    let path = context
        .base_env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| std::ffi::OsString::from(value));
    let unavailable = |error: TerraformError| {
        crate::error::failure(
            crate::error::ErrorKind::Unavailable,
            format!("{error}\nhint: `sandpit doctor` checks every prerequisite"),
        )
    };
    let found = Terraform::locate(binary, path.as_deref()).map_err(unavailable)?;
    // Asking the version costs a terraform process (~60 ms); it is kept per file, by its
    // identity, size and modification time, so a replaced binary is asked again.
    let cache = context.home.join("terraform").join("versions.json");
    let identity = std::fs::metadata(&found).ok().map(|m| {
        use std::os::unix::fs::MetadataExt as _;
        format!(
            "{}:{}:{}:{}.{}",
            found.display(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        )
    });
    let mut known: BTreeMap<String, String> = std::fs::read(&cache)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    if let Some(version) = identity.as_ref().and_then(|id| known.get(id)) {
        return Ok(Terraform::known(found, version.clone()));
    }
    let terraform = Terraform::at(found).map_err(unavailable)?;
    if let Some(identity) = identity {
        known.insert(identity, terraform.version().to_owned());
        // Best effort: without it the next run asks again.
        let _ = std::fs::create_dir_all(context.home.join("terraform"));
        let temporary = cache.with_extension(format!("{}.tmp", std::process::id()));
        if serde_json::to_vec(&known)
            .ok()
            .is_some_and(|bytes| std::fs::write(&temporary, bytes).is_ok())
        {
            let _ = std::fs::rename(&temporary, &cache);
        }
    }
    Ok(terraform)
}

/// Checks terraform components' modules when they are built.
#[derive(Debug)]
pub struct BuildValidator {
    terraform: Result<Terraform, String>,
    plugin_cache: PathBuf,
}

/// The build's validator, when the commit has terraform components (a project without any
/// never looks for terraform).
pub fn validator(context: &Context, spec: &Spec) -> Option<BuildValidator> {
    if !spec
        .components
        .values()
        .any(|c| c.kind == ComponentKind::Terraform)
    {
        return None;
    }
    Some(BuildValidator {
        terraform: find_binary(context, &spec.terraform.binary).map_err(|e| format!("{e:#}")),
        plugin_cache: plugin_cache(context),
    })
}

impl sandpit_build::execute::ModuleValidator for BuildValidator {
    fn binary_ready(&self) -> Result<(), String> {
        self.terraform.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    fn validate(&self, module_dir: &Path, shown_as: &str) -> Result<(), String> {
        let terraform = self.terraform.as_ref().map_err(Clone::clone)?;
        // Terraform takes a directory without configuration for an empty module and would
        // apply nothing, silently: a wrong `path` is refused here instead.
        let has_configuration = std::fs::read_dir(module_dir)
            .map_err(|e| format!("{shown_as}: cannot be read: {e}"))?
            .flatten()
            .any(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".tf") || name.ends_with(".tf.json")
            });
        if !has_configuration {
            return Err(format!(
                "{shown_as}: no Terraform configuration (`*.tf` or `*.tf.json` files) in the module's directory; point `path` at the root module"
            ));
        }
        // `init` writes `.terraform/` and a lock file: never into what is packaged.
        let scratch = tempfile::tempdir().map_err(|e| format!("no scratch directory: {e}"))?;
        let copy = scratch.path().join("module");
        copy_tree(module_dir, &copy).map_err(|e| format!("could not copy the module: {e}"))?;
        sandpit_terraform::validate(terraform, &copy, &self.plugin_cache, None)
            .map_err(|invalid| invalid.under(shown_as).to_string())
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The backend's origin (`http://127.0.0.1:PORT`), starting the daemon that hosts it.
async fn backend_origin(context: &Context) -> anyhow::Result<String> {
    crate::daemon_connection::started(context).await?;
    match sandpit_tfstate::endpoint(&context.home)? {
        Some(addr) => Ok(format!("http://{addr}")),
        None => crate::fail!(
            Unavailable,
            "the sandpit daemon runs but has not started its terraform state backend\nhint: `sandpit daemon stop` and run the command again (its log is `{}`)",
            context.home.join("runtime").join("daemon.log").display()
        ),
    }
}

/// The variables of one run: `sha`, `env`, `biome`, the component's `vars`, and the target's
/// configuration for it (plain values, and secrets read from their files) — secrets apart.
struct Variables {
    plain: BTreeMap<String, String>,
    secret: BTreeMap<String, String>,
    secret_files: BTreeMap<String, PathBuf>,
}

fn variables(release: &Release<'_>, module: &Component) -> anyhow::Result<Variables> {
    let version = Version::parse(&release.version)
        .map_err(|e| anyhow::anyhow!("version `{}`: {e}", release.version))?;
    let mut plain = module.vars.clone();
    let configured = release.config.component(&module.name);
    plain.extend(configured.env);
    plain.insert("sha".to_owned(), version.commit().as_str().to_owned());
    plain.insert("env".to_owned(), release.env.to_string());
    let biome = if release.biome == release.env {
        String::new()
    } else {
        release.biome.to_string()
    };
    plain.insert("biome".to_owned(), biome);
    let mut secret = BTreeMap::new();
    for (name, file) in &configured.secret_env {
        let value = std::fs::read_to_string(file)
            .with_context(|| format!("could not read the secret `{name}` ({})", file.display()))?;
        plain.remove(name);
        secret.insert(name.clone(), value);
    }
    Ok(Variables {
        plain,
        secret,
        secret_files: configured.secret_env,
    })
}

/// The module of `artifact` (digest verified) extracted afresh into `dir/work`.
fn extract_module(
    store: &ArtifactStore,
    digest: &Digest,
    dir: &Path,
    limit: sandpit_domain::ByteSize,
) -> anyhow::Result<PathBuf> {
    let blob = store.open_verified(digest)?;
    let work = dir.join("work");
    match std::fs::remove_dir_all(&work) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("could not clear `{}`", work.display()))
        }
    }
    sandpit_artifact::extract::extract(&blob, &work, limit)?;
    Ok(work)
}

/// A run of terraform in `work` against `key`'s state in sandpit's backend.
fn backend_run(
    context: &Context,
    store: &StateStore,
    key: &StateKey,
    origin: &str,
    work: PathBuf,
    vars: BTreeMap<String, String>,
    log: PathBuf,
) -> anyhow::Result<Run> {
    Ok(Run {
        dir: work,
        plugin_cache_dir: plugin_cache(context),
        backend: Some(HttpBackend {
            address: key.url(origin),
            username: key.path(),
            password: store.credential(key)?,
        }),
        vars,
        log,
        lock_timeout: context.terraform_lock_timeout,
        cli_config_file: None,
        extra_env: Vec::new(),
    })
}

/// Whether deployment `id` was planned for its approvers when it was recorded, and the record
/// (for the hint on how to plan again). `None`: applied directly.
fn planned_deployment(
    context: &Context,
    id: i64,
) -> anyhow::Result<Option<sandpit_state::Deployment>> {
    let deployment = crate::deployment::state_store(context)?.get(id)?;
    Ok(deployment
        .filter(|d| saved_plan::needs_plan(d.approvals_required, &d.kind, d.biome.is_none())))
}

/// The refusal of a saved plan, as the error that fails the deployment before anything changed.
fn refused(deployment: &sandpit_state::Deployment, what: String) -> anyhow::Error {
    PlanRefused {
        message: format!(
            "{what}; {}",
            saved_plan::plan_again_hint(&deployment.kind, &deployment.env, &deployment.sha)
        ),
    }
    .into()
}

/// Plans the release's terraform components for deployment `id`, which waits for approvals:
/// each plan saved under its state's `plans/` and its summary recorded as the deployment's
/// `planned` step (`infra: 1 to add, 0 to change, 0 to destroy: + terraform_data.marker`).
/// Answers the summaries, one line per component.
pub(crate) async fn plan_release(
    context: &Context,
    release: &Release<'_>,
    id: i64,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<Vec<String>> {
    let modules = release.spec.terraform_components();
    let mut planned = Vec::new();
    if modules.is_empty() {
        return Ok(planned);
    }
    let terraform = find_binary(context, &release.spec.terraform.binary)?;
    let origin = backend_origin(context).await?;
    let store = states(context);
    let artifacts = ArtifactStore::open(release.store)?;
    let project = &release.spec.project.name;
    for module in modules {
        let name = &module.name;
        let key = state_key(project, &release.env, &release.biome, name);
        let dir = state_dir(context, &key);
        let plans = saved_plan::plans_dir(&dir);
        for owned in [&dir, &plans] {
            sandpit_runtime::owner_only::create_dir(owned)
                .with_context(|| format!("could not create `{}`", owned.display()))?;
        }
        forget_unusable_plans(context, &dir, id)?;
        let chosen = release
            .artifacts
            .get(name)
            .with_context(|| format!("no artifact was chosen for `{name}`"))?;
        let vars = variables(release, module)?;
        let fingerprint = applied::fingerprint(
            &chosen.digest.to_string(),
            &release.spec.terraform.binary,
            &vars.plain,
            &vars.secret,
        );
        let planning = saved_plan::planning_dir(&dir, id);
        let work = extract_module(
            &artifacts,
            &chosen.digest,
            &planning,
            release.spec.project.max_artifact_size,
        )?;
        let mut all_vars = vars.plain.clone();
        all_vars.extend(vars.secret.clone());
        let log = dir.join("logs").join(format!("deployment-{id}-plan.log"));
        let run = backend_run(context, &store, &key, &origin, work.clone(), all_vars, log)?;
        on_event(Some(name), "terraform init");
        run_blocking(&terraform, &run, sandpit_terraform::init)
            .await
            .map_err(|e| explain(e, &store, &key, release))?;
        on_event(Some(name), "terraform plan");
        let plan = saved_plan::plan_file(&dir, id);
        let summary = {
            let (terraform, run, plan) = (terraform.clone(), run.clone(), plan.clone());
            tokio::task::spawn_blocking(move || {
                sandpit_terraform::plan_to_file(&terraform, &run, &plan)
            })
            .await
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
        }
        .map_err(|e| explain(e, &store, &key, release))
        .with_context(|| format!("terraform component `{name}` could not be planned"))?;
        // It holds the variables' values, secrets included.
        sandpit_runtime::owner_only::repair(&plan, sandpit_runtime::owner_only::FILE_MODE)
            .with_context(|| format!("could not make `{}` private", plan.display()))?;
        // The providers exactly as planned, for the apply's fresh `init`.
        let lock = work.join(".terraform.lock.hcl");
        if lock.is_file() {
            std::fs::copy(&lock, saved_plan::lock_file(&dir, id))
                .with_context(|| format!("could not keep `{}`", lock.display()))?;
        }
        saved_plan::write(
            &dir,
            &saved_plan::SavedPlan {
                deployment: id,
                fingerprint,
                state: current_header(&store, &key)?,
                summary: summary.clone(),
            },
        )?;
        std::fs::remove_dir_all(&planning)
            .with_context(|| format!("could not remove `{}`", planning.display()))?;
        let line = format!("{name}: {summary}");
        crate::deployment::state_store(context)?.record_step(
            id,
            sandpit_state::StepKind::Planned,
            &line,
        )?;
        on_event(Some(name), &format!("terraform plan: {summary}"));
        planned.push(line);
    }
    Ok(planned)
}

/// Removes the saved plans of `dir` that can never be applied (their deployment finished:
/// applied, refused, rejected or failed), except deployment `keep`'s.
fn forget_unusable_plans(context: &Context, dir: &Path, keep: i64) -> anyhow::Result<()> {
    let state = crate::deployment::state_store(context)?;
    for id in saved_plan::saved_ids(dir)? {
        if id != keep && state.get(id)?.is_none_or(|d| d.is_finished()) {
            saved_plan::remove(dir, id)?;
        }
    }
    Ok(())
}

/// Refuses an approved deployment whose saved plans cannot apply any more — missing, or made
/// against a state that changed since — before anything of the target is touched (its
/// database migrated, its processes replaced). Terraform checks again when it applies.
pub(crate) fn refuse_moved_plans(
    context: &Context,
    release: &Release<'_>,
    id: i64,
) -> anyhow::Result<()> {
    let modules = release.spec.terraform_components();
    if modules.is_empty() {
        return Ok(());
    }
    let Some(deployment) = planned_deployment(context, id)? else {
        return Ok(());
    };
    let store = states(context);
    let project = &release.spec.project.name;
    for module in modules {
        let key = state_key(project, &release.env, &release.biome, &module.name);
        let dir = state_dir(context, &key);
        let saved =
            saved_plan::read(&dir, id)?.filter(|_| saved_plan::plan_file(&dir, id).is_file());
        let header = current_header(&store, &key)?;
        // The fingerprint is checked once the configuration is resolved ([`apply_release`]).
        let fingerprint = saved.as_ref().map_or("", |s| s.fingerprint.as_str());
        if let saved_plan::Decision::Refuse(refusal) =
            saved_plan::decide(true, saved.as_ref(), fingerprint, header.as_ref())
        {
            forget_plans_of(context, release, id);
            return Err(refused(&deployment, refusal.describe(module.name.as_str())));
        }
    }
    Ok(())
}

/// Removes deployment `id`'s saved plans (best effort: a leftover is owner-only, and removed
/// by the next plan of its state).
fn forget_plans_of(context: &Context, release: &Release<'_>, id: i64) {
    let project = &release.spec.project.name;
    for module in release.spec.terraform_components() {
        let key = state_key(project, &release.env, &release.biome, &module.name);
        let _ = saved_plan::remove(&state_dir(context, &key), id);
    }
}

/// Applies the release's terraform components in dependency order (the biome's own states;
/// each skipped when exactly that was applied last to an unchanged state), and answers what the
/// components depending on them get. Deployment `id` names the logs. A deployment planned for
/// its approvers applies its saved plans instead, each only to the state and with the variables
/// it was made with: otherwise a [`PlanRefused`] fails it before anything was applied.
pub(crate) async fn apply_release(
    context: &Context,
    release: &Release<'_>,
    id: i64,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<TerraformOutputs> {
    let modules = release.spec.terraform_components();
    let mut outputs = TerraformOutputs::default();
    if modules.is_empty() {
        return Ok(outputs);
    }
    let planned = planned_deployment(context, id)?;
    let terraform = find_binary(context, &release.spec.terraform.binary)?;
    let origin = backend_origin(context).await?;
    let store = states(context);
    let artifacts = ArtifactStore::open(release.store)?;
    let project = &release.spec.project.name;
    // Every decision first: a refused plan must leave every state as it was.
    struct Step<'m> {
        module: &'m Component,
        key: StateKey,
        dir: PathBuf,
        chosen: &'m crate::release::Chosen,
        vars: Variables,
        fingerprint: String,
        header: Option<(u64, String)>,
        decision: saved_plan::Decision,
    }
    let mut steps = Vec::new();
    for module in modules {
        let name = &module.name;
        let key = state_key(project, &release.env, &release.biome, name);
        let dir = state_dir(context, &key);
        sandpit_runtime::owner_only::create_dir(&dir)
            .with_context(|| format!("could not create `{}`", dir.display()))?;
        let chosen = release
            .artifacts
            .get(name)
            .with_context(|| format!("no artifact was chosen for `{name}`"))?;
        let vars = variables(release, module)?;
        let fingerprint = applied::fingerprint(
            &chosen.digest.to_string(),
            &release.spec.terraform.binary,
            &vars.plain,
            &vars.secret,
        );
        let header = current_header(&store, &key)?;
        let saved = match &planned {
            Some(_) => {
                saved_plan::read(&dir, id)?.filter(|_| saved_plan::plan_file(&dir, id).is_file())
            }
            None => None,
        };
        let decision = saved_plan::decide(
            planned.is_some(),
            saved.as_ref(),
            &fingerprint,
            header.as_ref(),
        );
        if let (saved_plan::Decision::Refuse(refusal), Some(deployment)) = (&decision, &planned) {
            forget_plans_of(context, release, id);
            return Err(refused(deployment, refusal.describe(name.as_str())));
        }
        steps.push(Step {
            module,
            key,
            dir,
            chosen,
            vars,
            fingerprint,
            header,
            decision,
        });
    }
    let mut applied_any = false;
    for step in steps {
        let Step {
            module,
            key,
            dir,
            chosen,
            vars,
            fingerprint,
            header,
            decision,
        } = step;
        let name = &module.name;
        let unchanged = decision == saved_plan::Decision::ApplyDirectly
            && applied::read(&dir)?.is_some_and(|p| {
                p.fingerprint == fingerprint && Some((p.serial, p.lineage.clone())) == header
            });
        if unchanged {
            on_event(
                Some(name),
                "terraform: the same module and variables were applied last, and the state has not changed since; not applied again",
            );
        } else {
            let work = extract_module(
                &artifacts,
                &chosen.digest,
                &dir,
                release.spec.project.max_artifact_size,
            )?;
            let saved_lock = saved_plan::lock_file(&dir, id);
            if decision == saved_plan::Decision::ApplySaved && saved_lock.is_file() {
                std::fs::copy(&saved_lock, work.join(".terraform.lock.hcl"))
                    .with_context(|| format!("could not use `{}`", saved_lock.display()))?;
            }
            let mut all_vars = vars.plain.clone();
            all_vars.extend(vars.secret.clone());
            let log = dir.join("logs").join(format!("deployment-{id}.log"));
            let run = backend_run(context, &store, &key, &origin, work, all_vars, log)?;
            // Recorded before terraform runs, with a fingerprint nothing matches: an apply that
            // fails half-way leaves resources, and `down` destroys them from this record.
            let mut record = applied::Applied {
                fingerprint: String::new(),
                serial: 0,
                lineage: String::new(),
                deployment: id,
                store: release.store.to_path_buf(),
                artifact: chosen.artifact.clone(),
                digest: chosen.digest.to_string(),
                binary: release.spec.terraform.binary.clone(),
                vars: vars.plain.clone(),
                secret_vars: vars.secret_files.clone(),
                depends_on: module.depends_on.iter().map(Name::to_string).collect(),
            };
            applied::write(&dir, &record)?;
            on_event(Some(name), "terraform init");
            run_blocking(&terraform, &run, sandpit_terraform::init)
                .await
                .map_err(|e| explain(e, &store, &key, release))?;
            let applying = match (&decision, &planned) {
                (saved_plan::Decision::ApplySaved, Some(deployment)) => {
                    let plan = saved_plan::plan_file(&dir, id);
                    let summary = saved_plan::read(&dir, id)?
                        .map(|s| s.summary.to_string())
                        .unwrap_or_default();
                    on_event(
                        Some(name),
                        &format!("terraform apply of the approved plan: {summary}"),
                    );
                    let (terraform, run, saved) = (terraform.clone(), run.clone(), plan.clone());
                    let result = tokio::task::spawn_blocking(move || {
                        sandpit_terraform::apply_plan(&terraform, &run, &saved)
                    })
                    .await
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
                    let stale = matches!(result, Err(TerraformError::StalePlan { .. }));
                    if stale {
                        forget_plans_of(context, release, id);
                    } else {
                        let _ = saved_plan::remove(&dir, id);
                    }
                    match result {
                        Err(error) if stale && !applied_any => {
                            return Err(refused(
                                deployment,
                                format!(
                                    "{}\n{error}",
                                    saved_plan::Refusal::StateMoved.describe(name.as_str())
                                ),
                            ));
                        }
                        Ok(()) => {
                            crate::deployment::state_store(context)?.record_step(
                                id,
                                sandpit_state::StepKind::Applied,
                                &format!("{name}: {summary}"),
                            )?;
                            Ok(())
                        }
                        Err(error) => Err(error),
                    }
                }
                _ => {
                    on_event(Some(name), "terraform apply");
                    run_blocking(&terraform, &run, sandpit_terraform::apply).await
                }
            };
            applied_any = true;
            if let Err(error) = applying {
                let summary = summary_of(&store, &key);
                return Err(explain(error, &store, &key, release).context(format!(
                    "terraform component `{name}` was not applied{}",
                    summary.map_or(String::new(), |s| format!(
                        "; its state now holds {} resource instance(s)",
                        s.resources
                    ))
                )));
            }
            (record.serial, record.lineage) = current_header(&store, &key)?.unwrap_or_default();
            record.fingerprint = fingerprint;
            applied::write(&dir, &record)?;
        }
        let summary = summary_of(&store, &key).unwrap_or_default();
        let variables = output_variables(name, &summary, &dir)?;
        let shown: Vec<String> = summary
            .outputs
            .iter()
            .map(|(output, o)| {
                let variable = state_document::variable_name(name.as_str(), output);
                if o.sensitive {
                    format!("{variable} (sensitive)")
                } else {
                    variable
                }
            })
            .collect();
        on_event(
            Some(name),
            &format!(
                "terraform: {} resource instance(s){}",
                summary.resources,
                if shown.is_empty() {
                    String::new()
                } else {
                    format!("; outputs {}", shown.join(", "))
                }
            ),
        );
        outputs.by_module.insert(name.clone(), variables);
    }
    Ok(outputs)
}

/// A state's outputs as variables: plain ones by value, sensitive ones as owner-only files
/// under `dir/sensitive/` (the daemon reads them when it starts a dependant; never printed).
fn output_variables(
    module: &Name,
    summary: &state_document::StateSummary,
    dir: &Path,
) -> anyhow::Result<ComponentVariables> {
    let mut variables = ComponentVariables::default();
    let sensitive_dir = dir.join("sensitive");
    if sensitive_dir.exists() {
        std::fs::remove_dir_all(&sensitive_dir)
            .with_context(|| format!("could not clear `{}`", sensitive_dir.display()))?;
    }
    for (output, value) in &summary.outputs {
        let variable = state_document::variable_name(module.as_str(), output);
        let text = state_document::variable_text(&value.value);
        if value.sensitive {
            sandpit_runtime::owner_only::create_dir(&sensitive_dir)?;
            let file = sensitive_dir.join(&variable);
            sandpit_runtime::owner_only::write_file(&file, text.as_bytes())
                .with_context(|| format!("could not write `{}`", file.display()))?;
            variables.secret_env.insert(variable, file);
        } else {
            variables.env.insert(variable, text);
        }
    }
    Ok(variables)
}

fn current_header(store: &StateStore, key: &StateKey) -> anyhow::Result<Option<(u64, String)>> {
    Ok(match store.current(key)? {
        Some(bytes) => sandpit_tfstate::state_header(&bytes).ok(),
        None => None,
    })
}

fn summary_of(store: &StateStore, key: &StateKey) -> Option<state_document::StateSummary> {
    let bytes = store.current(key).ok()??;
    state_document::summarise(&bytes).ok()
}

/// Runs one terraform command on a blocking thread (it takes seconds; the runtime keeps
/// serving meanwhile).
async fn run_blocking(
    terraform: &Terraform,
    run: &Run,
    command: fn(&Terraform, &Run) -> Result<(), TerraformError>,
) -> Result<(), TerraformError> {
    let (terraform, run) = (terraform.clone(), run.clone());
    tokio::task::spawn_blocking(move || command(&terraform, &run))
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
}

/// A terraform failure with what sandpit knows on top: who holds a lock, and how to clear it.
fn explain(
    error: TerraformError,
    store: &StateStore,
    key: &StateKey,
    release: &Release<'_>,
) -> anyhow::Error {
    let locked = matches!(error, TerraformError::Locked { .. });
    let error = anyhow::Error::new(error);
    if !locked {
        return error;
    }
    let target = if release.biome == release.env {
        release.env.to_string()
    } else {
        release.biome.to_string()
    };
    let holder = store
        .lock(key)
        .ok()
        .flatten()
        .map(|lock| format!("the state is locked by {}", lock.describe()))
        .unwrap_or_else(|| "the state was locked".to_owned());
    crate::error::failure(
        crate::error::ErrorKind::Conflict,
        format!(
            "{error:#}\n{holder}\nhint: if that operation crashed, `sandpit tf unlock {target} {}` clears its lock",
            key.component
        ),
    )
}

/// Which terraform component a `terraform` command given to `sandpit exec` without
/// `--component` means (pure): the one whose module its `-chdir=DIR` names (`dir_is` tells
/// whether DIR is a component's `path`), else the project's only one. `program` counts as
/// terraform when its file name is `binary`'s. Answers the component and where its `-chdir=`
/// argument is (the command then runs in the state's working directory instead, so the caller
/// drops it), or `None` when the command is not terraform or names no component.
pub fn exec_target(
    components: &[(&Name, &str)],
    binary: &str,
    program: &str,
    args: &[String],
    dir_is: impl Fn(&str, &str) -> bool,
) -> Option<(Name, Option<usize>)> {
    let file_name = |path: &str| path.rsplit('/').next().unwrap_or(path).to_owned();
    if file_name(program) != file_name(binary) || components.is_empty() {
        return None;
    }
    let chdir = args
        .iter()
        .position(|arg| arg.starts_with("-chdir="))
        .map(|at| (at, &args[at]["-chdir=".len()..]));
    match chdir {
        Some((at, dir)) => components
            .iter()
            .find(|(_, path)| dir_is(dir, path))
            .map(|(name, _)| ((*name).clone(), Some(at))),
        None if components.len() == 1 => Some((components[0].0.clone(), None)),
        None => None,
    }
}

/// What a command run "in" a terraform component gets (`sandpit exec --component`, `env`).
#[derive(Debug)]
pub struct TerraformEnvironment {
    pub vars: BTreeMap<String, String>,
    pub secret_names: BTreeSet<String>,
    /// The state's working directory: the module as last applied, initialised against it.
    pub dir: PathBuf,
}

/// The environment terraform needs to work on `component`'s state of `biome` by hand — the
/// backend's address and credential (`TF_HTTP_*`), the variables of the last apply (`TF_VAR_*`),
/// the plugin cache — on top of what components inherit; it starts the daemon hosting the
/// backend. Refused while nothing was applied.
pub async fn environment_of(
    context: &Context,
    project: &Name,
    env: &Name,
    biome: &Name,
    component: &Name,
) -> anyhow::Result<TerraformEnvironment> {
    let key = state_key(project, env, biome, component);
    let dir = state_dir(context, &key);
    let work = dir.join("work");
    let Some(record) = applied::read(&dir)?.filter(|_| work.is_dir()) else {
        crate::fail!(
            NotFound,
            "terraform component `{component}` has not been applied in `{biome}`\nhint: `sandpit up {biome}` applies it"
        );
    };
    backend_origin(context).await?;
    let mut vars: BTreeMap<String, String> = context.base_env.iter().cloned().collect();
    let mut secret_names = BTreeSet::from(["TF_HTTP_PASSWORD".to_owned()]);
    vars.extend(crate::tf::backend_variables(context, &key)?);
    for (name, value) in [
        ("TF_IN_AUTOMATION", "1".to_owned()),
        ("CHECKPOINT_DISABLE", "1".to_owned()),
        (
            "TF_PLUGIN_CACHE_DIR",
            plugin_cache(context).display().to_string(),
        ),
        ("SANDPIT_TF_DIR", work.display().to_string()),
    ] {
        vars.insert(name.to_owned(), value);
    }
    for (name, value) in &record.vars {
        vars.insert(format!("TF_VAR_{name}"), value.clone());
    }
    for (name, file) in &record.secret_vars {
        let variable = format!("TF_VAR_{name}");
        vars.insert(
            variable.clone(),
            std::fs::read_to_string(file).unwrap_or_default(),
        );
        secret_names.insert(variable);
    }
    Ok(TerraformEnvironment {
        vars,
        secret_names,
        dir: work,
    })
}

/// One terraform state of a biome, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOverview {
    pub component: Name,
    /// Managed resource instances in its current version.
    pub resources: usize,
    /// The deployment that last applied it through sandpit.
    pub applied_by: Option<i64>,
    /// The variables its outputs give dependants, each with whether it is a secret.
    pub outputs: Vec<(String, bool)>,
    /// Who holds its lock, when someone does (`locked by … since …`).
    pub lock: Option<String>,
}

/// The terraform states `biome` of `env` has (none for a project without terraform).
pub fn overview(context: &Context, project: &Name, env: &Name, biome: &Name) -> Vec<StateOverview> {
    let store = states(context);
    let Ok(keys) = store.keys_of(project) else {
        return Vec::new();
    };
    keys.into_iter()
        .filter(|key| {
            &key.environment == env && key.biome.as_ref() == (biome != env).then_some(biome)
        })
        .map(|key| {
            let summary = summary_of(&store, &key).unwrap_or_default();
            let applied = applied::read(&state_dir(context, &key)).ok().flatten();
            StateOverview {
                resources: summary.resources,
                applied_by: applied.map(|a| a.deployment),
                outputs: summary
                    .outputs
                    .iter()
                    .map(|(name, output)| {
                        (
                            state_document::variable_name(key.component.as_str(), name),
                            output.sensitive,
                        )
                    })
                    .collect(),
                lock: store.lock(&key).ok().flatten().map(|lock| lock.describe()),
                component: key.component,
            }
        })
        .collect()
}

/// What of `biome` is still in terraform states (resource instances left), for `ls` and `down`.
pub fn left_behind(context: &Context, project: &Name, env: &Name, biome: &Name) -> Vec<String> {
    let store = states(context);
    let Ok(keys) = store.keys_of(project) else {
        return Vec::new();
    };
    keys.iter()
        .filter(|key| &key.environment == env && key.biome.as_ref() == (biome != env).then_some(biome))
        .filter_map(|key| {
            let resources = summary_of(&store, key).map_or(0, |s| s.resources);
            (resources > 0).then(|| {
                format!(
                    "its terraform state `{}` ({resources} resource instance(s); destroy log under `{}`)",
                    key.component,
                    state_dir(context, key).join("logs").display()
                )
            })
        })
        .collect()
}

/// Destroys every terraform state of `biome` in `env` (dependants first), from what their last
/// apply recorded — the module and variables as applied, secrets read again — and removes the
/// states once empty. A destroy that fails stops here, leaving its state (and the record to
/// retry from); `Ok(n)`: how many states were removed.
pub(crate) async fn destroy_target(
    context: &Context,
    project: &Name,
    env: &Name,
    biome: &Name,
    on_event: &mut dyn FnMut(Option<&Name>, &str),
) -> anyhow::Result<usize> {
    let store = states(context);
    let keys: Vec<StateKey> = store
        .keys_of(project)?
        .into_iter()
        .filter(|key| {
            &key.environment == env && key.biome.as_ref() == (biome != env).then_some(biome)
        })
        .collect();
    if keys.is_empty() {
        return Ok(0);
    }
    let mut records = BTreeMap::new();
    for key in &keys {
        records.insert(
            key.component.clone(),
            applied::read(&state_dir(context, key))?,
        );
    }
    let mut removed = 0;
    for component in destroy_order(&records) {
        let key = keys
            .iter()
            .find(|k| k.component == component)
            .expect("ordered from the keys")
            .clone();
        let dir = state_dir(context, &key);
        let resources = summary_of(&store, &key).map_or(0, |s| s.resources);
        if resources > 0 {
            let Some(record) = &records[&component] else {
                crate::fail!(
                    Conflict,
                    "terraform component `{component}` of `{biome}` holds {resources} resource instance(s), but sandpit has no record of the module that made them, so it cannot destroy them\nhint: `sandpit exec {biome} --component {component} -- terraform destroy` with the module, then `sandpit down {biome}` again"
                );
            };
            let origin = backend_origin(context).await?;
            let terraform = find_binary(context, &record.binary)?;
            let artifacts = ArtifactStore::open(&record.store)?;
            let digest = Digest::parse(&record.digest)?;
            let work = extract_module(
                &artifacts,
                &digest,
                &dir,
                sandpit_domain::ByteSize(u64::MAX),
            )?;
            let mut vars = record.vars.clone();
            for (name, file) in &record.secret_vars {
                // Gone with its release: an empty value still lets most modules plan a destroy.
                vars.insert(
                    name.clone(),
                    std::fs::read_to_string(file).unwrap_or_default(),
                );
            }
            let log = dir.join("logs").join("destroy.log");
            let run = backend_run(context, &store, &key, &origin, work, vars, log.clone())?;
            on_event(Some(&component), "terraform destroy");
            let destroyed = match run_blocking(&terraform, &run, sandpit_terraform::init).await {
                Ok(()) => run_blocking(&terraform, &run, sandpit_terraform::destroy).await,
                Err(error) => Err(error),
            };
            if let Err(error) = destroyed {
                return Err(anyhow::Error::new(error).context(format!(
                    "terraform destroy of `{component}` failed: its {resources} resource instance(s) are kept in its state (log `{}`)",
                    log.display()
                )));
            }
            on_event(
                Some(&component),
                &format!("terraform: destroyed {resources} resource instance(s)"),
            );
        }
        store.remove(&key)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("could not remove `{}`", dir.display()))
            }
        }
        removed += 1;
    }
    Ok(removed)
}

/// Dependants before what they depend on (pure; ties by name). Unknown dependencies are ignored.
fn destroy_order(records: &BTreeMap<Name, Option<applied::Applied>>) -> Vec<Name> {
    let depends = |name: &Name| -> Vec<String> {
        records
            .get(name)
            .and_then(Option::as_ref)
            .map(|r| r.depends_on.clone())
            .unwrap_or_default()
    };
    // Apply order first (dependencies before dependants), then reversed.
    let mut placed: Vec<Name> = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    while placed.len() < records.len() {
        let before = placed.len();
        for name in records.keys() {
            if done.contains(name.as_str()) {
                continue;
            }
            let ready = depends(name).iter().all(|d| {
                done.contains(d.as_str()) || !records.keys().any(|k| k.as_str() == d.as_str())
            });
            if ready {
                done.insert(name.to_string());
                placed.push(name.clone());
            }
        }
        if placed.len() == before {
            // A cycle cannot be applied, so cannot have been recorded; place the rest anyway.
            placed.extend(
                records
                    .keys()
                    .filter(|k| !done.contains(k.as_str()))
                    .cloned(),
            );
            break;
        }
    }
    placed.reverse();
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(depends_on: &[&str]) -> Option<applied::Applied> {
        Some(applied::Applied {
            fingerprint: String::new(),
            serial: 1,
            lineage: String::new(),
            deployment: 1,
            store: PathBuf::new(),
            artifact: String::new(),
            digest: String::new(),
            binary: "terraform".into(),
            vars: BTreeMap::new(),
            secret_vars: BTreeMap::new(),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
        })
    }

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    #[test]
    fn a_terraform_command_names_its_component_by_chdir_or_as_the_only_one() {
        let (infra, edge) = (name("infra"), name("edge"));
        let both = [(&infra, "infra"), (&edge, "net/edge")];
        let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        let same = |given: &str, path: &str| given.trim_start_matches("./") == path;
        for (components, binary, program, given, expected) in [
            (
                &both[..],
                "terraform",
                "terraform",
                args(&["-chdir=infra", "state", "list"]),
                Some((infra.clone(), Some(0))),
            ),
            (
                &both[..],
                "terraform",
                "/usr/bin/terraform",
                args(&["-chdir=./net/edge", "plan"]),
                Some((edge.clone(), Some(0))),
            ),
            (
                &both[..],
                "terraform",
                "terraform",
                args(&["state", "list"]),
                None,
            ),
            (
                &both[..],
                "terraform",
                "terraform",
                args(&["-chdir=elsewhere", "plan"]),
                None,
            ),
            (
                &both[..1],
                "terraform",
                "terraform",
                args(&["state", "list"]),
                Some((infra.clone(), None)),
            ),
            (
                &both[..1],
                "tofu",
                "terraform",
                args(&["state", "list"]),
                None,
            ),
            (
                &both[..1],
                "tofu",
                "tofu",
                args(&["state", "list"]),
                Some((infra.clone(), None)),
            ),
            (
                &both[..1],
                "terraform",
                "python3",
                args(&["-chdir=infra"]),
                None,
            ),
            (
                &[][..],
                "terraform",
                "terraform",
                args(&["state", "list"]),
                None,
            ),
        ] {
            assert_eq!(
                exec_target(components, binary, program, &given, same),
                expected,
                "{program} {given:?}"
            );
        }
    }

    #[test]
    fn a_binarys_version_is_asked_once_until_the_file_changes() {
        use std::os::unix::fs::PermissionsExt as _;
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let asked = home.path().join("asked");
        let script = |version: &str| {
            let path = bin.join("terraform");
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho >> {}\necho '{{\"terraform_version\": \"{version}\"}}'\n",
                    asked.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let times_asked = || std::fs::read_to_string(&asked).map_or(0, |s| s.lines().count());
        let mut context = Context::for_home(home.path());
        context.base_env = vec![("PATH".to_owned(), bin.display().to_string())];
        // A script just written can be "busy" for a moment: another test's fork may still hold
        // the descriptor it was written through (until that child execs). Not a sandpit case.
        let version = |name: &str| {
            for _ in 0..100 {
                match find_binary(&context, name) {
                    Err(e) if format!("{e:#}").contains("Text file busy") => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    found => return found.unwrap().version().to_owned(),
                }
            }
            panic!("{name} stayed busy")
        };
        script("1.11.4");
        assert_eq!(version("terraform"), "1.11.4");
        assert_eq!(version("terraform"), "1.11.4");
        assert_eq!(times_asked(), 1);
        // Another binary in its place (another size): asked again.
        script("1.12.10");
        assert_eq!(version("terraform"), "1.12.10");
        assert_eq!(times_asked(), 2);
        let missing = find_binary(&context, "tofu").unwrap_err().to_string();
        assert!(missing.contains("sandpit doctor"), "{missing}");
    }

    #[test]
    fn dependants_are_destroyed_before_what_they_depend_on() {
        let records = BTreeMap::from([
            (name("app"), record(&["network", "dns"])),
            (name("dns"), record(&["network"])),
            (name("network"), record(&[])),
            (name("orphan"), None),
            (name("stray"), record(&["gone"])),
        ]);
        let order: Vec<String> = destroy_order(&records)
            .iter()
            .map(Name::to_string)
            .collect();
        let at = |n: &str| order.iter().position(|o| o == n).unwrap();
        assert!(
            at("app") < at("dns") && at("dns") < at("network"),
            "{order:?}"
        );
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn a_component_gets_the_outputs_of_what_it_depends_on_only() {
        let mut outputs = TerraformOutputs::default();
        outputs.by_module.insert(
            name("infra"),
            ComponentVariables {
                env: BTreeMap::from([("SANDPIT_TF_INFRA_HOST".to_owned(), "h".to_owned())]),
                secret_env: BTreeMap::from([(
                    "SANDPIT_TF_INFRA_PASSWORD".to_owned(),
                    PathBuf::from("/x"),
                )]),
            },
        );
        outputs
            .by_module
            .insert(name("other"), ComponentVariables::default());
        let spec = sandpit_spec::parse(
            "[project]\nname = \"p\"\n[terraform.infra]\npath = \"infra\"\n[services.api]\npath = \"api\"\nrun = \"x\"\ndepends_on = [\"infra\"]\n[services.web]\npath = \"web\"\nrun = \"x\"\n",
        )
        .unwrap();
        let api = outputs.for_component(&spec.components[&name("api")]);
        assert_eq!(api.env["SANDPIT_TF_INFRA_HOST"], "h");
        assert!(api.secret_env.contains_key("SANDPIT_TF_INFRA_PASSWORD"));
        assert_eq!(
            outputs.for_component(&spec.components[&name("web")]),
            ComponentVariables::default()
        );
    }
}
