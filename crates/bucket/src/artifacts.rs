//! An artifact store in a bucket, with the local store's guarantees: bytes kept by digest,
//! names as records beside them, every digest verified before bytes are handed out, and two
//! writers of one name never clobbering each other — on servers that ignore `If-None-Match`.
//!
//! Layout under the location's prefix:
//!
//! ```text
//! blobs/sha256/<hex>                       the bytes (a clobber can only write identical bytes)
//! names/<component>-<version>.zip/<hex>.json  a claim: the provenance of one writer of that name
//! ```
//!
//! A name is what its **earliest claim** says (by the server's modification time, ties broken by
//! digest); a claim is written only after its bytes, so a name is never visible before them, and
//! a writer that lost the race removes its own claim and gets `NameTaken`. Nothing is overwritten:
//! Garage (v2.5.0) replaces an object despite `If-None-Match: *`, so no guarantee here rests on it.
//! Each read downloads into a temporary file while hashing and refuses bytes that do not match.

use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore as _, PutPayload};
use sandpit_artifact::{ArtifactStore, Integrity, Provenance, StoreError};
use sandpit_domain::{ArtifactName, Digest};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::{Bucket, BucketError};

/// Why a bucket store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BucketStoreError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error(transparent)]
    Local(#[from] StoreError),
    #[error("{name} already refers to {existing} in {location}, not {new}; artifact names are never repointed")]
    NameTaken {
        name: String,
        location: String,
        existing: Digest,
        new: Digest,
    },
    #[error("`{key}` in {location} has been modified: expected {expected}, found {actual}; copy the artifact into the store again")]
    DigestMismatch {
        key: String,
        location: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("no blob with digest {digest} in {location}; copy the artifact into the store again")]
    BlobMissing { digest: Digest, location: String },
    #[error("the claim `{key}` in {location} is not a provenance record ({message})")]
    CorruptRecord {
        key: String,
        location: String,
        message: String,
    },
    #[error("cannot store {name}: its provenance says {expected} but the bytes hash to {actual}")]
    ProvenanceDigest {
        name: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("could not {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// One artifact's bytes, downloaded and verified: the file stays while this value lives.
#[derive(Debug)]
pub struct FetchedArtifact {
    pub name: ArtifactName,
    pub provenance: Provenance,
    pub file: tempfile::NamedTempFile,
}

/// How a copy between two bucket stores moved the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// The service copied the object itself (same bucket): no bytes through this machine.
    ServerSide,
    /// Downloaded and uploaded again (different buckets or services), hashed on the way.
    Streamed,
    /// The target already held the name with these bytes.
    AlreadyPresent,
}

/// An artifact store in a bucket (see the module's documentation for the layout).
#[derive(Debug, Clone)]
pub struct BucketArtifactStore {
    bucket: Bucket,
}

fn blob_key(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn claims_prefix(name: &ArtifactName) -> String {
    format!("names/{}", name.file_name())
}

fn claim_key(name: &ArtifactName, digest: &Digest) -> String {
    format!("{}/{}.json", claims_prefix(name), digest.hex())
}

/// The claim that decides a name: the earliest, ties broken by digest (every reader agrees).
fn deciding_claim(claims: &[ObjectMeta]) -> Option<&ObjectMeta> {
    claims
        .iter()
        .filter(|meta| meta.location.as_ref().ends_with(".json"))
        .min_by(|a, b| {
            (a.last_modified, a.location.as_ref()).cmp(&(b.last_modified, b.location.as_ref()))
        })
}

impl BucketArtifactStore {
    pub fn new(bucket: Bucket) -> BucketArtifactStore {
        BucketArtifactStore { bucket }
    }

    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    fn location(&self) -> String {
        self.bucket.location().to_string()
    }

    /// Stores the local file `zip_file` under `name`; its digest must be `provenance.digest`.
    /// The same name with the same bytes again is a no-op; with other bytes, `NameTaken`.
    pub async fn put_file(
        &self,
        name: &ArtifactName,
        zip_file: &Path,
        provenance: &Provenance,
    ) -> Result<(), BucketStoreError> {
        if let Some(existing) = self.decided(name).await? {
            return self.same_or_taken(name, &existing, &provenance.digest);
        }
        let actual = self.upload_blob(zip_file).await?;
        if actual != provenance.digest {
            return Err(BucketStoreError::ProvenanceDigest {
                name: name.file_name(),
                expected: provenance.digest.clone(),
                actual,
            });
        }
        self.claim(name, provenance).await
    }

    /// Uploads the artifact `name` from a local store (its digest verified there first).
    pub async fn upload_from(
        &self,
        local: &ArtifactStore,
        name: &ArtifactName,
    ) -> Result<(), BucketStoreError> {
        let stored = local.get(name)?.ok_or_else(|| StoreError::NotInSource {
            name: name.file_name(),
            store: local.root().to_owned(),
        })?;
        self.put_file(name, &stored.blob_path, &stored.provenance)
            .await
    }

    /// The provenance the name's deciding claim records, `None` when nothing claims it.
    pub async fn provenance(
        &self,
        name: &ArtifactName,
    ) -> Result<Option<Provenance>, BucketStoreError> {
        self.decided(name).await
    }

    /// Downloads the artifact `name` into a temporary file, hashing on the way; bytes that do
    /// not match the recorded digest are refused and never handed out.
    pub async fn fetch(
        &self,
        name: &ArtifactName,
    ) -> Result<Option<FetchedArtifact>, BucketStoreError> {
        let Some(provenance) = self.decided(name).await? else {
            return Ok(None);
        };
        let file = self.download_verified(&provenance.digest).await?;
        Ok(Some(FetchedArtifact {
            name: name.clone(),
            provenance,
            file,
        }))
    }

    /// Fetches `name` (verified) into the local store `local`, e.g. an environment's cache on
    /// the machine that runs it.
    pub async fn fetch_into(
        &self,
        name: &ArtifactName,
        local: &ArtifactStore,
    ) -> Result<Option<Digest>, BucketStoreError> {
        let Some(fetched) = self.fetch(name).await? else {
            return Ok(None);
        };
        let stored = local.put(name, fetched.file.path(), fetched.provenance)?;
        Ok(Some(stored.digest))
    }

    /// Every name with a claim, sorted.
    pub async fn list(&self) -> Result<Vec<ArtifactName>, BucketStoreError> {
        let keys = self.bucket.list("names").await?;
        let mut names: Vec<ArtifactName> = keys
            .iter()
            .filter_map(|key| key.strip_prefix("names/")?.split('/').next())
            .filter_map(ArtifactName::parse)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The integrity of `name`'s bytes (`None` when nothing claims it); nothing is written.
    pub async fn check(&self, name: &ArtifactName) -> Result<Option<Integrity>, BucketStoreError> {
        let Some(provenance) = self.decided(name).await? else {
            return Ok(None);
        };
        Ok(Some(
            match self.download_verified(&provenance.digest).await {
                Ok(file) => Integrity::Intact {
                    size: file.as_file().metadata().map(|m| m.len()).unwrap_or(0),
                },
                Err(BucketStoreError::DigestMismatch { actual, .. }) => {
                    Integrity::Modified { actual }
                }
                Err(BucketStoreError::BlobMissing { .. }) => Integrity::Missing,
                Err(other) => Integrity::Unreadable {
                    message: other.to_string(),
                },
            },
        ))
    }

    /// Copies `name` from `source` into this store under the same name and provenance: a
    /// server-side copy when both live in the same bucket, streamed otherwise; either way the
    /// copy is verified (downloaded and hashed) before its name is claimed.
    pub async fn copy_from(
        &self,
        source: &BucketArtifactStore,
        name: &ArtifactName,
    ) -> Result<CopyMethod, BucketStoreError> {
        let provenance = source
            .decided(name)
            .await?
            .ok_or_else(|| StoreError::NotInSource {
                name: name.file_name(),
                store: source.location().into(),
            })?;
        if let Some(existing) = self.decided(name).await? {
            self.same_or_taken(name, &existing, &provenance.digest)?;
            return Ok(CopyMethod::AlreadyPresent);
        }
        let digest = &provenance.digest;
        let same_bucket = self.bucket.location().same_bucket(source.bucket.location())
            && std::sync::Arc::ptr_eq(self.bucket.object_store(), source.bucket.object_store());
        let method = if same_bucket {
            let from = source.bucket.key(&blob_key(digest));
            let to = self.bucket.key(&blob_key(digest));
            self.bucket
                .object_store()
                .copy(&from, &to)
                .await
                .map_err(|e| self.bucket.error("copy into", &to, e))?;
            CopyMethod::ServerSide
        } else {
            let downloaded = source.download_verified(digest).await?;
            self.upload_blob(downloaded.path()).await?;
            CopyMethod::Streamed
        };
        // Verified in the target: what is claimed is what the target holds.
        self.download_verified(digest).await?;
        self.claim(name, &provenance).await?;
        Ok(method)
    }

    /// Uses the same connection as `other` (so copies between them can be server-side).
    pub fn sharing_connection(&self, location: &crate::BucketLocation) -> BucketArtifactStore {
        BucketArtifactStore {
            bucket: Bucket {
                store: self.bucket.store.clone(),
                location: location.clone(),
            },
        }
    }

    fn same_or_taken(
        &self,
        name: &ArtifactName,
        existing: &Provenance,
        new: &Digest,
    ) -> Result<(), BucketStoreError> {
        if &existing.digest == new {
            Ok(())
        } else {
            Err(BucketStoreError::NameTaken {
                name: name.file_name(),
                location: self.location(),
                existing: existing.digest.clone(),
                new: new.clone(),
            })
        }
    }

    /// Writes this writer's claim, then reads which claim decides the name: losing the race
    /// removes the claim again and reports `NameTaken`.
    async fn claim(
        &self,
        name: &ArtifactName,
        provenance: &Provenance,
    ) -> Result<(), BucketStoreError> {
        let mut json = serde_json::to_vec_pretty(provenance).expect("provenance always serialises");
        json.push(b'\n');
        let key = claim_key(name, &provenance.digest);
        self.bucket.create(&key, Bytes::from(json)).await?;
        let decided = self
            .decided(name)
            .await?
            .expect("a claim was written a moment ago");
        if decided.digest != provenance.digest {
            let ours = self.bucket.key(&key);
            self.bucket
                .object_store()
                .delete(&ours)
                .await
                .map_err(|e| self.bucket.error("remove the losing claim", &ours, e))?;
            return self.same_or_taken(name, &decided, &provenance.digest);
        }
        Ok(())
    }

    /// The provenance of the claim deciding `name`.
    async fn decided(&self, name: &ArtifactName) -> Result<Option<Provenance>, BucketStoreError> {
        let prefix = self.bucket.key(&claims_prefix(name));
        let claims: Vec<ObjectMeta> = {
            use futures_util::TryStreamExt as _;
            self.bucket
                .object_store()
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| self.bucket.error("list the claims of", &prefix, e))?
        };
        let Some(claim) = deciding_claim(&claims) else {
            return Ok(None);
        };
        let key = claim.location.clone();
        let relative = self
            .bucket
            .location()
            .relative(&key)
            .unwrap_or_else(|| key.to_string());
        let Some(bytes) = self.bucket.read(&relative).await? else {
            // Removed since the listing (a losing writer's claim): ask again.
            return Box::pin(self.decided(name)).await;
        };
        let provenance: Provenance =
            serde_json::from_slice(&bytes).map_err(|e| BucketStoreError::CorruptRecord {
                key: key.to_string(),
                location: self.location(),
                message: e.to_string(),
            })?;
        if provenance.component != name.component || provenance.version != name.version {
            return Err(BucketStoreError::CorruptRecord {
                key: key.to_string(),
                location: self.location(),
                message: "it describes another artifact".to_owned(),
            });
        }
        Ok(Some(provenance))
    }

    /// Uploads a local file as a blob (multipart when large) and returns the digest of the
    /// bytes sent. The key is the digest of the file as hashed first; the hash taken while
    /// sending must equal it, else the file changed under us and the result is refused.
    async fn upload_blob(&self, file: &Path) -> Result<Digest, BucketStoreError> {
        let io_error = |action, source| BucketStoreError::Io {
            action,
            path: file.display().to_string(),
            source,
        };
        let expected = hash_path(file).await.map_err(|e| io_error("read", e))?;
        let key = self.bucket.key(&blob_key(&expected));
        let mut reader = tokio::fs::File::open(file)
            .await
            .map_err(|e| io_error("read", e))?;
        let mut writer =
            object_store::buffered::BufWriter::new(self.bucket.object_store().clone(), key.clone());
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = tokio::io::AsyncReadExt::read(&mut reader, &mut buffer)
                .await
                .map_err(|e| io_error("read", e))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            writer
                .write_all(&buffer[..read])
                .await
                .map_err(|e| io_error("upload", e))?;
        }
        let sent = digest_of(hasher);
        if sent != expected {
            writer.abort().await.ok();
            return Err(BucketStoreError::ProvenanceDigest {
                name: file.display().to_string(),
                expected,
                actual: sent,
            });
        }
        writer.shutdown().await.map_err(|e| io_error("upload", e))?;
        Ok(sent)
    }

    /// Downloads the blob for `digest` into a temporary file, hashing on the way.
    async fn download_verified(
        &self,
        digest: &Digest,
    ) -> Result<tempfile::NamedTempFile, BucketStoreError> {
        let key = self.bucket.key(&blob_key(digest));
        let result = match self.bucket.object_store().get(&key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BucketStoreError::BlobMissing {
                    digest: digest.clone(),
                    location: self.location(),
                })
            }
            Err(e) => return Err(self.bucket.error("read", &key, e).into()),
        };
        let temp = tempfile::NamedTempFile::new().map_err(|source| BucketStoreError::Io {
            action: "create a temporary file for",
            path: key.to_string(),
            source,
        })?;
        let mut output =
            tokio::fs::File::from_std(temp.reopen().map_err(|source| BucketStoreError::Io {
                action: "open",
                path: temp.path().display().to_string(),
                source,
            })?);
        let mut hasher = Sha256::new();
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.bucket.error("read", &key, e))?;
            hasher.update(&chunk);
            output
                .write_all(&chunk)
                .await
                .map_err(|source| BucketStoreError::Io {
                    action: "write",
                    path: temp.path().display().to_string(),
                    source,
                })?;
        }
        output
            .flush()
            .await
            .map_err(|source| BucketStoreError::Io {
                action: "write",
                path: temp.path().display().to_string(),
                source,
            })?;
        let actual = digest_of(hasher);
        if &actual != digest {
            return Err(BucketStoreError::DigestMismatch {
                key: key.to_string(),
                location: self.location(),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(temp)
    }

    /// Writes raw bytes at a blob's key, bypassing every check: for tests that tamper.
    pub async fn overwrite_blob_unchecked(
        &self,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<(), BucketStoreError> {
        let key: ObjectPath = self.bucket.key(&blob_key(digest));
        self.bucket
            .object_store()
            .put(&key, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| self.bucket.error("write", &key, e))?;
        Ok(())
    }
}

async fn hash_path(path: &Path) -> std::io::Result<Digest> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = tokio::io::AsyncReadExt::read(&mut file, &mut buffer).await?;
        if read == 0 {
            return Ok(digest_of(hasher));
        }
        hasher.update(&buffer[..read]);
    }
}

fn digest_of(hasher: Sha256) -> Digest {
    Digest::parse(&format!("sha256:{}", hex::encode(hasher.finalize())))
        .expect("a sha256 is a digest")
}
