//! `sandpit config [TARGET] [--show-secrets] [--json]`,
//! `sandpit config set [TARGET] KEY=VALUE… [--secret] [--component NAME]…` and
//! `sandpit config unset [TARGET] KEY… [--component NAME]…`

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use reqwest::Method;
use sandpit_domain::Name;
use sandpit_ops::config::{Change, Key};
use sandpit_ops::Context;
use sandpit_server::wire::changes::{ConfigChangeRequest, ConfigResult};
use sandpit_server::wire::config::ConfigListing;

use crate::output;
use crate::remote::{path_segment, project_path, Remote};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Whose variables: ENV, ENV/BIOME or BIOME (default: the current branch's biome).
    #[arg(value_parser = crate::arguments::biome)]
    target: Option<String>,
    /// Show the values of secrets too.
    #[arg(long)]
    show_secrets: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Set variables, and restart the components whose variables change
    ///
    /// The first argument may name the target (ENV, ENV/BIOME or BIOME; default: the current
    /// branch's biome). A change to a target that runs is deployed at once, as a deployment of
    /// kind `config` (a protected environment's waits for approvals); otherwise it is stored
    /// and applies at the target's next `up`, `deploy` or `promote`.
    Set(SetArgs),
    /// Remove variables set on the target (a biome's inherited ones stay: override them instead)
    Unset(UnsetArgs),
}

#[derive(Debug, clap::Args)]
struct SetArgs {
    /// [TARGET] then KEY=VALUE… (`KEY=` sets an empty value). With --secret, one bare KEY reads
    /// its value from standard input, which keeps it off the command line.
    #[arg(required = true, value_name = "[TARGET] KEY=VALUE", value_parser = WordParser)]
    words: Vec<String>,
    /// Keep the values secret: masked in `sandpit config`, given to components as files only
    /// their owner can read, never shown in history, status or logs.
    #[arg(long)]
    secret: bool,
    /// Only for this component (repeatable; default: every service and job).
    #[arg(long = "component", value_name = "NAME", value_parser = crate::arguments::name)]
    components: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct UnsetArgs {
    /// [TARGET] then KEY…
    #[arg(required = true, value_name = "[TARGET] KEY", value_parser = WordParser)]
    words: Vec<String>,
    /// Only the value set for this component (repeatable; default: every value of KEY the
    /// target sets, for all components or for one).
    #[arg(long = "component", value_name = "NAME", value_parser = crate::arguments::name)]
    components: Vec<String>,
}

/// Whether a word without `=` is a variable's name rather than a target: targets are lower
/// case, names upper case.
fn looks_like_key(raw: &str) -> bool {
    !raw.is_empty()
        && raw
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// One word of `set`/`unset`, checked while the arguments are parsed: a `KEY=VALUE`, a `KEY`,
/// or a target. So a malformed or reserved name is a usage error, before anything runs.
fn word(raw: &str) -> Result<String, String> {
    let checked = match raw.split_once('=') {
        Some((key, _)) => Key::parse(key).map(drop).map_err(|e| e.to_string()),
        None if looks_like_key(raw) => Key::parse(raw).map(drop).map_err(|e| e.to_string()),
        None => crate::arguments::biome(raw).map(drop),
    };
    checked.map(|()| raw.to_owned())
}

/// [`word`] for clap, whose own message would quote the whole argument — a secret's value with
/// it. This one names only the problem.
#[derive(Debug, Clone, Copy)]
struct WordParser;

impl clap::builder::TypedValueParser for WordParser {
    type Value = String;

    fn parse_ref(
        &self,
        command: &clap::Command,
        _argument: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let refuse = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{message}\n"),
            )
            .with_cmd(command)
        };
        let raw = value.to_str().ok_or_else(|| {
            refuse("an argument is not UTF-8 text\nhint: environment variables hold text; encode the value, e.g. with base64".to_owned())
        })?;
        word(raw).map_err(refuse)
    }
}

/// A `KEY=VALUE` or a bare `KEY`.
#[derive(Debug, PartialEq, Eq)]
enum Word {
    Assign(Key, String),
    Bare(Key),
}

