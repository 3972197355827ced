//! Where configuration variables are kept, under `projects/<p>/config/` (0700; every file 0600,
//! every directory 0700, since values may be secrets):
//!
//! ```text
//! <env>/vars.json                     the environment's own variables (its base's, and what its biomes inherit)
//! <env>/biomes/<biome>.json           a biome's own
//! <env>/pending/<id>.json             a change requested by deployment <id>, stored only when it succeeds
//! <env>/released/<name>/<id>/         what deployment <id> gave the daemon for <name> (the base, or a biome):
//!     from.json                       the revisions of the two levels it was made from
//!     <component>/<KEY>               a secret's value, the file the daemon reads when it starts the component
//! <env>/.lock                         held (`flock`) while a level's file is read, changed and written
//! ```
//!
//! A release gets files of its own, so the values a running process is restarted with (after a
//! crash, or by the next daemon) change only with a deployment, never with an edit in between.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sandpit_domain::Name;
use sandpit_runtime::owner_only;
use serde::{Deserialize, Serialize};

use super::variables::{Change, Key, Value, Variables};
use crate::Context;

/// One level's variables as stored.
#[derive(Debug, Serialize, Deserialize)]
struct LevelFile {
    revision: u64,
    variables: Vec<VariableFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VariableFile {
    key: Key,
    /// `None`: every component.
    component: Option<Name>,
    secret: bool,
    value: String,
}

/// What a release was made from (`from.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ReleasedFrom {
    env_revision: u64,
    biome_revision: u64,
}

/// The directories and files of one project's configuration.
pub(crate) struct ConfigDirs {
    root: PathBuf,
}

impl ConfigDirs {
    pub(crate) fn new(context: &Context, project: &Name) -> ConfigDirs {
        ConfigDirs {
            root: context
                .home
                .join("projects")
                .join(project.as_str())
                .join("config"),
        }
    }

    fn env_dir(&self, env: &Name) -> PathBuf {
        self.root.join(env.as_str())
    }

    /// The file of a level: the environment's (`biome == env`, or `None`) or a biome's.
    fn level_file(&self, env: &Name, biome: Option<&Name>) -> PathBuf {
        match biome {
            Some(biome) if biome != env => self
                .env_dir(env)
                .join("biomes")
                .join(format!("{biome}.json")),
            _ => self.env_dir(env).join("vars.json"),
        }
    }

    fn pending_dir(&self, env: &Name) -> PathBuf {
        self.env_dir(env).join("pending")
    }

    fn pending_file(&self, env: &Name, id: i64) -> PathBuf {
        self.pending_dir(env).join(format!("{id}.json"))
    }

    fn released_root(&self, env: &Name, name: &Name) -> PathBuf {
        self.env_dir(env).join("released").join(name.as_str())
    }

    /// Creates `dir` and every directory between it and the configuration root, owner-only.
    fn create(&self, dir: &Path) -> anyhow::Result<()> {
        let relative = dir.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let mut current = self.root.clone();
        owner_only::create_dir(&current)
            .with_context(|| format!("cannot create {}", current.display()))?;
        for part in relative.components() {
            current.push(part);
            owner_only::create_dir(&current)
                .with_context(|| format!("cannot create {}", current.display()))?;
        }
        Ok(())
    }

