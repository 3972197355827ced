//! The states on disk: per key a directory (0700) with `versions/<seq>.tfstate` (the newest is
//! the current state; the oldest beyond the kept count are pruned), `lock.json` and
//! `credential` (0600). Every change happens under an exclusive `flock` of the key's `.guard`,
//! so the daemon's handlers and a `sandpit tf unlock` in another process never interleave;
//! reads take no lock, since every file is replaced whole by a rename.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use nix::fcntl::{Flock, FlockArg};
use sandpit_domain::Name;
use sandpit_runtime::owner_only;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::key::StateKey;
use crate::lock::{self, LockDecision, LockInfo, UnlockDecision, WriteDecision};

/// How many versions of a state are kept unless the caller says otherwise.
pub const DEFAULT_KEPT_VERSIONS: usize = 10;

/// Random bytes in a state's credential (shown as base64url).
const CREDENTIAL_BYTES: usize = 32;

/// One kept version of a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVersion {
    /// Its number among the key's versions, counting every write (1 for the first).
    pub seq: u64,
    /// Terraform's own `serial` and `lineage`, read from the state.
    pub serial: u64,
    pub lineage: String,
    pub written_at: SystemTime,
    pub bytes: u64,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the body is not a Terraform state: {problem}")]
    NotAState { problem: String },
    #[error("the state is {}", holder.describe())]
    Locked { holder: Box<LockInfo> },
    #[error("the lock {id} named by this write is not held any more (it was cleared by a force-unlock); plan and apply again")]
    LockGone { id: String },
    #[error("the lock file {} cannot be read ({problem}); `sandpit tf unlock` clears it", path.display())]
    BadLockFile { path: PathBuf, problem: String },
}

type Result<T> = std::result::Result<T, StoreError>;

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// `Ok(None)` for a file that does not exist.
fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path)(error)),
    }
}

/// Terraform's `serial` and `lineage` of a state document: it must be a JSON object with both.
pub fn state_header(bytes: &[u8]) -> std::result::Result<(u64, String), String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| format!("it is not JSON ({error})"))?;
    let object = value
        .as_object()
        .ok_or("it is JSON but not an object".to_owned())?;
    let serial = object
        .get("serial")
        .ok_or("it has no `serial`".to_owned())?
        .as_u64()
        .ok_or("its `serial` is not a whole number".to_owned())?;
    let lineage = object
        .get("lineage")
        .ok_or("it has no `lineage`".to_owned())?
        .as_str()
        .ok_or("its `lineage` is not a string".to_owned())?;
    Ok((serial, lineage.to_owned()))
}

