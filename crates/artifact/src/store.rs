//! The local content-addressed artifact store: blobs kept by digest, artifact names kept as
//! references to them, digests verified every time bytes are handed out.
//!
//! Layout under the root:
//!
//! ```text
//! blobs/sha256/<hex>                  the bytes, immutable and read-only
//! names/<component>-<version>.zip.json the Provenance (which includes the digest): a name is a reference
//! inputs/<component>/<input_key>      the artifact file name whose bytes match that input key
//! files/<component>-<version>.zip     hard link (or copy) to this store's blob, under the name users know
//! tmp/                                staging for atomic writes (same file system as the rest)
//! quarantine/<hex>-<seconds>          damaged blobs moved aside by a repair, kept for inspection
//! lock                                held shared by every write, exclusively by garbage collection
//! ```
//!
//! Every write goes through a temporary file and a rename, so two processes storing the same
//! blob or name at once cannot leave a torn file behind.
//!
//! Each store owns its bytes: a blob never shares an inode with another store's (imports are
//! copy-on-write clones or copies, never hard links), so damage to one environment's store is
//! confined to it and caught on that store's next read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sandpit_domain::{ArtifactName, Digest, Name};
use tempfile::NamedTempFile;

use crate::package::hash_file;
use crate::provenance::Provenance;

/// One artifact, its digest checked against its bytes when this value was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    pub name: ArtifactName,
    pub digest: Digest,
    /// Size of the zip in bytes.
    pub size: u64,
    /// The content-addressed blob.
    pub blob_path: PathBuf,
    /// The same bytes under `<component>-<version>.zip`.
    pub file_path: PathBuf,
    pub provenance: Provenance,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{name} is not in the artifact store `{store}`")]
    NotInSource { name: String, store: PathBuf },
    #[error("could not {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the artifact record `{path}` is corrupt ({source}); delete it and rebuild the artifact"
    )]
    CorruptRecord {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "`{path}` has been modified: expected {expected}, found {actual}. \
         The stored bytes no longer match their digest; rebuild the artifact or copy it again from another store"
    )]
    DigestMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("no blob with digest {digest} in the artifact store (expected at `{path}`); rebuild the artifact or copy it again")]
    BlobMissing { digest: Digest, path: PathBuf },
    #[error("cannot store `{file}` as {name}: the provenance says {expected} but the file's digest is {actual}")]
    ProvenanceDigest {
        name: String,
        file: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("cannot store {name}: its provenance describes `{described}`")]
    ProvenanceName { name: String, described: String },
    #[error("{name} already refers to {existing}, not {new}; artifact names are never repointed — remove the old record first if this is intended")]
    NameTaken {
        name: String,
        existing: Digest,
        new: Digest,
    },
    #[error("`{key}` is not a valid input key: expected letters, digits, `-` or `_`")]
    BadInputKey { key: String },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// What [`ArtifactStore::collect_garbage`] removed (or would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Artifact file names, sorted.
    pub removed_names: Vec<String>,
    pub removed_blobs: Vec<Digest>,
    /// The bytes the removed blobs (and visible files that were copies, not links) take.
    pub freed_bytes: u64,
    /// The digests still named after collection.
    pub kept_digests: BTreeSet<Digest>,
}

/// What [`ArtifactStore::collect_garbage`] keeps; everything else goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Digests something still needs: every name referring to one is kept.
    pub digests: BTreeSet<Digest>,
    /// Also keep, for each component, the artifact its newest input index entry names: the
    /// newest build, which the next build of an unchanged component reuses.
    pub newest_builds: bool,
    /// Keep every name recorded at or after this moment, by the store's file system's clock
    /// ([`ArtifactStore::now`]), whatever its digest: a build that finished while the caller
    /// was still gathering `digests` has not been deployed yet.
    pub recorded_since: Option<SystemTime>,
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io {
            action: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}

/// The bytes a visible file takes of its own: none when it is a hard link to the blob.
fn copy_size(file: &Path, blob: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    match (fs::metadata(file), fs::metadata(blob)) {
        (Ok(file), Ok(blob)) if file.ino() == blob.ino() && file.dev() == blob.dev() => 0,
        (Ok(file), _) => file.len(),
        _ => 0,
    }
}

