//! How results are shown: the stable `--json` shapes and the human tables.
//!
//! The JSON types here are the CLI's documented contract; they are converted by hand from the
//! use cases' types so that an internal change cannot silently change the output.

use sandpit_artifact::store::{ArtifactCheck, Integrity, StoreCheck};
use sandpit_domain::Name;
use sandpit_runtime::protocol::BiomeStatus;
use sandpit_state::Deployment;
use serde::Serialize;

pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// An error and its causes, outermost first, as one message.
fn error_message(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        // A context that already quotes its cause ("writing x: No space left on device") must
        // not be followed by the cause again.
        if !message.contains(&cause) {
            message.push_str(&format!(": {cause}"));
        }
    }
    message
}

pub fn print_error(error: &anyhow::Error) {
    eprintln!("error: {}", error_message(error));
}

/// A failure as JSON on stdout (`--json`): `{"error": {"message": …}}`, with the message and its
/// causes as `print_error` shows them.
pub fn print_json_error(error: &anyhow::Error) {
    let value = serde_json::json!({ "error": { "message": error_message(error) } });
    println!(
        "{}",
        serde_json::to_string_pretty(&value).expect("a JSON value always serialises")
    );
}

/// A progress line from the daemon, on stderr so `--json` output stays clean.
pub fn print_event(component: Option<&Name>, message: &str) {
    match component {
        Some(component) => eprintln!("  {component}: {message}"),
        None => eprintln!("  {message}"),
    }
}

/// `logs --json`: one object per line, printed as JSON lines.
#[derive(Debug, Serialize)]
pub struct LogLineJson {
    /// When the line was written (read from the component's pipe), RFC 3339 UTC, microseconds.
    pub ts: String,
    pub component: String,
    /// `stdout`, `stderr`, `sandpit` (the supervisor's marks: starts, restarts, stops), or
    /// `unknown` (a line from before logs had timestamps).
    pub stream: &'static str,
    /// The line without its newline; bytes that are not UTF-8 are replaced.
    pub line: String,
}

