//! The agent against a real store (a `file://` directory through the same object interface as
//! S3) up to the point where it would deploy: what it refuses, supersedes and reports, and what
//! it remembers across a restart. Deploying is covered end to end (`crates/cli/tests/e2e/agents.rs`).

use super::*;
use sandpit_artifact::Provenance;
use sandpit_bucket::BucketLocation;
use sandpit_domain::{CommitId, ComponentKind, Digest, Version};
use sha2::Digest as _;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const SPEC: &str = "[project]\nname = \"shop\"\n\n[environments.prod]\n\n[services.api]\npath = \"api\"\nrun = \"./api\"\n";

struct World {
    _temp: tempfile::TempDir,
    control: Context,
    agent: Context,
    store: BucketArtifactStore,
    build: ArtifactStore,
    name: ArtifactName,
}

fn name(raw: &str) -> Name {
    Name::parse(raw).unwrap()
}

fn world() -> World {
    let temp = tempfile::tempdir().unwrap();
    let control = Context::for_home(&temp.path().join("control"));
    let agent = Context::for_home(&temp.path().join("agent"));
    let url = format!("file://{}", temp.path().join("store").display());
    let location = BucketLocation::parse(&url).unwrap();
    let store = BucketArtifactStore::new(Bucket::connect(&location, &Default::default()).unwrap());
    let build = ArtifactStore::open(&control.artifact_store_root("shop")).unwrap();
    let zip = temp.path().join("api.zip");
    let bytes = b"not really a zip, but bytes with a digest".to_vec();
    std::fs::write(&zip, &bytes).unwrap();
    let digest = Digest::parse(&format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(&bytes))
    ))
    .unwrap();
    let version = Version::parse(SHA).unwrap();
    let artifact = ArtifactName::new(name("api"), version.clone());
    let provenance = Provenance {
        component: name("api"),
        kind: ComponentKind::Service,
        version,
        commit: CommitId::parse(SHA).unwrap(),
        input_tree: "t".to_owned(),
        input_key: "k".to_owned(),
        build_command: None,
        builder: None,
        sandpit_version: "test".to_owned(),
        started_at: "2026-12-05T06:00:00Z".to_owned(),
        finished_at: "2026-12-05T06:00:00Z".to_owned(),
        digest,
        size: bytes.len() as u64,
        reused_from: None,
    };
    build.put(&artifact, &zip, provenance).unwrap();
    let trusted = keys::control_plane_key(&control.home).unwrap().public();
    keys::init(&agent.home, &trusted).unwrap();
    World {
        _temp: temp,
        control,
        agent,
        store,
        build,
        name: artifact,
    }
}

impl World {
    async fn publish(&self, text: &str) -> u64 {
        let artifacts = [self.name.clone()];
        publish(
            &self.control,
            &self.store,
            &Publication {
                project: &name("shop"),
                env: &name("prod"),
                version: SHA,
                definition: Definition::new(text.to_owned()),
                local: &self.build,
                artifacts: &artifacts,
                requester: "ci@example.com",
            },
        )
        .await
        .unwrap()
    }

    fn agent(&self) -> Agent {
        Agent::new(
            &self.agent,
            name("shop"),
            name("prod"),
            self.store.bucket().clone(),
        )
        .unwrap()
    }

    async fn reports(&self) -> Vec<Report> {
        let key = keys::agent_key(&self.agent.home).unwrap().public();
        reports(self.store.bucket(), &key).await.unwrap()
    }

    /// The manifest at `sequence`, as stored: key, bytes.
    async fn manifest(&self, sequence: u64) -> (String, Vec<u8>) {
        let listed = listed_manifests(self.store.bucket()).await.unwrap();
        let key = manifest_key(sequence, &listed[&sequence]);
        let bytes = self.store.bucket().read(&key).await.unwrap().unwrap();
        (key, bytes.to_vec())
    }
}

fn states(reports: &[Report]) -> Vec<(u64, ReportState)> {
    reports
        .iter()
        .map(|r| {
            let body = r.verified().expect("the agent's own reports verify");
            (body.sequence, body.state)
        })
        .collect()
}

#[tokio::test]
async fn publish_writes_the_artifacts_and_a_signed_manifest_with_the_next_sequence() {
    let world = world();
    assert_eq!(world.publish(SPEC).await, 1);
    assert_eq!(world.publish(SPEC).await, 2);
    let (key, bytes) = world.manifest(2).await;
    let signature = world
        .store
        .bucket()
        .read(&signature_key(&key))
        .await
        .unwrap()
        .unwrap();
    let trusted = keys::trusted(&world.agent.home).unwrap();
    let manifest =
        Manifest::open(&key, &bytes, &String::from_utf8_lossy(&signature), &trusted).unwrap();
    assert_eq!(manifest.sequence, 2);
    assert_eq!(manifest.requester, "ci@example.com");
    assert_eq!(manifest.artifacts[0].file, world.name.file_name());
    assert!(world.store.provenance(&world.name).await.unwrap().is_some());
}

