//! The record of a state's last successful apply through sandpit (`applied.json` beside it):
//! what was applied — so an `up` that would apply exactly that again to an unchanged state
//! skips terraform — and what a later `destroy` needs when the commit's definition is not at
//! hand: the module's artifact, its variables, the binary, what it depends on.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// File name of the record, in the state's directory under `projects/<p>/terraform/`.
const FILE: &str = "applied.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// [`fingerprint`] of what was applied.
    pub fingerprint: String,
    /// The state's serial and lineage right after the apply: another writer (a `terraform`
    /// run by hand through `sandpit exec`) changes them.
    pub serial: u64,
    pub lineage: String,
    /// The deployment that applied it.
    pub deployment: i64,
    /// The module: the artifact's store, file name and digest (verified when extracted again).
    pub store: PathBuf,
    pub artifact: String,
    pub digest: String,
    pub binary: String,
    /// Plain variables, as passed (`sha`, `env`, `biome`, `vars`, configuration).
    pub vars: BTreeMap<String, String>,
    /// Secret variables: where each value was read from (read again for a destroy).
    pub secret_vars: BTreeMap<String, PathBuf>,
    pub depends_on: Vec<String>,
}

/// What decides whether applying again could change anything: the module's bytes, every
/// variable's value (secrets by their sha256) and the binary.
pub fn fingerprint(
    digest: &str,
    binary: &str,
    vars: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> String {
    let mut hash = Sha256::new();
    let mut field = |label: &str, value: &[u8]| {
        hash.update(label.as_bytes());
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value);
    };
    field("digest", digest.as_bytes());
    field("binary", binary.as_bytes());
    for (name, value) in vars {
        field("var", name.as_bytes());
        field("value", value.as_bytes());
    }
    for (name, value) in secrets {
        field("secret", name.as_bytes());
        field("sha256", &Sha256::digest(value.as_bytes()));
    }
    hex::encode(hash.finalize())
}

pub fn read(dir: &Path) -> io::Result<Option<Applied>> {
    super::record_file::read(&dir.join(FILE))
}

pub fn write(dir: &Path, applied: &Applied) -> io::Result<()> {
    super::record_file::write(&dir.join(FILE), applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_fingerprint_changes_with_the_module_any_value_or_the_binary() {
        let base = fingerprint(
            "sha256:aa",
            "terraform",
            &vars(&[("sha", "1")]),
            &vars(&[("token", "t")]),
        );
        assert_eq!(
            base,
            fingerprint(
                "sha256:aa",
                "terraform",
                &vars(&[("sha", "1")]),
                &vars(&[("token", "t")])
            )
        );
        for other in [
            fingerprint(
                "sha256:bb",
                "terraform",
                &vars(&[("sha", "1")]),
                &vars(&[("token", "t")]),
            ),
            fingerprint(
                "sha256:aa",
                "tofu",
                &vars(&[("sha", "1")]),
                &vars(&[("token", "t")]),
            ),
            fingerprint(
                "sha256:aa",
                "terraform",
                &vars(&[("sha", "2")]),
                &vars(&[("token", "t")]),
            ),
            fingerprint(
                "sha256:aa",
                "terraform",
                &vars(&[("sha", "1")]),
                &vars(&[("token", "u")]),
            ),
            // A value cannot slide into the next name.
            fingerprint(
                "sha256:aa",
                "terraform",
                &vars(&[("sh", "a1")]),
                &vars(&[("token", "t")]),
            ),
        ] {
            assert_ne!(base, other);
        }
    }
}
