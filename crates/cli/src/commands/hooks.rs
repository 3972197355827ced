//! `sandpit hooks [--project P]`: the webhook deliveries a control plane recorded (and the
//! requests of `sandpit ci` jobs), newest first — what each asked for and what it started.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_server::wire::hooks::HookDeliveryList;

use crate::output::{self, Align, Table};
use crate::remote::{self, Remote};
use crate::settings::RemoteSettings;

/// `sandpit hooks`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,
}

pub async fn exec(
    settings: &RemoteSettings,
    project: Option<&str>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_settings(settings)?;
    let mut path = format!("/api/v1/hooks?limit={}", args.limit);
    if let Some(project) = project {
        path.push_str(&format!("&project={}", remote::query_value(project)));
    }
    let list: HookDeliveryList = remote.call(Method::GET, &path, None::<&()>).await?;
    if json {
        output::print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("RECEIVED", Align::Left),
        ("PROJECT", Align::Left),
        ("FORGE", Align::Left),
        ("EVENT", Align::Left),
        ("STATUS", Align::Right),
        ("ACTION", Align::Left),
        ("PIPELINE", Align::Right),
        ("BIOME", Align::Left),
    ]);
    for delivery in &list.deliveries {
        table.row(vec![
            delivery.id.to_string(),
            delivery.received_at.clone(),
            delivery.project.clone(),
            delivery.forge.clone(),
            delivery.event.clone(),
            delivery.status.to_string(),
            delivery.action.clone(),
            delivery
                .pipeline
                .map_or("-".to_owned(), |id| format!("#{id}")),
            delivery.biome.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
        table.note(delivery.summary.clone());
    }
    table.print();
    Ok(ExitCode::SUCCESS)
}
