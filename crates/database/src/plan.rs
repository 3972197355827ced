//! What an existing database lacks of a commit's migrations: the planner behind in-place
//! migration. Pure: the caller reads `sandpit_migrations` and hands over its rows.

use std::collections::{HashMap, HashSet};

use crate::error::DatabaseError;
use crate::migrations::{natural_order, MigrationFile, MigrationSet};

/// What a row of `sandpit_migrations` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationKind {
    /// A file of the migrations directory: compared with every later commit.
    Migration,
    /// The seed, applied once when the database was created from its template; never compared.
    Seed,
}

impl MigrationKind {
    /// The value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationKind::Migration => "migration",
            MigrationKind::Seed => "seed",
        }
    }

    /// Reads the `kind` column (a CHECK constraint allows only the two values).
    pub fn from_column(value: &str) -> MigrationKind {
        if value == "seed" {
            MigrationKind::Seed
        } else {
            MigrationKind::Migration
        }
    }
}

/// One row of a database's `sandpit_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub file: String,
    /// sha256 (hex) of the file's contents when it was applied.
    pub checksum: String,
    pub kind: MigrationKind,
}

/// A migration that was applied with other contents than the commit has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedMigration {
    pub file: String,
    pub applied_checksum: String,
    pub commit_checksum: String,
}

impl ChangedMigration {
    /// The refusal to go on with `database`.
    pub fn into_error(self, database: &str) -> DatabaseError {
        DatabaseError::MigrationChanged {
            database: database.to_owned(),
            file: self.file,
            applied_checksum: self.applied_checksum,
            commit_checksum: self.commit_checksum,
        }
    }
}

/// How a database compares with a commit's migrations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationPlan {
    /// Files of the commit never applied here, in the order they run. A file that sorts before
    /// one already applied (merged from a branch that was written earlier, say) is pending too:
    /// out-of-order files are applied, as Rails does, rather than refused.
    pub pending: Vec<MigrationFile>,
    /// Files applied here whose contents differ from the commit's: never re-run, never skipped,
    /// so nothing may be applied until they are restored.
    pub changed: Vec<ChangedMigration>,
    /// Files applied here that the commit does not have, in natural order. Allowed: the database
    /// is ahead of the code, for example after a rollback to an older commit.
    pub ahead: Vec<String>,
}

impl MigrationPlan {
    /// Nothing to apply and nothing changed.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.changed.is_empty()
    }

    /// [`DatabaseError::MigrationChanged`] for the first changed file, if any.
    pub fn refuse_changed(&self, database: &str) -> Result<(), DatabaseError> {
        match self.changed.first() {
            Some(changed) => Err(changed.clone().into_error(database)),
            None => Ok(()),
        }
    }
}

/// Compares what `applied` records with `set`'s migration files. Seed rows (and `set`'s seed)
/// take no part: a seed is applied once, when the database is created from its template.
pub fn plan(applied: &[AppliedMigration], set: &MigrationSet) -> MigrationPlan {
    let applied_by_file: HashMap<&str, &AppliedMigration> = applied
        .iter()
        .filter(|row| row.kind == MigrationKind::Migration)
        .map(|row| (row.file.as_str(), row))
        .collect();
    let mut plan = MigrationPlan::default();
    for file in &set.files {
        match applied_by_file.get(file.name.as_str()) {
            None => plan.pending.push(file.clone()),
            Some(row) if row.checksum != file.checksum => plan.changed.push(ChangedMigration {
                file: file.name.clone(),
                applied_checksum: row.checksum.clone(),
                commit_checksum: file.checksum.clone(),
            }),
            Some(_) => {}
        }
    }
    let in_commit: HashSet<&str> = set.files.iter().map(|file| file.name.as_str()).collect();
    plan.ahead = applied_by_file
        .keys()
        .filter(|file| !in_commit.contains(*file))
        .map(|file| (*file).to_owned())
        .collect();
    plan.ahead.sort_by(|left, right| natural_order(left, right));
    plan
}

