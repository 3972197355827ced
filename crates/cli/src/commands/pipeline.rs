//! `sandpit pipeline run|retry|ID` and `sandpit pipelines`: a control plane's pipelines,
//! through the server — run one for a pushed commit, list them, show one's stages (and its
//! log, followed with `-f` by asking the server for what was written since), retry one.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use reqwest::Method;
use sandpit_server::wire::{Pipeline, PipelineList, PipelineLogChunk, RunPipelineRequest};

use crate::output::{self, Align, Table};
use crate::remote::{self, Remote};
use crate::settings::RemoteSettings;

/// How often `-f` asks for more of the log.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// `sandpit pipeline`: a subcommand, or a pipeline's number.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// The pipeline to show (`sandpit pipelines` lists them).
    #[arg(value_name = "ID", required = true)]
    id: Option<i64>,
    /// Print its log after its stages.
    #[arg(long)]
    logs: bool,
    /// Print its log as it is written, until the pipeline finishes.
    #[arg(short = 'f', long)]
    follow: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Queue a pipeline for a pushed commit (default: the head of the project's branch).
    ///
    /// The project is `--project NAME`, else the `[project] name` of the sandpit.toml here.
    Run {
        /// A pushed commit: its sha, or at least 7 hex digits of it.
        #[arg(long, value_name = "SHA", conflicts_with = "branch")]
        sha: Option<String>,
        /// The head of this branch of the project's repository.
        #[arg(long, value_name = "BRANCH")]
        branch: Option<String>,
        /// Bring this biome up at the commit (fetch, build, up) instead of deploying to the
        /// environments.
        #[arg(long, value_name = "BIOME")]
        biome: Option<String>,
        /// With --biome: take that biome down.
        #[arg(long, requires = "biome")]
        down: bool,
    },
    /// Queue a finished pipeline's commit again.
    Retry {
        /// The finished pipeline.
        id: i64,
    },
}

/// `sandpit pipelines [--project P]` (the global `--project`: only that project's pipelines)
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,
}

pub async fn exec(
    settings: &RemoteSettings,
    project: Option<&str>,
    directory: Option<&Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_settings(settings)?;
    match (args.action, args.id) {
        (
            Some(Action::Run {
                sha,
                branch,
                biome,
                down,
            }),
            _,
        ) => {
            let project = remote::project_name(project, directory)?;
            let path = format!("{}/pipelines", remote::project_path(&project));
            let request = RunPipelineRequest {
                sha,
                branch,
                biome,
                down,
            };
            let queued: Pipeline = remote.call(Method::POST, &path, Some(&request)).await?;
            print_queued(&queued, json)
        }
        (Some(Action::Retry { id }), _) => {
            let path = format!("/api/v1/pipelines/{id}/retry");
            let queued: Pipeline = remote.call(Method::POST, &path, None::<&()>).await?;
            print_queued(&queued, json)
        }
        (None, Some(id)) => show(&remote, id, args.logs, args.follow, json).await,
        (None, None) => unreachable!("clap requires an ID without a subcommand"),
    }
}

pub async fn list(
    settings: &RemoteSettings,
    project: Option<&str>,
    args: ListArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_settings(settings)?;
    let mut path = format!("/api/v1/pipelines?limit={}", args.limit);
    if let Some(project) = project {
        path.push_str(&format!("&project={}", remote::path_segment(project)));
    }
    let list: PipelineList = remote.call(Method::GET, &path, None::<&()>).await?;
    if json {
        output::print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = SystemTime::now();
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("PROJECT", Align::Left),
        ("STATE", Align::Left),
        ("REVISION", Align::Left),
        ("TRIGGER", Align::Left),
        ("REQUESTED BY", Align::Left),
        ("AGE", Align::Right),
        ("DURATION", Align::Right),
    ]);
    for pipeline in &list.pipelines {
        table.row(vec![
            pipeline.id.to_string(),
            pipeline.project.clone(),
            pipeline.state.clone(),
            revision(pipeline),
            pipeline.trigger.clone(),
            pipeline.requested_by.clone(),
            span(Some(&pipeline.created_at), None, now),
            span(
                pipeline.started_at.as_deref(),
                pipeline.finished_at.as_deref(),
                now,
            ),
        ]);
    }
    table.print();
    Ok(ExitCode::SUCCESS)
}

