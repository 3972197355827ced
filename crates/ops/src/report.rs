//! Reporting back to GitLab: every pipeline transition enqueues the commit's status in the
//! state store's outbox, a biome pipeline of merge request `mr-<iid>` enqueues the merge
//! request's note, and [`deliver_due`] — run by the server's report worker — sends what is due.
//!
//! - What a project reports to is `[gitlab]` of `sandpit.toml` **at the pipeline's commit**;
//!   without it nothing is enqueued. The token is the configuration secret `token_secret`
//!   (default `GITLAB_TOKEN`) set on the base of the environment the pipeline deploys into
//!   first (a biome pipeline: its biome's environment), read when a report is sent, so it is
//!   never stored in the outbox, never logged, and a token set after the fact is used.
//! - Reporting never fails or delays a pipeline: enqueueing is one insert whose failure is
//!   written to the pipeline's log, and delivery happens on another thread.
//! - Reports with the same key (a commit's status of one name; a merge request's note) go out
//!   one at a time in order ([`plan::steps`]); a note is created once, its id kept, and then
//!   edited in place, so a merge request never gets two.

pub mod gitlab;
pub mod note;
pub mod plan;

use std::sync::mpsc::SyncSender;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sandpit_domain::Name;
use sandpit_spec::Gitlab;
use sandpit_state::{NewReport, Pipeline, PipelineState, PipelineTarget, Report, ReportKind};
use serde_json::json;

use crate::Context;
pub use plan::RetryPolicy;

/// What the reporter needs to know about where it runs.
#[derive(Debug, Clone, Default)]
pub struct Reporting {
    /// The server's address as its users reach it (`sandpit server --public-url`), for the
    /// link from a status to its pipeline; no link when unknown.
    pub public_url: Option<String>,
    /// How failed deliveries are retried.
    pub retry: RetryPolicy,
    /// Tells the report worker something was enqueued.
    pub bell: Bell,
}

/// Wakes the report worker; silent when none runs (the CLI in-process: the server's worker
/// finds the reports when it next looks).
#[derive(Debug, Clone, Default)]
pub struct Bell(Option<SyncSender<()>>);

impl Bell {
    pub fn new(wake: SyncSender<()>) -> Bell {
        Bell(Some(wake))
    }

