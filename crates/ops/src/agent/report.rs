//! What an agent tells the control plane, by writing to its store (the only channel): one
//! signed report per manifest and state, `reports/<seq:012>-<id>.<state>.json` with a detached
//! `.sig` beside it (the agent's own key). Each key is written once per state, so a reader never
//! meets a report and a signature of different writes; a report whose signature does not verify
//! with the registered agent key is shown as unverified, never believed.

use sandpit_bucket::Bucket;
use sandpit_manifest::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};

/// The report schema this build writes and reads.
pub const REPORT_SCHEMA: u32 = 1;

/// Where a manifest stands, as its agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportState {
    /// Verified; the deployment has started.
    Started,
    Succeeded,
    Failed,
    /// Not deployed: its signature, a digest or its content did not hold.
    Refused,
    /// Not deployed: a newer manifest arrived before it was applied.
    Superseded,
}

impl ReportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Started => "started",
            ReportState::Succeeded => "succeeded",
            ReportState::Failed => "failed",
            ReportState::Refused => "refused",
            ReportState::Superseded => "superseded",
        }
    }

    fn parse(text: &str) -> Option<ReportState> {
        [
            ReportState::Started,
            ReportState::Succeeded,
            ReportState::Failed,
            ReportState::Refused,
            ReportState::Superseded,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

/// One component as deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedComponent {
    pub component: String,
    pub file: String,
    pub sha256: String,
}

/// A report's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBody {
    pub schema: u32,
    pub sequence: u64,
    /// The manifest's id.
    pub id: String,
    pub project: String,
    pub env: String,
    pub state: ReportState,
    /// What happened, in words (never a secret: errors are of sandpit's making).
    pub message: String,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub host: String,
    pub components: Vec<ReportedComponent>,
}

/// A report as read back: verified, or not (and then only its key is shown as fact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Verified(ReportBody),
    /// The signature is missing or does not verify with the agent's key, or the body is not a
    /// report: nothing in it is to be believed.
    Unverified {
        key: String,
        reason: String,
    },
}

impl Report {
    pub fn verified(&self) -> Option<&ReportBody> {
        match self {
            Report::Verified(body) => Some(body),
            Report::Unverified { .. } => None,
        }
    }
}

/// Where a report of `state` for manifest `sequence`/`id` lives.
pub fn report_key(sequence: u64, id: &str, state: ReportState) -> String {
    format!("reports/{sequence:012}-{id}.{}.json", state.as_str())
}

impl ReportBody {
    /// The bytes to store and their detached signature.
    pub fn sign(&self, key: &SecretKey) -> (Vec<u8>, String) {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a report always serializes");
        bytes.push(b'\n');
        let signature = key.sign(&bytes);
        (bytes, signature)
    }

    /// The report in `bytes` when `signature` verifies with `agent` and it is the report its
    /// key says it is.
    pub fn open(key: &str, bytes: &[u8], signature: Option<&str>, agent: &PublicKey) -> Report {
        let unverified = |reason: String| Report::Unverified {
            key: key.to_owned(),
            reason,
        };
        let Some(signature) = signature else {
            return unverified("it has no signature".to_owned());
        };
        if !agent.verifies(bytes, signature) {
            return unverified(format!(
                "its signature does not verify with the agent key {agent}"
            ));
        }
        let body: ReportBody = match serde_json::from_slice(bytes) {
            Ok(body) => body,
            Err(error) => return unverified(format!("it is not a report: {error}")),
        };
        if body.schema != REPORT_SCHEMA {
            return unverified(format!("it has report schema {}", body.schema));
        }
        if report_key(body.sequence, &body.id, body.state) != key {
            return unverified(
                "its content is of another manifest or state than its key says (a copy)".to_owned(),
            );
        }
        Report::Verified(body)
    }
}

/// The report keys in `keys` (a listing of `reports/`), without their signatures.
fn report_keys(keys: &[String]) -> impl Iterator<Item = &String> {
    keys.iter().filter(|key| {
        key.strip_prefix("reports/")
            .and_then(|rest| rest.strip_suffix(".json"))
            .and_then(|rest| rest.rsplit_once('.'))
            .is_some_and(|(_, state)| ReportState::parse(state).is_some())
    })
}

