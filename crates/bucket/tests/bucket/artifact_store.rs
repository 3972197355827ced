//! The artifact store's suite, run against both backends (a local directory store and a bucket
//! store on a real Garage), then what only a bucket can go through: promotion between two
//! buckets, a tampered object, two concurrent writers of one name, the server killed mid-upload.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use sandpit_artifact::{ArtifactStore, Integrity, Provenance, StoreError};
use sandpit_bucket::garage::GarageServer;
use sandpit_bucket::{Bucket, BucketArtifactStore, BucketLocation, BucketStoreError, CopyMethod};
use sandpit_domain::{ArtifactName, CommitId, ComponentKind, Digest, Name, Version};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn name(component: &str, sha: &str) -> ArtifactName {
    ArtifactName::new(
        Name::parse(component).unwrap(),
        Version::clean(CommitId::parse(sha).unwrap()),
    )
}

fn provenance(name: &ArtifactName, digest: &Digest, size: u64) -> Provenance {
    Provenance {
        component: name.component.clone(),
        kind: ComponentKind::Service,
        version: name.version.clone(),
        commit: name.version.commit().clone(),
        input_tree: "0".repeat(40),
        input_key: format!("key-{}", name.component),
        build_command: None,
        builder: None,
        sandpit_version: "0.1.0".to_owned(),
        started_at: "2026-01-01T00:00:00Z".to_owned(),
        finished_at: "2026-01-01T00:00:01Z".to_owned(),
        digest: digest.clone(),
        size,
        reused_from: None,
    }
}

/// A file with `bytes`, and its digest.
fn file(dir: &Path, label: &str, bytes: &[u8]) -> (PathBuf, Digest) {
    let path = dir.join(label);
    std::fs::write(&path, bytes).unwrap();
    (path, Digest::of(bytes))
}

/// The two backends behind the operations the suite needs.
enum Backend {
    Local(ArtifactStore),
    Bucket(BucketArtifactStore),
}

/// What the suite sees of a failed write or read, whichever backend.
#[derive(Debug, PartialEq)]
enum Refusal {
    NameTaken,
    Modified,
    Missing,
    Other(String),
}

fn refusal_of_local(error: StoreError) -> Refusal {
    match error {
        StoreError::NameTaken { .. } => Refusal::NameTaken,
        StoreError::DigestMismatch { .. } => Refusal::Modified,
        StoreError::BlobMissing { .. } => Refusal::Missing,
        other => Refusal::Other(other.to_string()),
    }
}

fn refusal_of_bucket(error: BucketStoreError) -> Refusal {
    match error {
        BucketStoreError::NameTaken { .. } => Refusal::NameTaken,
        BucketStoreError::DigestMismatch { .. } => Refusal::Modified,
        BucketStoreError::BlobMissing { .. } => Refusal::Missing,
        other => Refusal::Other(other.to_string()),
    }
}

impl Backend {
    async fn put(&self, name: &ArtifactName, file: &Path, digest: &Digest) -> Result<(), Refusal> {
        let size = std::fs::metadata(file).unwrap().len();
        let provenance = provenance(name, digest, size);
        match self {
            Backend::Local(store) => store
                .put(name, file, provenance)
                .map(drop)
                .map_err(refusal_of_local),
            Backend::Bucket(store) => store
                .put_file(name, file, &provenance)
                .await
                .map_err(refusal_of_bucket),
        }
    }

    /// The verified bytes of `name`.
    async fn read(&self, name: &ArtifactName) -> Result<Option<Vec<u8>>, Refusal> {
        match self {
            Backend::Local(store) => match store.get(name) {
                Ok(Some(stored)) => Ok(Some(std::fs::read(stored.blob_path).unwrap())),
                Ok(None) => Ok(None),
                Err(error) => Err(refusal_of_local(error)),
            },
            Backend::Bucket(store) => match store.fetch(name).await {
                Ok(Some(fetched)) => Ok(Some(std::fs::read(fetched.file.path()).unwrap())),
                Ok(None) => Ok(None),
                Err(error) => Err(refusal_of_bucket(error)),
            },
        }
    }

    async fn check(&self, name: &ArtifactName) -> Option<Integrity> {
        match self {
            Backend::Local(store) => store.check(name).unwrap().map(|c| c.integrity),
            Backend::Bucket(store) => store.check(name).await.unwrap(),
        }
    }

    async fn list(&self) -> Vec<ArtifactName> {
        match self {
            Backend::Local(store) => store.list().unwrap().into_iter().map(|a| a.name).collect(),
            Backend::Bucket(store) => store.list().await.unwrap(),
        }
    }

    /// Replaces the stored bytes for `digest` behind the store's back.
    async fn tamper(&self, digest: &Digest, bytes: &[u8]) {
        match self {
            Backend::Local(store) => {
                let path = store.blob_path(digest);
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o644),
                )
                .unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            Backend::Bucket(store) => store
                .overwrite_blob_unchecked(digest, Bytes::copy_from_slice(bytes))
                .await
                .unwrap(),
        }
    }
}