/// Splits the words into the target (the first, when it is not a variable) and the variables.
fn split(words: &[String]) -> anyhow::Result<(Option<String>, Vec<Word>)> {
    let (target, rest) = match words.split_first() {
        Some((first, rest)) if !first.contains('=') && !looks_like_key(first) => {
            (Some(first.clone()), rest)
        }
        _ => (None, words),
    };
    let mut parsed = Vec::new();
    for raw in rest {
        let word = match raw.split_once('=') {
            Some((key, value)) => Word::Assign(Key::parse(key)?, value.to_owned()),
            None => Word::Bare(Key::parse(raw).map_err(|e| {
                anyhow::anyhow!(
                    "{e}\n(only the first argument may name the target; the others are variables)"
                )
            })?),
        };
        let key = match &word {
            Word::Assign(key, _) | Word::Bare(key) => key,
        };
        if parsed
            .iter()
            .any(|w: &Word| matches!(w, Word::Assign(k, _) | Word::Bare(k) if k == key))
        {
            bail!("`{key}` is given twice\nhint: give each variable once");
        }
        parsed.push(word);
    }
    if parsed.is_empty() {
        bail!("no variable is named\nhint: `sandpit config set dev KEY=VALUE`, or `sandpit config unset dev KEY`");
    }
    Ok((target, parsed))
}

/// The value of a bare `KEY` of `set --secret`: standard input, less one trailing newline.
fn read_secret(key: &Key) -> anyhow::Result<String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!(
            "the value of `{key}` is read from standard input, and a secret is not typed where it would show\nhint: pipe it in: `printf '%s' \"$VALUE\" | sandpit config set TARGET {key} --secret`"
        );
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the value of `{key}` from standard input"))?;
    let mut text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!("the value of `{key}` on standard input is not UTF-8 text\nhint: encode it, e.g. with base64")
    })?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

fn components(raw: &[String]) -> anyhow::Result<Vec<Name>> {
    Ok(raw
        .iter()
        .map(|c| Name::parse(c))
        .collect::<Result<_, _>>()?)
}

/// The `set` change the words ask for.
fn set_change(args: &SetArgs) -> anyhow::Result<(Option<String>, Change)> {
    let (target, words) = split(&args.words)?;
    let bare = words.iter().filter(|w| matches!(w, Word::Bare(_))).count();
    let mut assignments = Vec::new();
    for word in words {
        match word {
            Word::Assign(key, value) => assignments.push((key, value)),
            Word::Bare(key) if args.secret && bare == 1 => {
                let value = read_secret(&key)?;
                assignments.push((key, value));
            }
            Word::Bare(key) if args.secret => bail!(
                "`{key}` has no value, and only one secret can be read from standard input\nhint: set the others one at a time"
            ),
            Word::Bare(key) => bail!(
                "`{key}` has no value\nhint: write {key}=VALUE ({key}= for an empty value); with --secret, a bare {key} reads its value from standard input"
            ),
        }
    }
    Ok((
        target,
        Change::Set {
            assignments,
            secret: args.secret,
            components: components(&args.components)?,
        },
    ))
}

fn unset_change(args: &UnsetArgs) -> anyhow::Result<(Option<String>, Change)> {
    let (target, words) = split(&args.words)?;
    let mut keys = Vec::new();
    for word in words {
        match word {
            Word::Bare(key) => keys.push(key),
            Word::Assign(key, _) => bail!(
                "`unset` takes variable names, not values\nhint: `sandpit config unset TARGET {key}`"
            ),
        }
    }
    Ok((
        target,
        Change::Unset {
            keys,
            components: components(&args.components)?,
        },
    ))
}

pub async fn exec(context: &Context, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let (target, change) = match &args.action {
        None => {
            let listing =
                sandpit_ops::config::show(context, args.target.as_deref(), args.show_secrets)?;
            return print(&ConfigListing::from(&listing), json);
        }
        Some(Action::Set(set)) => set_change(set)?,
        Some(Action::Unset(unset)) => unset_change(unset)?,
    };
    let changed = sandpit_ops::config::change(
        context,
        target.as_deref(),
        &change,
        &mut |component, message| {
            if !json {
                output::print_event(component, message);
            }
        },
    )
    .await?;
    print_changed(&ConfigResult::from(&changed), json)
}