    fn write(&self, path: &Path, contents: &[u8]) -> anyhow::Result<()> {
        self.create(path.parent().expect("files live in a directory"))?;
        owner_only::write_file(path, contents)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// One level's variables; nothing set when it has no file yet.
    pub(crate) fn load(&self, env: &Name, biome: Option<&Name>) -> anyhow::Result<Variables> {
        let path = self.level_file(env, biome);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Variables::default())
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()))
            }
        };
        let file: LevelFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged\nhint: fix or remove it (removing it unsets every variable it holds)",
                path.display()
            )
        })?;
        let mut variables = Variables {
            revision: file.revision,
            entries: BTreeMap::new(),
        };
        for v in file.variables {
            variables.entries.insert(
                (v.component, v.key),
                Value {
                    secret: v.secret,
                    text: v.value,
                },
            );
        }
        Ok(variables)
    }

    /// Changes one level's variables under the environment's lock, so two changes at once
    /// never lose one, and stores them with the next revision.
    pub(crate) fn update(
        &self,
        env: &Name,
        biome: Option<&Name>,
        change: impl FnOnce(&mut Variables) -> anyhow::Result<()>,
    ) -> anyhow::Result<Variables> {
        let _lock = self.lock(env)?;
        let mut variables = self.load(env, biome)?;
        change(&mut variables)?;
        variables.revision += 1;
        let file = LevelFile {
            revision: variables.revision,
            variables: variables
                .entries
                .iter()
                .map(|((component, key), value)| VariableFile {
                    key: key.clone(),
                    component: component.clone(),
                    secret: value.secret,
                    value: value.text.clone(),
                })
                .collect(),
        };
        let text = serde_json::to_vec_pretty(&file).expect("variables always serialise");
        self.write(&self.level_file(env, biome), &text)?;
        Ok(variables)
    }

    fn lock(&self, env: &Name) -> anyhow::Result<fs::File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = self.env_dir(env);
        self.create(&dir)?;
        let path = dir.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(owner_only::FILE_MODE)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // Held for a read and a write of one small file: waiting is short.
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(file)
    }

    /// Keeps the change deployment `id` requests until it runs.
    pub(crate) fn save_pending(&self, env: &Name, id: i64, change: &Change) -> anyhow::Result<()> {
        let text = serde_json::to_vec(change).expect("a change always serialises");
        self.write(&self.pending_file(env, id), &text)
    }

    /// The change deployment `id` requested, if it is still kept.
    pub(crate) fn load_pending(&self, env: &Name, id: i64) -> anyhow::Result<Option<Change>> {
        let path = self.pending_file(env, id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is damaged", path.display())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub(crate) fn remove_pending(&self, env: &Name, id: i64) -> anyhow::Result<()> {
        remove_file(&self.pending_file(env, id))
    }

    /// The deployments whose requested changes are kept for the environment.
    pub(crate) fn pending_ids(&self, env: &Name) -> anyhow::Result<Vec<i64>> {
        let mut ids: Vec<i64> = entries(&self.pending_dir(env))?
            .iter()
            .filter_map(|name| name.strip_suffix(".json")?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Writes the files of release `id` of `name` (the base, or a biome): each secret's value
    /// per component (with a newline the reader drops, so a value ending in one keeps it), and
    /// the revisions it was made from. Returns each component's secret files.
    pub(crate) fn write_release(
        &self,
        env: &Name,
        name: &Name,
        id: i64,
        revisions: (u64, u64),
        secrets: &BTreeMap<Name, BTreeMap<Key, String>>,
    ) -> anyhow::Result<BTreeMap<Name, BTreeMap<String, PathBuf>>> {
        let dir = self.released_root(env, name).join(id.to_string());
        let mut files = BTreeMap::new();
        for (component, values) in secrets {
            let component_dir = dir.join(component.as_str());
            for (key, value) in values {
                let path = component_dir.join(key.as_str());
                self.write(&path, format!("{value}\n").as_bytes())?;
                files
                    .entry(component.clone())
                    .or_insert_with(BTreeMap::new)
                    .insert(key.to_string(), path);
            }
        }
        let from = ReleasedFrom {
            env_revision: revisions.0,
            biome_revision: revisions.1,
        };
        self.write(
            &dir.join("from.json"),
            &serde_json::to_vec(&from).expect("revisions always serialise"),
        )?;
        Ok(files)
    }

    /// The revisions release `id` of `name` was made from; `(0, 0)` when it has no files (made
    /// with no variables, or by a sandpit without them).
    pub(crate) fn released_revisions(
        &self,
        env: &Name,
        name: &Name,
        id: i64,
    ) -> anyhow::Result<(u64, u64)> {
        let path = self
            .released_root(env, name)
            .join(id.to_string())
            .join("from.json");
        match fs::read(&path) {
            Ok(bytes) => {
                let from: ReleasedFrom = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is damaged", path.display()))?;
                Ok((from.env_revision, from.biome_revision))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok((0, 0)),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Removes the releases of `name` other than `keep` (what the daemon now runs), or all of
    /// them with `None`.
    pub(crate) fn prune_releases(
        &self,
        env: &Name,
        name: &Name,
        keep: Option<i64>,
    ) -> anyhow::Result<()> {
        let root = self.released_root(env, name);
        for entry in entries(&root)? {
            if keep.is_some_and(|id| id.to_string() == entry) {
                continue;
            }
            remove_dir(&root.join(entry))?;
        }
        if keep.is_none() {
            remove_dir(&root)?;
        }
        Ok(())
    }

    /// Removes release `id` of `name` (one that never reached the daemon).
    pub(crate) fn remove_release(&self, env: &Name, name: &Name, id: i64) -> anyhow::Result<()> {
        remove_dir(&self.released_root(env, name).join(id.to_string()))
    }
}

/// The names in `dir`; none when it does not exist.
fn entries(dir: &Path) -> anyhow::Result<Vec<String>> {
    match fs::read_dir(dir) {
        Ok(read) => Ok(read
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error).with_context(|| format!("cannot list {}", dir.display())),
    }
}

fn remove_file(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn remove_dir(path: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn dirs(home: &Path) -> ConfigDirs {
        ConfigDirs {
            root: home.join("projects/geo/config"),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn every_path(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            found.push(entry.path());
            if entry.file_type().unwrap().is_dir() {
                every_path(&entry.path(), found);
            }
        }
    }

    #[test]
    fn levels_round_trip_with_revisions_and_owner_only_files() {
        let home = tempfile::tempdir().unwrap();
        let dirs = dirs(home.path());
        let (dev, alice) = (name("dev"), name("alice"));
        assert_eq!(dirs.load(&dev, None).unwrap(), Variables::default());
        let set = Change::Set {
            assignments: vec![(Key::parse("TOKEN").unwrap(), "hunter2\n".into())],
            secret: true,
            components: vec![name("web")],
        };
        let stored = dirs
            .update(&dev, Some(&alice), |v| {
                set.apply_to(v).map_err(|e| anyhow::anyhow!("{e:?}"))
            })
            .unwrap();
        assert_eq!(stored.revision, 1);
        assert_eq!(dirs.load(&dev, Some(&alice)).unwrap(), stored);
        assert_eq!(
            dirs.load(&dev, Some(&dev)).unwrap(),
            Variables::default(),
            "the environment's level is another file"
        );
        let again = dirs.update(&dev, Some(&alice), |_| Ok(())).unwrap();
        assert_eq!(again.revision, 2);
        // A refused change writes nothing.
        assert!(dirs
            .update(&dev, Some(&alice), |_| anyhow::bail!("no"))
            .is_err());
        assert_eq!(dirs.load(&dev, Some(&alice)).unwrap().revision, 2);

        let files = dirs
            .write_release(
                &dev,
                &alice,
                7,
                (0, 2),
                &BTreeMap::from([(
                    name("web"),
                    BTreeMap::from([(Key::parse("TOKEN").unwrap(), "hunter2\n".to_owned())]),
                )]),
            )
            .unwrap();
        let token = &files[&name("web")]["TOKEN"];
        let read = sandpit_runtime::secret_env::resolve(&BTreeMap::from([(
            "TOKEN".to_owned(),
            token.clone(),
        )]))
        .unwrap();
        assert_eq!(
            read.values().collect::<Vec<_>>(),
            [("TOKEN", "hunter2\n")],
            "a trailing newline of the value survives the daemon's reading"
        );
        assert_eq!(dirs.released_revisions(&dev, &alice, 7).unwrap(), (0, 2));
        assert_eq!(dirs.released_revisions(&dev, &alice, 8).unwrap(), (0, 0));

        let mut found = Vec::new();
        every_path(&dirs.root, &mut found);
        assert!(found.len() > 5, "{found:?}");
        assert_eq!(mode(&dirs.root), 0o700);
        for path in found {
            let expected = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(&path), expected, "{}", path.display());
        }
    }

    #[test]
    fn releases_are_pruned_to_what_runs_and_pending_changes_are_listed_by_id() {
        let home = tempfile::tempdir().unwrap();
        let dirs = dirs(home.path());
        let (dev, alice) = (name("dev"), name("alice"));
        for id in [3, 5, 9] {
            dirs.write_release(&dev, &alice, id, (1, 1), &BTreeMap::new())
                .unwrap();
        }
        dirs.write_release(&dev, &dev, 4, (1, 0), &BTreeMap::new())
            .unwrap();
        dirs.prune_releases(&dev, &alice, Some(5)).unwrap();
        assert_eq!(dirs.released_revisions(&dev, &alice, 5).unwrap(), (1, 1));
        assert_eq!(dirs.released_revisions(&dev, &alice, 9).unwrap(), (0, 0));
        assert_eq!(
            dirs.released_revisions(&dev, &dev, 4).unwrap(),
            (1, 0),
            "another target's releases are left alone"
        );
        dirs.remove_release(&dev, &alice, 5).unwrap();
        dirs.prune_releases(&dev, &alice, None).unwrap();
        assert!(!dirs.released_root(&dev, &alice).exists());

        let change = Change::Unset {
            keys: vec![Key::parse("A").unwrap()],
            components: vec![],
        };
        assert!(dirs.pending_ids(&dev).unwrap().is_empty());
        dirs.save_pending(&dev, 12, &change).unwrap();
        dirs.save_pending(&dev, 10, &change).unwrap();
        assert_eq!(dirs.pending_ids(&dev).unwrap(), [10, 12]);
        assert_eq!(dirs.load_pending(&dev, 12).unwrap(), Some(change));
        dirs.remove_pending(&dev, 12).unwrap();
        dirs.remove_pending(&dev, 12).unwrap();
        assert_eq!(dirs.load_pending(&dev, 12).unwrap(), None);
    }
}
