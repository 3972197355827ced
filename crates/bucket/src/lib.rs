//! Where a store lives when it is not a directory of this machine: an S3-compatible bucket
//! (`s3://bucket/prefix`) or, for tests and single machines, a directory (`file:///path`), both
//! behind `object_store`'s one interface, with the prefix applied to every key.
//!
//! Only locations and connections live here; what is stored (artifacts, manifests, reports) and
//! its guarantees belong to the crates that store it.

mod artifacts;
pub mod garage;
mod location;

pub use artifacts::{BucketArtifactStore, BucketStoreError, CopyMethod, FetchedArtifact};
pub use location::{BucketLocation, Credentials, LocationError, S3Settings};

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

/// What went wrong talking to a bucket, with the key and the location it was about.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error(transparent)]
    Location(#[from] Box<LocationError>),
    #[error("could not {action} `{key}` in {location}: {source}")]
    Store {
        action: &'static str,
        key: String,
        location: String,
        source: Box<object_store::Error>,
    },
}

/// Whether a write that must not replace anything wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object is new and holds the bytes given.
    Written,
    /// An object already had that key; it was left as it was.
    AlreadyThere,
}

/// A connected store and the prefix every key of this location lives under.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    location: BucketLocation,
}

impl Bucket {
    /// Connects to `location` (no request is made until the first operation).
    pub fn connect(
        location: &BucketLocation,
        settings: &S3Settings,
    ) -> Result<Bucket, BucketError> {
        Ok(Bucket {
            store: location.connect(settings).map_err(Box::new)?,
            location: location.clone(),
        })
    }

    pub fn location(&self) -> &BucketLocation {
        &self.location
    }

    /// The underlying store, for operations this type does not wrap.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full key of `relative` (a `/`-separated path below the location's prefix).
    pub fn key(&self, relative: &str) -> ObjectPath {
        self.location.key(relative)
    }

    /// Writes `bytes` at `relative` only if nothing is there yet (`If-None-Match: *` on S3, an
    /// exclusive create on a directory), so two writers never clobber each other.
    pub async fn create(&self, relative: &str, bytes: Bytes) -> Result<Created, BucketError> {
        let key = self.key(relative);
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&key, PutPayload::from_bytes(bytes), options)
            .await
        {
            Ok(_) => Ok(Created::Written),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(Created::AlreadyThere),
            Err(source) => Err(self.error("write", &key, source)),
        }
    }

    /// The bytes at `relative`, `None` when there is no such object.
    pub async fn read(&self, relative: &str) -> Result<Option<Bytes>, BucketError> {
        let key = self.key(relative);
        let result = match self.store.get(&key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(self.error("read", &key, source)),
        };
        result
            .bytes()
            .await
            .map(Some)
            .map_err(|source| self.error("read", &key, source))
    }

    /// The keys below `relative` (relative to the location's prefix), sorted.
    pub async fn list(&self, relative: &str) -> Result<Vec<String>, BucketError> {
        use futures_util::TryStreamExt as _;
        let key = self.key(relative);
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&key))
            .try_collect()
            .await
            .map_err(|source| self.error("list", &key, source))?;
        let mut names: Vec<String> = listed
            .into_iter()
            .filter_map(|meta| self.location.relative(&meta.location))
            .collect();
        names.sort();
        Ok(names)
    }

    /// An error about `key` in this location.
    pub fn error(
        &self,
        action: &'static str,
        key: &ObjectPath,
        source: object_store::Error,
    ) -> BucketError {
        BucketError::Store {
            action,
            key: key.to_string(),
            location: self.location.to_string(),
            source: Box::new(source),
        }
    }
}
