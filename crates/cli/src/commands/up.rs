//! `sandpit up [BIOME] [--env ENV] [--sha REV | --branch B] [--allow-dirty] [--reset-db]
//! [--overlay | --no-overlay] [--json]`:
//! on this machine, or with a control plane, on the server's (which builds only a pushed commit).

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::error::{failure, ErrorKind};
use sandpit_ops::up::UpOptions;
use sandpit_ops::Context;
use sandpit_server::wire::changes::{UpRequest, UpResult};

use crate::checkout::{requested_commit, Checkout};
use crate::output;
use crate::progress::TerminalProgress;
use crate::remote::{project_path, Remote};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The biome (default: named after the current git branch).
    #[arg(value_parser = crate::arguments::biome)]
    biome: Option<String>,
    /// The environment the biome belongs to (default: the first with `biomes = true`).
    #[arg(long, value_name = "ENV", value_parser = crate::arguments::name)]
    env: Option<String>,
    /// Re-clone the biome's database from the new template when the migrations changed
    /// (its data is lost).
    #[arg(long)]
    reset_db: bool,
    /// Run only the components whose artifacts differ from the environment base's; the base's
    /// running instances serve the other services (default: `[biomes] overlay`).
    #[arg(long, conflicts_with = "no_overlay")]
    overlay: bool,
    /// Run every component in the biome, even with `[biomes] overlay = true`.
    #[arg(long)]
    no_overlay: bool,
    /// Build the head of this branch (with a control plane: of the project's repository).
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
    #[command(flatten)]
    build: super::build::BuildArgs,
}

impl Args {
    /// `--overlay`, `--no-overlay`, or neither (`None`: as the project says).
    fn overlay(&self) -> Option<bool> {
        match (self.overlay, self.no_overlay) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let mut build = args.build.options();
    if let Some(branch) = &args.branch {
        if build.rev.is_some() {
            return Err(both_revisions());
        }
        build.rev = Some(branch.clone());
    }
    let options = UpOptions {
        biome: args.biome.clone(),
        env: args.env.clone(),
        build,
        reset_db: args.reset_db,
        overlay: args.overlay(),
    };
    let mut progress = TerminalProgress::new(json);
    let outcome = sandpit_ops::up::up(context, &options, &mut progress, |component, message| {
        if !json {
            output::print_event(component, message);
        }
    })
    .await?;
    print(&UpResult::from(&outcome), json)
}

/// `up` on the control plane: the biome and the commit resolved from the checkout here (when
/// there is one), sent explicitly.
pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&std::path::Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if args.build.allow_dirty() {
        return Err(failure(
            ErrorKind::InvalidInput,
            "--allow-dirty builds uncommitted changes, and a control plane builds only pushed commits\nhint: commit and push them, or pass --local to bring the biome up on this machine",
        ));
    }
    let checkout = Checkout::find(directory);
    let biome = match (&args.biome, &checkout) {
        (Some(biome), _) => biome.clone(),
        (None, Some(checkout)) => checkout.default_biome("name it: `sandpit up NAME`")?,
        (None, None) => {
            return Err(failure(
                ErrorKind::InvalidInput,
                "there is no checkout here to name the biome after its branch\nhint: name it: `sandpit up NAME`",
            ))
        }
    };
    let (sha, branch) =
        requested_commit(checkout.as_ref(), args.build.sha(), args.branch.as_deref())?;
    let overlay = args.overlay();
    let request = UpRequest {
        biome,
        env: args.env,
        sha,
        branch,
        reset_db: args.reset_db,
        overlay,
    };
    let path = format!("{}/biomes", project_path(project));
    let mut answer: UpResult = remote.change(Method::POST, &path, Some(&request)).await?;
    output::print_events(&answer.events);
    answer.events.clear();
    print(&answer, json)
}

fn both_revisions() -> anyhow::Error {
    failure(
        ErrorKind::InvalidInput,
        "--sha and --branch name two commits\nhint: give one of them",
    )
}

fn print(outcome: &UpResult, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(outcome)?;
        return Ok(ExitCode::SUCCESS);
    }
    let status = &outcome.biome;
    if outcome.changed {
        println!(
            "biome `{}` is up in `{}` at {}",
            status.biome, status.env, status.sha
        );
    } else {
        println!(
            "biome `{}` is already up in `{}` at {}, healthy; nothing changed",
            status.biome, status.env, status.sha
        );
    }
    for component in status.components.iter().filter(|c| c.url.is_some()) {
        let borrowed = component
            .borrowed_from
            .as_ref()
            .map(|lender| format!("  (borrowed from {lender})"))
            .unwrap_or_default();
        println!(
            "  {:<20} {}{borrowed}",
            component.name,
            component.url.as_deref().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
