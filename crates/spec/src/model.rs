//! The validated, semantic model of `sandpit.toml`: what the rest of sandpit consumes.
//!
//! Built only by [`crate::parse`]; every `Name` here has been validated, every `depends_on`
//! resolved, every path checked to stay inside the project.

use std::collections::BTreeMap;
use std::time::Duration;

use sandpit_domain::{ByteSize, ComponentKind, Name, Span};

/// The whole project definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub project: Project,
    /// Always contains at least `dev` (added with defaults when the file names none).
    pub environments: BTreeMap<Name, Environment>,
    /// Services, jobs and models, keyed by name; names are unique across all three kinds.
    pub components: BTreeMap<Name, Component>,
    pub database: Option<Database>,
    /// `[pipelines]`: what pushes and tags start on a control plane.
    pub pipelines: Pipelines,
    /// `[gitlab]`: where pipelines report back; `None`: nowhere.
    pub gitlab: Option<Gitlab>,
    /// `[gateway]`.
    pub gateway: Gateway,
    /// `[biomes]`.
    pub biomes: Biomes,
    /// `[terraform]`'s settings (the components are in `components`).
    pub terraform: TerraformSettings,
}

/// `[terraform]`: how terraform components run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerraformSettings {
    /// `binary`: a name looked up on PATH (`terraform`, `tofu`) or a path.
    pub binary: String,
}

impl Default for TerraformSettings {
    fn default() -> TerraformSettings {
        TerraformSettings {
            binary: "terraform".to_owned(),
        }
    }
}

/// `[gateway]`: the home's reverse proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gateway {
    /// `port`: where it listens; `None`: the port the home chose first.
    pub port: Option<u16>,
}

/// `[biomes]`: how biomes live and die.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Biomes {
    /// `idle_timeout`: sleep after this long without a request through the gateway; `None`:
    /// never.
    pub idle_timeout: Option<Span>,
    /// `ttl`: removed by the reaper this long after the last `up` (default 7 days).
    pub ttl: Span,
    /// `overlay = true`: run only what differs from the environment base.
    pub overlay: bool,
    /// `reap_max_percent`: the most biomes, in percent of all of the project's, one reaper run
    /// removes without `--force` (default 50).
    pub reap_max_percent: u32,
}

/// A biome's time to live when the file says nothing.
pub const DEFAULT_TTL: Span = Span::from_secs_const(7 * 86_400);

impl Default for Biomes {
    fn default() -> Biomes {
        Biomes {
            idle_timeout: None,
            ttl: DEFAULT_TTL,
            overlay: false,
            reap_max_percent: 50,
        }
    }
}

/// `[gitlab]`: the commit status API and merge request notes of one GitLab project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gitlab {
    /// `api_url`, checked to be http(s), without a trailing `/`.
    pub api_url: String,
    /// `project`: a path (`group/app`) or a numeric id, as written (encoded when put in a path).
    pub project: String,
    /// `token_secret`: the configuration secret holding the API token. Default `GITLAB_TOKEN`.
    pub token_secret: String,
}

/// `[pipelines]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipelines {
    /// `branches`: branches besides the project's own whose pushes start a pipeline (`*`
    /// matches any run of characters).
    pub branches: Vec<String>,
    /// `tag_promotes_to`: the environment a pushed tag's commit goes into.
    pub tag_promotes_to: Option<Name>,
}

impl Pipelines {
    /// Whether a push to `branch` starts a pipeline, the project's own branch aside.
    pub fn lists_branch(&self, branch: &str) -> bool {
        self.branches
            .iter()
            .any(|pattern| glob_matches(pattern.as_bytes(), branch.as_bytes()))
    }
}

/// `*` matches any run of bytes (slashes included, as GitLab's protected-branch wildcards do);
/// everything else matches itself.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_matches(rest, &text[skip..])),
        Some((first, rest)) => text
            .split_first()
            .is_some_and(|(t, text)| t == first && glob_matches(rest, text)),
    }
}

#[cfg(test)]
mod pipelines_tests {
    use super::*;