/// Whether `file` still has to run where `applied` was read: `Ok(false)` when it was applied
/// with the same contents (by a caller that got there first), `Err` when with other contents.
pub fn needs_to_run(
    applied: &[AppliedMigration],
    file: &MigrationFile,
) -> Result<bool, ChangedMigration> {
    match applied
        .iter()
        .find(|row| row.kind == MigrationKind::Migration && row.file == file.name)
    {
        None => Ok(true),
        Some(row) if row.checksum == file.checksum => Ok(false),
        Some(row) => Err(ChangedMigration {
            file: file.name.clone(),
            applied_checksum: row.checksum.clone(),
            commit_checksum: file.checksum.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(file: &str, sql: &str, kind: MigrationKind) -> AppliedMigration {
        AppliedMigration {
            file: file.to_owned(),
            checksum: MigrationFile::new(file, sql).checksum,
            kind,
        }
    }

    fn migration(file: &str, sql: &str) -> AppliedMigration {
        row(file, sql, MigrationKind::Migration)
    }

    struct Expected<'a> {
        pending: &'a [&'a str],
        changed: &'a [&'a str],
        ahead: &'a [&'a str],
    }

    #[test]
    fn plans_what_the_database_lacks() {
        let commit = MigrationSet::from_files(
            [("001_a.sql", "a"), ("002_b.sql", "b"), ("010_c.sql", "c")],
            Some(("db/seed.sql", "seed")),
        );
        let cases: Vec<(&str, Vec<AppliedMigration>, Expected)> = vec![
            (
                "nothing applied: everything pending, in run order",
                vec![],
                Expected {
                    pending: &["001_a.sql", "002_b.sql", "010_c.sql"],
                    changed: &[],
                    ahead: &[],
                },
            ),
            (
                "up to date, seed row ignored",
                vec![
                    migration("001_a.sql", "a"),
                    migration("002_b.sql", "b"),
                    migration("010_c.sql", "c"),
                    row("db/seed.sql", "old seed", MigrationKind::Seed),
                ],
                Expected {
                    pending: &[],
                    changed: &[],
                    ahead: &[],
                },
            ),
            (
                "one new file at the end",
                vec![migration("001_a.sql", "a"), migration("002_b.sql", "b")],
                Expected {
                    pending: &["010_c.sql"],
                    changed: &[],
                    ahead: &[],
                },
            ),
            (
                "a file sorting before an applied one is still applied",
                vec![migration("001_a.sql", "a"), migration("010_c.sql", "c")],
                Expected {
                    pending: &["002_b.sql"],
                    changed: &[],
                    ahead: &[],
                },
            ),
            (
                "an applied file was edited",
                vec![migration("001_a.sql", "a edited later")],
                Expected {
                    pending: &["002_b.sql", "010_c.sql"],
                    changed: &["001_a.sql"],
                    ahead: &[],
                },
            ),
            (
                "the database is ahead of the commit",
                vec![
                    migration("001_a.sql", "a"),
                    migration("002_b.sql", "b"),
                    migration("010_c.sql", "c"),
                    migration("100_z.sql", "z"),
                    migration("020_y.sql", "y"),
                ],
                Expected {
                    pending: &[],
                    changed: &[],
                    ahead: &["020_y.sql", "100_z.sql"],
                },
            ),
            (
                "a seed row named like a migration does not count as applying it",
                vec![row("001_a.sql", "a", MigrationKind::Seed)],
                Expected {
                    pending: &["001_a.sql", "002_b.sql", "010_c.sql"],
                    changed: &[],
                    ahead: &[],
                },
            ),
        ];
        for (what, applied, expected) in cases {
            let plan = plan(&applied, &commit);
            let pending: Vec<&str> = plan.pending.iter().map(|f| f.name.as_str()).collect();
            let changed: Vec<&str> = plan.changed.iter().map(|c| c.file.as_str()).collect();
            assert_eq!(pending, expected.pending, "{what}: pending");
            assert_eq!(changed, expected.changed, "{what}: changed");
            assert_eq!(plan.ahead, expected.ahead, "{what}: ahead");
            assert_eq!(
                plan.is_current(),
                expected.pending.is_empty() && expected.changed.is_empty(),
                "{what}"
            );
            assert_eq!(
                plan.refuse_changed("db").is_err(),
                !expected.changed.is_empty(),
                "{what}"
            );
        }
    }

    #[test]
    fn changed_files_carry_both_checksums() {
        let commit = MigrationSet::from_files([("001_a.sql", "new")], None);
        let plan = plan(&[migration("001_a.sql", "old")], &commit);
        assert_eq!(
            plan.changed,
            [ChangedMigration {
                file: "001_a.sql".into(),
                applied_checksum: MigrationFile::new("x", "old").checksum,
                commit_checksum: MigrationFile::new("x", "new").checksum,
            }]
        );
        let shown = plan.refuse_changed("app_dev").unwrap_err().to_string();
        for part in [
            "`001_a.sql`",
            "`app_dev`",
            &plan.changed[0].applied_checksum,
            &plan.changed[0].commit_checksum,
            "hint: restore the file",
        ] {
            assert!(shown.contains(part), "{shown:?} lacks {part:?}");
        }
    }

    #[test]
    fn decides_whether_a_file_still_runs() {
        let file = MigrationFile::new("002_b.sql", "b");
        let cases: Vec<(Vec<AppliedMigration>, Result<bool, &str>)> = vec![
            (vec![], Ok(true)),
            (vec![migration("001_a.sql", "a")], Ok(true)),
            (vec![migration("002_b.sql", "b")], Ok(false)),
            (vec![row("002_b.sql", "b", MigrationKind::Seed)], Ok(true)),
            (vec![migration("002_b.sql", "other")], Err("002_b.sql")),
        ];
        for (applied, expected) in cases {
            let found = needs_to_run(&applied, &file).map_err(|changed| changed.file);
            assert_eq!(found, expected.map_err(str::to_owned), "{applied:?}");
        }
    }
}