/// `config` on the control plane: the listing (secrets masked: a server never sends them), or
/// `set|unset`, whose values (secrets too) go in the request body only, never in its URL.
pub async fn exec_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&std::path::Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (target, change) = match &args.action {
        Some(Action::Set(set)) => set_change(set)?,
        Some(Action::Unset(unset)) => unset_change(unset)?,
        None => return list_remote(remote, project, directory, args, json).await,
    };
    let target = crate::checkout::biome_or_branch(target, directory)?;
    let path = format!("{}/config/{}", project_path(project), path_segment(&target));
    let request = ConfigChangeRequest::from(&change);
    let mut answer: ConfigResult = remote.change(Method::POST, &path, Some(&request)).await?;
    if let ConfigResult::Deployed(deployed) = &mut answer {
        output::print_events(&deployed.events);
        deployed.events.clear();
    }
    print_changed(&answer, json)
}

fn print_changed(changed: &ConfigResult, json: bool) -> anyhow::Result<ExitCode> {
    match changed {
        ConfigResult::Deployed(outcome) => output::print_deploy_outcome(outcome, json)?,
        ConfigResult::Stored(stored) => {
            if json {
                output::print_json(stored)?;
            } else {
                let target = &stored.target;
                let when = match (stored.applies.as_str(), stored.reason.as_deref()) {
                    ("next_deployment", _) => format!(
                        "nothing runs in `{target}`, so it applies at the next `sandpit deploy` or `promote` into it"
                    ),
                    (_, Some("dirty_snapshot")) => format!(
                        "`{target}` runs uncommitted changes, whose sandpit.toml cannot be read again, so it applies at its next `sandpit up`"
                    ),
                    _ => format!(
                        "`{target}` does not run, so it applies at its next `sandpit up`"
                    ),
                };
                println!("stored for `{target}` ({}): {when}", stored.change);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `config [TARGET]` on the control plane: its listing, secrets masked.
async fn list_remote(
    remote: &Remote,
    project: &str,
    directory: Option<&std::path::Path>,
    args: Args,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if args.show_secrets {
        sandpit_ops::fail!(
            InvalidInput,
            "a control plane never sends secrets, so `config --show-secrets` works only on the machine that runs the target\nhint: there, run `sandpit config --show-secrets --local`"
        );
    }
    let target = crate::checkout::biome_or_branch(args.target, directory)?;
    let path = format!("{}/config/{}", project_path(project), path_segment(&target));
    let listing: ConfigListing = remote.call(Method::GET, &path, None::<&()>).await?;
    print(&listing, json)
}

fn print(listing: &ConfigListing, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(listing)?;
    } else {
        print_listing(listing);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_listing(listing: &ConfigListing) {
    let target = &listing.target;
    let next = match &listing.biome {
        Some(biome) => format!("`sandpit up {biome}`"),
        None => format!("the next `sandpit deploy` or `promote` into `{target}`"),
    };
    match listing.deployment {
        Some(id) if listing.up_to_date => {
            println!("{target} runs with these values (deployment #{id})");
        }
        Some(id) => println!(
            "{target} runs deployment #{id}, started with other values: {next} applies these"
        ),
        None => println!("nothing runs in {target}: these values apply at {next}"),
    }
    if listing.variables.is_empty() {
        println!("no variables are set");
    } else {
        let rows: Vec<[String; 4]> = listing
            .variables
            .iter()
            .map(|v| {
                let value = match (&v.value, v.secret) {
                    (None, _) => "•••••• (secret; --show-secrets shows it)".to_owned(),
                    (Some(text), secret) => {
                        let shown = if text.is_empty() {
                            "\"\"".to_owned()
                        } else {
                            sandpit_domain::escape_hidden(text)
                        };
                        if secret {
                            format!("{shown} (secret)")
                        } else {
                            shown
                        }
                    }
                };
                let value = if v.overridden {
                    format!("{value}  (overridden)")
                } else {
                    value
                };
                [
                    v.key.clone(),
                    v.component.clone().unwrap_or_else(|| "all".to_owned()),
                    v.from.clone(),
                    value,
                ]
            })
            .collect();
        let width = |i: usize, title: &str| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or_default()
        };
        let (key, component, from) = (width(0, "KEY"), width(1, "FOR"), width(2, "FROM"));
        println!(
            "{:<key$}  {:<component$}  {:<from$}  VALUE",
            "KEY", "FOR", "FROM"
        );
        for [k, c, f, v] in &rows {
            println!("{k:<key$}  {c:<component$}  {f:<from$}  {v}");
        }
    }
    for pending in &listing.pending {
        println!(
            "pending: deployment #{} by {} ({}; {} more approval(s) needed: `sandpit approve {}`)",
            pending.deployment,
            pending.requested_by,
            pending.change,
            pending.approvals_missing,
            pending.deployment
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(raw: &[&str]) -> Vec<String> {
        raw.iter().map(|w| (*w).to_owned()).collect()
    }

    fn key(raw: &str) -> Key {
        Key::parse(raw).unwrap()
    }

    #[test]
    fn words_are_checked_at_parse_time() {
        // (word, accepted)
        let cases: &[(&str, bool)] = &[
            ("dev", true),
            ("dev/alice", true),
            ("feature/Better_Model", true),
            ("GREETING=hello", true),
            ("GREETING=", true),
            ("GREETING=a=b", true),
            ("TOKEN", true),
            ("greeting=hello", false),
            ("PORT=1", false),
            ("SANDPIT_ENV=x", false),
            ("DATABASE_URL", false),
            ("1ABC=x", false),
            ("A-B=x", false),
            ("=x", false),
        ];
        for (raw, accepted) in cases {
            let checked = word(raw);
            assert_eq!(checked.is_ok(), *accepted, "{raw}: {checked:?}");
            if let Err(message) = checked {
                assert!(message.contains("hint:"), "{raw}: {message}");
            }
        }
    }

    #[test]
    fn the_first_word_names_the_target_unless_it_is_a_variable() {
        let (target, parsed) = split(&words(&["dev/alice", "A=1", "B="])).unwrap();
        assert_eq!(target.as_deref(), Some("dev/alice"));
        assert_eq!(
            parsed,
            [
                Word::Assign(key("A"), "1".into()),
                Word::Assign(key("B"), String::new())
            ]
        );
        let (target, parsed) = split(&words(&["A=x=y", "TOKEN"])).unwrap();
        assert_eq!(target, None);
        assert_eq!(
            parsed,
            [
                Word::Assign(key("A"), "x=y".into()),
                Word::Bare(key("TOKEN"))
            ]
        );
        let (target, parsed) = split(&words(&["dev", "GREETING"])).unwrap();
        assert_eq!(target.as_deref(), Some("dev"));
        assert_eq!(parsed, [Word::Bare(key("GREETING"))]);

        // (words, a fragment of the error)
        let refused: &[(&[&str], &str)] = &[
            (&["dev"], "no variable is named\nhint:"),
            (&["dev", "greeting"], "has lower-case letters"),
            (&["dev", "A=1", "A=2"], "`A` is given twice"),
            (
                &["dev", "alice", "A=1"],
                "only the first argument may name the target",
            ),
        ];
        for (raw, fragment) in refused {
            let error = split(&words(raw)).unwrap_err().to_string();
            assert!(error.contains(fragment), "{raw:?}: {error}");
        }
    }

    #[test]
    fn set_needs_values_and_unset_refuses_them() {
        let set = SetArgs {
            words: words(&["dev", "A"]),
            secret: false,
            components: vec![],
        };
        let error = set_change(&set).unwrap_err().to_string();
        assert!(
            error.contains("`A` has no value\nhint: write A=VALUE"),
            "{error}"
        );
        let secrets = SetArgs {
            words: words(&["dev", "A", "B"]),
            secret: true,
            components: vec![],
        };
        let error = set_change(&secrets).unwrap_err().to_string();
        assert!(error.contains("only one secret can be read"), "{error}");
        let (target, change) = set_change(&SetArgs {
            words: words(&["A=1"]),
            secret: true,
            components: vec!["web".into()],
        })
        .unwrap();
        assert_eq!(target, None);
        assert_eq!(
            change,
            Change::Set {
                assignments: vec![(key("A"), "1".into())],
                secret: true,
                components: vec![Name::parse("web").unwrap()],
            }
        );
        let unset = UnsetArgs {
            words: words(&["dev", "A=1"]),
            components: vec![],
        };
        let error = unset_change(&unset).unwrap_err().to_string();
        assert!(
            error.contains("takes variable names, not values"),
            "{error}"
        );
    }
}