/// The suite every backend passes.
async fn the_suite(store: &Backend, dir: &Path) {
    let api_a = name("api", SHA_A);
    let api_b = name("api", SHA_B);
    let web_a = name("web", SHA_A);
    let (api_file, api_digest) = file(dir, "api.zip", b"api version one");
    let (other_file, other_digest) = file(dir, "other.zip", b"api version two");
    let (web_file, web_digest) = file(dir, "web.zip", b"web version one");

    assert_eq!(store.read(&api_a).await, Ok(None), "nothing stored yet");
    store.put(&api_a, &api_file, &api_digest).await.unwrap();
    store.put(&api_a, &api_file, &api_digest).await.unwrap(); // idempotent
    assert_eq!(
        store.put(&api_a, &other_file, &other_digest).await,
        Err(Refusal::NameTaken),
        "a name is never repointed"
    );
    assert_eq!(
        store.read(&api_a).await.unwrap().as_deref(),
        Some(&b"api version one"[..])
    );
    // The same bytes under another name (an unchanged component at a new commit).
    store.put(&api_b, &api_file, &api_digest).await.unwrap();
    store.put(&web_a, &web_file, &web_digest).await.unwrap();
    assert_eq!(
        store.list().await,
        vec![api_a.clone(), api_b.clone(), web_a.clone()]
    );
    assert!(matches!(
        store.check(&web_a).await,
        Some(Integrity::Intact { size: 15 })
    ));
    assert_eq!(store.check(&name("ghost", SHA_A)).await, None);

    // A provenance that lies about the bytes is refused.
    let (lying_file, _) = file(dir, "lying.zip", b"not what it says");
    let refused = store
        .put(&name("lying", SHA_A), &lying_file, &web_digest)
        .await;
    assert!(matches!(refused, Err(Refusal::Other(_))), "{refused:?}");
    assert!(!store.list().await.contains(&name("lying", SHA_A)));

    // Modified bytes are never handed out, and checks say so.
    store.tamper(&web_digest, b"web version EVIL").await;
    assert_eq!(store.read(&web_a).await, Err(Refusal::Modified));
    assert!(matches!(
        store.check(&web_a).await,
        Some(Integrity::Modified { actual }) if actual == Digest::of(b"web version EVIL")
    ));
}

#[test]
fn the_suite_passes_on_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Backend::Local(ArtifactStore::open(&dir.path().join("store")).unwrap());
    runtime().block_on(the_suite(&store, dir.path()));
}

fn bucket_store(
    server: &GarageServer,
    url: &str,
    credentials: &sandpit_bucket::Credentials,
) -> BucketArtifactStore {
    let location = BucketLocation::parse(url).unwrap();
    BucketArtifactStore::new(Bucket::connect(&location, &server.settings(credentials)).unwrap())
}

#[test]
fn the_suite_passes_on_a_bucket_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = GarageServer::start().unwrap();
    let credentials = server.create_bucket("sp-suite").unwrap();
    let store = Backend::Bucket(bucket_store(
        &server,
        "s3://sp-suite/orewise/dev",
        &credentials,
    ));
    runtime().block_on(the_suite(&store, dir.path()));
}

#[test]
fn promotion_between_buckets_copies_verifies_and_refuses_tampered_sources() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = GarageServer::start().unwrap();
    let dev_key = server.create_bucket("sp-dev").unwrap();
    let prod_key = server.create_bucket("sp-prod").unwrap();
    // One key that may write both (the control plane's), for the copies.
    let both = server
        .create_key(
            &["sp-dev", "sp-prod"],
            sandpit_bucket::garage::Permissions::READ_WRITE,
        )
        .unwrap();
    let rt = runtime();
    let dev = bucket_store(&server, "s3://sp-dev/orewise", &dev_key);
    let prod = bucket_store(&server, "s3://sp-prod/orewise", &prod_key);
    let (api_file, api_digest) = file(dir.path(), "api.zip", b"api bytes");
    let (web_file, web_digest) = file(dir.path(), "web.zip", b"web bytes");
    let api = name("api", SHA_A);
    let web = name("web", SHA_A);
    rt.block_on(async {
        dev.put_file(&api, &api_file, &provenance(&api, &api_digest, 9))
            .await
            .unwrap();
        dev.put_file(&web, &web_file, &provenance(&web, &web_digest, 9))
            .await
            .unwrap();

        // Different buckets: streamed through this machine, verified, then named in prod.
        assert_eq!(
            prod.copy_from(&dev, &api).await.unwrap(),
            CopyMethod::Streamed
        );
        assert_eq!(
            prod.copy_from(&dev, &api).await.unwrap(),
            CopyMethod::AlreadyPresent
        );
        let fetched = prod.fetch(&api).await.unwrap().unwrap();
        assert_eq!(std::fs::read(fetched.file.path()).unwrap(), b"api bytes");
        assert_eq!(fetched.provenance.digest, api_digest);

        // Same bucket, another prefix, one connection: the service copies the object itself.
        let control = bucket_store(&server, "s3://sp-dev/orewise", &both);
        let staging =
            control.sharing_connection(&BucketLocation::parse("s3://sp-dev/staging").unwrap());
        assert_eq!(
            staging.copy_from(&control, &api).await.unwrap(),
            CopyMethod::ServerSide
        );
        assert!(matches!(
            staging.check(&api).await.unwrap(),
            Some(Integrity::Intact { .. })
        ));

        // A tampered source is never copied: prod does not get the name.
        dev.overwrite_blob_unchecked(&web_digest, Bytes::from_static(b"evil bytes"))
            .await
            .unwrap();
        let refused = prod.copy_from(&dev, &web).await.unwrap_err().to_string();
        assert!(refused.contains("has been modified"), "{refused}");
        assert_eq!(prod.provenance(&web).await.unwrap(), None);
        assert!(prod.list().await.unwrap() == vec![api.clone()]);

        // Fetching into a local cache verifies and stores under the same name.
        let local = ArtifactStore::open(&dir.path().join("cache")).unwrap();
        assert_eq!(
            prod.fetch_into(&api, &local).await.unwrap(),
            Some(api_digest.clone())
        );
        assert_eq!(local.get(&api).unwrap().unwrap().digest, api_digest);
    });
}

