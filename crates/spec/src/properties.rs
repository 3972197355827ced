//! Property tests of [`crate::parse`]: arbitrary text and structured mutations of a valid file
//! never panic, are refused only with located, readable diagnostics, and anything accepted is a
//! [`Spec`] that holds the model's promises.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};
use sandpit_domain::{ComponentKind, Name};

use crate::diagnostic::toml_string;
use crate::*;

/// A fixed seed unless `PROPTEST_RNG_SEED` says otherwise, so a failure seen once (in CI or
/// locally) is seen again by the same command; no persistence files: a failure found becomes a
/// named regression test in `tests.rs` instead.
fn config() -> Config {
    let defaults = Config::default();
    let rng_seed = match defaults.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0x5a4d_0917),
        chosen => chosen,
    };
    Config {
        failure_persistence: None,
        rng_seed,
        ..defaults
    }
}

/// What `parse` must do with any input: not panic (the caller of this function is the proof),
/// refuse with diagnostics inside the file, or accept a spec that re-validates.
fn check_outcome(source: &str) -> Result<(), TestCaseError> {
    match parse(source) {
        Ok(spec) => check_spec(&spec),
        Err(diagnostics) => check_diagnostics(source, &diagnostics),
    }
}

fn check_diagnostics(source: &str, diagnostics: &Diagnostics) -> Result<(), TestCaseError> {
    prop_assert!(!diagnostics.errors.is_empty(), "refused without a reason");
    let lines: Vec<&str> = source.split('\n').collect();
    let mut seen = BTreeSet::new();
    for diagnostic in &diagnostics.errors {
        let shown = diagnostic.render(FILE_NAME);
        prop_assert!(
            diagnostic.line >= 1 && diagnostic.line <= lines.len(),
            "line outside the file ({} lines): {shown}",
            lines.len()
        );
        let line_chars = lines[diagnostic.line - 1].chars().count();
        prop_assert!(
            diagnostic.column >= 1 && diagnostic.column <= line_chars + 1,
            "column outside line {} ({line_chars} characters): {shown}",
            diagnostic.line
        );
        check_text(&diagnostic.message, &shown)?;
        if let Some(hint) = &diagnostic.hint {
            check_text(hint, &shown)?;
            prop_assert_ne!(hint, &diagnostic.message, "the hint repeats the message");
        }
        prop_assert!(
            seen.insert((diagnostic.line, diagnostic.column, &diagnostic.message)),
            "reported twice: {shown}"
        );
    }
    Ok(())
}

/// A message or hint: says something, on one line, with nothing a terminal would hide or act
/// on, no trailing period, and no word said twice in a row ("name: name `x`").
fn check_text(text: &str, shown: &str) -> Result<(), TestCaseError> {
    prop_assert!(!text.trim().is_empty(), "empty text in {shown:?}");
    prop_assert!(
        !text.chars().any(char::is_control),
        "a raw control character in {shown:?}"
    );
    prop_assert!(!text.ends_with('.'), "trailing period in {shown:?}");
    // Plain words only: quoted input (`a a`), values (`health = "/health"`) and cycles
    // (`a -> a`) may repeat legitimately.
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|word| word.trim_end_matches([':', ',', ';']))
        .collect();
    if let Some(pair) = words
        .windows(2)
        .find(|pair| pair[0] == pair[1] && pair[0].chars().all(|c| c.is_ascii_alphabetic()))
    {
        prop_assert!(false, "`{}` twice in {shown:?}", pair[0]);
    }
    Ok(())
}

