//! A project's migration files in the order they run, and the hash that names their template.
//! Pure: the caller reads the files (from a git commit) and hands over `(name, contents)` pairs.

use std::cmp::Ordering;

use sha2::{Digest as _, Sha256};

/// One SQL file: its name (e.g. `001_init.sql`), contents, and the sha256 of the contents (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    pub name: String,
    pub sql: String,
    pub checksum: String,
}

impl MigrationFile {
    pub fn new(name: impl Into<String>, sql: impl Into<String>) -> MigrationFile {
        let sql = sql.into();
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        MigrationFile {
            name: name.into(),
            sql,
            checksum,
        }
    }
}

/// Migrations in the order they run, then an optional seed applied after the last one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationSet {
    pub files: Vec<MigrationFile>,
    pub seed: Option<MigrationFile>,
}

impl MigrationSet {
    /// Keeps the `.sql` files among `files` and sorts them by name in natural order, so
    /// `2_b.sql` runs before `10_a.sql` and `001_init.sql` before `002_users.sql`.
    pub fn from_files<N, S>(
        files: impl IntoIterator<Item = (N, S)>,
        seed: Option<(N, S)>,
    ) -> MigrationSet
    where
        N: Into<String>,
        S: Into<String>,
    {
        let mut files: Vec<MigrationFile> = files
            .into_iter()
            .map(|(name, sql)| MigrationFile::new(name, sql))
            .filter(|file| file.name.ends_with(".sql"))
            .collect();
        files.sort_by(|left, right| natural_order(&left.name, &right.name));
        MigrationSet {
            files,
            seed: seed.map(|(name, sql)| MigrationFile::new(name, sql)),
        }
    }

    /// sha256 (hex) over every file's name and contents in order, then the seed's: renaming,
    /// reordering or editing anything gives a different template.
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        for file in &self.files {
            absorb(&mut hasher, b"file", file);
        }
        if let Some(seed) = &self.seed {
            absorb(&mut hasher, b"seed", seed);
        }
        hex::encode(hasher.finalize())
    }

    /// The files then the seed, in the order they are applied.
    pub fn in_order(&self) -> impl Iterator<Item = &MigrationFile> {
        self.files.iter().chain(self.seed.iter())
    }
}

/// Length-prefixed fields, so moving bytes between a name and its contents changes the hash.
fn absorb(hasher: &mut Sha256, kind: &[u8], file: &MigrationFile) {
    hasher.update(kind);
    for field in [file.name.as_bytes(), file.sql.as_bytes()] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field);
    }
}

/// Compares runs of digits by value (then by length, so `01` and `1` still differ) and
/// everything else byte by byte.
pub fn natural_order(left: &str, right: &str) -> Ordering {
    let (mut left_rest, mut right_rest) = (left.as_bytes(), right.as_bytes());
    loop {
        match (left_rest.first(), right_rest.first()) {
            (None, None) => return left.cmp(right),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(l), Some(r)) if l.is_ascii_digit() && r.is_ascii_digit() => {
                let left_digits = digit_run(left_rest);
                let right_digits = digit_run(right_rest);
                let left_value = left_digits.iter().skip_while(|digit| **digit == b'0');
                let right_value = right_digits.iter().skip_while(|digit| **digit == b'0');
                let by_value = left_value
                    .clone()
                    .count()
                    .cmp(&right_value.clone().count())
                    .then_with(|| left_value.cmp(right_value))
                    .then_with(|| left_digits.len().cmp(&right_digits.len()));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                left_rest = &left_rest[left_digits.len()..];
                right_rest = &right_rest[right_digits.len()..];
            }
            (Some(l), Some(r)) => {
                if l != r {
                    return l.cmp(r);
                }
                left_rest = &left_rest[1..];
                right_rest = &right_rest[1..];
            }
        }
    }
}

fn digit_run(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(bytes.len());
    &bytes[..end]
}

/// The 1-based line of the 1-based *character* position PostgreSQL reports for an error.
pub fn line_of_position(sql: &str, position: u32) -> u32 {
    let before = usize::try_from(position.saturating_sub(1)).unwrap_or(usize::MAX);
    let newlines = sql.chars().take(before).filter(|c| *c == '\n').count();
    u32::try_from(newlines + 1).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &MigrationSet) -> Vec<&str> {
        set.files.iter().map(|file| file.name.as_str()).collect()
    }

    #[test]
    fn sorted_naturally_and_only_sql() {
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["002_users.sql", "001_init.sql", "010_index.sql"],
                &["001_init.sql", "002_users.sql", "010_index.sql"],
            ),
            (
                &["10_a.sql", "2_b.sql", "1_c.sql"],
                &["1_c.sql", "2_b.sql", "10_a.sql"],
            ),
            (
                &["README.md", "001_init.sql", "001_init.sql.bak", "notes.txt"],
                &["001_init.sql"],
            ),
            (&["1_a.sql", "01_a.sql"], &["1_a.sql", "01_a.sql"]),
            (
                &["b.sql", "a.sql", "a2.sql", "a10.sql"],
                &["a.sql", "a2.sql", "a10.sql", "b.sql"],
            ),
        ];
        for (input, expected) in cases {
            let set = MigrationSet::from_files(input.iter().map(|name| (*name, "select 1;")), None);
            assert_eq!(names(&set), *expected, "{input:?}");
        }
    }

    #[test]
    fn hash_is_order_and_content_sensitive() {
        let base = MigrationSet::from_files([("001_a.sql", "x"), ("002_b.sql", "y")], None);
        let same = MigrationSet::from_files([("002_b.sql", "y"), ("001_a.sql", "x")], None);
        let edited = MigrationSet::from_files([("001_a.sql", "x"), ("002_b.sql", "z")], None);
        let renamed = MigrationSet::from_files([("001_a.sql", "x"), ("003_b.sql", "y")], None);
        let shifted = MigrationSet::from_files([("001_a.sql", "xy"), ("002_b.sql", "")], None);
        let seeded = MigrationSet::from_files(
            [("001_a.sql", "x"), ("002_b.sql", "y")],
            Some(("seed.sql", "s")),
        );
        assert_eq!(base.content_hash(), same.content_hash());
        assert_eq!(base.content_hash().len(), 64);
        for other in [&edited, &renamed, &shifted, &seeded] {
            assert_ne!(base.content_hash(), other.content_hash());
        }
        let mut swapped = base.clone();
        swapped.files.swap(0, 1);
        assert_ne!(base.content_hash(), swapped.content_hash());
        assert_eq!(
            seeded
                .in_order()
                .map(|file| file.name.as_str())
                .collect::<Vec<_>>(),
            ["001_a.sql", "002_b.sql", "seed.sql"]
        );
    }

    #[test]
    fn error_positions_become_lines() {
        let sql = "create table a (id int);\ncreate tabel b;\n";
        let cases = [(1, 1), (25, 1), (26, 2), (33, 2), (0, 1), (999, 3)];
        for (position, line) in cases {
            assert_eq!(line_of_position(sql, position), line, "position {position}");
        }
        // Positions count characters, not bytes.
        assert_eq!(line_of_position("-- é\nbad", 6), 2);
    }
}
