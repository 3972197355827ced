//! Payloads shaped exactly as GitLab and GitHub send them, with placeholders, for tests here
//! and in the end-to-end suite (`{{SHA}}`, `{{BRANCH}}`, `{{IID}}`, …).

pub const GITLAB_PUSH: &str = include_str!("testdata/gitlab-push.json");
pub const GITLAB_TAG_PUSH: &str = include_str!("testdata/gitlab-tag-push.json");
pub const GITLAB_MERGE_REQUEST: &str = include_str!("testdata/gitlab-merge-request.json");
pub const GITHUB_PUSH: &str = include_str!("testdata/github-push.json");
pub const GITHUB_PULL_REQUEST: &str = include_str!("testdata/github-pull-request.json");

/// `template` with each `{{KEY}}` replaced by its value.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_owned();
    for (key, value) in values {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    text
}

/// A GitLab push of `sha` to `branch`.
pub fn gitlab_push(branch: &str, sha: &str) -> String {
    render(
        GITLAB_PUSH,
        &[
            ("BRANCH", branch),
            ("SHA", sha),
            ("BEFORE", "0123456701234567012345670123456701234567"),
        ],
    )
}

/// A GitLab merge request event: `action` (`open`, `update`, `close`, `merge`, …) of merge
/// request `iid` at `sha`, at `updated_at`; `new_commits` adds the `oldrev` an update with
/// new commits carries; `source_project` 15 is the target project itself.
pub fn gitlab_merge_request(
    iid: u64,
    action: &str,
    sha: &str,
    updated_at: &str,
    new_commits: bool,
    source_project: u64,
) -> String {
    let state = match action {
        "close" => "closed",
        "merge" => "merged",
        _ => "opened",
    };
    let oldrev = if new_commits {
        ",\n    \"oldrev\": \"0123456701234567012345670123456701234567\"".to_owned()
    } else {
        String::new()
    };
    let changes = if action == "update" && !new_commits {
        r#"{ "title": { "previous": "Draft: Better model", "current": "Better model" } }"#
    } else {
        "{}"
    };
    render(
        GITLAB_MERGE_REQUEST,
        &[
            ("IID", &iid.to_string()),
            ("ACTION", action),
            ("STATE", state),
            ("SHA", sha),
            ("UPDATED_AT", updated_at),
            ("OLDREV", &oldrev),
            ("CHANGES", changes),
            ("SOURCE_PROJECT", &source_project.to_string()),
            ("BRANCH", "feature/better-model"),
        ],
    )
}
