//! `sandpit ci`: inside a GitLab CI job, asks the control plane for what the matching webhook
//! would do (a pipeline for a push, the merge request's biome for a merge request pipeline, the
//! tag's promotion, the biome's removal with `--stop`), follows the pipeline's log in the job's
//! log and exits with its result.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::error::{failure, ErrorKind};
use sandpit_server::wire::hooks::{CiJobRequest, HookAnswer};

use crate::output;
use crate::remote::{self, Remote};
use crate::settings::RemoteSettings;

/// The predefined variables read, as GitLab names them.
pub const GITLAB_VARIABLES: &[&str] = &[
    "GITLAB_CI",
    "CI_PIPELINE_SOURCE",
    "CI_COMMIT_SHA",
    "CI_COMMIT_REF_NAME",
    "CI_DEFAULT_BRANCH",
    "CI_COMMIT_TAG",
    "CI_MERGE_REQUEST_IID",
    "CI_MERGE_REQUEST_SOURCE_PROJECT_ID",
    "CI_MERGE_REQUEST_PROJECT_ID",
    "CI_PROJECT_PATH",
    "CI_PIPELINE_ID",
    "CI_JOB_ID",
    "GITLAB_USER_LOGIN",
];

/// `sandpit ci [--stop] [--no-follow]`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The review environment's stop job: take the merge request's biome down.
    #[arg(long)]
    stop: bool,
    /// Print what was started and exit, without following the pipeline.
    #[arg(long)]
    no_follow: bool,
}

