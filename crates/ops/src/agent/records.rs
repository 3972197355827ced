//! What an agent has done with each manifest of its store (`Seen` per sequence), kept in
//! `$SANDPIT_HOME/agent/<project>/<env>/seen.json` and replaced atomically on every change, so
//! an agent that restarts picks up where it stopped and never applies a manifest twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sandpit_domain::Name;
use sandpit_manifest::Seen;
use serde::{Deserialize, Serialize};

/// One manifest's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    id: String,
    state: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// The store these sequences are of: a record never applies to another store.
    store: String,
    manifests: BTreeMap<u64, Entry>,
}

/// The records of one agent (a project's environment, fed by one store).
#[derive(Debug)]
pub struct Records {
    path: PathBuf,
    file: File,
}

fn state_text(seen: Seen) -> &'static str {
    match seen {
        Seen::Applied => "applied",
        Seen::Refused => "refused",
        Seen::Superseded => "superseded",
        Seen::Started => "started",
    }
}

fn state_of(text: &str) -> Option<Seen> {
    Some(match text {
        "applied" => Seen::Applied,
        "refused" => Seen::Refused,
        "superseded" => Seen::Superseded,
        "started" => Seen::Started,
        _ => return None,
    })
}

pub fn records_path(home: &Path, project: &Name, env: &Name) -> PathBuf {
    home.join("agent")
        .join(project.as_str())
        .join(env.as_str())
        .join("seen.json")
}

impl Records {
    /// The records at `path` for `store` (none yet: empty). Records of another store are an
    /// error: its sequences mean other manifests.
    pub fn load(path: PathBuf, store: &str) -> anyhow::Result<Records> {
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<File>(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not an agent's record ({e})\nhint: it was changed by hand; move it away to start over (every manifest in the store is then considered new)",
                    path.display()
                )
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => File {
                store: store.to_owned(),
                manifests: BTreeMap::new(),
            },
            Err(error) => anyhow::bail!("cannot read {}: {error}", path.display()),
        };
        if file.store != store {
            crate::fail!(
                Conflict,
                "this agent's records ({}) are of the store {}, not {store}\nhint: run the agent with --store {} again, or move the records away to follow the new store from its first manifest",
                path.display(),
                file.store,
                file.store
            );
        }
        Ok(Records { path, file })
    }

    /// What is recorded, per sequence, as `next_action` reads it.
    pub fn seen(&self) -> BTreeMap<u64, Seen> {
        self.file
            .manifests
            .iter()
            .filter_map(|(sequence, entry)| Some((*sequence, state_of(&entry.state)?)))
            .collect()
    }

    /// Records `seen` for the manifest `sequence`/`id` and writes the file at once.
    pub fn mark(&mut self, sequence: u64, id: &str, seen: Seen) -> anyhow::Result<()> {
        self.file.manifests.insert(
            sequence,
            Entry {
                id: id.to_owned(),
                state: state_text(seen).to_owned(),
            },
        );
        let bytes = serde_json::to_vec_pretty(&self.file)?;
        let dir = self.path.parent().expect("has a directory");
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        sandpit_runtime::state_file::write_atomically(&self.path, &bytes)
            .map_err(|e| anyhow::anyhow!("cannot record what the agent did: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart_and_belong_to_one_store() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("agent/shop/prod/seen.json");
        let mut records = Records::load(path.clone(), "s3://prod/shop").unwrap();
        assert!(records.seen().is_empty());
        records.mark(1, "a", Seen::Started).unwrap();
        records.mark(1, "a", Seen::Applied).unwrap();
        records.mark(2, "b", Seen::Refused).unwrap();
        let again = Records::load(path.clone(), "s3://prod/shop").unwrap();
        assert_eq!(
            again.seen(),
            [(1, Seen::Applied), (2, Seen::Refused)]
                .into_iter()
                .collect()
        );
        let error = Records::load(path, "s3://other/shop")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not s3://other/shop"), "{error}");
    }
}
