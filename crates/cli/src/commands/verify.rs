//! `sandpit verify [ENV] [--json]`: every stored artifact and every running one re-hashed; exit 1
//! when anything does not match its digest.

use std::process::ExitCode;

use sandpit_artifact::store::Integrity;
use sandpit_ops::Context;
use serde::Serialize;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check only this environment's store and what runs in it.
    #[arg(value_parser = crate::arguments::name)]
    env: Option<String>,
    /// Replace each damaged stored artifact with an intact copy of the same digest from another
    /// store (the damaged file is kept in the store's `quarantine/`), then check again.
    #[arg(long)]
    repair: bool,
}

#[derive(Debug, Serialize)]
struct VerifyJson {
    /// With `--repair`: what was repaired (or could not be), before the check.
    repairs: Vec<RepairJson>,
    ok: bool,
    problems: usize,
    daemon_running: bool,
    stores: Vec<StoreJson>,
    running: Vec<RunningJson>,
}

#[derive(Debug, Serialize)]
struct StoreJson {
    store: String,
    root: String,
    #[serde(flatten)]
    artifacts: sandpit_server::wire::artifacts::ArtifactList,
}

#[derive(Debug, Serialize)]
struct RunningJson {
    target: String,
    component: String,
    artifact: String,
    digest: String,
    store: String,
    /// `intact|modified|missing|unreadable`
    integrity: &'static str,
    actual_digest: Option<String>,
}

#[derive(Debug, Serialize)]
struct RepairJson {
    store: String,
    artifact: String,
    from: Option<String>,
    repaired: bool,
    error: Option<String>,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let repairs = if args.repair {
        sandpit_ops::verify::repair(context, args.env.as_deref()).await?
    } else {
        Vec::new()
    };
    if !json {
        for r in &repairs {
            match (&r.error, &r.from) {
                (None, Some(from)) => println!(
                    "repaired {} in the {} store: copied from the {from} store",
                    r.artifact, r.store
                ),
                (Some(error), _) => println!(
                    "could not repair {} in the {} store: {error}",
                    r.artifact, r.store
                ),
                (None, None) => {}
            }
        }
    }
    let report = sandpit_ops::verify::verify(context, args.env.as_deref()).await?;
    let problems = report.problems();
    if json {
        output::print_json(&VerifyJson {
            repairs: repairs
                .iter()
                .map(|r| RepairJson {
                    store: r.store.clone(),
                    artifact: r.artifact.clone(),
                    from: r.from.clone(),
                    repaired: r.error.is_none(),
                    error: r.error.clone(),
                })
                .collect(),
            ok: problems == 0,
            problems,
            daemon_running: report.daemon_running,
            stores: report
                .stores
                .iter()
                .map(|s| StoreJson {
                    store: s.store.clone(),
                    root: s.root.display().to_string(),
                    artifacts: sandpit_server::wire::artifacts::ArtifactList::from(&s.check),
                })
                .collect(),
            running: report
                .running
                .iter()
                .map(|r| RunningJson {
                    target: r.target.clone(),
                    component: r.component.clone(),
                    artifact: r.artifact.clone(),
                    digest: r.digest.to_string(),
                    store: r.store.clone(),
                    integrity: r
                        .integrity
                        .as_ref()
                        .map(sandpit_server::wire::artifacts::integrity_word)
                        .unwrap_or("missing"),
                    actual_digest: match &r.integrity {
                        Some(Integrity::Modified { actual }) => Some(actual.to_string()),
                        _ => None,
                    },
                })
                .collect(),
        })?;
    } else {
        for store in &report.stores {
            let total = store.check.artifacts.len();
            let bad: Vec<String> = store
                .check
                .artifacts
                .iter()
                .filter_map(|a| {
                    sandpit_server::wire::artifacts::Artifact::from(a).integrity_problem()
                })
                .chain(
                    store
                        .check
                        .unreadable_records
                        .iter()
                        .map(|r| format!("{}: {}", r.name.file_name(), r.message)),
                )
                .collect();
            let label = if store.store == "build" {
                "build store".to_owned()
            } else {
                format!("`{}`'s store", store.store)
            };
            if bad.is_empty() {
                println!("{label}: {total} artifact(s), all intact");
            } else {
                println!("{label}: {} of {total} artifact(s) damaged", bad.len());
                for problem in bad {
                    println!("  {problem}");
                }
            }
        }
        if !report.daemon_running {
            println!("running: nothing (the daemon is not running)");
        }
        let mut running = output::Table::new(&[
            ("", output::Align::Left),
            ("TARGET", output::Align::Left),
            ("COMPONENT", output::Align::Left),
            ("ARTIFACT", output::Align::Left),
            ("STATE", output::Align::Left),
        ])
        .without_header();
        for r in &report.running {
            let state = match &r.integrity {
                None => format!("MISSING from the {} store", r.store),
                Some(Integrity::Intact { .. }) => "intact".to_owned(),
                Some(Integrity::Modified { actual }) => {
                    format!("MODIFIED: should be {} but is {actual}", r.digest)
                }
                Some(Integrity::Missing) => format!("MISSING: no blob for {}", r.digest),
                Some(Integrity::Unreadable { message }) => format!("UNREADABLE: {message}"),
            };
            running.row(vec![
                "running".to_owned(),
                r.target.clone(),
                r.component.clone(),
                r.artifact.clone(),
                state,
            ]);
        }
        running.print();
        if problems > 0 {
            eprintln!(
                "error: {problems} artifact(s) do not match their digests\nhint: `sandpit verify --repair` replaces each with an intact copy from another store (keeping the damaged file in the store's quarantine/); `sandpit build` rebuilds the build store's"
            );
        }
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