/// The promises of [`Spec`]: names valid, references resolved, no cycles, paths inside the
/// project, and nothing that cannot be handed to a process.
fn check_spec(spec: &Spec) -> Result<(), TestCaseError> {
    let valid = |name: &Name| Name::parse(name.as_str()).as_ref() == Ok(name);
    prop_assert!(valid(&spec.project.name));
    prop_assert!(!spec.environments.is_empty(), "no environment");
    for (key, environment) in &spec.environments {
        prop_assert!(valid(key) && key == &environment.name);
        if let Some(source) = &environment.promote_from {
            prop_assert!(source != key, "`{key}` promotes from itself");
            prop_assert!(spec.environments.contains_key(source), "unknown `{source}`");
        }
        if !environment.protected {
            prop_assert_eq!(environment.approvals_required(), 0);
        }
        if let Some(DatabaseUrl::Literal(url) | DatabaseUrl::FromEnv(url)) =
            &environment.database_url
        {
            prop_assert!(!url.contains('\0'));
        }
    }
    for (key, component) in &spec.components {
        prop_assert!(valid(key) && key == &component.name);
        for dependency in &component.depends_on {
            prop_assert!(dependency != key, "`{key}` depends on itself");
            prop_assert!(
                spec.components.contains_key(dependency),
                "`{key}` depends on unknown `{dependency}`"
            );
        }
        for path in std::iter::once(&component.path)
            .chain(&component.inputs)
            .chain(std::iter::once(&component.output))
        {
            check_path(path)?;
        }
        for command in component.run.iter().chain(&component.build) {
            prop_assert!(!command.contains('\0'), "NUL in a command of `{key}`");
        }
        for (variable, value) in &component.env {
            prop_assert!(!variable.is_empty() && !variable.contains('\0'));
            prop_assert!(!value.contains('\0'), "NUL in `{variable}` of `{key}`");
        }
        prop_assert_eq!(
            component.kind == ComponentKind::Model,
            component.file.is_some()
        );
        prop_assert_eq!(
            component.kind == ComponentKind::Model,
            component.run.is_none()
        );
    }
    prop_assert_eq!(
        spec.start_order().len(),
        spec.components.len(),
        "a dependency cycle was accepted"
    );
    if let Some(database) = &spec.database {
        for path in std::iter::once(&database.migrations)
            .chain(&database.seed)
            .chain(&database.shared)
        {
            prop_assert!(!path.contains('\0'), "NUL in a database path");
        }
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), TestCaseError> {
    prop_assert!(!path.is_empty() && !path.starts_with('/') && !path.contains('\\'));
    prop_assert!(!path.contains('\0'), "NUL in path {path:?}");
    prop_assert!(
        path == "." || path.split('/').all(|part| !matches!(part, "" | "." | "..")),
        "path {path:?} is not normalised"
    );
    Ok(())
}

// ---- inputs ----------------------------------------------------------------------------------

/// A valid file exercising every section, as sections of `key = value` lines so mutations can
/// work on its structure; [`render`] writes it back as TOML.
fn valid_file() -> Vec<(String, Vec<(String, String)>)> {
    let section = |header: &str, entries: &[(&str, &str)]| {
        let entries = entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        (header.to_owned(), entries)
    };
    vec![
        section(
            "project",
            &[("name", "\"grades\""), ("max_artifact_size", "\"512MiB\"")],
        ),
        section("environments.dev", &[("biomes", "true")]),
        section("environments.test", &[("promote_from", "\"dev\"")]),
        section(
            "environments.test.models",
            &[("max_memory", "\"4GiB\""), ("max_models", "3")],
        ),
        section(
            "environments.prod",
            &[
                ("promote_from", "\"test\""),
                ("protected", "true"),
                ("approvals", "2"),
            ],
        ),
        section(
            "environments.prod.database",
            &[("url_env", "\"PROD_DATABASE_URL\"")],
        ),
        section(
            "services.grade-api",
            &[
                ("path", "\"./services/grade-api/\""),
                ("inputs", "[\"lib/common\"]"),
                ("build", "\"make\""),
                ("output", "\"dist\""),
                ("run", "\"python3 app.py\""),
                ("health", "\"/healthz\""),
                ("start_timeout", "30"),
                ("env", "{ LOG_LEVEL = \"debug\" }"),
                ("depends_on", "[\"migrate\", \"recovery\"]"),
            ],
        ),
        section(
            "services.web",
            &[
                ("path", "\"web\""),
                ("run", "\"node server.js\""),
                ("depends_on", "[\"grade-api\"]"),
            ],
        ),
        section(
            "jobs.migrate",
            &[("path", "\".\""), ("run", "\"sandpit-migrate\"")],
        ),
        section(
            "models.recovery",
            &[
                ("path", "\"models/recovery\""),
                ("file", "\"recovery.onnx\""),
            ],
        ),
        section(
            "database",
            &[
                ("migrations", "\"db/migrations\""),
                ("seed", "\"db/seed.sql\""),
                ("shared", "\"db/shared.sql\""),
            ],
        ),
    ]
}

fn render(sections: &[(String, Vec<(String, String)>)]) -> String {
    let mut text = String::new();
    for (header, entries) in sections {
        text.push_str(&format!("[{header}]\n"));
        for (key, value) in entries {
            text.push_str(&format!("{key} = {value}\n"));
        }
        text.push('\n');
    }
    text
}

/// Text with what breaks parsers most often: control characters, NUL, quotes, brackets,
/// escapes, non-ASCII letters, and names that occur in the file.
fn nasty_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\0".to_owned()),
        Just("\u{1b}[31m".to_owned()),
        Just("\u{202e}".to_owned()),
        Just("\r\n".to_owned()),
        Just("\t".to_owned()),
        Just("..".to_owned()),
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("=".to_owned()),
        Just("migrate".to_owned()),
        Just("grade-api".to_owned()),
        Just("dev".to_owned()),
        Just("SANDPIT_X".to_owned()),
        Just("é✓λ".to_owned()),
        "[a-zA-Z0-9_ -]{1,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(pieces, 0..8).prop_map(|pieces| pieces.concat())
}