/// One input index entry: `inputs/<component>/<key>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct InputEntry {
    component: Name,
    path: PathBuf,
    written: SystemTime,
}

/// How [`ArtifactStore::import`] got the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMethod {
    /// This store already held intact bytes for the digest; nothing was copied.
    AlreadyPresent,
    /// A copy-on-write clone (Linux `FICLONE` on btrfs, XFS, ...): the file system shares the
    /// extents until either file is written, so a change to one store's blob never reaches the
    /// other's.
    Reflink,
    /// A byte-for-byte copy, where the file system cannot clone files (ext4, tmpfs, across
    /// file systems).
    Copy,
}

/// What [`ArtifactStore::check`] found for one name: its record and whether the blob it refers
/// to still holds the recorded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactCheck {
    pub name: ArtifactName,
    /// The name record; `provenance.digest` is the digest the name refers to.
    pub provenance: Provenance,
    /// `names/<artifact>.json`.
    pub record_path: PathBuf,
    /// Where the blob for the recorded digest is (or should be).
    pub blob_path: PathBuf,
    pub integrity: Integrity,
}

/// Whether a blob still matches the digest its name records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// The bytes hash to the recorded digest.
    Intact { size: u64 },
    /// The blob is there but its bytes hash to `actual`.
    Modified { actual: Digest },
    /// There is no blob for the recorded digest.
    Missing,
    /// The blob could not be read (not a file, an I/O error), so nothing is known about its bytes.
    Unreadable { message: String },
}

impl Integrity {
    pub fn is_intact(&self) -> bool {
        matches!(self, Integrity::Intact { .. })
    }
}

/// A name record that could not be read or parsed: the name is known, what it refers to is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    pub name: ArtifactName,
    pub record_path: PathBuf,
    /// What went wrong and what to do (the [`StoreError`] message).
    pub message: String,
}

/// Everything [`ArtifactStore::check_all`] found, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCheck {
    pub artifacts: Vec<ArtifactCheck>,
    pub unreadable_records: Vec<UnreadableRecord>,
}

/// The result of [`ArtifactStore::import`].
#[derive(Debug, Clone)]
pub struct Imported {
    pub artifact: StoredArtifact,
    pub method: ImportMethod,
}

