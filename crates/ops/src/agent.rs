//! Environment agents (push-only): the control plane [`publish`]es a signed manifest next to
//! the artifacts in an environment's store, and the environment's [`Agent`] — on the workload
//! side, in its own `$SANDPIT_HOME` — finds it there, verifies the signature and every digest,
//! deploys it with the machinery `deploy` uses (its own daemon, PostgreSQL and model endpoint),
//! and reports back by writing signed reports to the same store. Nothing reaches into the
//! agent's machine: the store is the only channel, both ways.
//!
//! Store layout (besides the artifact store's `blobs/` and `names/`):
//!
//! ```text
//! manifests/<seq:012>-<id>.json        the manifest, written last by `publish`
//! manifests/<seq:012>-<id>.json.sig    its detached signature (control plane key)
//! reports/<seq:012>-<id>.<state>.json  the agent's reports, each with a `.sig` (agent key)
//! ```
//!
//! Which manifest comes next is `sandpit_manifest::next_action` (pure); what the agent did with
//! each is in [`records`]; whether a verified manifest may be applied is [`admission`].

pub mod admission;
pub mod keys;
pub mod records;
pub mod report;

use std::collections::BTreeMap;
use std::time::SystemTime;

use sandpit_artifact::ArtifactStore;
use sandpit_bucket::{Bucket, BucketArtifactStore, BucketStoreError};
use sandpit_domain::{ArtifactName, Name};
use sandpit_manifest::{
    manifest_key, next_action, parse_manifest_key, signature_key, Action, Artifact, Definition,
    Manifest, PublicKey, SecretKey, Seen, SCHEMA_VERSION,
};
use sandpit_spec::Spec;
use sandpit_state::DeploymentKind;

use crate::deployment::{self, DatabaseSource};
use crate::release::{Chosen, Release};
use crate::sql_files::SqlSource;
use crate::timings::PhaseTimings;
use crate::Context;

pub use report::{reports, Report, ReportBody, ReportState, ReportedComponent};

/// What the control plane publishes to one environment's store.
pub struct Publication<'a> {
    pub project: &'a Name,
    pub env: &'a Name,
    pub version: &'a str,
    /// `sandpit.toml` and the SQL files at the version (`sql_files::carried`).
    pub definition: Definition,
    /// The local store the artifacts are uploaded from (e.g. the build store).
    pub local: &'a ArtifactStore,
    pub artifacts: &'a [ArtifactName],
    pub requester: &'a str,
}

/// Publishes a deployment to the environment whose store is `store`, signed with the control
/// plane's key (`keys::control_plane_key`, made on first use): the artifacts first, then the
/// manifest's signature, then the manifest — so an agent never finds a manifest whose parts
/// are missing. Returns the manifest's sequence (the highest in the store, plus one).
pub async fn publish(
    context: &Context,
    store: &BucketArtifactStore,
    publication: &Publication<'_>,
) -> anyhow::Result<u64> {
    let key = keys::control_plane_key(&context.home)?;
    let mut artifacts = Vec::new();
    for name in publication.artifacts {
        store.upload_from(publication.local, name).await?;
        let stored = publication.local.get(name)?.ok_or_else(|| {
            anyhow::anyhow!("{name} is not in {}", publication.local.root().display())
        })?;
        artifacts.push(Artifact {
            component: name.component.to_string(),
            file: name.file_name(),
            sha256: stored.digest.hex().to_owned(),
            size: stored.size,
        });
    }
    let bucket = store.bucket();
    let sequence = latest_sequence(bucket).await?.map_or(1, |s| s + 1);
    let manifest = Manifest {
        schema: SCHEMA_VERSION,
        sequence,
        id: new_id()?,
        project: publication.project.to_string(),
        env: publication.env.to_string(),
        version: publication.version.to_owned(),
        created_at: now(),
        requester: publication.requester.to_owned(),
        definition: publication.definition.clone(),
        artifacts,
    };
    let (bytes, signature) = manifest.sign(&key);
    let at = manifest_key(sequence, &manifest.id);
    report::put(bucket, &signature_key(&at), signature.into_bytes()).await?;
    report::put(bucket, &at, bytes).await?;
    Ok(sequence)
}

/// The highest manifest sequence in the store.
async fn latest_sequence(bucket: &Bucket) -> anyhow::Result<Option<u64>> {
    Ok(listed_manifests(bucket).await?.keys().next_back().copied())
}

/// The manifests in the store: sequence → id (the first by key when two share a sequence).
async fn listed_manifests(bucket: &Bucket) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut listed = BTreeMap::new();
    for key in bucket.list("manifests").await? {
        if let Some((sequence, id)) = parse_manifest_key(&key) {
            listed.entry(sequence).or_insert_with(|| id.to_owned());
        }
    }
    Ok(listed)
}