/// Every report in `store`, oldest manifest first (within one, in state order), each verified
/// against `agent`.
pub async fn reports(store: &Bucket, agent: &PublicKey) -> anyhow::Result<Vec<Report>> {
    let keys = store.list("reports").await?;
    let mut reports = Vec::new();
    for key in report_keys(&keys) {
        let Some(bytes) = store.read(key).await? else {
            continue; // removed since the listing
        };
        let signature = store.read(&format!("{key}.sig")).await?;
        let signature = signature.as_deref().map(String::from_utf8_lossy);
        reports.push(ReportBody::open(key, &bytes, signature.as_deref(), agent));
    }
    reports.sort_by_key(|report| match report {
        Report::Verified(body) => (body.sequence, Some(body.state), String::new()),
        Report::Unverified { key, .. } => (u64::MAX, None, key.clone()),
    });
    Ok(reports)
}

/// Writes a signed report: the signature first, the report last (a reader that sees the
/// report finds its signature).
pub async fn write(store: &Bucket, key: &SecretKey, body: &ReportBody) -> anyhow::Result<()> {
    let (bytes, signature) = body.sign(key);
    let at = report_key(body.sequence, &body.id, body.state);
    put(store, &format!("{at}.sig"), signature.into_bytes()).await?;
    put(store, &at, bytes).await
}

/// Writes (or replaces) the object at `relative`.
pub(crate) async fn put(store: &Bucket, relative: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
    let key = store.key(relative);
    store
        .object_store()
        .put(&key, bytes::Bytes::from(bytes).into())
        .await
        .map_err(|source| store.error("write", &key, source))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(state: ReportState) -> ReportBody {
        ReportBody {
            schema: REPORT_SCHEMA,
            sequence: 7,
            id: "m-1".to_owned(),
            project: "shop".to_owned(),
            env: "prod".to_owned(),
            state,
            message: "deployed".to_owned(),
            time: "2026-12-05T06:00:00.000Z".to_owned(),
            host: "worker-1".to_owned(),
            components: vec![],
        }
    }

    #[test]
    fn a_report_is_believed_only_with_the_agents_signature_and_its_own_key() {
        let agent = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let report = body(ReportState::Succeeded);
        let key = report_key(7, "m-1", ReportState::Succeeded);
        assert_eq!(key, "reports/000000000007-m-1.succeeded.json");
        let (bytes, signature) = report.sign(&agent);
        assert_eq!(
            ReportBody::open(&key, &bytes, Some(&signature), &agent.public()),
            Report::Verified(report.clone())
        );
        let (forged, forged_signature) = report.sign(&other);
        let shown = ReportBody::open(&key, &forged, Some(&forged_signature), &agent.public());
        assert!(
            matches!(&shown, Report::Unverified { reason, .. } if reason.contains("does not verify")),
            "{shown:?}"
        );
        let shown = ReportBody::open(&key, &bytes, None, &agent.public());
        assert!(matches!(shown, Report::Unverified { .. }));
        // A genuine report copied under another state's key is not that state's report.
        let copied = report_key(7, "m-1", ReportState::Failed);
        let shown = ReportBody::open(&copied, &bytes, Some(&signature), &agent.public());
        assert!(
            matches!(&shown, Report::Unverified { reason, .. } if reason.contains("a copy")),
            "{shown:?}"
        );
    }

    #[tokio::test]
    async fn reports_written_to_a_store_are_read_back_in_order_and_forgeries_flagged() {
        let temp = tempfile::tempdir().unwrap();
        let url = format!("file://{}", temp.path().display());
        let location = sandpit_bucket::BucketLocation::parse(&url).unwrap();
        let store = Bucket::connect(&location, &Default::default()).unwrap();
        let agent = SecretKey::generate().unwrap();
        write(&store, &agent, &body(ReportState::Succeeded))
            .await
            .unwrap();
        write(&store, &agent, &body(ReportState::Started))
            .await
            .unwrap();
        let forger = SecretKey::generate().unwrap();
        let mut forged = body(ReportState::Succeeded);
        forged.sequence = 8;
        write(&store, &forger, &forged).await.unwrap();
        let read = reports(&store, &agent.public()).await.unwrap();
        let states: Vec<Option<ReportState>> =
            read.iter().map(|r| r.verified().map(|b| b.state)).collect();
        assert_eq!(
            states,
            [
                Some(ReportState::Started),
                Some(ReportState::Succeeded),
                None
            ]
        );
    }
}