pub async fn exec(
    settings: &RemoteSettings,
    project: Option<&str>,
    directory: Option<&Path>,
    variables: &BTreeMap<String, String>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let job = job(variables, args.stop)?;
    if !settings.configured() {
        return Err(failure(
            ErrorKind::InvalidInput,
            "`sandpit ci` needs the control plane's URL: SANDPIT_SERVER is not set\nhint: add SANDPIT_SERVER and a masked SANDPIT_TOKEN to the project's CI/CD variables (docs/gitlab-ci.yml)",
        ));
    }
    let remote = Remote::from_settings(settings)?;
    let project = remote::project_name(project, directory)?;
    let path = format!("{}/ci", remote::project_path(&project));
    let answer: HookAnswer = remote.change(Method::POST, &path, Some(&job)).await?;
    if json && args.no_follow {
        output::print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(why) = &answer.ignored {
        println!("sandpit: nothing to do for this job: {why}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("sandpit: {}", answer.summary);
    let Some(pipeline) = answer.pipeline else {
        return Ok(ExitCode::SUCCESS);
    };
    if args.no_follow {
        println!("  follow it: sandpit pipeline {pipeline} -f");
        return Ok(ExitCode::SUCCESS);
    }
    let finished = super::pipeline::follow(&remote, pipeline, json).await?;
    Ok(super::pipeline::exit_code(&finished))
}

/// The request for the job these variables describe; refused outside a GitLab CI job or when a
/// variable GitLab always sets is missing or malformed.
pub fn job(variables: &BTreeMap<String, String>, stop: bool) -> anyhow::Result<CiJobRequest> {
    let get = |name: &str| variables.get(name).map(|v| v.trim().to_owned());
    let required = |name: &str| {
        get(name).ok_or_else(|| {
            failure(
                ErrorKind::InvalidInput,
                format!(
                    "{name} is not set: `sandpit ci` runs inside a GitLab CI job, which sets it{}",
                    if get("GITLAB_CI").is_none() {
                        "\nhint: outside GitLab CI use `sandpit pipeline run` or `sandpit up`"
                    } else {
                        ""
                    }
                ),
            )
        })
    };
    let number = |name: &str| -> anyhow::Result<Option<u64>> {
        get(name)
            .map(|raw| {
                raw.parse::<u64>().map_err(|_| {
                    failure(
                        ErrorKind::InvalidInput,
                        format!("{name} is {}, not a number", sandpit_domain::quoted(&raw)),
                    )
                })
            })
            .transpose()
    };
    let pipeline_source = required("CI_PIPELINE_SOURCE")?;
    let commit_sha = required("CI_COMMIT_SHA")?;
    if commit_sha.len() != 40 || !commit_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(failure(
            ErrorKind::InvalidInput,
            format!(
                "CI_COMMIT_SHA is {}, not a commit's 40 hex digits",
                sandpit_domain::quoted(&commit_sha)
            ),
        ));
    }
    let merge_request_iid = number("CI_MERGE_REQUEST_IID")?;
    if stop && merge_request_iid.is_none() {
        return Err(failure(
            ErrorKind::InvalidInput,
            "`sandpit ci --stop` takes a merge request's biome down, and CI_MERGE_REQUEST_IID is not set\nhint: run it in the stop job of a merge request pipeline's review environment (docs/gitlab-ci.yml)",
        ));
    }
    Ok(CiJobRequest {
        pipeline_source,
        commit_sha: commit_sha.to_ascii_lowercase(),
        commit_ref_name: required("CI_COMMIT_REF_NAME")?,
        default_branch: get("CI_DEFAULT_BRANCH"),
        commit_tag: get("CI_COMMIT_TAG"),
        merge_request_iid,
        merge_request_source_project_id: number("CI_MERGE_REQUEST_SOURCE_PROJECT_ID")?,
        merge_request_project_id: number("CI_MERGE_REQUEST_PROJECT_ID")?,
        project_path: get("CI_PROJECT_PATH"),
        pipeline_id: number("CI_PIPELINE_ID")?,
        job_id: number("CI_JOB_ID")?,
        user_login: get("GITLAB_USER_LOGIN"),
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn push() -> BTreeMap<String, String> {
        vars(&[
            ("GITLAB_CI", "true"),
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_SHA", SHA),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_DEFAULT_BRANCH", "main"),
            ("CI_PROJECT_PATH", "group/app"),
            ("CI_PIPELINE_ID", "1001"),
            ("CI_JOB_ID", "5001"),
        ])
    }

    #[test]
    fn a_push_job_is_described_by_its_variables() {
        let job = job(&push(), false).unwrap();
        assert_eq!(job.pipeline_source, "push");
        assert_eq!(job.commit_sha, SHA);
        assert_eq!(job.commit_ref_name, "main");
        assert_eq!(job.default_branch.as_deref(), Some("main"));
        assert_eq!(job.merge_request_iid, None);
        assert_eq!((job.pipeline_id, job.job_id), (Some(1001), Some(5001)));
        assert!(!job.stop);
    }

    #[test]
    fn a_merge_request_job_carries_its_iid_and_projects() {
        let mut variables = push();
        variables.extend(vars(&[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_COMMIT_REF_NAME", "feature/x"),
            ("CI_MERGE_REQUEST_IID", "7"),
            ("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "12"),
            ("CI_MERGE_REQUEST_PROJECT_ID", "12"),
        ]));
        let job = job(&variables, true).unwrap();
        assert_eq!(job.merge_request_iid, Some(7));
        assert_eq!(job.merge_request_source_project_id, Some(12));
        assert!(job.stop);
    }

    #[test]
    fn outside_a_job_or_with_bad_variables_it_says_which() {
        let cases: Vec<(BTreeMap<String, String>, bool, &str)> = vec![
            (BTreeMap::new(), false, "CI_PIPELINE_SOURCE is not set"),
            (
                {
                    let mut v = push();
                    v.insert("CI_COMMIT_SHA".into(), "abc123".into());
                    v
                },
                false,
                "CI_COMMIT_SHA is `abc123`, not a commit's 40 hex digits",
            ),
            (
                {
                    let mut v = push();
                    v.insert("CI_MERGE_REQUEST_IID".into(), "seven".into());
                    v
                },
                false,
                "CI_MERGE_REQUEST_IID is `seven`, not a number",
            ),
            (push(), true, "CI_MERGE_REQUEST_IID is not set"),
        ];
        for (variables, stop, expected) in cases {
            let error = format!("{:#}", job(&variables, stop).unwrap_err());
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
        let outside = format!("{:#}", job(&BTreeMap::new(), false).unwrap_err());
        assert!(outside.contains("outside GitLab CI"), "{outside}");
    }
}
