//! `sandpit up [BIOME] [--sha REV] [--env ENV] [--allow-dirty] [--json]`

use std::process::ExitCode;

use sandpit_ops::up::UpOptions;
use sandpit_ops::Context;
use serde::Serialize;

use crate::commands::build::BuildJson;
use crate::output;
use crate::progress::TerminalProgress;
use sandpit_server::wire::status::BiomeDetail;

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
    #[command(flatten)]
    build: super::build::BuildArgs,
}

#[derive(Debug, Serialize)]
struct UpJson {
    build: BuildJson,
    #[serde(flatten)]
    biome: BiomeDetail,
    /// `false` when the biome already ran exactly this and nothing was done.
    changed: bool,
    /// Milliseconds per phase of the `up`, in the order they ran.
    timings: std::collections::BTreeMap<&'static str, f64>,
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let options = UpOptions {
        biome: args.biome.clone(),
        env: args.env.clone(),
        build: args.build.options(),
        reset_db: args.reset_db,
    };
    let mut progress = TerminalProgress::new(json);
    let outcome = sandpit_ops::up::up(context, &options, &mut progress, |component, message| {
        if !json {
            output::print_event(component, message);
        }
    })
    .await?;
    if json {
        output::print_json(&UpJson {
            build: BuildJson::from(&outcome.build.report),
            biome: BiomeDetail::new(&outcome.status, None),
            changed: outcome.changed,
            timings: outcome
                .timings
                .phases()
                .iter()
                .map(|(phase, took)| (phase.as_str(), took.as_secs_f64() * 1000.0))
                .collect(),
        })?;
    } else {
        let status = &outcome.status;
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
            println!(
                "  {:<20} {}",
                component.name.as_str(),
                component.url.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
