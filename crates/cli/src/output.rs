//! How results are shown: the stable `--json` shapes and the human tables.
//!
//! The JSON types here are the CLI's documented contract; they are converted by hand from the
//! use cases' types so that an internal change cannot silently change the output.

use sandpit_artifact::store::StoredArtifact;
use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;
use sandpit_state::Deployment;
use serde::Serialize;

pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn print_error(error: &anyhow::Error) {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        message.push_str(&format!(": {cause}"));
    }
    eprintln!("error: {message}");
}

/// A progress line from the daemon, on stderr so `--json` output stays clean.
pub fn print_event(component: Option<&Name>, message: &str) {
    match component {
        Some(component) => eprintln!("  {component}: {message}"),
        None => eprintln!("  {message}"),
    }
}

/// `status BIOME --json`
#[derive(Debug, Serialize)]
pub struct BiomeJson {
    pub biome: String,
    pub project: String,
    pub env: String,
    pub sha: String,
    pub state: String,
    pub data_dir: String,
    pub components: Vec<ComponentJson>,
    pub database: Option<DatabaseJson>,
}

#[derive(Debug, Serialize)]
pub struct DatabaseJson {
    pub name: String,
    pub template: String,
    /// The variable components read the URL from.
    pub url_env: &'static str,
    /// Only with `--show-secrets`: it carries the biome role's password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ComponentJson {
    pub name: String,
    pub kind: String,
    pub state: String,
    pub pid: Option<u32>,
    pub url: Option<String>,
    pub restarts: u32,
    pub artifact: String,
    pub digest: String,
    pub log: String,
    pub detail: Option<String>,
}

impl BiomeJson {
    pub fn new(status: &BiomeStatus, show_secrets: bool) -> BiomeJson {
        BiomeJson {
            database: status.database.as_ref().map(|d| DatabaseJson {
                name: d.name.clone(),
                template: d.template.clone(),
                url_env: "DATABASE_URL",
                url: show_secrets.then(|| d.url.clone()),
            }),
            biome: status.biome.to_string(),
            project: status.project.to_string(),
            env: status.env.to_string(),
            sha: status.sha.clone(),
            state: status.state.clone(),
            data_dir: status.data_dir.display().to_string(),
            components: status
                .components
                .iter()
                .map(|c| ComponentJson {
                    name: c.name.to_string(),
                    kind: c.kind.to_string(),
                    state: c.state.to_string(),
                    pid: c.pid,
                    url: c.url.clone(),
                    restarts: c.restarts,
                    artifact: c.artifact.clone(),
                    digest: c.digest.to_string(),
                    log: c.log.display().to_string(),
                    detail: c.detail.clone(),
                })
                .collect(),
        }
    }
}

/// `ls --json`
#[derive(Debug, Serialize)]
pub struct BiomeListJson {
    pub biomes: Vec<BiomeSummaryJson>,
}

#[derive(Debug, Serialize)]
pub struct BiomeSummaryJson {
    pub name: String,
    pub env: String,
    pub sha: String,
    pub state: String,
}

impl From<&[BiomeStatus]> for BiomeListJson {
    fn from(biomes: &[BiomeStatus]) -> BiomeListJson {
        BiomeListJson {
            biomes: biomes
                .iter()
                .map(|b| BiomeSummaryJson {
                    name: b.biome.to_string(),
                    env: b.env.to_string(),
                    sha: b.sha.clone(),
                    state: b.state.clone(),
                })
                .collect(),
        }
    }
}

/// `artifacts --json`
#[derive(Debug, Serialize)]
pub struct ArtifactListJson {
    pub artifacts: Vec<ArtifactJson>,
}

#[derive(Debug, Serialize)]
pub struct ArtifactJson {
    pub name: String,
    pub component: String,
    pub sha: String,
    pub digest: String,
    pub size: u64,
    pub path: String,
    pub reused_from: Option<String>,
}

impl From<&StoredArtifact> for ArtifactJson {
    fn from(artifact: &StoredArtifact) -> ArtifactJson {
        ArtifactJson {
            name: artifact.name.file_name(),
            component: artifact.name.component.to_string(),
            sha: artifact.name.version.to_string(),
            digest: artifact.digest.to_string(),
            size: artifact.size,
            path: artifact.file_path.display().to_string(),
            reused_from: artifact.provenance.reused_from.clone(),
        }
    }
}

impl From<&[StoredArtifact]> for ArtifactListJson {
    fn from(artifacts: &[StoredArtifact]) -> ArtifactListJson {
        ArtifactListJson {
            artifacts: artifacts.iter().map(ArtifactJson::from).collect(),
        }
    }
}

fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