    pub fn ring(&self) {
        if let Some(wake) = &self.0 {
            // Either way nothing is lost: full means a wake-up is pending already, and a
            // worker that is gone leaves the reports to the next server's.
            let _ = wake.try_send(());
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `<public url>/api/v1/pipelines/<id>`.
pub fn pipeline_url(reporting: &Reporting, id: i64) -> Option<String> {
    reporting
        .public_url
        .as_deref()
        .map(|url| format!("{}/api/v1/pipelines/{id}", url.trim_end_matches('/')))
}

/// Where a pipeline reports to, and with whose token.
struct Destination {
    gitlab: Gitlab,
    /// The environment whose base holds the token.
    token_env: String,
}

/// `[gitlab]` at the pipeline's commit — or, while that commit is not fetched yet (a webhook's
/// pipeline before its fetch), at the project branch's last fetch — and the environment the
/// pipeline deploys into first; `None` when there is no `[gitlab]`.
fn destination(context: &Context, pipeline: &Pipeline) -> anyhow::Result<Option<Destination>> {
    let at_commit = crate::projects::at_commit(context, &pipeline.project, &pipeline.sha)
        .and_then(|source| source.spec());
    let at_last_fetch = || crate::projects::at_last_fetch(context, &pipeline.project)?.spec();
    // A definition that cannot be read fails the pipeline itself, which says why; there is
    // nothing to report to then.
    let Ok(spec) = at_commit.or_else(|_| at_last_fetch()) else {
        return Ok(None);
    };
    let Some(gitlab) = spec.gitlab.clone() else {
        return Ok(None);
    };
    let token_env = match &pipeline.biome {
        Some(_) => crate::project::biome_environment(&spec, None)?.to_string(),
        None => match pipeline.stages.iter().find_map(|stage| stage.env.clone()) {
            Some(env) => env,
            // Not planned yet: where the definition's pipelines deploy first.
            None => match crate::pipeline::plan::stages(&spec)?
                .into_iter()
                .find_map(|stage| stage.env)
            {
                Some(env) => env,
                None => return Ok(None),
            },
        },
    };
    Ok(Some(Destination { gitlab, token_env }))
}

/// Enqueues the commit status `pipeline`'s state sets, if its commit reports to GitLab.
/// Never fails: a problem is written to the pipeline's log instead.
pub fn pipeline_changed(context: &Context, pipeline: &Pipeline) {
    if let Err(error) = enqueue_status(context, pipeline) {
        crate::pipeline::note_in_log(
            context,
            pipeline.id,
            &format!("reporting to GitLab: cannot enqueue the commit status: {error:#}"),
        );
    }
}

fn enqueue_status(context: &Context, pipeline: &Pipeline) -> anyhow::Result<()> {
    let Some((state, description)) =
        plan::commit_state(pipeline.state, pipeline.message.as_deref())
    else {
        return Ok(());
    };
    let Some(destination) = destination(context, pipeline)? else {
        return Ok(());
    };
    let name = plan::status_name(pipeline.biome.as_deref());
    let mut body = json!({
        "state": state.as_str(),
        "name": name,
        "description": description,
    });
    if let Some(url) = pipeline_url(&context.reporting, pipeline.id) {
        body["target_url"] = json!(url);
    }
    if let Some(branch) = &pipeline.branch {
        body["ref"] = json!(branch);
    }
    let gitlab = &destination.gitlab;
    let mut store = crate::deployment::state_store(context)?;
    store.enqueue_report(&NewReport {
        pipeline_id: Some(pipeline.id),
        kind: ReportKind::CommitStatus,
        ordering_key: format!(
            "status {} {} {} {name}",
            gitlab.api_url, gitlab.project, pipeline.sha
        ),
        api_url: gitlab.api_url.clone(),
        forge_project: gitlab.project.clone(),
        project: pipeline.project.clone(),
        token_env: destination.token_env.clone(),
        token_secret: gitlab.token_secret.clone(),
        sha: Some(pipeline.sha.clone()),
        merge_request: None,
        body: body.to_string(),
        not_before: now_ms(),
    })?;
    context.reporting.bell.ring();
    Ok(())
}

/// The merge request a biome named `mr-<iid>` stands for.
pub fn merge_request_of(biome: &str) -> Option<u64> {
    let digits = biome.strip_prefix("mr-")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// After a pipeline of biome `mr-<iid>` ended (up, failed, or taken down), enqueues the
/// merge request's note, if its commit reports to GitLab. Never fails: a problem is written to
/// the pipeline's log instead.
pub async fn biome_pipeline_finished(context: &Context, pipeline: &Pipeline) {
    let Some(iid) = pipeline.biome.as_deref().and_then(merge_request_of) else {
        return;
    };
    if let Err(error) = enqueue_note(context, pipeline, iid).await {
        crate::pipeline::note_in_log(
            context,
            pipeline.id,
            &format!("reporting to GitLab: cannot enqueue the merge request's note: {error:#}"),
        );
    }
}

async fn enqueue_note(context: &Context, pipeline: &Pipeline, iid: u64) -> anyhow::Result<()> {
    let Some(destination) = destination(context, pipeline)? else {
        return Ok(());
    };
    let Some(facts) = note_facts(context, pipeline, &destination.token_env).await? else {
        return Ok(());
    };
    let markdown = note::render(&facts);
    let gitlab = &destination.gitlab;
    let mut store = crate::deployment::state_store(context)?;
    store.enqueue_report(&NewReport {
        pipeline_id: Some(pipeline.id),
        kind: ReportKind::MergeRequestNote,
        ordering_key: format!("note {} {} !{iid}", gitlab.api_url, gitlab.project),
        api_url: gitlab.api_url.clone(),
        forge_project: gitlab.project.clone(),
        project: pipeline.project.clone(),
        token_env: destination.token_env.clone(),
        token_secret: gitlab.token_secret.clone(),
        sha: Some(pipeline.sha.clone()),
        merge_request: Some(iid),
        body: markdown,
        not_before: now_ms(),
    })?;
    context.reporting.bell.ring();
    Ok(())
}

/// What the note of `pipeline`'s biome (in `env`) says: its URLs, database and models as the
/// daemon and the endpoint's registrations have them now, and the artifacts of the deployment
/// that runs; `None` for a pipeline that did not end.
async fn note_facts(
    context: &Context,
    pipeline: &Pipeline,
    env: &str,
) -> anyhow::Result<Option<note::NoteFacts>> {
    let Some(biome) = pipeline.biome.clone() else {
        return Ok(None);
    };
    let outcome = match (pipeline.state, pipeline.target) {
        (PipelineState::Succeeded, PipelineTarget::BiomeDown) => note::NoteOutcome::Removed,
        (PipelineState::Succeeded, _) => note::NoteOutcome::Up,
        (PipelineState::Failed, _) => {
            note::NoteOutcome::Failed(pipeline.message.clone().unwrap_or_default())
        }
        _ => return Ok(None),
    };
    let mut facts = note::NoteFacts {
        biome: biome.clone(),
        env: env.to_owned(),
        commit: pipeline.sha.clone(),
        pipeline_id: pipeline.id,
        pipeline_url: pipeline_url(&context.reporting, pipeline.id),
        outcome,
        services: Vec::new(),
        database: None,
        models: Vec::new(),
        artifacts: Vec::new(),
    };
    if facts.outcome == note::NoteOutcome::Removed {
        return Ok(Some(facts));
    }
    let at_commit = Context {
        source: crate::projects::at_commit(context, &pipeline.project, &pipeline.sha)?,
        ..context.clone()
    };
    // A biome that never came up has no status: the note says why it failed, and no more.
    if let Ok(status) = crate::status::status(&at_commit, Some(&format!("{env}/{biome}"))).await {
        facts.services = status
            .components
            .iter()
            .filter(|c| c.kind == sandpit_domain::ComponentKind::Service)
            .map(|c| (c.name.to_string(), c.url.clone()))
            .collect();
        facts.database = status.database.as_ref().map(|d| d.name.clone());
        facts.models = crate::status::models(&at_commit, &status)?
            .into_iter()
            .map(|m| note::Artifact {
                component: m.name,
                artifact: m.artifact,
                digest: m.digest,
            })
            .collect();
    }
    let store = crate::deployment::state_store(context)?;
    if let Some(running) = store.current(&pipeline.project, &format!("{env}/{biome}"))? {
        facts.artifacts = running
            .components
            .into_iter()
            .map(|c| note::Artifact {
                component: c.name,
                artifact: c.artifact,
                digest: c.digest,
            })
            .collect();
    }
    Ok(Some(facts))
}

/// How pipeline `id`'s reports stand; `None` when it reports nowhere.
pub fn counts(context: &Context, id: i64) -> anyhow::Result<Option<sandpit_state::ReportCounts>> {
    let counts = crate::deployment::state_store(context)?.report_counts(id)?;
    let any = counts.waiting + counts.delivered + counts.failed + counts.superseded > 0;
    Ok(any.then_some(counts))
}

/// What came of one delivery attempt, for the worker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub report: i64,
    pub pipeline: Option<i64>,
    /// E.g. `commit status running of 0123456789ab (sandpit)`.
    pub what: String,
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Tried again after `after`.
    Retrying {
        error: String,
        after: Duration,
    },
    /// Given up.
    Failed {
        error: String,
    },
    /// A newer note replaced it unsent.
    Superseded,
}

/// One pass of the worker: what it did, and how long until the next report is due (`None`:
/// nothing waits).
#[derive(Debug, Default)]
pub struct Pass {
    pub attempts: Vec<Attempt>,
    pub next_due: Option<Duration>,
}

/// Sends every report that is due, one per key, in order; returns what happened.
pub async fn deliver_due(context: &Context, client: &gitlab::Client) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    loop {
        let waiting = crate::deployment::state_store(context)?.waiting_reports()?;
        let now = now_ms();
        let (steps, next_due) = plan::steps(&waiting, now);
        if steps.is_empty() {
            pass.next_due =
                next_due.map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
            return Ok(pass);
        }
        for step in steps {
            match step {
                plan::Step::Supersede(id) => {
                    crate::deployment::state_store(context)?.supersede_report(id)?;
                    if let Some(report) = waiting.iter().find(|r| r.id == id) {
                        pass.attempts.push(Attempt {
                            report: id,
                            pipeline: report.pipeline_id,
                            what: describe(report),
                            outcome: AttemptOutcome::Superseded,
                        });
                    }
                }
                plan::Step::Send(id) => {
                    let Some(report) = waiting.iter().find(|r| r.id == id) else {
                        continue;
                    };
                    let outcome = deliver(context, client, report).await?;
                    let attempt = Attempt {
                        report: id,
                        pipeline: report.pipeline_id,
                        what: describe(report),
                        outcome,
                    };
                    if let Some(pipeline) = attempt.pipeline {
                        crate::pipeline::note_in_log(context, pipeline, &attempt.to_string());
                    }
                    pass.attempts.push(attempt);
                }
            }
        }
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            AttemptOutcome::Delivered => write!(f, "reported to GitLab: {}", self.what),
            AttemptOutcome::Retrying { error, after } => write!(
                f,
                "reporting to GitLab: {} not delivered ({error}); trying again in {}",
                self.what,
                humantime::format_duration(*after)
            ),
            AttemptOutcome::Failed { error } => {
                write!(f, "reporting to GitLab: {} given up ({error})", self.what)
            }
            AttemptOutcome::Superseded => write!(
                f,
                "reporting to GitLab: {} replaced by a newer one",
                self.what
            ),
        }
    }
}

fn describe(report: &Report) -> String {
    match report.kind {
        ReportKind::CommitStatus => {
            let body: serde_json::Value = serde_json::from_str(&report.body).unwrap_or_default();
            let short: String = report
                .sha
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(12)
                .collect();
            format!(
                "commit status {} of {short} ({})",
                body["state"].as_str().unwrap_or("?"),
                body["name"].as_str().unwrap_or("?")
            )
        }
        ReportKind::MergeRequestNote => format!(
            "note on merge request !{}",
            report.merge_request.unwrap_or_default()
        ),
    }
}

/// Sends `report` once and records the outcome in the outbox.
async fn deliver(
    context: &Context,
    client: &gitlab::Client,
    report: &Report,
) -> anyhow::Result<AttemptOutcome> {
    let answered = match token(context, report) {
        Ok(token) => {
            let call = call_for(context, report)?;
            Some((call.method, client.send(&call, &token).await))
        }
        Err(missing) => {
            // Setting the secret is what fixes it, so it is retried like an unreachable forge.
            record_failed_attempt(context, report, plan::Answer::NoAnswer(missing))?;
            None
        }
    };
    let Some((method, answered)) = answered else {
        return outcome_of(context, report.id);
    };
    match plan::verdict(&answered.answer) {
        plan::Verdict::Delivered => {
            let mut store = crate::deployment::state_store(context)?;
            if let (ReportKind::MergeRequestNote, gitlab::Method::Post) = (report.kind, method) {
                if let (Some(iid), Some(note_id)) = (
                    report.merge_request,
                    gitlab::created_note_id(&answered.body),
                ) {
                    store.remember_merge_request_note(
                        &report.api_url,
                        &report.forge_project,
                        iid,
                        note_id,
                    )?;
                }
            }
            store.report_delivered(report.id)?;
            Ok(AttemptOutcome::Delivered)
        }
        plan::Verdict::TryAgain => {
            record_failed_attempt(context, report, answered.answer)?;
            outcome_of(context, report.id)
        }
        plan::Verdict::GiveUp
            if report.kind == ReportKind::MergeRequestNote
                && method == gitlab::Method::Put
                && answered.answer == plan::Answer::Status(404) =>
        {
            // Someone deleted the note: forget it, so the next attempt creates it again.
            if let Some(iid) = report.merge_request {
                crate::deployment::state_store(context)?.forget_merge_request_note(
                    &report.api_url,
                    &report.forge_project,
                    iid,
                )?;
            }
            record_failed_attempt(
                context,
                report,
                plan::Answer::NoAnswer("the note was deleted on GitLab; it is made again".into()),
            )?;
            outcome_of(context, report.id)
        }
        plan::Verdict::GiveUp => {
            let error = refused(&answered.answer, &answered.body);
            crate::deployment::state_store(context)?.report_failed(report.id, &error)?;
            Ok(AttemptOutcome::Failed { error })
        }
    }
}

/// A failed attempt: retried after the backoff, or given up once out of attempts.
fn record_failed_attempt(
    context: &Context,
    report: &Report,
    answer: plan::Answer,
) -> anyhow::Result<()> {
    let error = match answer {
        plan::Answer::Status(code) => format!("GitLab answered {code}"),
        plan::Answer::NoAnswer(why) => why,
    };
    let attempt = report.attempts + 1;
    let mut store = crate::deployment::state_store(context)?;
    match context.reporting.retry.delay_after(attempt) {
        Some(delay) => store.report_retry_at(
            report.id,
            &error,
            now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        )?,
        None => store.report_failed(
            report.id,
            &format!("{error}; given up after {attempt} attempts"),
        )?,
    }
    Ok(())
}

/// How report `id` stands after a failed attempt was recorded.
fn outcome_of(context: &Context, id: i64) -> anyhow::Result<AttemptOutcome> {
    let store = crate::deployment::state_store(context)?;
    let Some(report) = store.report(id)? else {
        anyhow::bail!("report #{id} vanished from the outbox");
    };
    let error = report.last_error.clone().unwrap_or_default();
    Ok(match report.state {
        sandpit_state::ReportState::Waiting => AttemptOutcome::Retrying {
            error,
            after: Duration::from_millis(
                u64::try_from(report.next_attempt_at - now_ms()).unwrap_or(0),
            ),
        },
        sandpit_state::ReportState::Delivered => AttemptOutcome::Delivered,
        sandpit_state::ReportState::Failed => AttemptOutcome::Failed { error },
        sandpit_state::ReportState::Superseded => AttemptOutcome::Superseded,
    })
}

/// What a refusal says: the status and the start of GitLab's message.
fn refused(answer: &plan::Answer, body: &str) -> String {
    let code = match answer {
        plan::Answer::Status(code) => code.to_string(),
        plan::Answer::NoAnswer(why) => return why.clone(),
    };
    let message = plan::shortened(body, 200);
    if message.is_empty() {
        format!("GitLab refused it with {code}")
    } else {
        format!("GitLab refused it with {code}: {message}")
    }
}

fn call_for(context: &Context, report: &Report) -> anyhow::Result<gitlab::ApiCall> {
    Ok(match report.kind {
        ReportKind::CommitStatus => gitlab::commit_status(
            &report.api_url,
            &report.forge_project,
            report.sha.as_deref().unwrap_or_default(),
            &report.body,
        ),
        ReportKind::MergeRequestNote => {
            let iid = report.merge_request.unwrap_or_default();
            let note_id = crate::deployment::state_store(context)?.merge_request_note(
                &report.api_url,
                &report.forge_project,
                iid,
            )?;
            gitlab::merge_request_note(
                &report.api_url,
                &report.forge_project,
                iid,
                note_id,
                &report.body,
            )
        }
    })
}

/// The API token of `report`: its configuration secret on its environment's base. The error
/// says what to set, never a value.
fn token(context: &Context, report: &Report) -> Result<crate::config::Value, String> {
    forge_token(
        context,
        &report.project,
        &report.token_env,
        &report.token_secret,
    )
}

/// A forge's API token: configuration secret `secret` on the base of `env` of `project` (what
/// `[gitlab] token_secret` names). The error says what to set, never a value.
pub(crate) fn forge_token(
    context: &Context,
    project: &str,
    env: &str,
    secret: &str,
) -> Result<crate::config::Value, String> {
    let missing = || {
        format!(
            "the configuration secret {secret} is not set in `{env}`; set it with `sandpit config set {env} --secret {secret}=TOKEN`"
        )
    };
    let (Ok(project), Ok(env_name)) = (Name::parse(project), Name::parse(env)) else {
        return Err(missing());
    };
    match crate::config::base_value(context, &project, &env_name, secret) {
        Ok(Some(value)) if value.secret && !value.text.is_empty() => Ok(value),
        Ok(Some(value)) if !value.secret => Err(format!(
            "{secret} is set in `{env}` but not as a secret; set it again with `sandpit config set {env} --secret {secret}=TOKEN`"
        )),
        Ok(_) => Err(missing()),
        Err(error) => Err(format!("cannot read the configuration of `{env}`: {error:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_request_biomes_are_mr_and_a_number() {
        let cases: &[(&str, Option<u64>)] = &[
            ("mr-3", Some(3)),
            ("mr-1234", Some(1234)),
            ("mr-", None),
            ("mr-03", None),
            ("mr-3a", None),
            ("pr-3", None),
            ("alice", None),
        ];
        for (biome, expect) in cases {
            assert_eq!(merge_request_of(biome), *expect, "{biome}");
        }
    }

    #[test]
    fn pipeline_links_hang_off_the_public_url() {
        let reporting = Reporting {
            public_url: Some("https://sandpit.example/".to_owned()),
            ..Reporting::default()
        };
        assert_eq!(
            pipeline_url(&reporting, 12).as_deref(),
            Some("https://sandpit.example/api/v1/pipelines/12")
        );
        assert_eq!(pipeline_url(&Reporting::default(), 12), None);
    }
}
