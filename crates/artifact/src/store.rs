//! The local content-addressed artifact store: blobs kept by digest, artifact names kept as
//! references to them, digests verified every time bytes are handed out.
//!
//! Layout under the root:
//!
//! ```text
//! blobs/sha256/<hex>                  the bytes, immutable and read-only
//! names/<component>-<version>.zip.json the Provenance (which includes the digest): a name is a reference
//! inputs/<component>/<input_key>      the artifact file name whose bytes match that input key
//! files/<component>-<version>.zip     hard link (or copy) to the blob, under the name users know
//! tmp/                                staging for atomic writes (same file system as the rest)
//! ```
//!
//! Every write goes through a temporary file and a rename, so two processes storing the same
//! blob or name at once cannot leave a torn file behind.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sandpit_domain::{ArtifactName, Digest, Name};

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
    pub removed_names: Vec<String>,
    pub removed_blobs: Vec<Digest>,
    pub freed_bytes: u64,
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

/// How [`ArtifactStore::import`] got the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMethod {
    AlreadyPresent,
    HardLink,
    Copy,
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
        let mut artifacts = Vec::new();
        for name in names {
            if let Some(artifact) = self.get(&name)? {
                artifacts.push(artifact);
            }
        }
        Ok(artifacts)
    }

    /// Copies the artifact `name` from `source` into this store — the same bytes under the same
    /// name and provenance, never rebuilt. The blob is hard-linked when both stores share a file
    /// system (copied otherwise) and its digest is verified before and after.
    pub fn import(
        &self,
        source: &ArtifactStore,
        name: &ArtifactName,
    ) -> Result<Imported, StoreError> {
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
        let method = self.import_blob(&original.blob_path, &original.digest)?;
        let artifact = self.record_name_only(name, original.provenance)?;
        Ok(Imported { artifact, method })
    }

    fn import_blob(&self, source_blob: &Path, digest: &Digest) -> Result<ImportMethod, StoreError> {
        match self.open_verified(digest) {
            Ok(_) => return Ok(ImportMethod::AlreadyPresent),
            Err(StoreError::BlobMissing { .. } | StoreError::DigestMismatch { .. }) => {}
            Err(other) => return Err(other),
        }
        let blob_path = self.blob_path(digest);
        let staged = self
            .tmp_dir()
            .join(format!("import-{}-{}", digest.hex(), std::process::id()));
        let _ = fs::remove_file(&staged);
        if fs::hard_link(source_blob, &staged).is_ok() {
            // A damaged blob left under the final name is replaced, not trusted.
            fs::rename(&staged, &blob_path).map_err(io_error("store the blob", &blob_path))?;
            self.open_verified(digest)?;
            sync_dir(&self.blob_dir());
            return Ok(ImportMethod::HardLink);
        }
        self.store_blob(source_blob, digest)?;
        self.open_verified(digest)?;
        Ok(ImportMethod::Copy)
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
        self.verified_artifact(name, provenance)
    }

    /// Removes every name whose digest is not in `keep`, then every blob no remaining name refers
    /// to. With `dry_run`, only reports what would go.
    pub fn collect_garbage(
        &self,
        keep: &BTreeSet<Digest>,
        dry_run: bool,
    ) -> Result<GarbageReport, StoreError> {
        let mut report = GarbageReport::default();
        let names_dir = self.names_dir();
        let mut referenced = BTreeSet::new();
        for item in fs::read_dir(&names_dir).map_err(io_error("list", &names_dir))? {
            let item = item.map_err(io_error("list", &names_dir))?;
            let file_name = item.file_name();
            let Some(name) = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(ArtifactName::parse)
            else {
                continue;
            };
            let Some(provenance) = self.read_record(&name)? else {
                continue;
            };
            if keep.contains(&provenance.digest) {
                referenced.insert(provenance.digest);
                continue;
            }
            report.removed_names.push(name.file_name());
            if !dry_run {
                remove_if_present(&self.record_path(&name))?;
                remove_if_present(&self.file_path(&name))?;
            }
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
            if referenced.contains(&digest) {
                continue;
            }
            let size = item.metadata().map(|m| m.len()).unwrap_or(0);
            report.freed_bytes += size;
            report.removed_blobs.push(digest);
            if !dry_run {
                remove_if_present(&item.path())?;
            }
        }
        report.removed_names.sort();
        Ok(report)
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
        let size = fs::metadata(&blob_path)
            .map_err(io_error("read the blob", &blob_path))?
            .len();
        let file_path = self.file_path(name);
        if fs::symlink_metadata(&file_path).is_err() {
            self.link_visible(&blob_path, &file_path)?;
        }
        Ok(StoredArtifact {
            name: name.clone(),
            digest: provenance.digest.clone(),
            size,
            blob_path,
            file_path,
            provenance,
        })
    }

    /// Copies `source` into the blob directory under `digest` unless an intact blob is there.
    fn store_blob(&self, source: &Path, digest: &Digest) -> Result<(), StoreError> {
        match self.open_verified(digest) {
            Ok(_) => return Ok(()),
            Err(StoreError::BlobMissing { .. } | StoreError::DigestMismatch { .. }) => {}
            Err(other) => return Err(other),
        }
        let tmp_dir = self.tmp_dir();
        let mut staged = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(io_error("create a temporary file in", &tmp_dir))?;
        let mut input = File::open(source).map_err(io_error("read the artifact", source))?;
        io::copy(&mut input, staged.as_file_mut())
            .map_err(io_error("copy the artifact to", staged.path()))?;
        staged
            .as_file()
            .sync_all()
            .map_err(io_error("sync", staged.path()))?;
        // The bytes are immutable from here on; read-only makes accidental edits harder.
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
        Ok(())
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

/// Makes a rename durable. Best effort: some file systems refuse to open directories.
fn sync_dir(path: &Path) {
    if let Ok(directory) = File::open(path) {
        let _ = directory.sync_all();
    }
}