#[tokio::test]
async fn a_forged_manifest_is_refused_reported_and_never_retried() {
    let world = world();
    world.publish(SPEC).await;
    // Changed after signing: the signature no longer covers the bytes.
    let (key, bytes) = world.manifest(1).await;
    let forged = String::from_utf8(bytes)
        .unwrap()
        .replace("ci@example.com", "mallory");
    report::put(world.store.bucket(), &key, forged.into_bytes())
        .await
        .unwrap();
    let mut agent = world.agent();
    let mut lines = Vec::new();
    let step = agent.step(&mut |l| lines.push(l.to_owned())).await.unwrap();
    assert_eq!(
        step,
        Step::Settled {
            sequence: 1,
            state: ReportState::Refused
        }
    );
    assert!(lines[0].contains("refused, nothing deployed"), "{lines:?}");
    let reports = world.reports().await;
    assert_eq!(states(&reports), [(1, ReportState::Refused)]);
    let message = &reports[0].verified().unwrap().message;
    assert!(message.contains("signature does not verify"), "{message}");
    // Settled: a restarted agent moves on rather than trying again.
    let mut restarted = world.agent();
    assert_eq!(restarted.step(&mut |_| {}).await.unwrap(), Step::Idle);
    assert!(
        deployment::state_store(&world.agent)
            .unwrap()
            .current("shop", "prod")
            .unwrap()
            .is_none(),
        "nothing deployed"
    );
}

#[tokio::test]
async fn a_manifest_signed_by_another_key_or_listing_another_digest_is_refused() {
    let world = world();
    world.publish(SPEC).await;
    // Signed by a key the agent does not trust.
    let (key, bytes) = world.manifest(1).await;
    let forger = SecretKey::generate().unwrap();
    report::put(
        world.store.bucket(),
        &signature_key(&key),
        forger.sign(&bytes).into_bytes(),
    )
    .await
    .unwrap();
    // Properly signed, but listing bytes that are not the artifact's.
    world.publish(SPEC).await;
    let (key, bytes) = world.manifest(2).await;
    let mut manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
    manifest.artifacts[0].sha256 = "ab".repeat(32);
    let (bytes, signature) = manifest.sign(&keys::control_plane_key(&world.control.home).unwrap());
    report::put(
        world.store.bucket(),
        &signature_key(&key),
        signature.into_bytes(),
    )
    .await
    .unwrap();
    report::put(world.store.bucket(), &key, bytes)
        .await
        .unwrap();

    let mut agent = world.agent();
    assert_eq!(
        agent.step(&mut |_| {}).await.unwrap(),
        Step::Settled {
            sequence: 2,
            state: ReportState::Refused
        },
        "the newest first"
    );
    assert_eq!(agent.step(&mut |_| {}).await.unwrap(), Step::Idle);
    let reports = world.reports().await;
    assert_eq!(
        states(&reports),
        [(1, ReportState::Superseded), (2, ReportState::Refused)]
    );
    let message = &reports[1].verified().unwrap().message;
    assert!(
        message.contains(&world.name.file_name()) && message.contains(&"ab".repeat(32)),
        "{message}"
    );
}

#[tokio::test]
async fn a_manifest_copied_under_a_newer_sequence_is_refused() {
    let world = world();
    world.publish(SPEC).await;
    let (key, bytes) = world.manifest(1).await;
    let signature = world
        .store
        .bucket()
        .read(&signature_key(&key))
        .await
        .unwrap()
        .unwrap();
    let mut agent = world.agent();
    // Pretend the first was applied; then the same signed bytes arrive under sequence 2.
    let id = parse_manifest_key(&key).unwrap().1.to_owned();
    agent.records.mark(1, &id, Seen::Applied).unwrap();
    let copy = manifest_key(2, "mcopy");
    report::put(
        world.store.bucket(),
        &signature_key(&copy),
        signature.to_vec(),
    )
    .await
    .unwrap();
    report::put(world.store.bucket(), &copy, bytes)
        .await
        .unwrap();
    let step = agent.step(&mut |_| {}).await.unwrap();
    assert_eq!(
        step,
        Step::Settled {
            sequence: 2,
            state: ReportState::Refused
        }
    );
    let reports = world.reports().await;
    let message = &reports[0].verified().unwrap().message;
    assert!(message.contains("a copy under another name"), "{message}");
}

#[tokio::test]
async fn an_agent_without_a_key_says_to_run_init() {
    let world = world();
    let bare = Context::for_home(&world._temp.path().join("bare"));
    let error = Agent::new(
        &bare,
        name("shop"),
        name("prod"),
        world.store.bucket().clone(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("run `sandpit agent init"), "{error}");
}
