//! `sandpit logs BIOME COMPONENT`: a component's log, optionally followed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use crate::Context;

/// Finds the component's log file through the daemon's status of the biome.
pub async fn log_path(
    context: &Context,
    biome: Option<&str>,
    component: &str,
) -> anyhow::Result<PathBuf> {
    let status = crate::status::status(context, biome).await?;
    match status
        .components
        .iter()
        .find(|c| c.name.as_str() == component)
    {
        Some(found) => Ok(found.log.clone()),
        None => bail!(
            "biome `{}` has no component `{component}`; it has: {}",
            status.biome,
            status
                .components
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Prints the last `tail` lines, then (when `follow`) everything appended, until interrupted.
pub async fn show(
    path: PathBuf,
    tail: usize,
    follow: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let text = sandpit_runtime::logs::tail(&path, tail);
    if !text.is_empty() {
        writeln!(out, "{text}")?;
    }
    out.flush()?;
    if !follow {
        return Ok(());
    }
    let mut position = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size < position {
            // Rotated (copy-truncate): start again from the beginning of the new file.
            position = 0;
        }
        if size > position {
            let mut file = File::open(&path)?;
            file.seek(SeekFrom::Start(position))?;
            let mut bytes = Vec::new();
            file.take(size - position).read_to_end(&mut bytes)?;
            out.write_all(&bytes)?;
            out.flush()?;
            position = size;
        }
    }
}