fn new_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random bytes for an id: {e}"))?;
    Ok(format!("m{}", hex::encode(bytes)))
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// This machine's name, for reports.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// What one pass of the agent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing new in the store.
    Idle,
    /// A manifest was settled (deployed, failed or refused).
    Settled { sequence: u64, state: ReportState },
}

/// One environment's agent: its store, keys and records.
pub struct Agent {
    context: Context,
    project: Name,
    env: Name,
    bucket: Bucket,
    artifacts: BucketArtifactStore,
    key: SecretKey,
    trusted: PublicKey,
    records: records::Records,
    host: String,
}

/// A manifest that will not be applied, and why (the `refused` report's message).
struct Refusal(String);

impl Agent {
    /// An agent for `project`'s `env` over `bucket`; needs `sandpit agent init` done in the home.
    pub fn new(
        context: &Context,
        project: Name,
        env: Name,
        bucket: Bucket,
    ) -> anyhow::Result<Agent> {
        let key = keys::agent_key(&context.home)?;
        let trusted = keys::trusted(&context.home)?;
        let records = records::Records::load(
            records::records_path(&context.home, &project, &env),
            &bucket.location().to_string(),
        )?;
        Ok(Agent {
            context: context.clone(),
            project,
            env,
            artifacts: BucketArtifactStore::new(bucket.clone()),
            bucket,
            key,
            trusted,
            records,
            host: host(),
        })
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    /// One pass: the next manifest (older unsettled ones superseded), verified, deployed and
    /// reported. An error is the store's or this machine's (nothing is settled; the next pass
    /// tries again); a bad manifest is a `refused` report, not an error.
    pub async fn step(&mut self, log: &mut dyn FnMut(&str)) -> anyhow::Result<Step> {
        let listed = listed_manifests(&self.bucket).await?;
        let sequences: Vec<u64> = listed.keys().copied().collect();
        let Action::Apply {
            sequence,
            superseded,
        } = next_action(&sequences, &self.records.seen())
        else {
            return Ok(Step::Idle);
        };
        for older in superseded {
            let id = &listed[&older];
            let message = format!("not deployed: manifest {sequence} is newer");
            self.report(older, id, ReportState::Superseded, &message, vec![])
                .await?;
            self.records.mark(older, id, Seen::Superseded)?;
            log(&format!(
                "manifest {older} ({id}): superseded by {sequence}"
            ));
        }
        let id = listed[&sequence].clone();
        let state = self.settle(sequence, &id, log).await?;
        Ok(Step::Settled { sequence, state })
    }

    async fn settle(
        &mut self,
        sequence: u64,
        id: &str,
        log: &mut dyn FnMut(&str),
    ) -> anyhow::Result<ReportState> {
        let (manifest, spec) = match self.verified(sequence, id).await? {
            Ok(verified) => verified,
            Err(Refusal(reason)) => {
                let message = format!("refused, nothing deployed: {reason}");
                self.report(sequence, id, ReportState::Refused, &message, vec![])
                    .await?;
                self.records.mark(sequence, id, Seen::Refused)?;
                log(&format!("manifest {sequence} ({id}): {message}"));
                return Ok(ReportState::Refused);
            }
        };
        let components: Vec<ReportedComponent> = manifest
            .artifacts
            .iter()
            .map(|a| ReportedComponent {
                component: a.component.clone(),
                file: a.file.clone(),
                sha256: a.sha256.clone(),
            })
            .collect();
        let started = format!("deploying version {} to `{}`", manifest.version, self.env);
        self.report(
            sequence,
            id,
            ReportState::Started,
            &started,
            components.clone(),
        )
        .await?;
        self.records.mark(sequence, id, Seen::Started)?;
        log(&format!("manifest {sequence} ({id}): {started}"));
        let deployed = self.deploy(&manifest, &spec, log).await;
        let (state, message) = match deployed {
            Ok(status) => (
                ReportState::Succeeded,
                format!(
                    "version {} runs in `{}` ({})",
                    manifest.version, self.env, status.state
                ),
            ),
            Err(error) => (ReportState::Failed, format!("{error:#}")),
        };
        self.report(sequence, id, state, &message, components)
            .await?;
        self.records.mark(sequence, id, Seen::Applied)?;
        log(&format!(
            "manifest {sequence} ({id}): {} — {message}",
            state.as_str()
        ));
        Ok(state)
    }

    /// The manifest at `sequence`/`id` with its definition, when its signature verifies with
    /// the trusted key, it is admissible, and every artifact is in this environment's own store
    /// with the digest the manifest lists (fetched and verified).
    async fn verified(
        &self,
        sequence: u64,
        id: &str,
    ) -> anyhow::Result<Result<(Manifest, Spec), Refusal>> {
        let key = manifest_key(sequence, id);
        let Some(bytes) = self.bucket.read(&key).await? else {
            return Ok(Err(Refusal(format!("`{key}` disappeared from the store"))));
        };
        let Some(signature) = self.bucket.read(&signature_key(&key)).await? else {
            return Ok(Err(Refusal(format!(
                "`{key}` has no signature beside it (the control plane writes it first, so this manifest is not the control plane's)"
            ))));
        };
        let signature = String::from_utf8_lossy(&signature);
        let manifest = match Manifest::open(&key, &bytes, &signature, &self.trusted) {
            Ok(manifest) => manifest,
            Err(error) => return Ok(Err(Refusal(error.to_string()))),
        };
        let spec = match admission::admit(&manifest, sequence, id, &self.project, &self.env) {
            Ok(spec) => spec,
            Err(reason) => return Ok(Err(Refusal(reason))),
        };
        let local = deployment::env_store(&self.context, &self.project, &self.env)?;
        for artifact in &manifest.artifacts {
            let name = ArtifactName::parse(&artifact.file).expect("checked by admission");
            match self.artifacts.fetch_into(&name, &local).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Ok(Err(Refusal(format!(
                        "artifact `{}` is not in the store",
                        artifact.file
                    ))))
                }
                Err(
                    error @ (BucketStoreError::DigestMismatch { .. }
                    | BucketStoreError::BlobMissing { .. }
                    | BucketStoreError::CorruptRecord { .. }
                    | BucketStoreError::Local(_)),
                ) => return Ok(Err(Refusal(error.to_string()))),
                Err(error) => return Err(error.into()),
            }
            let stored = match local.get(&name) {
                Ok(Some(stored)) => stored,
                Ok(None) => anyhow::bail!("{name} vanished from {}", local.root().display()),
                Err(error) => return Ok(Err(Refusal(error.to_string()))),
            };
            let bytes = std::fs::read(&stored.blob_path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", stored.blob_path.display()))?;
            if let Err(error) = manifest.check_artifact(&key, artifact, &bytes) {
                return Ok(Err(Refusal(error.to_string())));
            }
        }
        Ok(Ok((manifest, spec)))
    }

