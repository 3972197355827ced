//! What an agent does next, given the manifests in its store and what it already did: the
//! newest manifest not yet settled wins, older unsettled ones are superseded ("stopping queues,
//! restarting converges"), and a manifest already settled is never applied again (a manifest
//! arriving twice deploys once).

use std::collections::BTreeMap;

/// What the agent's own state says about a manifest it has met before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Deployed (successfully or not): settled, never applied again.
    Applied,
    /// Refused (bad signature, digest mismatch, ...): settled, never retried.
    Refused,
    /// Skipped because a newer one was applied.
    Superseded,
    /// Started but not finished when the agent stopped: resumed.
    Started,
}

/// The agent's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing new.
    Idle,
    /// Apply the manifest at this sequence; mark `superseded` (older, never settled) as such.
    Apply { sequence: u64, superseded: Vec<u64> },
}

/// Decides the next step from the sequences listed in the store and the agent's records.
/// Manifests older than the newest settled one are superseded too: an agent never goes back.
pub fn next_action(listed: &[u64], seen: &BTreeMap<u64, Seen>) -> Action {
    let settled_up_to = seen
        .iter()
        .filter(|(_, state)| **state != Seen::Started)
        .map(|(sequence, _)| *sequence)
        .max();
    let mut open: Vec<u64> = listed
        .iter()
        .copied()
        .filter(|sequence| !matches!(seen.get(sequence), Some(s) if *s != Seen::Started))
        .filter(|sequence| settled_up_to.is_none_or(|up_to| *sequence > up_to))
        .collect();
    open.sort_unstable();
    open.dedup();
    match open.pop() {
        None => Action::Idle,
        Some(sequence) => Action::Apply {
            sequence,
            superseded: open,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(entries: &[(u64, Seen)]) -> BTreeMap<u64, Seen> {
        entries.iter().copied().collect()
    }

    #[test]
    fn nothing_listed_is_idle() {
        assert_eq!(next_action(&[], &seen(&[])), Action::Idle);
    }

    #[test]
    fn the_newest_unsettled_wins_and_older_ones_are_superseded() {
        assert_eq!(
            next_action(&[1, 2, 3], &seen(&[(1, Seen::Applied)])),
            Action::Apply {
                sequence: 3,
                superseded: vec![2]
            }
        );
    }

    #[test]
    fn an_applied_manifest_listed_again_is_not_applied_twice() {
        assert_eq!(
            next_action(&[1, 2, 2], &seen(&[(1, Seen::Applied), (2, Seen::Applied)])),
            Action::Idle
        );
    }

    #[test]
    fn a_started_manifest_is_resumed_after_a_restart() {
        assert_eq!(
            next_action(&[1, 2], &seen(&[(1, Seen::Applied), (2, Seen::Started)])),
            Action::Apply {
                sequence: 2,
                superseded: vec![]
            }
        );
    }

    #[test]
    fn a_refused_manifest_is_not_retried_and_older_ones_stay_behind() {
        assert_eq!(
            next_action(&[1, 2, 3], &seen(&[(1, Seen::Applied), (3, Seen::Refused)])),
            Action::Idle
        );
        assert_eq!(
            next_action(&[3, 4], &seen(&[(3, Seen::Refused)])),
            Action::Apply {
                sequence: 4,
                superseded: vec![]
            }
        );
    }
}
