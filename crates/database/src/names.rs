//! PostgreSQL identifiers for sandpit's databases and roles, and quoting. Pure: no I/O.
//!
//! Project and biome names are DNS labels (`[a-z][a-z0-9-]*`) and never contain `_`, so `_` is
//! the separator and the names are kept verbatim, hyphens included (every identifier is quoted):
//!
//! | what            | identifier                      |
//! |-----------------|---------------------------------|
//! | biome database  | `<project>_<biome>` (¹)         |
//! | biome role      | `<project>_<biome>_rw`          |
//! | template        | `<project>_tpl_<12 hex>`        |
//! | shared database | `<project>_shared`              |
//! | being built     | `<final name>_building`         |
//!
//! (¹) except the biome called `shared`, whose database is `<project>_shared_biome` so that it is
//! not the shared database.
//!
//! Mapping `-` to `_` instead would make `grade-api`/`alice` and `grade`/`api-alice` the same
//! database; keeping the hyphen makes the mapping injective: a biome database has exactly one
//! `_`, and every other kind has more.
//!
//! Identifiers longer than PostgreSQL's 63 bytes are shortened deterministically: the first 54
//! bytes, `_`, and 8 hex digits of the sha256 of the full identifier: exactly 63 bytes ending in
//! `_` and 8 hex digits, a shape no unshortened sandpit identifier has (names are at most 40
//! characters, so the part before the last `_` of an unshortened one is never 54 bytes long).

use std::fmt;

use sandpit_domain::Name;
use sha2::{Digest as _, Sha256};

/// PostgreSQL's identifier limit (`NAMEDATALEN - 1`); longer names are silently truncated by the
/// server, which could make two biomes share a database — so sandpit shortens them itself.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Suffix of the role that owns a biome's database.
const ROLE_SUFFIX: &str = "rw";
/// The shared database's suffix, and so the one biome name that needs another database name.
const SHARED_SUFFIX: &str = "shared";
/// Suffix of a database still being built (template or shared database).
const BUILDING_SUFFIX: &str = "building";

/// The name of a migrated template database: `<project>_tpl_<12 hex of the content hash>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateName(String);

