//! The payload readers and the decisions, against payloads shaped as the forges send them.

use super::samples::{self, render};
use super::*;

const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";
const ZEROS: &str = "0000000000000000000000000000000000000000";

fn rules() -> Rules {
    Rules {
        branch: "main".into(),
        pipelines: sandpit_spec::Pipelines {
            branches: vec!["release/*".into()],
            tag_promotes_to: Some(sandpit_domain::Name::parse("test").unwrap()),
        },
        allow_forks: false,
    }
}

fn gitlab(header: &str, body: &str) -> Decision {
    decide(&gitlab::parse(header, body.as_bytes()).unwrap(), &rules())
}

#[test]
fn gitlab_pushes_start_pipelines_for_the_branches_the_rules_name() {
    assert_eq!(
        gitlab("Push Hook", &samples::gitlab_push("main", SHA)),
        Decision::Pipeline {
            sha: SHA.into(),
            branch: "main".into()
        }
    );
    assert_eq!(
        gitlab("Push Hook", &samples::gitlab_push("release/2.0", SHA)).action(),
        "pipeline"
    );
    let other = gitlab("Push Hook", &samples::gitlab_push("feature/x", SHA));
    assert!(
        matches!(&other, Decision::Ignored(why) if why.contains("`feature/x`") && why.contains("release/*")),
        "{other:?}"
    );
    // A deletion: `after` and `checkout_sha` are zeros/null.
    let deleted = render(
        samples::GITLAB_PUSH,
        &[("BRANCH", "main"), ("SHA", ZEROS), ("BEFORE", SHA)],
    )
    .replace(
        &format!("\"checkout_sha\": \"{ZEROS}\""),
        "\"checkout_sha\": null",
    );
    assert!(
        matches!(gitlab("Push Hook", &deleted), Decision::Ignored(why) if why.contains("deleted"))
    );
}

#[test]
fn gitlab_tags_follow_tag_promotes_to_by_the_commit_not_the_tag_object() {
    let tag = render(
        samples::GITLAB_TAG_PUSH,
        &[
            ("TAG", "v1.2.0"),
            ("SHA", SHA),
            ("TAG_OBJECT", "fedcba9876543210fedcba9876543210fedcba98"),
            ("BEFORE", ZEROS),
        ],
    );
    assert_eq!(
        gitlab("Tag Push Hook", &tag),
        Decision::Promotion {
            sha: SHA.into(),
            tag: "v1.2.0".into(),
            env: "test".into()
        }
    );
    let no_rule = Rules {
        pipelines: sandpit_spec::Pipelines::default(),
        ..rules()
    };
    let event = gitlab::parse("Tag Push Hook", tag.as_bytes()).unwrap();
    assert!(
        matches!(decide(&event, &no_rule), Decision::Ignored(why) if why.contains("tag_promotes_to"))
    );
}

#[test]
fn gitlab_merge_requests_bring_their_biome_up_move_it_and_take_it_down() {
    let at = "2026-12-02 10:00:00 UTC";
    let mr = |action, new_commits, source| {
        gitlab(
            "Merge Request Hook",
            &samples::gitlab_merge_request(7, action, SHA, at, new_commits, source),
        )
    };
    let up = Decision::BiomeUp {
        number: 7,
        sha: SHA.into(),
    };
    assert_eq!(mr("open", false, 15), up);
    assert_eq!(mr("reopen", false, 15), up);
    assert_eq!(mr("update", true, 15), up);
    assert!(
        matches!(mr("update", false, 15), Decision::Ignored(why) if why.contains("without new commits"))
    );
    let down = Decision::BiomeDown {
        number: 7,
        last_commit: Some(SHA.into()),
    };
    assert_eq!(mr("close", false, 15), down);
    assert_eq!(mr("merge", false, 15), down);
    assert!(
        matches!(mr("approved", false, 15), Decision::Ignored(why) if why.contains("`approved`"))
    );
    // A fork's merge request runs only where forks are allowed.
    assert!(matches!(mr("open", false, 99), Decision::Ignored(why) if why.contains("fork")));
    let event = gitlab::parse(
        "Merge Request Hook",
        samples::gitlab_merge_request(7, "open", SHA, at, false, 99).as_bytes(),
    )
    .unwrap();
    let forks = Rules {
        allow_forks: true,
        ..rules()
    };
    assert_eq!(decide(&event, &forks), up);
    let ForgeEvent::MergeRequest(parsed) = event else {
        panic!("{event:?}")
    };
    assert_eq!(
        parsed.updated_at.as_deref(),
        Some("2026-12-02T10:00:00.000Z")
    );
    assert_eq!(parsed.user, "alice");
}

