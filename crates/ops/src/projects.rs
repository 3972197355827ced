//! The projects a server builds from git: registering one (its mirror made, fetched, and its
//! `sandpit.toml` checked at the branch head), listing, showing, removing, and the commit a
//! build may use — always one of a fresh fetch of the project's own mirror, whose definition is
//! valid.
//!
//! Mirrors live in `$SANDPIT_HOME/server/mirrors/<name>.git` (0700); the registry is the state
//! store's (`sandpit_state::ProjectRecord`). A refused `add` leaves neither behind.

use std::fs;
use std::path::{Path, PathBuf};

use sandpit_build::mirror::{check_branch_name, redact_credentials};
use sandpit_build::{Mirror, MirrorError, RemoteUrl, Repository};
use sandpit_domain::{CommitId, Name};
use sandpit_state::{NewProject, ProjectRecord, StateError};
use serde::Serialize;

use crate::error::{failure, ErrorKind};
use crate::fail;
use crate::principal::{Identity, Principal, Role};
use crate::Context;

/// Which commit of a project is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// A commit by its sha (full, or at least 7 hex digits); it must have been pushed.
    Sha(String),
    /// The head of a branch of the project's repository.
    Branch(String),
    /// The head of the branch the project was registered with.
    Default,
}

/// A registered project, as the API shows it (`GET /api/v1/projects/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectView {
    pub name: String,
    /// The git URL, credentials replaced by `***`.
    pub git: String,
    pub branch: String,
    /// The branch head at the last fetch.
    pub head: Option<String>,
    pub fetched_at: Option<String>,
    pub added_by: String,
    pub added_at: String,
    /// Whether merge requests from forks run (their code on the team's machines).
    pub allow_forks: bool,
    /// The paths webhooks are delivered to, relative to the server's URL.
    pub hooks: HookPaths,
    /// The webhook secret: only in the answer of `add`, once — it is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// Where a project's webhooks go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookPaths {
    pub gitlab: String,
    pub github: String,
}

/// A project's webhook settings when it is added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The secret to expect; `None` generates one (shown once in the answer).
    pub secret: Option<String>,
    pub allow_forks: bool,
}

/// The shortest webhook secret accepted: GitLab and GitHub send what they are given, so a
/// short one is guessable by anyone who can reach the server.
pub const MIN_WEBHOOK_SECRET: usize = 16;

/// A webhook secret as given: printable ASCII without spaces, at least [`MIN_WEBHOOK_SECRET`]
/// characters (HTTP headers carry it).
pub fn check_webhook_secret(secret: &str) -> anyhow::Result<()> {
    if secret.len() < MIN_WEBHOOK_SECRET
        || secret.len() > 256
        || !secret.bytes().all(|b| b.is_ascii_graphic())
    {
        fail!(
            InvalidInput,
            "a webhook secret is {MIN_WEBHOOK_SECRET} to 256 printable characters without spaces\nhint: leave --webhook-secret out and sandpit generates one"
        );
    }
    Ok(())
}

impl From<&ProjectRecord> for ProjectView {
    fn from(record: &ProjectRecord) -> ProjectView {
        ProjectView {
            name: record.name.clone(),
            git: redact_credentials(&record.git_url),
            branch: record.branch.clone(),
            head: record.head.clone(),
            fetched_at: record.fetched_at.clone(),
            added_by: record.added_by.clone(),
            added_at: record.added_at.clone(),
            allow_forks: record.allow_forks,
            hooks: HookPaths {
                gitlab: format!("/hooks/gitlab/{}", record.name),
                github: format!("/hooks/github/{}", record.name),
            },
            webhook_secret: None,
        }
    }
}

/// `GET /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
}

/// What `remove` did, and what it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedProject {
    #[serde(flatten)]
    pub project: ProjectView,
    pub removed_at: String,
    pub removed_by: String,
    /// Where its artifacts and history stay (relative to `$SANDPIT_HOME`).
    pub kept: String,
    pub message: String,
}

/// Where every project's mirror lives.
pub fn mirrors_dir(context: &Context) -> PathBuf {
    context.home.join("server").join("mirrors")
}

/// Where project `name`'s mirror lives.
pub fn mirror_dir(context: &Context, name: &Name) -> PathBuf {
    mirrors_dir(context).join(format!("{name}.git"))
}

/// Registers project `name`, fetched from `git_url`, built from `branch`: admins only. The
/// branch head must have a valid `sandpit.toml` whose `[project] name` is `name`.
pub fn add(
    context: &Context,
    principal: &Principal,
    name: &str,
    git_url: &str,
    branch: &str,
) -> anyhow::Result<ProjectView> {
    add_with(
        context,
        principal,
        name,
        git_url,
        branch,
        &WebhookSettings::default(),
    )
}

