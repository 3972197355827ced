//! Database sizes remembered between reads, so `ls` of hundreds of sleeping biomes does not make
//! PostgreSQL walk hundreds of database directories each time.
//!
//! `pg_database_size` stats every file of a database: about half a millisecond to a millisecond
//! for a small biome database (measured: 100 databases in 49–101 ms on a busy 2-core machine), so
//! asking for 500 would alone blow the `ls` budget of 50 ms. A biome with no process running
//! (asleep, or only jobs that finished) has nobody writing its database, so the size last
//! measured is still its size: it is taken from `projects/<p>/cost/database-sizes.json`, for at
//! most [`MAX_AGE`] (a `sandpit psql` by hand can still change it). A biome with processes is
//! measured afresh once its size is more than [`RUNNING_MAX_AGE`] old, and every measurement is
//! remembered.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Context;

/// How long a remembered size of an idle biome's database is shown without measuring it again.
pub const MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// How long a running biome's measured size is shown again: `ls` run again and again (a
/// dashboard, `watch`) would otherwise open a PostgreSQL session (a backend process and a SCRAM
/// exchange) every time for figures that move slowly.
pub const RUNNING_MAX_AGE: Duration = Duration::from_secs(5);

/// One remembered measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub bytes: u64,
    /// Milliseconds since the Unix epoch.
    pub measured_at_ms: u64,
}

/// Per environment, per database name.
pub type Memory = BTreeMap<String, BTreeMap<String, Remembered>>;

/// The remembered size to show for a database whose biome is `idle` (the daemon measured no
/// process of it), or `None` when it must be measured (pure).
pub fn reusable(remembered: Option<&Remembered>, idle: bool, now_ms: u64) -> Option<u64> {
    let remembered = remembered?;
    let age = now_ms.checked_sub(remembered.measured_at_ms)?;
    let max_age = if idle { MAX_AGE } else { RUNNING_MAX_AGE };
    (age < max_age.as_millis() as u64).then_some(remembered.bytes)
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn file(context: &Context, project: &str) -> PathBuf {
    context
        .home
        .join("projects")
        .join(project)
        .join("cost")
        .join("database-sizes.json")
}

/// What was remembered for `project`; nothing when the file is missing or unreadable (it is
/// only a shortcut: the sizes are measured again).
pub fn load(context: &Context, project: &str) -> Memory {
    fs::read(file(context, project))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Remembers `measured` (environment → database → bytes, measured at `now_ms`) on top of what
/// was remembered, dropping what is older than [`MAX_AGE`]. Written to a temporary file and
/// renamed, so a reader never sees half of it; a failure to write only costs the next read a
/// measurement, so it is ignored.
pub fn remember(
    context: &Context,
    project: &str,
    measured: &BTreeMap<String, BTreeMap<String, u64>>,
    now_ms: u64,
) {
    if measured.values().all(BTreeMap::is_empty) {
        return;
    }
    let mut memory = load(context, project);
    for (env, sizes) in measured {
        let remembered = memory.entry(env.clone()).or_default();
        for (database, bytes) in sizes {
            remembered.insert(
                database.clone(),
                Remembered {
                    bytes: *bytes,
                    measured_at_ms: now_ms,
                },
            );
        }
    }
    for remembered in memory.values_mut() {
        remembered
            .retain(|_, r| now_ms.saturating_sub(r.measured_at_ms) < MAX_AGE.as_millis() as u64);
    }
    memory.retain(|_, remembered| !remembered.is_empty());
    let _ = write(&file(context, project), &memory);
}

fn write(path: &Path, memory: &Memory) -> std::io::Result<()> {
    let dir = path.parent().expect("the file lives in a directory");
    fs::create_dir_all(dir)?;
    let partial = dir.join(format!(".database-sizes.{}.tmp", std::process::id()));
    fs::write(&partial, serde_json::to_vec(memory)?)?;
    fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_biomes_size_is_reused_for_a_while_and_a_running_ones_for_seconds() {
        let minute = 60_000;
        let now = 100 * minute;
        let at = |minutes_ago: u64| Remembered {
            bytes: 8_000_000,
            measured_at_ms: now - minutes_ago * minute,
        };
        let max_age_minutes = MAX_AGE.as_secs() / 60;
        // (remembered, idle, shown without measuring)
        let cases = [
            (None, true, None),
            (Some(at(0)), true, Some(8_000_000)),
            (Some(at(max_age_minutes - 1)), true, Some(8_000_000)),
            (Some(at(max_age_minutes)), true, None),
            // Something runs (or the daemon did not say): it may be writing, so only a
            // measurement of the last few seconds is shown again.
            (Some(at(1)), false, None),
            (
                Some(Remembered {
                    bytes: 8_000_000,
                    measured_at_ms: now - RUNNING_MAX_AGE.as_millis() as u64 + 1,
                }),
                false,
                Some(8_000_000),
            ),
            (
                Some(Remembered {
                    bytes: 8_000_000,
                    measured_at_ms: now - RUNNING_MAX_AGE.as_millis() as u64,
                }),
                false,
                None,
            ),
            // Measured "in the future" (the clock went back): measure again.
            (
                Some(Remembered {
                    bytes: 1,
                    measured_at_ms: now + minute,
                }),
                true,
                None,
            ),
        ];
        for (remembered, idle, expected) in cases {
            assert_eq!(
                reusable(remembered.as_ref(), idle, now),
                expected,
                "{remembered:?}, idle: {idle}"
            );
        }
    }

    #[test]
    fn measurements_are_remembered_per_environment_and_old_ones_forgotten() {
        let home = tempfile::tempdir().unwrap();
        let context = Context::for_home(home.path());
        assert_eq!(load(&context, "geo"), Memory::new());
        let sizes = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(d, b)| (d.to_string(), *b)).collect()
        };
        let start = 1_000_000_000;
        remember(
            &context,
            "geo",
            &BTreeMap::from([
                (
                    "dev".to_owned(),
                    sizes(&[("geo_alice", 10), ("geo_bob", 20)]),
                ),
                ("test".to_owned(), sizes(&[("geo_test", 30)])),
            ]),
            start,
        );
        let later = start + MAX_AGE.as_millis() as u64 - 1;
        remember(
            &context,
            "geo",
            &BTreeMap::from([("dev".to_owned(), sizes(&[("geo_alice", 11)]))]),
            later,
        );
        let memory = load(&context, "geo");
        assert_eq!(
            memory["dev"]["geo_alice"],
            Remembered {
                bytes: 11,
                measured_at_ms: later
            }
        );
        assert_eq!(memory["dev"]["geo_bob"].bytes, 20);
        assert_eq!(memory["test"]["geo_test"].bytes, 30);
        // Past MAX_AGE the first measurements go, the newer stays.
        remember(
            &context,
            "geo",
            &BTreeMap::from([("dev".to_owned(), sizes(&[("geo_carol", 5)]))]),
            start + MAX_AGE.as_millis() as u64,
        );
        let memory = load(&context, "geo");
        assert_eq!(memory.len(), 1, "{memory:?}");
        assert_eq!(
            memory["dev"].keys().collect::<Vec<_>>(),
            ["geo_alice", "geo_carol"]
        );
        // A damaged file is only a lost shortcut.
        fs::write(file(&context, "geo"), "{not json").unwrap();
        assert_eq!(load(&context, "geo"), Memory::new());
    }
}