#[test]
fn gitlab_payloads_that_do_not_fit_are_refused_and_other_events_ignored() {
    let malformed = gitlab::parse("Push Hook", b"{\"object_kind\": \"push\", ").unwrap_err();
    assert!(
        matches!(&malformed, gitlab::PayloadError::Malformed { detail, .. } if detail.contains("line 1")),
        "{malformed}"
    );
    let mismatch = gitlab::parse(
        "Push Hook",
        samples::gitlab_merge_request(1, "open", SHA, "2026-12-02T10:00:00Z", false, 15).as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(mismatch, gitlab::PayloadError::Mismatch { .. }),
        "{mismatch}"
    );
    let no_ref = gitlab::parse("Push Hook", br#"{"object_kind": "push"}"#).unwrap_err();
    assert!(no_ref.to_string().contains("ref"), "{no_ref}");
    let other = gitlab::parse("Pipeline Hook", b"not even json").unwrap();
    assert!(matches!(other, ForgeEvent::Other { why } if why.contains("Pipeline Hook")));
}

#[test]
fn github_pushes_and_pull_requests_mean_the_same() {
    let push = render(
        samples::GITHUB_PUSH,
        &[
            ("BRANCH", "main"),
            ("SHA", SHA),
            ("BEFORE", ZEROS),
            ("DELETED", "false"),
        ],
    );
    let decided = decide(&github::parse("push", push.as_bytes()).unwrap(), &rules());
    assert_eq!(decided.action(), "pipeline");
    let deleted = push.replace("\"deleted\": false", "\"deleted\": true");
    assert_eq!(
        decide(
            &github::parse("push", deleted.as_bytes()).unwrap(),
            &rules()
        )
        .action(),
        "ignored"
    );
    let pr = |action: &str, head_repo: &str| {
        let body = render(
            samples::GITHUB_PULL_REQUEST,
            &[
                ("ACTION", action),
                ("IID", "12"),
                ("STATE", "open"),
                ("UPDATED_AT", "2026-12-02T10:00:00Z"),
                ("BRANCH", "feature"),
                ("SHA", SHA),
                ("BEFORE", ZEROS),
                ("SOURCE_PROJECT", head_repo),
            ],
        );
        decide(
            &github::parse("pull_request", body.as_bytes()).unwrap(),
            &rules(),
        )
    };
    let up = Decision::BiomeUp {
        number: 12,
        sha: SHA.into(),
    };
    assert_eq!(pr("opened", "35129377"), up);
    assert_eq!(pr("synchronize", "35129377"), up);
    assert_eq!(pr("reopened", "35129377"), up);
    assert_eq!(pr("closed", "35129377").action(), "biome_down");
    assert_eq!(pr("edited", "35129377").action(), "ignored");
    assert_eq!(pr("opened", "1").action(), "ignored");
    assert_eq!(Forge::Github.biome_of(12), "pr-12");
    assert!(github::parse("pull_request", b"[]").is_err());
    assert_eq!(
        decide(&github::parse("ping", b"{}").unwrap(), &rules()).action(),
        "ignored"
    );
}

#[test]
fn a_ci_job_is_the_event_its_variables_describe() {
    let job = ci::CiJob {
        pipeline_source: "push".into(),
        commit_sha: SHA.into(),
        commit_ref_name: "main".into(),
        received_at: "2026-12-02T10:00:00.000Z".into(),
        ..Default::default()
    };
    assert_eq!(
        decide(&ci::event(&job).unwrap(), &rules()).action(),
        "pipeline"
    );
    let tag = ci::CiJob {
        commit_tag: Some("v1".into()),
        commit_ref_name: "v1".into(),
        ..job.clone()
    };
    assert_eq!(
        decide(&ci::event(&tag).unwrap(), &rules()).action(),
        "promotion"
    );
    let mr = ci::CiJob {
        pipeline_source: "merge_request_event".into(),
        merge_request_iid: Some(5),
        merge_request_source_project_id: Some(15),
        merge_request_project_id: Some(15),
        ..job.clone()
    };
    assert_eq!(
        decide(&ci::event(&mr).unwrap(), &rules()),
        Decision::BiomeUp {
            number: 5,
            sha: SHA.into()
        }
    );
    let stop = ci::CiJob {
        stop: true,
        ..mr.clone()
    };
    assert_eq!(
        decide(&ci::event(&stop).unwrap(), &rules()).action(),
        "biome_down"
    );
    let fork = ci::CiJob {
        merge_request_source_project_id: Some(99),
        ..mr.clone()
    };
    assert_eq!(
        decide(&ci::event(&fork).unwrap(), &rules()).action(),
        "ignored"
    );
    for bad in [
        ci::CiJob {
            commit_sha: "abc".into(),
            ..job.clone()
        },
        ci::CiJob {
            stop: true,
            ..job.clone()
        },
        ci::CiJob {
            pipeline_source: "merge_request_event".into(),
            ..job.clone()
        },
    ] {
        assert!(ci::event(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn an_older_merge_request_event_never_undoes_a_newer_one() {
    let mark = |action: &str, at: &str| Delivery {
        id: 9,
        project: "shop".into(),
        forge: "gitlab".into(),
        event: "Merge Request Hook".into(),
        delivery_key: None,
        received_at: at.into(),
        status: 202,
        action: action.into(),
        summary: String::new(),
        pipeline_id: Some(3),
        biome: Some("mr-7".into()),
        sha: Some(SHA.into()),
        merge_request: Some(7),
        mr_updated_at: Some(at.into()),
    };
    let newer = "2026-12-02T10:00:05.000Z";
    let older = "2026-12-02T10:00:01.000Z";
    let why = older_than_mark(Some(older), Some(&mark("biome_down", newer))).unwrap();
    assert!(why.contains("took the biome down"), "{why}");
    let why = older_than_mark(Some(older), Some(&mark("biome_up", newer))).unwrap();
    assert!(why.contains(SHA), "{why}");
    assert_eq!(
        older_than_mark(Some(newer), Some(&mark("biome_up", older))),
        None
    );
    assert_eq!(
        older_than_mark(Some(newer), Some(&mark("biome_up", newer))),
        None
    );
    assert_eq!(older_than_mark(None, Some(&mark("biome_up", newer))), None);
    assert_eq!(older_than_mark(Some(older), None), None);
}

#[test]
fn forge_users_become_safe_requester_names() {
    assert_eq!(forge_user(Forge::Gitlab, "alice"), "gitlab:alice");
    assert_eq!(forge_user(Forge::Github, "a\nb; rm -rf"), "github:abrm-rf");
    assert_eq!(forge_user(Forge::GitlabCi, ""), "gitlab:unknown");
}