fn print_queued(pipeline: &Pipeline, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(pipeline)?;
    } else {
        println!(
            "pipeline #{} of {} is queued: {} ({})",
            pipeline.id,
            pipeline.project,
            revision(pipeline),
            stage_labels(pipeline)
        );
        println!("  follow it: sandpit pipeline {} -f", pipeline.id);
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(
    remote: &Remote,
    id: i64,
    logs: bool,
    follow: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let log = print_log(remote, id, logs || follow, follow, json).await?;
    let pipeline: Pipeline = remote
        .call(Method::GET, &format!("/api/v1/pipelines/{id}"), None::<&()>)
        .await?;
    if json {
        let mut value = serde_json::to_value(&pipeline)?;
        if logs || follow {
            value["log"] = serde_json::Value::String(log);
        }
        output::print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_pipeline(&pipeline, SystemTime::now());
    // A failed pipeline is a failure of the command that followed it.
    Ok(if follow {
        exit_code(&pipeline)
    } else {
        ExitCode::SUCCESS
    })
}

/// Follows pipeline `id`'s log until it finishes (printed as it comes, or gathered for
/// `--json`), then prints the pipeline; returns it.
pub async fn follow(remote: &Remote, id: i64, json: bool) -> anyhow::Result<Pipeline> {
    let log = print_log(remote, id, true, true, json).await?;
    let pipeline: Pipeline = remote
        .call(Method::GET, &format!("/api/v1/pipelines/{id}"), None::<&()>)
        .await?;
    if json {
        let mut value = serde_json::to_value(&pipeline)?;
        value["log"] = serde_json::Value::String(log);
        output::print_json(&value)?;
    } else {
        print_pipeline(&pipeline, SystemTime::now());
    }
    Ok(pipeline)
}

/// A failed pipeline fails the command that followed it; one that waits for approval, or was
/// superseded by a newer one, does not (the work is someone else's now).
pub fn exit_code(pipeline: &Pipeline) -> ExitCode {
    if pipeline.state == "failed" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads pipeline `id`'s log from the start (when `read`), until the pipeline finishes when
/// `follow`; prints it unless `json`, and returns what it read when `json`.
async fn print_log(
    remote: &Remote,
    id: i64,
    read: bool,
    follow: bool,
    json: bool,
) -> anyhow::Result<String> {
    let mut log = String::new();
    if !read {
        return Ok(log);
    }
    let mut offset = 0;
    loop {
        let path = format!("/api/v1/pipelines/{id}/log?offset={offset}");
        let chunk: PipelineLogChunk = remote.call(Method::GET, &path, None::<&()>).await?;
        if json {
            log.push_str(&chunk.text);
        } else {
            print!("{}", chunk.text);
        }
        let read_all = chunk.next_offset == offset;
        offset = chunk.next_offset;
        if chunk.finished || (!follow && read_all) {
            break;
        }
        if read_all {
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
    Ok(log)
}

fn print_pipeline(pipeline: &Pipeline, now: SystemTime) {
    println!(
        "pipeline #{} of {}: {} — {}, {} by {}{}",
        pipeline.id,
        pipeline.project,
        pipeline.state,
        revision(pipeline),
        pipeline.trigger,
        pipeline.requested_by,
        pipeline
            .retry_of
            .map(|id| format!(", a retry of #{id}"))
            .unwrap_or_default()
    );
    if let Some(message) = &pipeline.message {
        println!("  {}", message.lines().next().unwrap_or_default());
    }
    if let Some(reports) = &pipeline.reports {
        println!(
            "  reports to GitLab: {} delivered, {} waiting, {} failed{}",
            reports.delivered,
            reports.waiting,
            reports.failed,
            reports
                .last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    let mut table = Table::new(&[
        ("STAGE", Align::Left),
        ("STATE", Align::Left),
        ("DURATION", Align::Right),
        ("DEPLOYMENT", Align::Right),
    ]);
    for stage in &pipeline.stages {
        table.row(vec![
            match &stage.env {
                Some(env) => format!("{} {env}", stage.kind),
                None => stage.kind.clone(),
            },
            stage.state.clone(),
            span(
                stage.started_at.as_deref(),
                stage.finished_at.as_deref(),
                now,
            ),
            stage
                .deployment
                .map_or("-".to_owned(), |id| format!("#{id}")),
        ]);
        if let Some(message) = &stage.message {
            table.note(message.lines().next().unwrap_or_default().to_owned());
        }
    }
    table.print();
}

/// `main@0123456789ab`, or the commit alone when it was asked for by its sha.
fn revision(pipeline: &Pipeline) -> String {
    let sha = output::short_version(&pipeline.sha);
    let revision = match &pipeline.branch {
        Some(branch) => format!("{branch}@{sha}"),
        None => sha,
    };
    match (pipeline.target.as_str(), &pipeline.biome) {
        ("biome", Some(biome)) => format!("{revision} → biome {biome}"),
        ("biome_down", Some(biome)) => format!("biome {biome} down"),
        _ => revision,
    }
}

fn stage_labels(pipeline: &Pipeline) -> String {
    pipeline
        .stages
        .iter()
        .map(|stage| match &stage.env {
            Some(env) => format!("{} {env}", stage.kind),
            None => stage.kind.clone(),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// How long from `from` to `to` (or to `now` when it has not ended), as `42s`, `3m05s`,
/// `2h07m` or `3d04h`; `-` when it has not begun or a time does not parse.
fn span(from: Option<&str>, to: Option<&str>, now: SystemTime) -> String {
    let parse = |at: &str| humantime::parse_rfc3339_weak(at).ok();
    let Some(from) = from.and_then(parse) else {
        return "-".to_owned();
    };
    let to = match to {
        Some(to) => match parse(to) {
            Some(to) => to,
            None => return "-".to_owned(),
        },
        None => now,
    };
    let seconds = to.duration_since(from).unwrap_or_default().as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..86400 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{:02}h", seconds / 86400, seconds % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_short_and_say_dash_when_there_is_none() {
        let now = humantime::parse_rfc3339("2026-01-02T00:00:00Z").unwrap();
        let cases = [
            (Some("2026-01-01T23:59:18.500Z"), None, "41s"),
            (Some("2026-01-01T23:56:55Z"), None, "3m05s"),
            (
                Some("2026-01-01T10:00:00Z"),
                Some("2026-01-01T12:07:30Z"),
                "2h07m",
            ),
            (Some("2025-12-29T20:00:00Z"), None, "3d04h"),
            (None, None, "-"),
            (Some("yesterday"), None, "-"),
            // A clock that stepped back says 0s rather than failing.
            (Some("2026-01-02T00:00:05Z"), None, "0s"),
        ];
        for (from, to, shown) in cases {
            assert_eq!(span(from, to, now), shown, "{from:?} → {to:?}");
        }
    }
}