    #[test]
    fn branch_patterns_match_whole_names_with_star_for_any_run() {
        let rules = Pipelines {
            branches: vec!["release/*".into(), "hotfix".into(), "*-rc".into()],
            tag_promotes_to: None,
        };
        for (branch, listed) in [
            ("release/1.2", true),
            ("release/1.2/fix", true),
            ("release/", true),
            ("release", false),
            ("hotfix", true),
            ("hotfix2", false),
            ("v3-rc", true),
            ("v3-rc1", false),
            ("feature/x", false),
        ] {
            assert_eq!(rules.lists_branch(branch), listed, "{branch}");
        }
        assert!(!Pipelines::default().lists_branch("main"));
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub name: Name,
    /// Refused at packaging and at extraction: the most bytes one artifact may expand to.
    /// `[project] max_artifact_size`, default 2GiB.
    pub max_artifact_size: ByteSize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: Name,
    /// `biomes = true`: biomes may be created in this environment.
    pub biomes: bool,
    pub promote_from: Option<Name>,
    /// `auto_promote = true`: a pipeline promotes into this environment from `promote_from` once
    /// the deployment there is healthy.
    pub auto_promote: bool,
    pub protected: bool,
    /// Approvals needed when protected; 0 when not protected. Default 1 when protected.
    pub approvals: u32,
    /// How many of the newest deployments per target keep their artifacts from garbage collection.
    pub keep_deployments: u32,
    /// `seed = true`: the `[database] seed` file also runs into this environment's own (base)
    /// database when it is created. Biomes always get the seed; default false.
    pub seed: bool,
    /// `[environments.<env>.database] url` or `url_env`, kept as written (may name an env var).
    pub database_url: Option<DatabaseUrl>,
    /// `[environments.<env>.models] max_memory` / `max_models`.
    pub models_max_memory: Option<ByteSize>,
    pub models_max_count: Option<u32>,
    /// `idle_timeout`: the base sleeps when idle this long (it opted in); `None`: never.
    pub idle_timeout: Option<Span>,
}

impl Environment {
    /// How many approvals by someone other than the requester a change of what runs here needs
    /// (a deployment, promotion, rollback or destroy): none unless it is protected.
    pub fn approvals_required(&self) -> u32 {
        if self.protected {
            self.approvals
        } else {
            0
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseUrl {
    Literal(String),
    FromEnv(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: Name,
    pub kind: ComponentKind,
    /// Source subtree, relative to the project root (the directory holding `sandpit.toml`),
    /// normalised with `/` separators, no leading `./`, no `..`; `"."` for the root itself.
    pub path: String,
    /// More source subtrees the build reads (normalised like `path`); they count as inputs.
    pub inputs: Vec<String>,
    /// Shell command run in `path` inside a clean checkout; `None` means "package as is".
    pub build: Option<String>,
    /// Directory packaged, relative to `path`; `"."` (the default) is the subtree itself.
    pub output: String,
    /// Shell command that starts the process (services and jobs); `None` only for models.
    pub run: Option<String>,
    /// HTTP path answering 2xx when healthy (services only; default `/`).
    pub health: Option<String>,
    /// Seconds to wait for the health path (services) or completion (jobs). Default 60 / 600.
    pub start_timeout: Duration,
    /// Extra environment variables for build and run, in file order.
    pub env: BTreeMap<String, String>,
    /// Components that must be healthy (services) or have succeeded (jobs) before this one starts.
    pub depends_on: Vec<Name>,
    /// Models only: the ONNX file inside the output.
    pub file: Option<String>,
    /// Terraform components only: `vars`, passed as `TF_VAR_<name>` (empty for the others).
    pub vars: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    /// Directory of ordered `.sql` files, relative to the project root.
    pub migrations: String,
    /// SQL run after migrations when building a template, relative to the project root.
    pub seed: Option<String>,
    /// SQL that loads the read-only shared reference database, relative to the project root.
    pub shared: Option<String>,
}

impl Spec {
    /// Components in an order where every component comes after what it depends on
    /// (ties broken by name, so the order is stable).
    pub fn start_order(&self) -> Vec<&Component> {
        let mut ordered: Vec<&Component> = Vec::new();
        let mut placed = std::collections::BTreeSet::new();
        while ordered.len() < self.components.len() {
            let before = ordered.len();
            for component in self.components.values() {
                if !placed.contains(&component.name)
                    && component.depends_on.iter().all(|d| placed.contains(d))
                {
                    placed.insert(component.name.clone());
                    ordered.push(component);
                }
            }
            // Validation refuses cycles, so progress is always made; guard anyway.
            if ordered.len() == before {
                break;
            }
        }
        ordered
    }

    /// The terraform components, in an order where each comes after the ones it depends on.
    pub fn terraform_components(&self) -> Vec<&Component> {
        self.start_order()
            .into_iter()
            .filter(|c| c.kind == ComponentKind::Terraform)
            .collect()
    }

    pub fn services(&self) -> impl Iterator<Item = &Component> {
        self.components
            .values()
            .filter(|c| c.kind == ComponentKind::Service)
    }
}
