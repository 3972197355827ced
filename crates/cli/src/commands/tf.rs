//! `sandpit tf state|unlock TARGET COMPONENT`: a Terraform component's state as this home's
//! backend keeps it (versions, lock), and clearing a lock a killed run left behind.

use std::process::ExitCode;

use sandpit_ops::Context;
use sandpit_tfstate::{LockInfo, StateKey};

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// The kept versions of a component's state (seq, serial, lineage, when, size) and its lock.
    State(StateArgs),
    /// Clear a component's state lock whoever holds it (a killed apply's), saying who held it.
    Unlock(StateArgs),
}

#[derive(Debug, clap::Args)]
struct StateArgs {
    /// ENV (the environment's base), ENV/BIOME or BIOME.
    target: String,
    /// The `[terraform.<name>]` component.
    component: String,
}

/// Through a control plane the states are on the server's machine, which `tf` does not reach yet.
pub fn local_only() -> anyhow::Error {
    sandpit_ops::error::failure(
        sandpit_ops::error::ErrorKind::InvalidInput,
        "`sandpit tf` reads the Terraform states this machine's daemon keeps; it does not work through a control plane yet\nhint: run it on the machine that runs the biome, or pass --local for this machine's states",
    )
}

fn lock_json(lock: Option<&LockInfo>) -> serde_json::Value {
    serde_json::to_value(lock).expect("a LockInfo always encodes")
}

fn key_json(key: &StateKey) -> serde_json::Value {
    serde_json::json!({
        "state": key.path(),
        "project": key.project, "environment": key.environment, "biome": key.biome,
        "component": key.component,
    })
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

pub fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::State(args) => {
            let report = sandpit_ops::tf::state(context, &args.target, &args.component)?;
            if json {
                let mut value = key_json(&report.key);
                value["versions"] = report
                    .versions
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "seq": v.seq, "serial": v.serial, "lineage": v.lineage,
                            "written_at": humantime::format_rfc3339_seconds(v.written_at).to_string(),
                            "bytes": v.bytes,
                        })
                    })
                    .collect();
                value["lock"] = lock_json(report.lock.as_ref());
                output::print_json(&value)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("terraform state {}", report.key);
            if report.versions.is_empty() {
                println!("  no state yet");
            } else {
                println!(
                    "  {:>5}  {:>7}  {:<38}  {:<20}  size",
                    "seq", "serial", "lineage", "written"
                );
                for version in &report.versions {
                    println!(
                        "  {:>5}  {:>7}  {:<38}  {:<20}  {}",
                        version.seq,
                        version.serial,
                        version.lineage,
                        humantime::format_rfc3339_seconds(version.written_at).to_string(),
                        size(version.bytes)
                    );
                }
            }
            match &report.lock {
                Some(lock) => println!("  {}", lock.describe()),
                None => println!("  not locked"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Unlock(args) => {
            let report = sandpit_ops::tf::unlock(context, &args.target, &args.component)?;
            if json {
                let mut value = key_json(&report.key);
                value["cleared"] = lock_json(report.cleared.as_ref());
                output::print_json(&value)?;
            } else {
                match &report.cleared {
                    Some(lock) => println!(
                        "unlocked terraform state {}: it was {}",
                        report.key,
                        lock.describe()
                    ),
                    None => println!("terraform state {} is not locked", report.key),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_are_shown_in_the_unit_that_fits() {
        for (bytes, shown) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (5 * 1024 * 1024, "5.0 MiB"),
        ] {
            assert_eq!(super::size(bytes), shown);
        }
    }
}