#[test]
fn two_concurrent_writers_of_one_name_never_clobber_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = GarageServer::start().unwrap();
    let credentials = server.create_bucket("sp-race").unwrap();
    let rt = runtime();
    for round in 0..4 {
        let contested = name(&format!("api{round}"), SHA_A);
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let store = bucket_store(&server, "s3://sp-race/store", &credentials);
                let bytes = format!("round {round} writer {writer}").into_bytes();
                let (path, digest) = file(dir.path(), &format!("w{round}-{writer}"), &bytes);
                let contested = contested.clone();
                let provenance = provenance(&contested, &digest, bytes.len() as u64);
                rt.spawn(async move {
                    store
                        .put_file(&contested, &path, &provenance)
                        .await
                        .map(|()| digest)
                })
            })
            .collect();
        let outcomes: Vec<_> = rt.block_on(async {
            let mut outcomes = Vec::new();
            for writer in writers {
                outcomes.push(writer.await.unwrap());
            }
            outcomes
        });
        let winners: Vec<&Digest> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one writer wins: {outcomes:?}"
        );
        for outcome in &outcomes {
            if let Err(error) = outcome {
                assert!(
                    matches!(error, BucketStoreError::NameTaken { .. }),
                    "{error}"
                );
            }
        }
        let reader = bucket_store(&server, "s3://sp-race/store", &credentials);
        let fetched = rt.block_on(reader.fetch(&contested)).unwrap().unwrap();
        assert_eq!(&fetched.provenance.digest, winners[0], "round {round}");
        assert_eq!(
            &Digest::of(&std::fs::read(fetched.file.path()).unwrap()),
            winners[0]
        );
    }
}

#[test]
fn a_server_killed_during_a_write_leaves_nothing_half_visible_and_a_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = GarageServer::start().unwrap();
    let credentials = server.create_bucket("sp-crash").unwrap();
    let big: Vec<u8> = (0..96u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (path, digest) = file(dir.path(), "big.zip", &big);
    let big_name = name("big", SHA_A);
    let rt = runtime();
    let store = bucket_store(&server, "s3://sp-crash/store", &credentials);
    let upload = {
        let store = store.clone();
        let (path, name, provenance) = (
            path.clone(),
            big_name.clone(),
            provenance(&big_name, &digest, big.len() as u64),
        );
        rt.spawn(async move { store.put_file(&name, &path, &provenance).await })
    };
    // The server dies while the write is under way (before its bytes are all sent; the store
    // hashes 96 MiB first). A kill at a chosen byte of the transfer is not pinned yet.
    server.stop();
    let outcome = rt.block_on(upload).unwrap();
    assert!(
        outcome.is_err(),
        "the upload cannot have finished against a dead server"
    );
    server.restart().unwrap();
    let again = bucket_store(&server, "s3://sp-crash/store", &credentials);
    rt.block_on(async {
        assert_eq!(
            again.provenance(&big_name).await.unwrap(),
            None,
            "no name without its bytes"
        );
        assert_eq!(again.list().await.unwrap(), Vec::<ArtifactName>::new());
        again
            .put_file(
                &big_name,
                &path,
                &provenance(&big_name, &digest, big.len() as u64),
            )
            .await
            .unwrap();
        let fetched = again.fetch(&big_name).await.unwrap().unwrap();
        assert_eq!(fetched.provenance.digest, digest);
    });
}