/// A content-addressed artifact store rooted at a directory.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<ArtifactStore, StoreError> {
        let store = ArtifactStore {
            root: root.to_owned(),
        };
        for directory in [
            store.blob_dir(),
            store.names_dir(),
            store.inputs_dir(),
            store.files_dir(),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&directory)
                .map_err(io_error("create the store directory", &directory))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }
    fn names_dir(&self) -> PathBuf {
        self.root.join("names")
    }
    fn inputs_dir(&self) -> PathBuf {
        self.root.join("inputs")
    }
    fn files_dir(&self) -> PathBuf {
        self.root.join("files")
    }
    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob for `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    fn record_path(&self, name: &ArtifactName) -> PathBuf {
        self.names_dir().join(format!("{}.json", name.file_name()))
    }

    fn file_path(&self, name: &ArtifactName) -> PathBuf {
        self.files_dir().join(name.file_name())
    }

    fn input_path(&self, component: &Name, input_key: &str) -> Result<PathBuf, StoreError> {
        let valid = !input_key.is_empty()
            && input_key.len() <= 128
            && input_key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(StoreError::BadInputKey {
                key: input_key.to_owned(),
            });
        }
        Ok(self.inputs_dir().join(component.as_str()).join(input_key))
    }

    /// Stores `zip_file` under `name`. The file's digest must equal `provenance.digest`; the bytes
    /// are stored once however many names refer to them. Storing the same name with the same
    /// digest again is a no-op; with a different digest it is refused.
    pub fn put(
        &self,
        name: &ArtifactName,
        zip_file: &Path,
        provenance: Provenance,
    ) -> Result<StoredArtifact, StoreError> {
        check_provenance_names(name, &provenance)?;
        let _writing = self.lock(false)?;
        let (actual, _) = hash_file(zip_file).map_err(io_error("read the artifact", zip_file))?;
        if actual != provenance.digest {
            return Err(StoreError::ProvenanceDigest {
                name: name.file_name(),
                file: zip_file.to_owned(),
                expected: provenance.digest.clone(),
                actual,
            });
        }
        if let Some(existing) = self.existing_reference(name, &actual)? {
            return Ok(existing);
        }
        self.store_blob(zip_file, &actual)?;
        self.record(name, provenance)
    }

    /// Gives the bytes of `existing` another name (an unchanged component at a new commit).
    /// `provenance.digest` must be the existing digest. Idempotent.
    pub fn alias(
        &self,
        name: &ArtifactName,
        existing: &StoredArtifact,
        provenance: Provenance,
    ) -> Result<StoredArtifact, StoreError> {
        check_provenance_names(name, &provenance)?;
        let _writing = self.lock(false)?;
        if provenance.digest != existing.digest {
            return Err(StoreError::ProvenanceDigest {
                name: name.file_name(),
                file: existing.blob_path.clone(),
                expected: provenance.digest.clone(),
                actual: existing.digest.clone(),
            });
        }
        if let Some(stored) = self.existing_reference(name, &existing.digest)? {
            return Ok(stored);
        }
        self.open_verified(&existing.digest)?;
        self.record(name, provenance)
    }

    /// The artifact last stored for `component` with this input key, if its record and bytes are
    /// still there.
    pub fn find_by_input(
        &self,
        component: &Name,
        input_key: &str,
    ) -> Result<Option<StoredArtifact>, StoreError> {
        let path = self.input_path(component, input_key)?;
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read the input index",
                    path,
                    source,
                })
            }
        };
        match ArtifactName::parse(text.trim()) {
            Some(name) => self.get(&name),
            // A damaged index entry only costs a rebuild.
            None => Ok(None),
        }
    }

    /// The artifact stored under `name`, digest verified.
    pub fn get(&self, name: &ArtifactName) -> Result<Option<StoredArtifact>, StoreError> {
        let Some(provenance) = self.read_record(name)? else {
            return Ok(None);
        };
        self.verified_artifact(name, provenance).map(Some)
    }

    /// Every stored artifact, sorted by name, each digest verified.
    pub fn list(&self) -> Result<Vec<StoredArtifact>, StoreError> {
        let mut artifacts = Vec::new();
        for name in self.record_names()? {
            if let Some(artifact) = self.get(&name)? {
                artifacts.push(artifact);
            }
        }
        Ok(artifacts)
    }

    /// Checks every name in the store and reports on each, however many are damaged: only a
    /// failure to list the store itself is an error. A blob that several names share is hashed
    /// once. Nothing is written (unlike [`ArtifactStore::get`], which restores a missing visible
    /// file).
    pub fn check_all(&self) -> Result<StoreCheck, StoreError> {
        let mut report = StoreCheck::default();
        let mut integrity_by_digest: BTreeMap<Digest, Integrity> = BTreeMap::new();
        for name in self.record_names()? {
            let provenance = match self.read_record(&name) {
                Ok(Some(provenance)) => provenance,
                // Removed since the listing (a concurrent garbage collection): not there any more.
                Ok(None) => continue,
                Err(error) => {
                    report.unreadable_records.push(UnreadableRecord {
                        record_path: self.record_path(&name),
                        name,
                        message: error.to_string(),
                    });
                    continue;
                }
            };
            let integrity = integrity_by_digest
                .entry(provenance.digest.clone())
                .or_insert_with(|| self.blob_integrity(&provenance.digest))
                .clone();
            report
                .artifacts
                .push(self.artifact_check(name, provenance, integrity));
        }
        Ok(report)
    }

    /// Checks one name: `None` when the store has no record of it. Damaged or missing bytes are
    /// an [`Integrity`], not an error; a record that cannot be read or parsed is an error
    /// ([`StoreError::CorruptRecord`] or [`StoreError::Io`]) about this name only.
    pub fn check(&self, name: &ArtifactName) -> Result<Option<ArtifactCheck>, StoreError> {
        let Some(provenance) = self.read_record(name)? else {
            return Ok(None);
        };
        let integrity = self.blob_integrity(&provenance.digest);
        Ok(Some(self.artifact_check(
            name.clone(),
            provenance,
            integrity,
        )))
    }

    fn artifact_check(
        &self,
        name: ArtifactName,
        provenance: Provenance,
        integrity: Integrity,
    ) -> ArtifactCheck {
        ArtifactCheck {
            record_path: self.record_path(&name),
            blob_path: self.blob_path(&provenance.digest),
            name,
            provenance,
            integrity,
        }
    }

    /// Re-hashes the blob for `digest`, reporting rather than failing.
    fn blob_integrity(&self, digest: &Digest) -> Integrity {
        let path = self.blob_path(digest);
        let hashed = hash_file(&path);
        integrity_of(digest, &path, hashed)
    }

    /// Every name with a record, sorted; files that are not `<artifact>.json` are ignored.
    fn record_names(&self) -> Result<Vec<ArtifactName>, StoreError> {
        let names_dir = self.names_dir();
        let mut names = Vec::new();
        for item in fs::read_dir(&names_dir).map_err(io_error("list", &names_dir))? {
            let item = item.map_err(io_error("list", &names_dir))?;
            let file_name = item.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(name) = ArtifactName::parse(stem) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Copies the artifact `name` from `source` into this store — the same bytes under the same
    /// name and provenance, never rebuilt. The blob is this store's own: a copy-on-write clone
    /// where the file system supports one, a copy otherwise, never a hard link into `source`.
    /// Its digest is verified in `source`, in the staged copy, and under its final name.
    pub fn import(
        &self,
        source: &ArtifactStore,
        name: &ArtifactName,
    ) -> Result<Imported, StoreError> {
        let _writing = self.lock(false)?;
        let Some(original) = source.get(name)? else {
            return Err(StoreError::NotInSource {
                name: name.file_name(),
                store: source.root.clone(),
            });
        };
        if let Some(existing) = self.existing_reference(name, &original.digest)? {
            return Ok(Imported {
                artifact: existing,
                method: ImportMethod::AlreadyPresent,
            });
        }
        let method = self.store_blob(&original.blob_path, &original.digest)?;
        let artifact = self.record_name_only(name, original.provenance)?;
        Ok(Imported { artifact, method })
    }

    /// Replaces this store's damaged (modified or missing) blob of `name` with an intact copy from
    /// `source`, which must hold the same digest intact. The damaged file is kept for inspection
    /// under `quarantine/<hex>-<unix seconds>`. `Ok(None)` when this store's copy was intact.
    pub fn repair(
        &self,
        name: &ArtifactName,
        source: &ArtifactStore,
    ) -> Result<Option<ImportMethod>, StoreError> {
        let _writing = self.lock(false)?;
        let Some(provenance) = self.read_record(name)? else {
            return Err(StoreError::NotInSource {
                name: name.file_name(),
                store: self.root.clone(),
            });
        };
        let digest = provenance.digest.clone();
        match self.open_verified(&digest) {
            Ok(_) => return Ok(None),
            Err(StoreError::DigestMismatch { .. } | StoreError::BlobMissing { .. }) => {}
            Err(other) => return Err(other),
        }
        let intact = source.open_verified(&digest)?;
        let blob_path = self.blob_path(&digest);
        if blob_path.exists() {
            let quarantine = self.root.join("quarantine");
            fs::create_dir_all(&quarantine)
                .map_err(io_error("create the quarantine directory", &quarantine))?;
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let kept = quarantine.join(format!("{}-{seconds}", digest.hex()));
            fs::rename(&blob_path, &kept).map_err(io_error("move the damaged blob to", &kept))?;
        }
        let method = self.store_blob(&intact, &digest)?;
        // The visible file may have been the damaged blob itself (a hard link to it).
        self.link_visible(&blob_path, &self.file_path(name))?;
        Ok(Some(method))
    }

    /// Writes the name record and visible file (not the input index: nothing is built here).
    fn record_name_only(
        &self,
        name: &ArtifactName,
        provenance: Provenance,
    ) -> Result<StoredArtifact, StoreError> {
        let mut json =
            serde_json::to_vec_pretty(&provenance).expect("provenance always serialises");
        json.push(b'\n');
        self.write_atomically(&self.record_path(name), &json)?;
        let blob_path = self.blob_path(&provenance.digest);
        let file_path = self.file_path(name);
        self.link_visible(&blob_path, &file_path)?;
        // Every caller verified the blob a moment ago (stored and hashed, or found intact), so
        // it is not hashed a third time; the next read verifies it again.
        self.described(name, provenance, blob_path)
    }

    /// The store's file system's idea of now (the time of a file made and removed in `tmp/`),
    /// for [`Retention::recorded_since`]: compared with the times records were written, it is
    /// immune to the system clock and the file system's clock disagreeing.
    pub fn now(&self) -> Result<SystemTime, StoreError> {
        let tmp_dir = self.tmp_dir();
        let clock = tempfile::Builder::new()
            .prefix("clock-")
            .tempfile_in(&tmp_dir)
            .map_err(io_error("create a temporary file in", &tmp_dir))?;
        clock
            .as_file()
            .metadata()
            .and_then(|m| m.modified())
            .map_err(io_error("read the time of", clock.path()))
    }

    /// Takes the store's lock: shared by every write, exclusive for garbage collection, so a
    /// blob stored a moment before its name is recorded is never collected in between.
    fn lock(&self, exclusive: bool) -> Result<File, StoreError> {
        let path = self.root.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open the store's lock", &path))?;
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.map_err(io_error("lock", &path))?;
        Ok(file)
    }

    /// Removes every name `retention` does not keep, then every blob no remaining name refers to,
    /// and the input index entries of removed names (they would only cost a lookup). With
    /// `dry_run`, only reports what would go and changes nothing.
    pub fn collect_garbage(
        &self,
        retention: &Retention,
        dry_run: bool,
    ) -> Result<GarbageReport, StoreError> {
        let _collecting = if dry_run {
            None
        } else {
            Some(self.lock(true)?)
        };
        let mut keep = retention.digests.clone();
        if retention.newest_builds {
            keep.extend(self.newest_builds()?.into_iter().map(|(_, digest)| digest));
        }
        let mut report = GarbageReport::default();
        let mut removed = BTreeSet::new();
        for name in self.record_names()? {
            let Some(provenance) = self.read_record(&name)? else {
                continue;
            };
            let recent = match retention.recorded_since {
                Some(since) => fs::metadata(self.record_path(&name))
                    .and_then(|m| m.modified())
                    .is_ok_and(|written| written >= since),
                None => false,
            };
            if recent || keep.contains(&provenance.digest) {
                report.kept_digests.insert(provenance.digest);
                continue;
            }
            let file = self.file_path(&name);
            let blob = self.blob_path(&provenance.digest);
            report.freed_bytes += copy_size(&file, &blob);
            report.removed_names.push(name.file_name());
            if !dry_run {
                remove_if_present(&self.record_path(&name))?;
                remove_if_present(&file)?;
            }
            removed.insert(name.file_name());
        }
        let blob_dir = self.blob_dir();
        for item in fs::read_dir(&blob_dir).map_err(io_error("list", &blob_dir))? {
            let item = item.map_err(io_error("list", &blob_dir))?;
            let Some(digest) = item
                .file_name()
                .to_str()
                .and_then(|hex| Digest::parse(hex).ok())
            else {
                continue;
            };
            if report.kept_digests.contains(&digest) {
                continue;
            }
            let size = item.metadata().map(|m| m.len()).unwrap_or(0);
            report.freed_bytes += size;
            report.removed_blobs.push(digest);
            if !dry_run {
                remove_if_present(&item.path())?;
            }
        }
        if !dry_run {
            for (entry, named) in self.input_entries()? {
                if removed.contains(&named) {
                    remove_if_present(&entry.path)?;
                }
            }
        }
        report.removed_names.sort();
        report.removed_blobs.sort();
        Ok(report)
    }

    /// For each component, the artifact its newest input index entry names (all of them when
    /// several were written at the same moment), with its digest; entries whose name is gone are
    /// passed over.
    pub fn newest_builds(&self) -> Result<Vec<(ArtifactName, Digest)>, StoreError> {
        let mut by_component: BTreeMap<Name, Vec<(InputEntry, ArtifactName, Digest)>> =
            BTreeMap::new();
        for (entry, named) in self.input_entries()? {
            let Some(name) = ArtifactName::parse(&named) else {
                continue;
            };
            let Some(provenance) = self.read_record(&name)? else {
                continue;
            };
            by_component
                .entry(entry.component.clone())
                .or_default()
                .push((entry, name, provenance.digest));
        }
        let mut newest = Vec::new();
        for entries in by_component.into_values() {
            let latest = entries.iter().map(|(entry, _, _)| entry.written).max();
            newest.extend(
                entries
                    .into_iter()
                    .filter(|(entry, _, _)| Some(entry.written) == latest)
                    .map(|(_, name, digest)| (name, digest)),
            );
        }
        newest.sort();
        newest.dedup();
        Ok(newest)
    }

    /// Every input index entry with the artifact file name it holds.
    fn input_entries(&self) -> Result<Vec<(InputEntry, String)>, StoreError> {
        let inputs = self.inputs_dir();
        let mut entries = Vec::new();
        for component_dir in fs::read_dir(&inputs).map_err(io_error("list", &inputs))? {
            let component_dir = component_dir.map_err(io_error("list", &inputs))?;
            let Some(component) = component_dir
                .file_name()
                .to_str()
                .and_then(|n| Name::parse(n).ok())
            else {
                continue;
            };
            let dir = component_dir.path();
            let Ok(items) = fs::read_dir(&dir) else {
                continue; // not a directory: not the index's
            };
            for item in items {
                let item = item.map_err(io_error("list", &dir))?;
                let path = item.path();
                let (Ok(text), Ok(written)) = (
                    fs::read_to_string(&path),
                    item.metadata().and_then(|m| m.modified()),
                ) else {
                    continue; // a damaged entry only costs a rebuild
                };
                entries.push((
                    InputEntry {
                        component: component.clone(),
                        path,
                        written,
                    },
                    text.trim().to_owned(),
                ));
            }
        }
        Ok(entries)
    }

    /// Re-hashes the blob for `digest` and returns its path only if the bytes still match.
    pub fn open_verified(&self, digest: &Digest) -> Result<PathBuf, StoreError> {
        let path = self.blob_path(digest);
        let actual = match hash_file(&path) {
            Ok((actual, _)) => actual,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobMissing {
                    digest: digest.clone(),
                    path,
                })
            }
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read the blob",
                    path,
                    source,
                })
            }
        };
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                path,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(path)
    }

    /// `Some` when `name` already refers to `digest`; `NameTaken` when it refers to other bytes.
    fn existing_reference(
        &self,
        name: &ArtifactName,
        digest: &Digest,
    ) -> Result<Option<StoredArtifact>, StoreError> {
        let Some(existing) = self.read_record(name)? else {
            return Ok(None);
        };
        if &existing.digest != digest {
            return Err(StoreError::NameTaken {
                name: name.file_name(),
                existing: existing.digest,
                new: digest.clone(),
            });
        }
        match self.verified_artifact(name, existing) {
            Ok(artifact) => Ok(Some(artifact)),
            // The blob was damaged or lost: store it again from the caller's good copy.
            Err(StoreError::DigestMismatch { .. } | StoreError::BlobMissing { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    fn read_record(&self, name: &ArtifactName) -> Result<Option<Provenance>, StoreError> {
        let path = self.record_path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read the artifact record",
                    path,
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::CorruptRecord { path, source })
    }

    fn verified_artifact(
        &self,
        name: &ArtifactName,
        provenance: Provenance,
    ) -> Result<StoredArtifact, StoreError> {
        let blob_path = self.open_verified(&provenance.digest)?;
        let file_path = self.file_path(name);
        if fs::symlink_metadata(&file_path).is_err() {
            self.link_visible(&blob_path, &file_path)?;
        }
        self.described(name, provenance, blob_path)
    }

    /// The [`StoredArtifact`] for a blob already known to be intact.
    fn described(
        &self,
        name: &ArtifactName,
        provenance: Provenance,
        blob_path: PathBuf,
    ) -> Result<StoredArtifact, StoreError> {
        let size = fs::metadata(&blob_path)
            .map_err(io_error("read the blob", &blob_path))?
            .len();
        Ok(StoredArtifact {
            name: name.clone(),
            digest: provenance.digest.clone(),
            size,
            blob_path,
            file_path: self.file_path(name),
            provenance,
        })
    }

    /// Copies `source` into the blob directory under `digest` unless an intact blob is there
    /// (a damaged one is replaced, not trusted). The copy is this store's own (a clone or a
    /// copy, see [`ArtifactStore::stage_copy`]), staged in `tmp/`, verified, made read-only and
    /// renamed into place.
    fn store_blob(&self, source: &Path, digest: &Digest) -> Result<ImportMethod, StoreError> {
        match self.open_verified(digest) {
            Ok(_) => return Ok(ImportMethod::AlreadyPresent),
            Err(StoreError::BlobMissing { .. } | StoreError::DigestMismatch { .. }) => {}
            Err(other) => return Err(other),
        }
        let (staged, method) = self.stage_copy(source)?;
        staged
            .as_file()
            .sync_all()
            .map_err(io_error("sync", staged.path()))?;
        // The bytes are immutable from here on, whichever way they arrived; read-only makes
        // accidental edits harder.
        fs::set_permissions(staged.path(), fs::Permissions::from_mode(0o444))
            .map_err(io_error("set permissions on", staged.path()))?;
        // The staged copy may differ from the hashed file if the source changed meanwhile.
        let (staged_digest, _) =
            hash_file(staged.path()).map_err(io_error("read", staged.path()))?;
        if &staged_digest != digest {
            return Err(StoreError::DigestMismatch {
                path: source.to_owned(),
                expected: digest.clone(),
                actual: staged_digest,
            });
        }
        let blob_path = self.blob_path(digest);
        staged.persist(&blob_path).map_err(|error| StoreError::Io {
            action: "store the blob",
            path: blob_path.clone(),
            source: error.error,
        })?;
        sync_dir(&self.blob_dir());
        Ok(method)
    }

    /// A new file in `tmp/` holding the bytes of `source`: a copy-on-write clone when the file
    /// system can make one, else a plain copy. Never a hard link: the staged file becomes this
    /// store's blob, and a blob shared with another store would let a write to one change both.
    fn stage_copy(&self, source: &Path) -> Result<(NamedTempFile, ImportMethod), StoreError> {
        let tmp_dir = self.tmp_dir();
        let new_staged = || {
            tempfile::Builder::new()
                .prefix("blob-")
                .tempfile_in(&tmp_dir)
                .map_err(io_error("create a temporary file in", &tmp_dir))
        };
        let mut input = File::open(source).map_err(io_error("read the artifact", source))?;
        let staged = new_staged()?;
        if reflink_copy::reflink_file(&input, staged.as_file()).is_ok() {
            return Ok((staged, ImportMethod::Reflink));
        }
        // Any failure to clone (unsupported file system, another device, an odd kernel) is only
        // a slower path. A failed clone may leave partial content, so copy into a fresh file.
        drop(staged);
        let mut staged = new_staged()?;
        io::Seek::rewind(&mut input).map_err(io_error("read the artifact", source))?;
        io::copy(&mut input, staged.as_file_mut())
            .map_err(io_error("copy the artifact to", staged.path()))?;
        Ok((staged, ImportMethod::Copy))
    }

    /// Writes the input index entry, the name record and the visible file for stored bytes.
    fn record(
        &self,
        name: &ArtifactName,
        provenance: Provenance,
    ) -> Result<StoredArtifact, StoreError> {
        let input_path = self.input_path(&name.component, &provenance.input_key)?;
        if let Some(parent) = input_path.parent() {
            fs::create_dir_all(parent)
                .map_err(io_error("create the input index directory", parent))?;
        }
        self.write_atomically(&input_path, format!("{}\n", name.file_name()).as_bytes())?;
        self.record_name_only(name, provenance)
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp_dir = self.tmp_dir();
        let mut staged = tempfile::Builder::new()
            .prefix("record-")
            .tempfile_in(&tmp_dir)
            .map_err(io_error("create a temporary file in", &tmp_dir))?;
        staged
            .write_all(bytes)
            .map_err(io_error("write", staged.path()))?;
        staged
            .as_file()
            .sync_all()
            .map_err(io_error("sync", staged.path()))?;
        staged.persist(path).map_err(|error| StoreError::Io {
            action: "write",
            path: path.to_owned(),
            source: error.error,
        })?;
        Ok(())
    }

    /// Makes `file_path` show the blob's bytes: a hard link when the file system allows it,
    /// a copy otherwise. Replaced atomically so readers never see a missing or partial file.
    fn link_visible(&self, blob_path: &Path, file_path: &Path) -> Result<(), StoreError> {
        let tmp_dir = self.tmp_dir();
        let builder = {
            let mut builder = tempfile::Builder::new();
            builder.prefix("visible-");
            builder
        };
        let staged = match builder.make_in(&tmp_dir, |path| fs::hard_link(blob_path, path)) {
            Ok(staged) => staged,
            Err(_) => builder
                .make_in(&tmp_dir, |path| {
                    fs::copy(blob_path, path)?;
                    fs::set_permissions(path, fs::Permissions::from_mode(0o444))
                })
                .map_err(io_error("copy the blob into", &tmp_dir))?,
        };
        staged.persist(file_path).map_err(|error| StoreError::Io {
            action: "publish",
            path: file_path.to_owned(),
            source: error.error,
        })?;
        Ok(())
    }
}

fn check_provenance_names(name: &ArtifactName, provenance: &Provenance) -> Result<(), StoreError> {
    if provenance.component != name.component || provenance.version != name.version {
        return Err(StoreError::ProvenanceName {
            name: name.file_name(),
            described: ArtifactName::new(provenance.component.clone(), provenance.version.clone())
                .file_name(),
        });
    }
    Ok(())
}

/// What a hash of the blob at `path` says about the bytes recorded as `expected`.
fn integrity_of(expected: &Digest, path: &Path, hashed: io::Result<(Digest, u64)>) -> Integrity {
    match hashed {
        Ok((actual, size)) if &actual == expected => Integrity::Intact { size },
        Ok((actual, _)) => Integrity::Modified { actual },
        Err(error) if error.kind() == io::ErrorKind::NotFound => Integrity::Missing,
        Err(source) => Integrity::Unreadable {
            message: StoreError::Io {
                action: "read the blob",
                path: path.to_owned(),
                source,
            }
            .to_string(),
        },
    }
}

/// Makes a rename durable. Best effort: some file systems refuse to open directories.
fn sync_dir(path: &Path) {
    if let Ok(directory) = File::open(path) {
        let _ = directory.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_of_a_hashed_blob() {
        let expected = Digest::of(b"recorded bytes");
        let other = Digest::of(b"other bytes");
        let path = Path::new("/store/blobs/sha256/abc");
        // (what, hash result, expected integrity)
        type Case = (&'static str, io::Result<(Digest, u64)>, Integrity);
        let cases: Vec<Case> = vec![
            (
                "same digest",
                Ok((expected.clone(), 14)),
                Integrity::Intact { size: 14 },
            ),
            (
                "other digest",
                Ok((other.clone(), 11)),
                Integrity::Modified {
                    actual: other.clone(),
                },
            ),
            (
                "no file",
                Err(io::Error::from(io::ErrorKind::NotFound)),
                Integrity::Missing,
            ),
            (
                "cannot read",
                Err(io::Error::other("disk on fire")),
                Integrity::Unreadable {
                    message: "could not read the blob `/store/blobs/sha256/abc`: disk on fire"
                        .to_owned(),
                },
            ),
        ];
        for (what, hashed, expect) in cases {
            assert_eq!(integrity_of(&expected, path, hashed), expect, "{what}");
        }
    }
}
