//! The merge request note's text, pure: a biome's URLs, database, model versions and the
//! deployment's artifacts with their digests, or that the biome was removed. The whole note is
//! rendered each time, so the newest text replaces the older in place.

use std::fmt::Write as _;

/// How the biome's pipeline ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteOutcome {
    /// Up and running what the facts list.
    Up,
    /// The pipeline failed, with why; what ran before (if anything) is listed.
    Failed(String),
    /// The merge request was closed or merged: the biome, its database and models are gone.
    Removed,
}

/// One line of a table: a name, and what it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub component: String,
    /// `<component>-<version>.zip`
    pub artifact: String,
    pub digest: String,
}

/// Everything the note says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteFacts {
    pub biome: String,
    pub env: String,
    pub commit: String,
    pub pipeline_id: i64,
    /// The link to the pipeline, when the server's public URL is known.
    pub pipeline_url: Option<String>,
    pub outcome: NoteOutcome,
    /// Each service and its URL (`None`: it has none now).
    pub services: Vec<(String, Option<String>)>,
    pub database: Option<String>,
    /// The models the biome's endpoint answers with.
    pub models: Vec<Artifact>,
    /// What the deployment runs.
    pub artifacts: Vec<Artifact>,
}

/// The first line of every note sandpit keeps, so a reader (or a later tool) can tell it apart.
pub fn marker(biome: &str) -> String {
    format!("<!-- sandpit biome {biome} -->")
}

/// The note's Markdown.
pub fn render(facts: &NoteFacts) -> String {
    let mut note = String::new();
    let _ = writeln!(note, "{}", marker(&facts.biome));
    let short: String = facts.commit.chars().take(12).collect();
    let pipeline = match &facts.pipeline_url {
        Some(url) => format!("[pipeline #{}]({url})", facts.pipeline_id),
        None => format!("pipeline #{}", facts.pipeline_id),
    };
    let headline = match &facts.outcome {
        NoteOutcome::Up => "is up",
        NoteOutcome::Failed(_) => "failed to come up",
        NoteOutcome::Removed => "was removed",
    };
    let _ = writeln!(
        note,
        "### sandpit: biome `{}` in `{}` {headline}\n",
        cell(&facts.biome),
        cell(&facts.env)
    );
    let _ = writeln!(note, "Commit `{short}`, {pipeline}.\n");
    match &facts.outcome {
        NoteOutcome::Removed => {
            note.push_str(
                "Its services were stopped, its database dropped and its models unregistered.\n",
            );
            return note;
        }
        NoteOutcome::Failed(why) => {
            let _ = writeln!(note, "> {}\n", cell(why.lines().next().unwrap_or_default()));
        }
        NoteOutcome::Up => {}
    }
    if !facts.services.is_empty() {
        note.push_str("| service | URL |\n|---|---|\n");
        for (service, url) in &facts.services {
            let _ = writeln!(
                note,
                "| {} | {} |",
                cell(service),
                url.as_deref().map_or("—".to_owned(), cell)
            );
        }
        note.push('\n');
    }
    if let Some(database) = &facts.database {
        let _ = writeln!(note, "Database: `{}`\n", cell(database));
    }
    if !facts.models.is_empty() {
        note.push_str("| model | version | digest |\n|---|---|---|\n");
        for model in &facts.models {
            let _ = writeln!(
                note,
                "| {} | `{}` | `{}` |",
                cell(&model.component),
                cell(version_of(model)),
                cell(&model.digest)
            );
        }
        note.push('\n');
    }
    if !facts.artifacts.is_empty() {
        note.push_str("| component | artifact | digest |\n|---|---|---|\n");
        for artifact in &facts.artifacts {
            let _ = writeln!(
                note,
                "| {} | `{}` | `{}` |",
                cell(&artifact.component),
                cell(&artifact.artifact),
                cell(&artifact.digest)
            );
        }
    }
    note
}

/// The version in `<component>-<version>.zip`, or the whole name when it is not shaped so.
fn version_of(model: &Artifact) -> &str {
    model
        .artifact
        .strip_prefix(&format!("{}-", model.component))
        .and_then(|rest| rest.strip_suffix(".zip"))
        .unwrap_or(&model.artifact)
}

/// `text` safe inside a table cell or inline code: one line, no `|` or backtick to break out.
fn cell(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '|' => '¦',
            '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(outcome: NoteOutcome) -> NoteFacts {
        NoteFacts {
            biome: "mr-3".to_owned(),
            env: "dev".to_owned(),
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            pipeline_id: 7,
            pipeline_url: Some("http://127.0.0.1:7780/api/v1/pipelines/7".to_owned()),
            outcome,
            services: vec![
                ("web".to_owned(), Some("http://127.0.0.1:41000".to_owned())),
                ("worker".to_owned(), None),
            ],
            database: Some("demo_mr_3".to_owned()),
            models: vec![Artifact {
                component: "scorer".to_owned(),
                artifact: "scorer-0123456789ab.zip".to_owned(),
                digest: "sha256:aa".to_owned(),
            }],
            artifacts: vec![Artifact {
                component: "web".to_owned(),
                artifact: "web-0123456789ab.zip".to_owned(),
                digest: "sha256:bb".to_owned(),
            }],
        }
    }

    #[test]
    fn an_up_biome_lists_urls_database_models_and_digests() {
        assert_eq!(
            render(&facts(NoteOutcome::Up)),
            "<!-- sandpit biome mr-3 -->
### sandpit: biome `mr-3` in `dev` is up

Commit `0123456789ab`, [pipeline #7](http://127.0.0.1:7780/api/v1/pipelines/7).

| service | URL |
|---|---|
| web | http://127.0.0.1:41000 |
| worker | — |

Database: `demo_mr_3`

| model | version | digest |
|---|---|---|
| scorer | `0123456789ab` | `sha256:aa` |

| component | artifact | digest |
|---|---|---|
| web | `web-0123456789ab.zip` | `sha256:bb` |
"
        );
    }

    #[test]
    fn a_failure_says_why_and_a_removal_says_only_that() {
        let failed = render(&facts(NoteOutcome::Failed(
            "stage `up` failed: web | crashed\nmore".to_owned(),
        )));
        assert!(
            failed.contains("failed to come up\n\nCommit `0123456789ab`, [pipeline #7]"),
            "{failed}"
        );
        assert!(
            failed.contains("> stage 'up' failed: web ¦ crashed\n"),
            "one line, nothing that breaks out of the quote: {failed}"
        );
        let mut removed = facts(NoteOutcome::Removed);
        removed.pipeline_url = None;
        assert_eq!(
            render(&removed),
            "<!-- sandpit biome mr-3 -->
### sandpit: biome `mr-3` in `dev` was removed

Commit `0123456789ab`, pipeline #7.

Its services were stopped, its database dropped and its models unregistered.
"
        );
    }
}