pub fn print_biome(status: &BiomeStatus, show_secrets: bool) {
    println!(
        "biome {}  env {}  at {}  {}",
        status.biome,
        status.env,
        short(&status.sha),
        status.state
    );
    if let Some(database) = &status.database {
        let url = if show_secrets {
            database.url.clone()
        } else {
            "in DATABASE_URL (--show-secrets shows it)".to_owned()
        };
        println!(
            "database {} (from {}): {url}",
            database.name, database.template
        );
    }
    println!(
        "{:<20} {:<8} {:<10} {:>8} {:>8}  URL",
        "COMPONENT", "KIND", "STATE", "PID", "RESTARTS"
    );
    for c in &status.components {
        println!(
            "{:<20} {:<8} {:<10} {:>8} {:>8}  {}",
            c.name.as_str(),
            c.kind.as_str(),
            c.state.as_str(),
            c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            c.restarts,
            c.url.as_deref().unwrap_or("-"),
        );
        if let Some(detail) = &c.detail {
            if !c.state.is_good() {
                println!("{:<20} {detail}", "");
            }
        }
    }
}

pub fn print_biome_list(biomes: &[BiomeStatus]) {
    println!("{:<24} {:<10} {:<14} STATE", "BIOME", "ENV", "SHA");
    for b in biomes {
        println!(
            "{:<24} {:<10} {:<14} {}",
            b.biome.as_str(),
            b.env.as_str(),
            short(&b.sha),
            b.state
        );
    }
}

pub fn print_artifacts(artifacts: &[StoredArtifact]) {
    println!("{:<64} {:>10}  DIGEST", "ARTIFACT", "SIZE");
    for a in artifacts {
        println!(
            "{:<64} {:>10}  {}",
            a.name.file_name(),
            a.size,
            short(a.digest.hex())
        );
    }
}

/// One deployment, as `history --json` and `trace --json` list it.
#[derive(Debug, Serialize)]
pub struct DeploymentJson {
    pub id: i64,
    pub target: String,
    pub sha: String,
    pub state: String,
    pub kind: String,
    pub requested_by: String,
    pub approved_by: Vec<String>,
    pub approvals_required: u32,
    pub rejected_by: Option<String>,
    pub rollback_of: Option<i64>,
    pub restores: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub message: Option<String>,
    pub components: Vec<DeployedComponentJson>,
}

#[derive(Debug, Serialize)]
pub struct DeployedComponentJson {
    pub name: String,
    pub artifact: String,
    pub digest: String,
}

impl From<&Deployment> for DeploymentJson {
    fn from(d: &Deployment) -> DeploymentJson {
        DeploymentJson {
            id: d.id,
            target: d.target.clone(),
            sha: d.sha.clone(),
            state: d.state.as_str().to_owned(),
            kind: d.kind.as_str().to_owned(),
            requested_by: d.requested_by.clone(),
            approved_by: d.approved_by.clone(),
            approvals_required: d.approvals_required,
            rejected_by: d.rejected_by.clone(),
            rollback_of: d.rollback_of,
            restores: d.restores,
            created_at: d.created_at.clone(),
            started_at: d.started_at.clone(),
            finished_at: d.finished_at.clone(),
            message: d.message.clone(),
            components: d
                .components
                .iter()
                .map(|c| DeployedComponentJson {
                    name: c.name.clone(),
                    artifact: c.artifact.clone(),
                    digest: c.digest.clone(),
                })
                .collect(),
        }
    }
}

pub fn print_deployments(deployments: &[Deployment]) {
    println!(
        "{:>5}  {:<14} {:<12} {:<12} {:<10} {:<24} APPROVED BY",
        "ID", "TARGET", "SHA", "STATE", "KIND", "REQUESTED BY"
    );
    for d in deployments {
        println!(
            "{:>5}  {:<14} {:<12} {:<12} {:<10} {:<24} {}",
            d.id,
            d.target,
            short(&d.sha),
            d.state.as_str(),
            d.kind.as_str(),
            d.requested_by,
            d.approved_by.join(", ")
        );
    }
}

/// What `deploy`, `promote`, `approve` and `rollback` print.
pub fn print_deploy_outcome(
    outcome: &sandpit_ops::deploy::DeployOutcome,
    json: bool,
) -> anyhow::Result<()> {
    let d = &outcome.deployment;
    if json {
        let mut value = serde_json::to_value(DeploymentJson::from(d))?;
        if let Some(rollout) = &outcome.rollout {
            value["status"] = serde_json::to_value(BiomeJson::new(&rollout.status, false))?;
        }
        return print_json(&value);
    }
    match &outcome.rollout {
        None => println!(
            "deployment #{} to {} is pending: it needs {} more approval(s) from someone other than {} (`sandpit approve {}`)",
            d.id,
            d.target,
            d.approvals_missing(),
            d.requested_by,
            d.id
        ),
        Some(rollout) => {
            println!("deployment #{} to {} {}: {} at {}", d.id, d.target, d.state.as_str(), rollout.status.state, d.sha);
            for component in rollout.status.components.iter().filter(|c| c.url.is_some()) {
                println!("  {:<20} {}", component.name.as_str(), component.url.as_deref().unwrap_or_default());
            }
        }
    }
    Ok(())
}