/// A TOML value of any type, written so that it parses (mostly): the type checker and the
/// validator get the wrong types, not just the TOML parser.
fn toml_value() -> impl Strategy<Value = String> {
    let names = prop::sample::select(vec![
        "migrate",
        "grade-api",
        "web",
        "recovery",
        "dev",
        "test",
        "prod",
        "Bad_Name",
        "",
    ]);
    let leaf = prop_oneof![
        3 => nasty_text().prop_map(|text| toml_string(&text)),
        2 => names.prop_map(toml_string),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => (-2i64..100_000).prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|x| if x.is_finite() { format!("{x:e}") } else { "nan".to_owned() }),
        1 => prop::sample::select(vec!["inf", "-inf", "nan", "1e300", "-0.0"]).prop_map(str::to_owned),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("1979-05-27T07:32:00Z".to_owned()),
        1 => Just("\"4GiB\"".to_owned()),
        1 => Just("\"99999999999999999999GiB\"".to_owned()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((toml_key(), inner), 0..3).prop_map(|entries| {
                let entries: Vec<String> = entries
                    .into_iter()
                    .map(|(key, value)| format!("{key} = {value}"))
                    .collect();
                format!("{{ {} }}", entries.join(", "))
            }),
        ]
    })
}

/// A value of a type some key takes, so that more mutated files get past the type checker to
/// the cross-key rules (references, cycles, approvals, URLs).
fn plausible_value() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "migrate",
        "grade-api",
        "web",
        "recovery",
        "dev",
        "test",
        "prod",
    ]);
    prop_oneof![
        prop::collection::vec(name.clone(), 0..4).prop_map(|names| {
            let names: Vec<String> = names.into_iter().map(toml_string).collect();
            format!("[{}]", names.join(", "))
        }),
        name.prop_map(toml_string),
        (0i64..5).prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::sample::select(vec![
            "\".\"",
            "\"a/b\"",
            "\"/health\"",
            "\"m.onnx\"",
            "\"1KiB\"",
            "\"PORT\""
        ])
        .prop_map(str::to_owned),
        nasty_text().prop_map(|text| toml_string(&text)),
    ]
}

/// A key: one the schema knows (in the wrong place, often), an environment variable name, or
/// anything at all (quoted).
fn toml_key() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "name",
        "path",
        "run",
        "build",
        "output",
        "inputs",
        "health",
        "start_timeout",
        "env",
        "depends_on",
        "file",
        "promote_from",
        "protected",
        "approvals",
        "biomes",
        "seed",
        "keep_deployments",
        "url",
        "url_env",
        "migrations",
        "shared",
        "max_memory",
        "max_models",
        "max_artifact_size",
        "database",
        "models",
        "PORT",
        "LOG_LEVEL",
        "SANDPIT_URL",
        "heatlh",
    ]);
    prop_oneof![
        3 => known.prop_map(str::to_owned),
        1 => nasty_text().prop_map(|text| toml_string(&text)),
    ]
}