    /// Deploys a verified manifest into this environment's base, recorded in this home's state
    /// as a deployment requested by the manifest's requester.
    async fn deploy(
        &self,
        manifest: &Manifest,
        spec: &Spec,
        log: &mut dyn FnMut(&str),
    ) -> anyhow::Result<sandpit_runtime::protocol::BiomeStatus> {
        let store = deployment::env_store(&self.context, &self.project, &self.env)?;
        let mut artifacts = BTreeMap::new();
        for artifact in &manifest.artifacts {
            let name = ArtifactName::parse(&artifact.file).expect("checked by admission");
            artifacts.insert(
                name.component.clone(),
                Chosen {
                    artifact: artifact.file.clone(),
                    digest: sandpit_domain::Digest::parse(&format!("sha256:{}", artifact.sha256))?,
                },
            );
        }
        let release = Release {
            spec,
            env: self.env.clone(),
            biome: self.env.clone(),
            version: manifest.version.clone(),
            store: store.root(),
            artifacts,
            database: None,
            extra_env: BTreeMap::new(),
            models: None,
            config: Default::default(),
            borrowed: BTreeMap::new(),
            shared_models: Default::default(),
            terraform: Default::default(),
        };
        let source = DatabaseSource {
            sql: SqlSource::Carried(&manifest.definition.files),
            reset: false,
        };
        let mut context = self.context.clone();
        context.principal = crate::principal::Principal::local(Some(&manifest.requester));
        let mut timings = PhaseTimings::default();
        deployment::record_and_apply(
            &context,
            release,
            &source,
            DeploymentKind::Deploy,
            &mut timings,
            &mut |component, message| match component {
                Some(component) => log(&format!("  {component}: {message}")),
                None => log(&format!("  {message}")),
            },
        )
        .await
    }

    async fn report(
        &self,
        sequence: u64,
        id: &str,
        state: ReportState,
        message: &str,
        components: Vec<ReportedComponent>,
    ) -> anyhow::Result<()> {
        let body = ReportBody {
            schema: report::REPORT_SCHEMA,
            sequence,
            id: id.to_owned(),
            project: self.project.to_string(),
            env: self.env.to_string(),
            state,
            message: message.to_owned(),
            time: now(),
            host: self.host.clone(),
            components,
        };
        report::write(&self.bucket, &self.key, &body).await
    }
}

#[cfg(test)]
mod tests;
