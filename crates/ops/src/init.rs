//! `sandpit init`: write a commented starter `sandpit.toml`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use sandpit_domain::Name;

/// Writes the starter file into `dir`; refuses to overwrite one that exists.
pub fn init(dir: &Path, name: Option<&str>) -> anyhow::Result<PathBuf> {
    let path = dir.join(sandpit_spec::FILE_NAME);
    if path.exists() {
        bail!(
            "{} already exists; edit it, or remove it to start over",
            path.display()
        );
    }
    let name = match name {
        Some(raw) => Name::parse(raw).map_err(crate::error::name_refused)?,
        None => {
            let dir_name = dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            Name::sanitize(&dir_name).unwrap_or_else(|| Name::parse("my-project").expect("valid"))
        }
    };
    fs::write(&path, sandpit_spec::starter_file(name.as_str()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