/// One edit of the valid file.
#[derive(Debug, Clone)]
enum Mutation {
    InsertEntry(Index, String, String),
    ReplaceValue(Index, Index, String),
    DeleteEntry(Index, Index),
    DuplicateEntry(Index, Index),
    DeleteSection(Index),
    DuplicateSection(Index),
    RenameSection(Index, String),
    /// Raw text anywhere in the rendered file (may break the syntax: that must be located too).
    InsertText(Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let header = prop_oneof![
        prop::sample::select(vec![
            "project",
            "environments",
            "environments.dev",
            "environments.dev.database",
            "services.web",
            "services.migrate",
            "jobs.web",
            "jobs.migrate",
            "models.web",
            "models.recovery",
            "database",
            "services",
            "unknown",
            "services.\"Web App\"",
            "environments.prod.models",
        ])
        .prop_map(str::to_owned),
        nasty_text().prop_map(|text| format!("services.{}", toml_string(&text))),
    ];
    prop_oneof![
        3 => (any::<Index>(), toml_key(), toml_value())
            .prop_map(|(s, k, v)| Mutation::InsertEntry(s, k, v)),
        3 => (any::<Index>(), any::<Index>(), toml_value())
            .prop_map(|(s, e, v)| Mutation::ReplaceValue(s, e, v)),
        3 => (any::<Index>(), any::<Index>(), plausible_value())
            .prop_map(|(s, e, v)| Mutation::ReplaceValue(s, e, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(s, e)| Mutation::DeleteEntry(s, e)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(s, e)| Mutation::DuplicateEntry(s, e)),
        1 => any::<Index>().prop_map(Mutation::DeleteSection),
        1 => any::<Index>().prop_map(Mutation::DuplicateSection),
        1 => (any::<Index>(), header).prop_map(|(s, h)| Mutation::RenameSection(s, h)),
        1 => (any::<Index>(), nasty_text()).prop_map(|(at, t)| Mutation::InsertText(at, t)),
    ]
}

/// Edits that keep the file's shape (values of plausible types, deletions, sections renamed
/// among the file's own names), so that most results get past the type checker and exercise the
/// cross-key rules and the accepted [`Spec`].
fn plausible_mutation() -> impl Strategy<Value = Mutation> {
    let header = prop::sample::select(vec![
        "services.web",
        "services.migrate",
        "jobs.web",
        "jobs.recovery",
        "models.web",
        "environments.dev",
        "environments.test",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        6 => (any::<Index>(), any::<Index>(), plausible_value())
            .prop_map(|(s, e, v)| Mutation::ReplaceValue(s, e, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(s, e)| Mutation::DeleteEntry(s, e)),
        1 => any::<Index>().prop_map(Mutation::DeleteSection),
        1 => (any::<Index>(), header).prop_map(|(s, h)| Mutation::RenameSection(s, h)),
    ]
}

/// The valid file with `mutations` applied, in order.
fn mutated(mutations: &[Mutation]) -> String {
    let mut sections = valid_file();
    let mut inserted_text = Vec::new();
    for mutation in mutations {
        if sections.is_empty() {
            break;
        }
        let count = sections.len();
        match mutation {
            Mutation::InsertEntry(s, key, value) => sections[s.index(count)]
                .1
                .push((key.clone(), value.clone())),
            Mutation::ReplaceValue(s, e, value) => {
                let entries = &mut sections[s.index(count)].1;
                if !entries.is_empty() {
                    let at = e.index(entries.len());
                    entries[at].1 = value.clone();
                }
            }
            Mutation::DeleteEntry(s, e) => {
                let entries = &mut sections[s.index(count)].1;
                if !entries.is_empty() {
                    entries.remove(e.index(entries.len()));
                }
            }
            Mutation::DuplicateEntry(s, e) => {
                let entries = &mut sections[s.index(count)].1;
                if !entries.is_empty() {
                    let copy = entries[e.index(entries.len())].clone();
                    entries.push(copy);
                }
            }
            Mutation::DeleteSection(s) => {
                sections.remove(s.index(count));
            }
            Mutation::DuplicateSection(s) => {
                let copy = sections[s.index(count)].clone();
                sections.push(copy);
            }
            Mutation::RenameSection(s, header) => sections[s.index(count)].0 = header.clone(),
            Mutation::InsertText(at, text) => inserted_text.push((*at, text.clone())),
        }
    }
    let mut text = render(&sections);
    for (at, inserted) in inserted_text {
        let boundaries: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        text.insert_str(boundaries[at.index(boundaries.len())], &inserted);
    }
    text
}

/// Text made of TOML's own tokens, so the parser gets past the first byte more often than with
/// uniformly random strings.
fn toml_like_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("[project]\n".to_owned()),
        Just("[services.api]\n".to_owned()),
        Just("[[services]]\n".to_owned()),
        Just("name = \"demo\"\n".to_owned()),
        Just("path = \".\"\n".to_owned()),
        Just("run = \"x\"\n".to_owned()),
        Just("\"\"\"".to_owned()),
        Just("'''".to_owned()),
        Just("\\u0000".to_owned()),
        Just("\\U0010FFFF".to_owned()),
        Just("# comment\n".to_owned()),
        Just("a.b.c = 1\n".to_owned()),
        Just("{ x = [1, { y = 2 }] }".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        toml_key(),
        toml_value(),
        nasty_text(),
    ];
    prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_is_refused_with_located_diagnostics(source in any::<String>()) {
        check_outcome(&source)?;
    }

    #[test]
    fn arbitrary_bytes_read_as_text_are_refused_with_located_diagnostics(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        check_outcome(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn toml_like_text_never_panics(source in toml_like_text()) {
        check_outcome(&source)?;
    }

    #[test]
    fn plausible_edits_of_a_valid_file_are_accepted_or_located(
        mutations in prop::collection::vec(plausible_mutation(), 1..5)
    ) {
        check_outcome(&mutated(&mutations))?;
    }

    #[test]
    fn mutations_of_a_valid_file_are_accepted_or_located(
        mutations in prop::collection::vec(mutation(), 1..6)
    ) {
        check_outcome(&mutated(&mutations))?;
    }
}

#[test]
fn the_unmutated_file_is_accepted() {
    let source = mutated(&[]);
    let spec = parse(&source).unwrap_or_else(|diagnostics| panic!("{diagnostics}\n{source}"));
    check_spec(&spec).unwrap();
    assert_eq!(spec.components.len(), 4);
}