/// [`add`] with webhook settings; the answer carries the webhook secret, the only time it is
/// shown.
pub fn add_with(
    context: &Context,
    principal: &Principal,
    name: &str,
    git_url: &str,
    branch: &str,
    webhook: &WebhookSettings,
) -> anyhow::Result<ProjectView> {
    require(principal, Role::Admin, "adding a project")?;
    let webhook_secret = match &webhook.secret {
        Some(secret) => {
            check_webhook_secret(secret)?;
            secret.clone()
        }
        None => crate::tokens::random_hex::<32>()?,
    };
    let name = project_name(name)?;
    let url = RemoteUrl::parse(git_url)?;
    check_branch_name(branch)?;
    let added_by = actor(context, principal)?;
    let mirrors = prepare_mirrors_dir(context)?;
    let _lock = RegistryLock::take(&mirrors)?;
    let mut store = crate::deployment::state_store(context)?;
    if let Some(existing) = store.project(name.as_str())? {
        return Err(StateError::ProjectExists {
            name: existing.name,
            added_by: existing.added_by,
            added_at: existing.added_at,
        }
        .into());
    }

    // Made under a name of its own and renamed into place only once it is known good.
    let staged = Staged(mirrors.join(format!(".{name}.git.adding-{}", std::process::id())));
    if staged.0.exists() {
        fs::remove_dir_all(&staged.0).map_err(|error| {
            anyhow::anyhow!("cannot remove the leftover {}: {error}", staged.0.display())
        })?;
    }
    let mirror = Mirror::create(&staged.0, url.clone(), context.base_env.clone())?;
    let refused = |error: MirrorError| match error {
        MirrorError::FetchFailed { .. }
        | MirrorError::BranchNotFound { .. }
        | MirrorError::InvalidBranch { .. } => failure(
            ErrorKind::InvalidInput,
            format!("cannot add project `{name}`: {error}"),
        ),
        other => other.into(),
    };
    mirror.fetch().map_err(refused)?;
    let head = mirror.resolve_branch(branch).map_err(refused)?;
    check_definition(mirror.repository(), &head, &name, branch, &url)?;

    let final_dir = mirror_dir(context, &name);
    if final_dir.exists() {
        // No registration has it (checked above, under the lock): debris of an `add` that
        // died after the rename, or of a `remove` that could not delete it.
        fs::remove_dir_all(&final_dir).map_err(|error| {
            anyhow::anyhow!(
                "cannot remove the leftover {}: {error}",
                final_dir.display()
            )
        })?;
    }
    fs::rename(&staged.0, &final_dir).map_err(|error| {
        anyhow::anyhow!(
            "cannot move the mirror into {}: {error}",
            final_dir.display()
        )
    })?;
    let added = store.add_project(&NewProject {
        name: name.to_string(),
        git_url: url.as_str().to_owned(),
        branch: branch.to_owned(),
        added_by,
        webhook_secret: webhook_secret.clone(),
        allow_forks: webhook.allow_forks,
    });
    let added = match added {
        Ok(added) => added,
        Err(error) => {
            let _ = fs::remove_dir_all(&final_dir);
            return Err(error.into());
        }
    };
    let fetched = store.record_fetch(&added.name, head.as_str())?;
    Ok(ProjectView {
        webhook_secret: Some(webhook_secret),
        ..ProjectView::from(&fetched)
    })
}

/// Every registered project, by name: any role.
pub fn list(context: &Context, principal: &Principal) -> anyhow::Result<ProjectList> {
    require(principal, Role::Viewer, "listing projects")?;
    let store = crate::deployment::state_store(context)?;
    let projects = store.projects()?.iter().map(ProjectView::from).collect();
    Ok(ProjectList { projects })
}

/// Project `name`: any role.
pub fn show(context: &Context, principal: &Principal, name: &str) -> anyhow::Result<ProjectView> {
    require(principal, Role::Viewer, "showing a project")?;
    let record = registered(context, &project_name(name)?)?;
    Ok(ProjectView::from(&record))
}