/// The `seq` of a file in `versions/` (`<seq>.tfstate`); other files are not versions.
fn version_seq(file_name: &str) -> Option<u64> {
    let seq = file_name.strip_suffix(".tfstate")?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

/// The versions to delete so that `keep` remain: the oldest (`seqs` ascending).
fn pruned(seqs: &[u64], keep: usize) -> &[u64] {
    &seqs[..seqs.len().saturating_sub(keep)]
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The states of one `$SANDPIT_HOME` (the daemon gives `terraform/states` under it).
#[derive(Debug)]
pub struct StateStore {
    root: PathBuf,
    keep: usize,
}

impl StateStore {
    /// States under `root`, keeping the newest `keep` versions of each (at least one).
    pub fn new(root: impl Into<PathBuf>, keep: usize) -> StateStore {
        StateStore {
            root: root.into(),
            keep: keep.max(1),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, key: &StateKey) -> PathBuf {
        self.root
            .join(key.project.as_str())
            .join(key.environment.as_str())
            .join(
                key.biome
                    .as_ref()
                    .map_or(crate::key::BASE_SEGMENT, Name::as_str),
            )
            .join(key.component.as_str())
    }

    fn versions_dir(&self, key: &StateKey) -> PathBuf {
        self.dir(key).join("versions")
    }

    fn lock_file(&self, key: &StateKey) -> PathBuf {
        self.dir(key).join("lock.json")
    }

    fn credential_file(&self, key: &StateKey) -> PathBuf {
        self.dir(key).join("credential")
    }

    /// The key's directory made (owner only) and its guard held until the result is dropped.
    fn guard(&self, key: &StateKey) -> Result<Flock<File>> {
        owner_only::create_dir(&self.root).map_err(io_error("create", &self.root))?;
        let dir = self.dir(key);
        owner_only::create_dir(&dir).map_err(io_error("create", &dir))?;
        let path = dir.join(".guard");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_error("lock", &path)(io::Error::from(errno)))
    }

    /// The state's credential (the Basic-auth password), made from OS randomness on first use.
    pub fn credential(&self, key: &StateKey) -> Result<String> {
        let _guard = self.guard(key)?;
        let path = self.credential_file(key);
        if let Some(bytes) = read_if_present(&path)? {
            return Ok(String::from_utf8_lossy(&bytes).trim().to_owned());
        }
        let mut random = [0u8; CREDENTIAL_BYTES];
        getrandom::fill(&mut random).map_err(|error| {
            io_error("draw randomness for", &path)(io::Error::other(error.to_string()))
        })?;
        let credential = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        owner_only::write_file(&path, credential.as_bytes()).map_err(io_error("write", &path))?;
        Ok(credential)
    }

    /// Whether `given` is the key's credential (compared as SHA-256 digests in constant time).
    /// A key with no credential yet accepts nothing: credentials are handed out, never guessed
    /// into existence.
    pub fn check_credential(&self, key: &StateKey, given: &str) -> Result<bool> {
        let Some(bytes) = read_if_present(&self.credential_file(key))? else {
            return Ok(false);
        };
        let expected = digest(String::from_utf8_lossy(&bytes).trim());
        Ok(bool::from(digest(given).ct_eq(&expected)))
    }

    /// The kept versions' numbers, ascending.
    fn seqs(&self, key: &StateKey) -> Result<Vec<u64>> {
        let dir = self.versions_dir(key);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("list", &dir)(error)),
        };
        let mut seqs: Vec<u64> = entries
            .flatten()
            .filter_map(|entry| version_seq(&entry.file_name().to_string_lossy()))
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn version_file(&self, key: &StateKey, seq: u64) -> PathBuf {
        self.versions_dir(key).join(format!("{seq}.tfstate"))
    }

    /// The current state (the newest version); `None` before the first write.
    pub fn current(&self, key: &StateKey) -> Result<Option<Vec<u8>>> {
        // A prune or a delete between the listing and the read: look again.
        for _ in 0..3 {
            let Some(&newest) = self.seqs(key)?.last() else {
                return Ok(None);
            };
            if let Some(bytes) = read_if_present(&self.version_file(key, newest))? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// The kept versions, oldest first.
    pub fn versions(&self, key: &StateKey) -> Result<Vec<StateVersion>> {
        let mut versions = Vec::new();
        for seq in self.seqs(key)? {
            let path = self.version_file(key, seq);
            let Some(bytes) = read_if_present(&path)? else {
                continue; // pruned meanwhile
            };
            let written_at = fs::metadata(&path)
                .and_then(|metadata| metadata.modified())
                .map_err(io_error("look at", &path))?;
            // Written only after `state_header` accepted it; a file edited by hand shows zeros.
            let (serial, lineage) = state_header(&bytes).unwrap_or_default();
            versions.push(StateVersion {
                seq,
                serial,
                lineage,
                written_at,
                bytes: bytes.len() as u64,
            });
        }
        Ok(versions)
    }

    /// Who holds the state's lock, if anyone.
    pub fn lock(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        let path = self.lock_file(key);
        let Some(bytes) = read_if_present(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::BadLockFile {
                path,
                problem: error.to_string(),
            })
    }

    /// Takes the lock for `requested` unless someone else holds it.
    pub fn try_lock(&self, key: &StateKey, requested: &LockInfo) -> Result<LockDecision> {
        let _guard = self.guard(key)?;
        let decision = lock::decide_lock(self.lock(key)?.as_ref(), requested);
        if decision == LockDecision::Take {
            let path = self.lock_file(key);
            let bytes = serde_json::to_vec(requested).expect("a LockInfo always encodes");
            owner_only::write_file(&path, &bytes).map_err(io_error("write", &path))?;
        }
        Ok(decision)
    }

    /// Releases the lock if `id` holds it.
    pub fn unlock(&self, key: &StateKey, id: &str) -> Result<UnlockDecision> {
        let _guard = self.guard(key)?;
        let decision = lock::decide_unlock(self.lock(key)?.as_ref(), id);
        if decision == UnlockDecision::Release {
            self.clear_lock(key)?;
        }
        Ok(decision)
    }

    /// Clears the lock whoever holds it (a killed apply's); returns what it cleared.
    pub fn force_unlock(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        if !self.dir(key).exists() {
            return Ok(None);
        }
        let _guard = self.guard(key)?;
        // An unreadable lock file is cleared too: that is what a force-unlock is for.
        let holder = self.lock(key).unwrap_or_else(|_| {
            Some(LockInfo {
                id: "?".to_owned(),
                operation: "?".to_owned(),
                info: "an unreadable lock file".to_owned(),
                who: "?".to_owned(),
                version: String::new(),
                created: "?".to_owned(),
                path: String::new(),
            })
        });
        if holder.is_some() {
            self.clear_lock(key)?;
        }
        Ok(holder)
    }

    fn clear_lock(&self, key: &StateKey) -> Result<()> {
        let path = self.lock_file(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(io_error("remove", &path)(error)),
        }
    }

    fn check_writer(&self, key: &StateKey, lock_id: Option<&str>) -> Result<()> {
        match lock::decide_write(self.lock(key)?.as_ref(), lock_id) {
            WriteDecision::Write => Ok(()),
            WriteDecision::HeldBy(holder) => Err(StoreError::Locked {
                holder: Box::new(holder),
            }),
            WriteDecision::LockGone { id } => Err(StoreError::LockGone { id }),
        }
    }

    /// Writes a new current state (a Terraform state document) as the writer holding lock
    /// `lock_id` (or none), pruning the versions beyond the kept count.
    pub fn write(
        &self,
        key: &StateKey,
        state: &[u8],
        lock_id: Option<&str>,
    ) -> Result<StateVersion> {
        let (serial, lineage) =
            state_header(state).map_err(|problem| StoreError::NotAState { problem })?;
        let _guard = self.guard(key)?;
        self.check_writer(key, lock_id)?;
        let seqs = self.seqs(key)?;
        let seq = seqs.last().map_or(1, |newest| newest + 1);
        let dir = self.versions_dir(key);
        owner_only::create_dir(&dir).map_err(io_error("create", &dir))?;
        let path = self.version_file(key, seq);
        owner_only::write_file(&path, state).map_err(io_error("write", &path))?;
        let mut all = seqs;
        all.push(seq);
        for old in pruned(&all, self.keep) {
            let old_path = self.version_file(key, *old);
            if let Err(error) = fs::remove_file(&old_path) {
                tracing::warn!("cannot prune {}: {error}", old_path.display());
            }
        }
        Ok(StateVersion {
            seq,
            serial,
            lineage,
            written_at: SystemTime::now(),
            bytes: state.len() as u64,
        })
    }

    /// Deletes every version of the state (Terraform's DELETE), keeping its credential.
    pub fn delete_versions(&self, key: &StateKey, lock_id: Option<&str>) -> Result<()> {
        if !self.dir(key).exists() {
            return Ok(());
        }
        let _guard = self.guard(key)?;
        self.check_writer(key, lock_id)?;
        let dir = self.versions_dir(key);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(io_error("remove", &dir)(error)),
        }
    }

    /// Removes everything of the state: versions, lock and credential (after a destroy, or
    /// when its biome is removed).
    pub fn remove(&self, key: &StateKey) -> Result<()> {
        let dir = self.dir(key);
        if !dir.exists() {
            return Ok(());
        }
        let guard = self.guard(key)?;
        fs::remove_dir_all(&dir).map_err(io_error("remove", &dir))?;
        drop(guard);
        // Empty parents (the biome's, the environment's, the project's) go too; a parent that
        // still holds something refuses, which ends the walk.
        let mut parent = dir.parent();
        while let Some(up) = parent {
            if up == self.root || fs::remove_dir(up).is_err() {
                break;
            }
            parent = up.parent();
        }
        Ok(())
    }

    /// Every state the project has, sorted.
    pub fn keys_of(&self, project: &Name) -> Result<Vec<StateKey>> {
        let mut keys = Vec::new();
        let project_dir = self.root.join(project.as_str());
        for environment in subdirectories(&project_dir)? {
            for biome in subdirectories(&project_dir.join(&environment))? {
                let biome_dir = project_dir.join(&environment).join(&biome);
                for component in subdirectories(&biome_dir)? {
                    if let Ok(key) =
                        StateKey::from_segments(project.as_str(), &environment, &biome, &component)
                    {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// The names of `dir`'s subdirectories; none when it does not exist.
fn subdirectories(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("list", dir)(error)),
    };
    Ok(entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_must_be_an_object_with_serial_and_lineage() {
        /// (document, Ok((serial, lineage)) or a part of the refusal)
        type Case<'a> = (&'a str, std::result::Result<(u64, &'a str), &'a str>);
        let cases: &[Case] = &[
            (
                r#"{"version":4,"serial":3,"lineage":"abc"}"#,
                Ok((3, "abc")),
            ),
            ("not json", Err("not JSON")),
            ("[1,2]", Err("not an object")),
            (r#"{"lineage":"abc"}"#, Err("no `serial`")),
            (r#"{"serial":1}"#, Err("no `lineage`")),
            (r#"{"serial":-1,"lineage":"a"}"#, Err("not a whole number")),
            (r#"{"serial":1,"lineage":7}"#, Err("not a string")),
        ];
        for (text, expected) in cases {
            match (state_header(text.as_bytes()), expected) {
                (Ok((serial, lineage)), Ok((s, l))) => {
                    assert_eq!((serial, lineage.as_str()), (*s, *l), "{text}")
                }
                (Err(problem), Err(part)) => assert!(problem.contains(part), "{text}: {problem}"),
                (got, want) => panic!("{text}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn version_files_are_told_apart_from_the_rest() {
        let cases = [
            ("1.tfstate", Some(1)),
            ("42.tfstate", Some(42)),
            (".42.tfstate.123.tmp", None),
            ("x.tfstate", None),
            (".tfstate", None),
            ("+1.tfstate", None),
            ("12", None),
        ];
        for (name, expected) in cases {
            assert_eq!(version_seq(name), expected, "{name}");
        }
    }

    #[test]
    fn the_oldest_versions_beyond_the_kept_count_are_pruned() {
        let cases: &[(&[u64], usize, &[u64])] = &[
            (&[], 10, &[]),
            (&[1, 2, 3], 10, &[]),
            (&[1, 2, 3], 3, &[]),
            (&[1, 2, 3, 4], 3, &[1]),
            (&[5, 6, 7, 8, 9], 2, &[5, 6, 7]),
            (&[5, 6], 1, &[5]),
        ];
        for (seqs, keep, expected) in cases {
            assert_eq!(pruned(seqs, *keep), *expected, "{seqs:?} keep {keep}");
        }
    }
}
