//! A checkout's project: the directory with `sandpit.toml`, inside a git repository (see
//! [`crate::source::Source::Checkout`]); and the checks of a parsed `sandpit.toml` every source shares.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sandpit_domain::Name;
use sandpit_spec::Spec;

use crate::error::{failure, ErrorKind};

/// A project found on disk.
#[derive(Debug, Clone)]
pub struct ProjectDir {
    /// The directory holding `sandpit.toml`.
    pub root: PathBuf,
}

impl ProjectDir {
    /// Looks for `sandpit.toml` in `start` and its parents, as cargo does for `Cargo.toml`.
    pub fn locate(start: &Path) -> anyhow::Result<ProjectDir> {
        let start = start
            .canonicalize()
            .with_context(|| format!("cannot use {} as the project directory", start.display()))?;
        let mut dir = Some(start.as_path());
        while let Some(candidate) = dir {
            if candidate.join(sandpit_spec::FILE_NAME).is_file() {
                return Ok(ProjectDir {
                    root: candidate.to_path_buf(),
                });
            }
            dir = candidate.parent();
        }
        crate::fail!(
            NotFound,
            "no {} in {} or any parent directory\nhint: run `sandpit init` to write a starter file, or pass `-C DIR`",
            sandpit_spec::FILE_NAME,
            start.display()
        )
    }

    /// Reads and validates the working tree's `sandpit.toml`.
    pub fn load_spec(&self) -> anyhow::Result<Spec> {
        let path = self.root.join(sandpit_spec::FILE_NAME);
        let source =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        parse_spec(&source)
    }

    /// Only the project name, for commands that need nothing else.
    pub fn project_name(&self) -> anyhow::Result<Name> {
        Ok(self.load_spec()?.project.name)
    }
}

/// Parses a `sandpit.toml`, turning diagnostics into one error that lists them all.
pub fn parse_spec(source: &str) -> anyhow::Result<Spec> {
    sandpit_spec::parse(source)
        .map_err(|diagnostics| failure(ErrorKind::InvalidInput, diagnostics.to_string()))
}

/// The environment biomes go into: the one asked for, or the first with `biomes = true`.
pub fn biome_environment(spec: &Spec, requested: Option<&str>) -> anyhow::Result<Name> {
    match requested {
        Some(raw) => {
            let name = Name::parse(raw).map_err(crate::error::name_refused)?;
            match spec.environments.get(&name) {
                Some(env) if env.biomes => Ok(name),
                Some(_) => crate::fail!(
                    InvalidInput,
                    "environment `{name}` does not host biomes\nhint: set `biomes = true` under [environments.{name}] in sandpit.toml"
                ),
                None => crate::fail!(
                    NotFound,
                    "there is no environment `{name}`; sandpit.toml declares: {}",
                    spec.environments.keys().map(Name::as_str).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        None => spec
            .environments
            .values()
            .find(|env| env.biomes)
            .map(|env| env.name.clone())
            .ok_or_else(|| {
                failure(
                    ErrorKind::InvalidInput,
                    "no environment in sandpit.toml hosts biomes\nhint: add `biomes = true` under [environments.dev]",
                )
            }),
    }
}