/// Unregisters project `name` and deletes its mirror; its artifacts and deployment history
/// under `projects/<name>/` stay. Admins only.
pub fn remove(
    context: &Context,
    principal: &Principal,
    name: &str,
) -> anyhow::Result<RemovedProject> {
    require(principal, Role::Admin, "removing a project")?;
    let name = project_name(name)?;
    let removed_by = actor(context, principal)?;
    let mirrors = prepare_mirrors_dir(context)?;
    let _lock = RegistryLock::take(&mirrors)?;
    let mut store = crate::deployment::state_store(context)?;
    let removed = store.remove_project(name.as_str(), &removed_by)?;
    let kept = format!("projects/{name}/");
    let mirror = mirror_dir(context, &name);
    let message = match fs::remove_dir_all(&mirror) {
        Ok(()) => format!(
            "project `{name}` is removed and its mirror deleted; its artifacts and deployment \
             history under {kept} are kept"
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => format!(
            "project `{name}` is removed; its artifacts and deployment history under {kept} are kept"
        ),
        // The registration is gone either way; the next `add` of the name clears the rest.
        Err(error) => format!(
            "project `{name}` is removed, but its mirror {} could not be deleted ({error}); its \
             artifacts and deployment history under {kept} are kept",
            mirror.display()
        ),
    };
    Ok(RemovedProject {
        project: ProjectView::from(&removed),
        removed_at: removed.removed_at.clone().unwrap_or_default(),
        removed_by,
        kept,
        message,
    })
}

/// Fetches project `name`'s mirror and returns it with its branch head (recorded as fetched).
/// A mirror that went missing is made again: it holds nothing the remote does not.
pub fn fetch(context: &Context, name: &str) -> anyhow::Result<(Repository, CommitId)> {
    let fetched = fetch_mirror(context, &project_name(name)?)?;
    Ok((fetched.mirror.repository().clone(), fetched.head))
}

/// The commit of project `name` that `revision` names after a fresh fetch — the only kind of
/// commit a server builds — refused unless its `sandpit.toml` is valid and names the project.
pub fn commit(
    context: &Context,
    name: &str,
    revision: Revision,
) -> anyhow::Result<(Repository, CommitId)> {
    let name = project_name(name)?;
    let fetched = fetch_mirror(context, &name)?;
    let (commit, branch) = match &revision {
        Revision::Default => (fetched.head.clone(), fetched.record.branch.clone()),
        Revision::Branch(branch) => (fetched.mirror.resolve_branch(branch)?, branch.clone()),
        Revision::Sha(sha) => (
            fetched.mirror.resolve_commit(sha)?,
            format!("commit {}", sha.chars().take(12).collect::<String>()),
        ),
    };
    let url = fetched.mirror.url().clone();
    check_definition(fetched.mirror.repository(), &commit, &name, &branch, &url)?;
    Ok((fetched.mirror.repository().clone(), commit))
}

/// Project `name` as of its newest fetch, for reads: its mirror at the branch head recorded then
/// (no fetch, so a read never waits on the remote). Writes use [`commit`], which fetches.
pub fn at_last_fetch(context: &Context, name: &str) -> anyhow::Result<crate::Source> {
    let record = registered(context, &project_name(name)?)?;
    source_at(context, &record)
}

/// The project of `record` at its head as of the newest fetch, without reading the registry
/// again (see [`at_last_fetch`]).
pub fn source_at(context: &Context, record: &ProjectRecord) -> anyhow::Result<crate::Source> {
    let name = project_name(&record.name)?;
    let Some(head) = record.head.as_deref() else {
        fail!(
            Unavailable,
            "project `{name}` has not been fetched yet\nhint: run a pipeline, or ask an admin to check its repository"
        );
    };
    let repo = Repository::open_bare(&mirror_dir(context, &name), context.base_env.clone())?;
    Ok(crate::Source::Commit {
        repo,
        commit: CommitId::parse(head)?,
    })
}

/// Project `name` at commit `sha` of its mirror, without fetching: for a commit a pipeline
/// already fetched.
pub fn at_commit(context: &Context, name: &str, sha: &str) -> anyhow::Result<crate::Source> {
    let name = project_name(name)?;
    let repo = Repository::open_bare(&mirror_dir(context, &name), context.base_env.clone())?;
    Ok(crate::Source::Commit {
        repo,
        commit: CommitId::parse(sha)?,
    })
}

/// A fetched mirror, its registration and its branch head.
struct Fetched {
    mirror: Mirror,
    record: ProjectRecord,
    head: CommitId,
}

fn fetch_mirror(context: &Context, name: &Name) -> anyhow::Result<Fetched> {
    let record = registered(context, name)?;
    let url = RemoteUrl::parse(&record.git_url)?;
    let dir = mirror_dir(context, name);
    let mirror = if dir.exists() {
        Mirror::open(&dir, url, context.base_env.clone())?
    } else {
        prepare_mirrors_dir(context)?;
        match Mirror::create(&dir, url.clone(), context.base_env.clone()) {
            Ok(mirror) => mirror,
            // Another request made it at the same moment.
            Err(MirrorError::Io { .. }) if dir.exists() => {
                Mirror::open(&dir, url, context.base_env.clone())?
            }
            Err(error) => return Err(error.into()),
        }
    };
    mirror.fetch()?;
    let head = mirror.resolve_branch(&record.branch)?;
    let mut store = crate::deployment::state_store(context)?;
    let record = store.record_fetch(&record.name, head.as_str())?;
    Ok(Fetched {
        mirror,
        record,
        head,
    })
}

/// The registration of `name`, or a not-found error.
fn registered(context: &Context, name: &Name) -> anyhow::Result<ProjectRecord> {
    let store = crate::deployment::state_store(context)?;
    store.project(name.as_str())?.ok_or_else(|| {
        StateError::ProjectNotFound {
            name: name.to_string(),
        }
        .into()
    })
}

/// Refuses `commit` unless it has a valid `sandpit.toml` at the top whose project is `name`;
/// `whence` says which branch (or commit) it was reached by, for the messages.
fn check_definition(
    repository: &Repository,
    commit: &CommitId,
    name: &Name,
    whence: &str,
    url: &RemoteUrl,
) -> anyhow::Result<()> {
    let file = sandpit_spec::FILE_NAME;
    let at = format!("{file} at {} ({whence}) of {url}", commit.short());
    let Some(source) = repository.read_file(commit.as_str(), file)? else {
        fail!(
            InvalidInput,
            "there is no {file} at the top of {url} at {} ({whence})\nhint: commit one there \
             (`sandpit init` writes a starter) and push it",
            commit.short()
        );
    };
    let spec = match crate::project::parse_spec(&source) {
        Ok(spec) => spec,
        Err(error) => fail!(
            InvalidInput,
            "{at} is invalid; the server builds only a valid definition:\n{error}\nhint: fix it, \
             commit and push"
        ),
    };
    if spec.project.name != *name {
        fail!(
            InvalidInput,
            "{at} names the project `{}`, not `{name}`\nhint: register it as `{}`, or set \
             `[project] name = \"{name}\"` in {file} and push",
            spec.project.name,
            spec.project.name
        );
    }
    Ok(())
}

fn project_name(raw: &str) -> anyhow::Result<Name> {
    Name::parse(raw).map_err(|error| {
        failure(
            ErrorKind::InvalidInput,
            format!("{error} (a project name)\nhint: {}", error.hint()),
        )
    })
}

/// Refuses `principal` unless it may do what `role` allows.
fn require(principal: &Principal, role: Role, doing: &str) -> anyhow::Result<()> {
    if principal.may(role) {
        return Ok(());
    }
    let held: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
    let held = if held.is_empty() {
        "none".to_owned()
    } else {
        held.join(", ")
    };
    fail!(
        Forbidden,
        "{doing} needs the `{}` role; yours: {held}",
        role.as_str()
    )
}

/// Who is recorded as adding or removing.
fn actor(context: &Context, principal: &Principal) -> anyhow::Result<String> {
    match &principal.identity {
        Identity::Named(name) => Ok(name.clone()),
        Identity::LocalGitUser => crate::deployment::requester(context),
    }
}

/// `$SANDPIT_HOME/server/mirrors`, made (0700, like `server/`) when missing.
fn prepare_mirrors_dir(context: &Context) -> anyhow::Result<PathBuf> {
    let mirrors = mirrors_dir(context);
    for dir in [context.home.join("server"), mirrors.clone()] {
        sandpit_runtime::owner_only::create_dir(&dir)
            .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
    }
    Ok(mirrors)
}

/// One `add` or `remove` at a time: each decides from the registry what a mirror directory
/// is (a registered project's, or debris) and must not race another doing the same.
struct RegistryLock {
    _file: fs::File,
}

impl RegistryLock {
    fn take(mirrors: &Path) -> anyhow::Result<RegistryLock> {
        let path = mirrors.join(".registry.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(|error| anyhow::anyhow!("cannot lock {}: {error}", path.display()))?;
        Ok(RegistryLock { _file: file })
    }
}

/// A mirror being made: removed when dropped, unless it was renamed into place by then.
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod fixtures;

/// Project `name`'s webhook secret, for the server to check a delivery against (no role: the
/// secret is the delivery's credential); `None` for a project registered before webhooks
/// existed. [`StateError::ProjectNotFound`] when it is not registered.
pub fn webhook_secret(context: &Context, name: &str) -> anyhow::Result<Option<String>> {
    let record = registered(context, &project_name(name)?)?;
    Ok(record.webhook_secret)
}