impl LogLineJson {
    pub fn new(line: &sandpit_ops::logs::Line) -> LogLineJson {
        LogLineJson {
            ts: sandpit_runtime::logs::format_time(line.record.time),
            component: line.component.to_string(),
            stream: line.record.stream.as_str(),
            line: line.record.text.clone(),
        }
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
    /// `database_url` only with `--show-secrets` (read by `ops::database::read_url`).
    pub fn new(status: &BiomeStatus, database_url: Option<String>) -> BiomeJson {
        BiomeJson {
            database: status.database.as_ref().map(|d| DatabaseJson {
                name: d.name.clone(),
                template: d.template.clone(),
                url_env: "DATABASE_URL",
                url: database_url,
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
    /// Name records that could not be read: the name is known, what it refers to is not.
    pub unreadable_records: Vec<UnreadableRecordJson>,
}

#[derive(Debug, Serialize)]
pub struct ArtifactJson {
    pub name: String,
    pub component: String,
    pub sha: String,
    /// The digest the name records (what the bytes must hash to).
    pub digest: String,
    /// `intact|modified|missing|unreadable`
    pub integrity: &'static str,
    /// What the stored bytes hash to when they no longer match `digest`.
    pub actual_digest: Option<String>,
    /// Why the blob could not be read (`unreadable`).
    pub detail: Option<String>,
    /// Bytes, when intact.
    pub size: Option<u64>,
    pub path: String,
    pub blob: String,
    pub reused_from: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct UnreadableRecordJson {
    pub name: String,
    pub record: String,
    pub message: String,
}

/// The stable spelling of an integrity state.
pub fn integrity_word(integrity: &Integrity) -> &'static str {
    match integrity {
        Integrity::Intact { .. } => "intact",
        Integrity::Modified { .. } => "modified",
        Integrity::Missing => "missing",
        Integrity::Unreadable { .. } => "unreadable",
    }
}

impl From<&ArtifactCheck> for ArtifactJson {
    fn from(artifact: &ArtifactCheck) -> ArtifactJson {
        let (actual_digest, detail, size) = match &artifact.integrity {
            Integrity::Intact { size } => (None, None, Some(*size)),
            Integrity::Modified { actual } => (Some(actual.to_string()), None, None),
            Integrity::Missing => (None, None, None),
            Integrity::Unreadable { message } => (None, Some(message.clone()), None),
        };
        let file = artifact
            .record_path
            .parent()
            .and_then(|names| names.parent())
            .map(|root| root.join("files").join(artifact.name.file_name()))
            .unwrap_or_default();
        ArtifactJson {
            name: artifact.name.file_name(),
            component: artifact.name.component.to_string(),
            sha: artifact.name.version.to_string(),
            digest: artifact.provenance.digest.to_string(),
            integrity: integrity_word(&artifact.integrity),
            actual_digest,
            detail,
            size,
            path: file.display().to_string(),
            blob: artifact.blob_path.display().to_string(),
            reused_from: artifact.provenance.reused_from.clone(),
        }
    }
}

impl From<&StoreCheck> for ArtifactListJson {
    fn from(check: &StoreCheck) -> ArtifactListJson {
        ArtifactListJson {
            artifacts: check.artifacts.iter().map(ArtifactJson::from).collect(),
            unreadable_records: check
                .unreadable_records
                .iter()
                .map(|r| UnreadableRecordJson {
                    name: r.name.file_name(),
                    record: r.record_path.display().to_string(),
                    message: r.message.clone(),
                })
                .collect(),
        }
    }
}

/// One line about an artifact whose bytes are not what its name records, or `None` when intact.
pub fn integrity_problem(artifact: &ArtifactCheck) -> Option<String> {
    let expected = &artifact.provenance.digest;
    let blob = artifact.blob_path.display();
    match &artifact.integrity {
        Integrity::Intact { .. } => None,
        Integrity::Modified { actual } => Some(format!(
            "{} is MODIFIED: `{blob}` should be {expected} but is {actual}",
            artifact.name.file_name()
        )),
        Integrity::Missing => Some(format!(
            "{} is MISSING: no blob `{blob}` for {expected}",
            artifact.name.file_name()
        )),
        Integrity::Unreadable { message } => Some(format!(
            "{} is UNREADABLE ({expected}): {message}",
            artifact.name.file_name()
        )),
    }
}

fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

/// `database_url` only with `--show-secrets`.
pub fn print_biome(status: &BiomeStatus, database_url: Option<&str>) {
    println!(
        "biome {}  env {}  at {}  {}",
        status.biome,
        status.env,
        short(&status.sha),
        status.state
    );
    if let Some(database) = &status.database {
        let url = database_url.unwrap_or("in DATABASE_URL (--show-secrets shows it)");
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

pub fn print_artifacts(check: &StoreCheck) {
    println!(
        "{:<64} {:>10}  {:<12}  INTEGRITY",
        "ARTIFACT", "SIZE", "DIGEST"
    );
    for a in &check.artifacts {
        let size = match &a.integrity {
            Integrity::Intact { size } => size.to_string(),
            _ => "-".to_owned(),
        };
        println!(
            "{:<64} {:>10}  {:<12}  {}",
            a.name.file_name(),
            size,
            short(a.provenance.digest.hex()),
            integrity_word(&a.integrity)
        );
    }
    let problems: Vec<String> = check
        .artifacts
        .iter()
        .filter_map(integrity_problem)
        .collect();
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    for record in &check.unreadable_records {
        eprintln!("warning: {}: {}", record.name.file_name(), record.message);
    }
    if !problems.is_empty() || !check.unreadable_records.is_empty() {
        eprintln!("hint: `sandpit verify` checks every store and what runs; `sandpit verify --repair` replaces a damaged artifact with an intact copy from another store");
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
    /// `promote`: the environment promoted from.
    pub promoted_from: Option<String>,
    /// What happened on the way: `rehearsed`, `rehearsal_failed`, `migrated`.
    pub steps: Vec<DeploymentStepJson>,
}

#[derive(Debug, Serialize)]
pub struct DeploymentStepJson {
    pub step: String,
    pub at: String,
    pub message: String,
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
            promoted_from: match &d.kind {
                sandpit_state::DeploymentKind::Promote { from } => Some(from.clone()),
                _ => None,
            },
            steps: d
                .steps
                .iter()
                .map(|s| DeploymentStepJson {
                    step: s.step.as_str().to_owned(),
                    at: s.at.clone(),
                    message: s.message.clone(),
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
        // One line each: the full messages are in `--json`.
        for step in &d.steps {
            println!(
                "       {}: {}",
                step.step.as_str().replace('_', " "),
                first_line(&step.message)
            );
        }
        if let (
            sandpit_state::DeploymentState::Failed | sandpit_state::DeploymentState::Rejected,
            Some(message),
        ) = (d.state, &d.message)
        {
            let said = d.steps.last().map(|s| first_line(&s.message));
            if said != Some(first_line(message)) {
                println!("       {}: {}", d.state.as_str(), first_line(message));
            }
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// What `deploy`, `promote`, `approve` and `rollback` print.
pub fn print_deploy_outcome(
    outcome: &sandpit_ops::deploy::DeployOutcome,
    json: bool,
) -> anyhow::Result<()> {
    let d = &outcome.deployment;
    if json {
        let mut value = serde_json::to_value(DeploymentJson::from(d))?;
        if let Some(status) = outcome.rollout.as_ref().and_then(|r| r.status.as_ref()) {
            value["status"] = serde_json::to_value(BiomeJson::new(status, None))?;
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
        Some(rollout) => match &rollout.status {
            Some(status) => {
                println!("deployment #{} to {} {}: {} at {}", d.id, d.target, d.state.as_str(), status.state, d.sha);
                for step in &d.steps {
                    println!("  {}: {}", step.step.as_str().replace('_', " "), first_line(&step.message));
                }
                for component in status.components.iter().filter(|c| c.url.is_some()) {
                    println!("  {:<20} {}", component.name.as_str(), component.url.as_deref().unwrap_or_default());
                }
            }
            None => println!("deployment #{} ({}) to {} {}", d.id, d.kind, d.target, d.state.as_str()),
        },
    }
    Ok(())
}