impl TemplateName {
    /// Wraps a template name read back from the server (see `Admin::template_of`).
    pub fn from_existing(name: impl Into<String>) -> TemplateName {
        TemplateName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `<project>_<biome>`: the database a biome's services connect to (`<project>_shared_biome` for
/// the biome called `shared`, which would otherwise be the shared database).
pub fn biome_database(project: &Name, biome: &Name) -> String {
    if biome.as_str() == SHARED_SUFFIX {
        return fit(format!("{project}_{SHARED_SUFFIX}_biome"));
    }
    fit(format!("{project}_{biome}"))
}

/// `<project>_<biome>_rw`: the login role that owns the biome's database and nothing else.
pub fn biome_role(project: &Name, biome: &Name) -> String {
    fit(format!("{project}_{biome}_{ROLE_SUFFIX}"))
}

/// `<project>_tpl_<12 hex>`: the template migrated to the migration set with `content_hash`.
pub fn template_database(project: &Name, content_hash: &str) -> TemplateName {
    let short: String = content_hash.chars().take(12).collect();
    TemplateName(fit(format!("{project}_tpl_{short}")))
}

/// `<project>_shared`: the read-only reference database every biome of the project may read.
pub fn shared_database(project: &Name) -> String {
    fit(format!("{project}_shared"))
}

/// `<final>_building`: where a template or shared database is built before being renamed, so a
/// crash half-way never leaves something under the final name.
pub fn building_database(final_name: &str) -> String {
    fit(format!("{final_name}_{BUILDING_SUFFIX}"))
}

/// Key for `pg_advisory_lock`: the first 8 bytes of the sha256 of `name`.
pub fn advisory_lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0_u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Shortens `identifier` to [`MAX_IDENTIFIER_BYTES`] when it is longer: first 54 bytes (cut at a
/// character boundary), `_`, 8 hex digits of the sha256 of the whole identifier.
pub fn fit(identifier: String) -> String {
    if identifier.len() <= MAX_IDENTIFIER_BYTES {
        return identifier;
    }
    let hash = hex::encode(Sha256::digest(identifier.as_bytes()));
    let mut keep = MAX_IDENTIFIER_BYTES - 9;
    while !identifier.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}_{}", &identifier[..keep], &hash[..8])
}

/// `"name"`, with inner `"` doubled: safe for any string as a PostgreSQL identifier.
pub fn quote_identifier(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `'text'`, with inner `'` doubled; backslashes need no escaping because
/// `standard_conforming_strings` is on (the default since PostgreSQL 9.1). A NUL cannot be sent
/// in a query at all and is dropped.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\0', "").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    #[test]
    fn identifiers_for_each_kind() {
        let project = name("grade-api");
        let biome = name("alice");
        let cases: &[(String, &str)] = &[
            (biome_database(&project, &biome), "grade-api_alice"),
            (biome_role(&project, &biome), "grade-api_alice_rw"),
            (
                template_database(&project, "0123456789abcdef0123").to_string(),
                "grade-api_tpl_0123456789ab",
            ),
            (shared_database(&project), "grade-api_shared"),
            (
                biome_database(&project, &name("shared")),
                "grade-api_shared_biome",
            ),
            (
                building_database("grade-api_tpl_0123456789ab"),
                "grade-api_tpl_0123456789ab_building",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn hyphenated_names_do_not_collide() {
        let pairs = [
            (name("grade-api"), name("alice")),
            (name("grade"), name("api-alice")),
        ];
        assert_ne!(
            biome_database(&pairs[0].0, &pairs[0].1),
            biome_database(&pairs[1].0, &pairs[1].1)
        );
        // A biome called `shared` or `tpl-…` is not the shared database or a template.
        let project = name("grade");
        assert_ne!(
            biome_database(&project, &name("shared")),
            shared_database(&project)
        );
        assert_ne!(
            biome_database(&project, &name("tpl-0123456789ab")),
            template_database(&project, "0123456789ab").to_string()
        );
    }

    #[test]
    fn long_identifiers_are_shortened_deterministically() {
        let long_project = name(&"p".repeat(40));
        let biome_a = name(&format!("{}a", "b".repeat(39)));
        let biome_b = name(&format!("{}c", "b".repeat(39)));
        let cases = [
            biome_database(&long_project, &biome_a),
            biome_database(&long_project, &biome_b),
            biome_role(&long_project, &biome_a),
            biome_role(&long_project, &biome_b),
            building_database(template_database(&long_project, "0123456789abcdef").as_str()),
        ];
        for identifier in &cases {
            assert_eq!(identifier.len(), MAX_IDENTIFIER_BYTES, "{identifier}");
            assert!(identifier.starts_with(&"p".repeat(40)), "{identifier}");
        }
        // Same input, same output; different inputs sharing a 54-byte prefix stay different.
        assert_eq!(cases[0], biome_database(&long_project, &biome_a));
        assert_ne!(cases[0], cases[1]);
        assert_ne!(cases[2], cases[3]);
        assert_eq!(
            fit("x".repeat(70)),
            format!(
                "{}_{}",
                "x".repeat(54),
                &hex::encode(Sha256::digest("x".repeat(70)))[..8]
            )
        );
        assert_eq!(fit("x".repeat(63)), "x".repeat(63));
        // Multi-byte characters are never cut in half.
        let cut = fit("é".repeat(40));
        assert!(cut.len() <= MAX_IDENTIFIER_BYTES);
    }

    #[test]
    fn quoting() {
        let identifiers = [
            ("plain", "\"plain\""),
            ("grade-api_alice", "\"grade-api_alice\""),
            ("with\"quote", "\"with\"\"quote\""),
            ("Robert'); DROP TABLE x;--", "\"Robert'); DROP TABLE x;--\""),
            ("", "\"\""),
        ];
        for (input, expected) in identifiers {
            assert_eq!(quote_identifier(input), expected, "{input}");
        }
        let literals = [
            ("plain", "'plain'"),
            ("it's", "'it''s'"),
            ("back\\slash", "'back\\slash'"),
            ("nul\0byte", "'nulbyte'"),
            ("'; DROP ROLE x; --", "'''; DROP ROLE x; --'"),
        ];
        for (input, expected) in literals {
            assert_eq!(quote_literal(input), expected, "{input}");
        }
    }

    #[test]
    fn lock_keys_differ_by_name() {
        assert_eq!(advisory_lock_key("a"), advisory_lock_key("a"));
        assert_ne!(advisory_lock_key("a"), advisory_lock_key("b"));
    }
}
