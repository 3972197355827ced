//! `sandpit log-writer --for LABEL --log FILE --max-bytes N`: copies one component's output into
//! its log as timestamped records. Started by the daemon next to every component (see
//! `sandpit_runtime::log_writer`); not meant to be run by hand.
//!
//! Its standard descriptors are not the usual ones: stdin is the read end of the component's
//! stdout pipe, stdout the read end of its stderr pipe, stderr the log itself (so the writer's
//! own complaints land there too). It runs with an empty environment besides the supervisor's
//! marker, and reads no settings.

use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The component, as `project/biome/component` (shown by `ps`; nothing else reads it).
    #[arg(long = "for")]
    label: String,
    /// The log file, for rotating it (the records go to stderr, which is that file).
    #[arg(long)]
    log: PathBuf,
    /// Rotate the log past this size.
    #[arg(long)]
    max_bytes: u64,
}

pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let take = |what: &str, fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .with_context(|| format!("log writer for {}: cannot take {what}", args.label))
    };
    let pipes = sandpit_runtime::log_writer::Pipes {
        stdout: take("stdin (the component's stdout)", std::io::stdin().as_fd())?,
        stderr: take("stdout (the component's stderr)", std::io::stdout().as_fd())?,
        log: std::fs::File::from(take("stderr (the log)", std::io::stderr().as_fd())?),
        path: args.log.clone(),
        max_bytes: args.max_bytes,
    };
    sandpit_runtime::log_writer::run(pipes)
        .await
        .with_context(|| format!("log writer for {}", args.label))?;
    Ok(ExitCode::SUCCESS)
}
