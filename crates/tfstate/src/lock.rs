//! Terraform's lock record (`LockInfo`, as its http backend sends it) and the pure decisions
//! over it: may this lock be taken, this unlock be done, this state be written.

use serde::{Deserialize, Serialize};

/// What Terraform sends with LOCK and UNLOCK and prints about a lock's holder. The field names
/// are Terraform's own (`statemgr.LockInfo`); `Created` is kept as sent (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Operation", default)]
    pub operation: String,
    #[serde(rename = "Info", default)]
    pub info: String,
    #[serde(rename = "Who", default)]
    pub who: String,
    #[serde(rename = "Version", default)]
    pub version: String,
    #[serde(rename = "Created", default)]
    pub created: String,
    #[serde(rename = "Path", default)]
    pub path: String,
}

impl LockInfo {
    /// `locked by <Who> since <Created> (<Operation>, id <ID>)`.
    pub fn describe(&self) -> String {
        format!(
            "locked by {} since {} ({}, id {})",
            self.who, self.created, self.operation, self.id
        )
    }
}

/// The answer to a LOCK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockDecision {
    Take,
    /// Someone holds it: Terraform is shown who.
    HeldBy(LockInfo),
}

/// The answer to an UNLOCK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlockDecision {
    Release,
    /// Nothing to release: done already (Terraform's unlock after a force-unlock).
    NotLocked,
    /// Someone else holds it.
    HeldBy(LockInfo),
}

/// The answer to a state write (`POST ?ID=<lock id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteDecision {
    Write,
    /// Locked by someone other than the writer (or by anyone, for a writer naming no lock).
    HeldBy(LockInfo),
    /// The writer names a lock nobody holds any more (it was force-unlocked): its plan was
    /// made against a state that someone else may have changed since.
    LockGone {
        id: String,
    },
}

/// A lock request meets the current holder. Taking a lock one already holds is granted again.
pub fn decide_lock(current: Option<&LockInfo>, requested: &LockInfo) -> LockDecision {
    match current {
        Some(holder) if holder.id != requested.id => LockDecision::HeldBy(holder.clone()),
        _ => LockDecision::Take,
    }
}

/// An unlock by `id` meets the current holder.
pub fn decide_unlock(current: Option<&LockInfo>, id: &str) -> UnlockDecision {
    match current {
        None => UnlockDecision::NotLocked,
        Some(holder) if holder.id == id => UnlockDecision::Release,
        Some(holder) => UnlockDecision::HeldBy(holder.clone()),
    }
}

/// A write naming lock `id` (or none) meets the current holder.
pub fn decide_write(current: Option<&LockInfo>, id: Option<&str>) -> WriteDecision {
    match (current, id) {
        (None, None) => WriteDecision::Write,
        (None, Some(id)) => WriteDecision::LockGone { id: id.to_owned() },
        (Some(holder), Some(id)) if holder.id == id => WriteDecision::Write,
        (Some(holder), _) => WriteDecision::HeldBy(holder.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(id: &str) -> LockInfo {
        LockInfo {
            id: id.to_owned(),
            operation: "OperationTypeApply".to_owned(),
            info: String::new(),
            who: "alice@laptop".to_owned(),
            version: "1.11.4".to_owned(),
            created: "2026-12-03T14:00:00.000000000Z".to_owned(),
            path: String::new(),
        }
    }

    #[test]
    fn locks_go_to_the_first_and_are_shown_to_the_others() {
        let a = lock("a");
        let b = lock("b");
        let cases = [
            (None, &a, LockDecision::Take),
            (Some(&a), &a, LockDecision::Take),
            (Some(&a), &b, LockDecision::HeldBy(a.clone())),
        ];
        for (current, requested, expected) in cases {
            assert_eq!(
                decide_lock(current, requested),
                expected,
                "{current:?} {requested:?}"
            );
        }
    }

    #[test]
    fn only_the_holder_unlocks() {
        let a = lock("a");
        let cases = [
            (None, "a", UnlockDecision::NotLocked),
            (Some(&a), "a", UnlockDecision::Release),
            (Some(&a), "b", UnlockDecision::HeldBy(a.clone())),
            (Some(&a), "", UnlockDecision::HeldBy(a.clone())),
        ];
        for (current, id, expected) in cases {
            assert_eq!(decide_unlock(current, id), expected, "{current:?} {id}");
        }
    }

    #[test]
    fn only_the_holder_writes_a_locked_state() {
        let a = lock("a");
        let cases = [
            (None, None, WriteDecision::Write),
            (
                None,
                Some("a"),
                WriteDecision::LockGone { id: "a".to_owned() },
            ),
            (Some(&a), Some("a"), WriteDecision::Write),
            (Some(&a), Some("b"), WriteDecision::HeldBy(a.clone())),
            (Some(&a), None, WriteDecision::HeldBy(a.clone())),
        ];
        for (current, id, expected) in cases {
            assert_eq!(decide_write(current, id), expected, "{current:?} {id:?}");
        }
    }

    #[test]
    fn lock_info_keeps_terraforms_field_names() {
        let json = r#"{"ID":"x","Operation":"OperationTypeApply","Info":"","Who":"bob@host","Version":"1.11.4","Created":"2026-12-03T14:00:00Z","Path":""}"#;
        let info: LockInfo = serde_json::from_str(json).unwrap();
        assert_eq!(info.who, "bob@host");
        let back: serde_json::Value = serde_json::to_value(&info).unwrap();
        assert_eq!(back["ID"], "x");
        assert_eq!(back["Created"], "2026-12-03T14:00:00Z");
        assert_eq!(
            info.describe(),
            "locked by bob@host since 2026-12-03T14:00:00Z (OperationTypeApply, id x)"
        );
    }
}
