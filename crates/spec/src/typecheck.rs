//! Checks a parsed TOML document against the key tables in [`crate::schema`]: types, required
//! keys, unknown keys, names and paths. What passes comes out as typed [`Fields`], so the semantic
//! validation never looks at raw TOML and never re-decides a type.

use std::collections::BTreeMap;

use sandpit_domain::{quoted, ByteSize, Name, NameError, Span};
use toml_edit::{Item, Key, TableLike, Value};

use crate::diagnostic::{did_you_mean, toml_string, Sink};
use crate::schema::{DefaultValue, KeySpec, Kind, Section};

/// Something from the file with the byte offset it was written at.
#[derive(Debug, Clone)]
pub(crate) struct Located<T> {
    pub value: T,
    pub at: usize,
}

/// A branch name or pattern git could name: not empty, no whitespace, control characters or
/// the characters git refuses in ref names (`~^:?[\\`), no `..`, no leading `-` or `/`.
fn branch_pattern_is_valid(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 255
        && !raw.starts_with(['-', '/'])
        && !raw.ends_with('/')
        && !raw.contains("..")
        && !raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?[\\".contains(c))
}

#[derive(Debug)]
pub(crate) enum Typed {
    String(String),
    Bool(bool),
    Integer(u32),
    Size(ByteSize),
    Span(Span),
    Name(Name),
    Names(Vec<Located<Name>>),
    Paths(Vec<String>),
    Strings(Vec<Located<String>>),
    EnvVars(BTreeMap<String, String>),
    Table(Fields),
    Named(Vec<(Located<Name>, Fields)>),
    NamedWithSettings(Fields, Vec<(Located<Name>, Fields)>),
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub typed: Typed,
    pub key_at: usize,
    pub value_at: usize,
}

/// The well-typed keys of one table, plus where the table is (its header, for "missing" errors).
#[derive(Debug)]
pub(crate) struct Fields {
    pub section: &'static Section,
    pub at: usize,
    pub entries: BTreeMap<&'static str, Entry>,
    /// Known keys written in the file, including those dropped for a wrong type.
    pub written: Vec<&'static str>,
}

impl Fields {
    fn typed(&self, key: &str) -> Option<&Typed> {
        self.entries.get(key).map(|entry| &entry.typed)
    }

    fn default(&self, key: &str) -> DefaultValue {
        self.section
            .key(key)
            .map_or(DefaultValue::None, |spec| spec.default)
    }

    /// Where the key's value is, or the table header when the key is absent.
    pub fn value_at(&self, key: &str) -> usize {
        self.entries
            .get(key)
            .map_or(self.at, |entry| entry.value_at)
    }

    pub fn key_at(&self, key: &str) -> usize {
        self.entries.get(key).map_or(self.at, |entry| entry.key_at)
    }

    /// Whether the key was written at all, even with a value that was refused.
    pub fn written(&self, key: &str) -> bool {
        self.written.contains(&key)
    }

    /// The string, or the schema's default.
    pub fn string(&self, key: &str) -> Option<String> {
        match (self.typed(key), self.default(key)) {
            (Some(Typed::String(value)), _) => Some(value.clone()),
            (None, DefaultValue::String(default)) => Some(default.to_owned()),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match (self.typed(key), self.default(key)) {
            (Some(Typed::Bool(value)), _) => Some(*value),
            (None, DefaultValue::Bool(default)) => Some(default),
            _ => None,
        }
    }

    pub fn integer(&self, key: &str) -> Option<u32> {
        match (self.typed(key), self.default(key)) {
            (Some(Typed::Integer(value)), _) => Some(*value),
            (None, DefaultValue::Integer(default)) => Some(default),
            _ => None,
        }
    }

    pub fn size(&self, key: &str) -> Option<ByteSize> {
        match (self.typed(key), self.default(key)) {
            (Some(Typed::Size(value)), _) => Some(*value),
            (None, DefaultValue::String(default)) => ByteSize::parse(default).ok(),
            _ => None,
        }
    }

    pub fn span(&self, key: &str) -> Option<Span> {
        match (self.typed(key), self.default(key)) {
            (Some(Typed::Span(value)), _) => Some(*value),
            (None, DefaultValue::String(default)) => Span::parse(default).ok(),
            _ => None,
        }
    }

    pub fn name(&self, key: &str) -> Option<&Name> {
        match self.typed(key) {
            Some(Typed::Name(value)) => Some(value),
            _ => None,
        }
    }

    pub fn names(&self, key: &str) -> &[Located<Name>] {
        match self.typed(key) {
            Some(Typed::Names(value)) => value,
            _ => &[],
        }
    }

    pub fn paths(&self, key: &str) -> Vec<String> {
        match self.typed(key) {
            Some(Typed::Paths(value)) => value.clone(),
            _ => Vec::new(),
        }
    }

    pub fn strings(&self, key: &str) -> &[Located<String>] {
        match self.typed(key) {
            Some(Typed::Strings(value)) => value,
            _ => &[],
        }
    }

    pub fn env_vars(&self, key: &str) -> BTreeMap<String, String> {
        match self.typed(key) {
            Some(Typed::EnvVars(value)) => value.clone(),
            _ => BTreeMap::new(),
        }
    }

    pub fn table(&self, key: &str) -> Option<&Fields> {
        match self.typed(key) {
            Some(Typed::Table(value)) => Some(value),
            _ => None,
        }
    }

    pub fn named(&self, key: &str) -> &[(Located<Name>, Fields)] {
        match self.typed(key) {
            Some(Typed::Named(value)) | Some(Typed::NamedWithSettings(_, value)) => value,
            _ => &[],
        }
    }

    /// Checks one written key's value against `spec` and keeps it when well-typed (a key
    /// counts as written even when its value is refused).
    fn check_key(
        &mut self,
        sink: &mut Sink<'_>,
        spec: &'static KeySpec,
        item: &Item,
        key_at: usize,
        value_at: usize,
        path: &str,
    ) {
        self.written.push(spec.name);
        let checked = Check {
            sink,
            spec,
            item,
            key_at,
            value_at,
            path,
        }
        .run();
        if let Some(typed) = checked {
            self.entries.insert(
                spec.name,
                Entry {
                    typed,
                    key_at,
                    value_at,
                },
            );
        }
    }

    /// The settings of a [`Kind::NamedWithSettings`] table, when it was written.
    pub fn settings(&self, key: &str) -> Option<&Fields> {
        match self.typed(key) {
            Some(Typed::NamedWithSettings(settings, _)) => Some(settings),
            _ => None,
        }
    }
}

/// Environment variables sandpit sets for every component; a file may not override them.
const RESERVED_ENV_VARS: [&str; 2] = ["PORT", "DATABASE_URL"];

/// Checks `table` (the document root, or any table below it) against `section`.
///
/// `owner` names the table in messages (`service `api``, ``[project]``); `path` is its dotted
/// TOML path, empty for the root.
pub(crate) fn check_table(
    sink: &mut Sink<'_>,
    table: &dyn TableLike,
    at: usize,
    section: &'static Section,
    owner: &str,
    path: &str,
) -> Fields {
    let mut fields = Fields {
        section,
        at,
        entries: BTreeMap::new(),
        written: Vec::new(),
    };
    for (name, item) in table.iter() {
        let key_at = table
            .get_key_value(name)
            .and_then(|(key, _)| key.span())
            .map_or(at, |s| s.start);
        let value_at = item.span().map_or(key_at, |span| span.start);
        let Some(spec) = section.key(name) else {
            let (message, hint) = if path.is_empty() && item.is_table_like() {
                (format!("unknown section {}", quoted(name)), "sections are")
            } else if path.is_empty() {
                (
                    format!("unknown key {} at the top of the file", quoted(name)),
                    "keys belong in a section; sections are",
                )
            } else {
                (
                    format!("unknown key {} in {owner}", quoted(name)),
                    "known keys here are",
                )
            };
            let known = section.keys.iter().map(|spec| spec.name);
            let hint = did_you_mean(name, known.clone()).unwrap_or_else(|| {
                let list: Vec<String> = known.map(|known| format!("`{known}`")).collect();
                format!("{hint} {}", list.join(", "))
            });
            // An error, not a warning: a misspelt key would otherwise be dropped silently and
            // its default used (`heatlh` → a 60 s wait on `/`), found only after a whole build.
            sink.error(key_at, message, Some(hint));
            continue;
        };
        let child_path = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        fields.check_key(sink, spec, item, key_at, value_at, &child_path);
    }
    for spec in section
        .keys
        .iter()
        .filter(|spec| spec.required && !fields.written(spec.name))
    {
        match spec.kind {
            Kind::Table(_) => sink.error(
                at,
                format!(
                    "{FILE} has no `[{}]` section",
                    spec.name,
                    FILE = crate::FILE_NAME
                ),
                Some(format!(
                    "add a `[{}]` section at the top of the file",
                    spec.name
                )),
            ),
            _ => sink.error(
                at,
                format!("{owner} has no `{}`{}", spec.name, missing_noun(spec)),
                Some(format!("add {} = {}", spec.name, spec.example)),
            ),
        }
    }
    fields
}

/// What a missing key is, when its name alone does not say (`has no `run` command`).
fn missing_noun(spec: &KeySpec) -> &'static str {
    match spec.kind {
        Kind::Command => " command",
        _ => "",
    }
}

struct Check<'s, 'a, 'i> {
    sink: &'s mut Sink<'a>,
    spec: &'static KeySpec,
    item: &'i Item,
    key_at: usize,
    value_at: usize,
    path: &'s str,
}

impl Check<'_, '_, '_> {
    fn run(mut self) -> Option<Typed> {
        let spec = self.spec;
        match spec.kind {
            Kind::String => {
                let raw = self.string()?;
                let described = format!("`{}`", spec.name);
                refuse_nul(self.sink, &raw, self.value_at, &described, PROCESS)?;
                Some(Typed::String(raw))
            }
            Kind::Command => {
                let command = self.string()?;
                let described = format!("`{}`", spec.name);
                refuse_nul(self.sink, &command, self.value_at, &described, PROCESS)?;
                if command.trim().is_empty() {
                    self.sink.error(
                        self.value_at,
                        format!("`{}` must not be empty", spec.name),
                        Some(format!("write {} = {}", spec.name, spec.example)),
                    );
                    return None;
                }
                Some(Typed::String(command))
            }
            Kind::Path => {
                let raw = self.string()?;
                let described = format!("`{}`", spec.name);
                refuse_nul(self.sink, &raw, self.value_at, &described, PATH)?;
                match normalise_path(&raw) {
                    Ok(path) => Some(Typed::String(path)),
                    Err((message, hint)) => {
                        self.sink.error(
                            self.value_at,
                            format!("`{}` {message}", spec.name),
                            Some(hint),
                        );
                        None
                    }
                }
            }
            Kind::HttpPath => {
                let raw = self.string()?;
                let described = format!("`{}`", spec.name);
                refuse_nul(self.sink, &raw, self.value_at, &described, PATH)?;
                if !raw.starts_with('/') {
                    self.sink.error(
                        self.value_at,
                        format!(
                            "`{}` must be an HTTP path starting with `/`, found {}",
                            spec.name,
                            quoted(&raw)
                        ),
                        Some(format!(
                            "write {} = {}",
                            spec.name,
                            toml_string(&format!("/{raw}"))
                        )),
                    );
                    return None;
                }
                Some(Typed::String(raw))
            }
            Kind::EnvVarName => {
                let raw = self.string()?;
                if !is_env_var_name(&raw) {
                    self.sink.error(
                        self.value_at,
                        format!(
                            "`{}` must name an environment variable, found {}",
                            spec.name,
                            quoted(&raw)
                        ),
                        Some(env_var_name_hint()),
                    );
                    return None;
                }
                Some(Typed::String(raw))
            }
            Kind::Bool => match self.item.as_bool() {
                Some(value) => Some(Typed::Bool(value)),
                None => self.wrong_type("a boolean"),
            },
            Kind::Integer { min } => {
                let Some(value) = self.item.as_integer() else {
                    return self.wrong_type("an integer");
                };
                match u32::try_from(value) {
                    Ok(value) if value >= min => Some(Typed::Integer(value)),
                    _ => {
                        let message = if value < i64::from(min) {
                            format!("`{}` must be at least {min}, found {value}", spec.name)
                        } else {
                            format!(
                                "`{}` must be at most {}, found {value}",
                                spec.name,
                                u32::MAX
                            )
                        };
                        self.sink.error(
                            self.value_at,
                            message,
                            Some(format!("write {} = {}", spec.name, spec.example)),
                        );
                        None
                    }
                }
            }
            Kind::Size => {
                if let Some(bytes) = self.item.as_integer() {
                    return match u64::try_from(bytes) {
                        Ok(bytes) => Some(Typed::Size(ByteSize(bytes))),
                        Err(_) => {
                            self.sink.error(
                                self.value_at,
                                format!("`{}` must not be negative, found {bytes}", spec.name),
                                Some(format!("write {} = {}", spec.name, spec.example)),
                            );
                            None
                        }
                    };
                }
                let Some(raw) = self.item.as_str() else {
                    return self.wrong_type("a size such as \"2GiB\" or a number of bytes");
                };
                match ByteSize::parse(raw) {
                    Ok(size) => Some(Typed::Size(size)),
                    Err(_) => {
                        self.sink.error(
                            self.value_at,
                            format!("`{}` must be a size, found {}", spec.name, quoted(raw)),
                            Some(format!(
                                "write a number of bytes or a number with a unit (B, KiB, MiB, GiB, TiB; KB, MB, GB and TB count in 1024s too), e.g. {} = {}",
                                spec.name, spec.example
                            )),
                        );
                        None
                    }
                }
            }
            Kind::Span => {
                let Some(raw) = self.item.as_str() else {
                    return self.wrong_type("a span of time such as \"30m\" or \"7d\"");
                };
                match Span::parse(raw) {
                    Ok(span) => Some(Typed::Span(span)),
                    Err(_) => {
                        self.sink.error(
                            self.value_at,
                            format!(
                                "`{}` must be a span of time, found {}",
                                spec.name,
                                quoted(raw)
                            ),
                            Some(format!(
                                "write a number with a unit (s, m, h, d, w), largest first, e.g. {} = {}",
                                spec.name, spec.example
                            )),
                        );
                        None
                    }
                }
            }
            Kind::Port => {
                let Some(value) = self.item.as_integer() else {
                    return self.wrong_type("a port number");
                };
                if (1..=65535).contains(&value) {
                    Some(Typed::Integer(value as u32))
                } else {
                    self.sink.error(
                        self.value_at,
                        format!(
                            "`{}` must be a port from 1 to 65535, found {value}",
                            spec.name
                        ),
                        Some(format!("write {} = {}", spec.name, spec.example)),
                    );
                    None
                }
            }
            Kind::Name => {
                let raw = self.string()?;
                let value_at = self.value_at;
                parse_name(self.sink, &raw, value_at, &format!("`{}`", spec.name)).map(Typed::Name)
            }
            Kind::Names => {
                let Some(array) = self.item.as_array() else {
                    return self.wrong_type("an array of names");
                };
                let mut names = Vec::new();
                for element in array.iter() {
                    let at = element.span().map_or(self.value_at, |span| span.start);
                    match element.as_str() {
                        Some(raw) => {
                            let what = format!("`{}` entry", spec.name);
                            if let Some(name) = parse_name(self.sink, raw, at, &what) {
                                names.push(Located { value: name, at });
                            }
                        }
                        None => self.sink.error(
                            at,
                            format!(
                                "`{}` must list names as strings, found {}",
                                spec.name,
                                value_type(element)
                            ),
                            Some(format!("write {} = {}", spec.name, spec.example)),
                        ),
                    }
                }
                Some(Typed::Names(names))
            }
            Kind::BranchPatterns => {
                let Some(array) = self.item.as_array() else {
                    return self.wrong_type("an array of branch names or patterns");
                };
                let mut patterns = Vec::new();
                for element in array.iter() {
                    let at = element.span().map_or(self.value_at, |span| span.start);
                    match element.as_str() {
                        Some(raw) if branch_pattern_is_valid(raw) => patterns.push(Located {
                            value: raw.to_owned(),
                            at,
                        }),
                        Some(raw) => self.sink.error(
                            at,
                            format!(
                                "`{}` entry {} is not a branch name or pattern",
                                spec.name,
                                sandpit_domain::quoted(raw)
                            ),
                            Some("write a branch name, with `*` for any run of characters: \"release/*\"".to_owned()),
                        ),
                        None => self.sink.error(
                            at,
                            format!(
                                "`{}` must list branches as strings, found {}",
                                spec.name,
                                value_type(element)
                            ),
                            Some(format!("write {} = {}", spec.name, spec.example)),
                        ),
                    }
                }
                Some(Typed::Strings(patterns))
            }
            Kind::Paths => {
                let Some(array) = self.item.as_array() else {
                    return self.wrong_type("an array of paths");
                };
                let mut paths = Vec::new();
                for element in array.iter() {
                    let at = element.span().map_or(self.value_at, |span| span.start);
                    let described = format!("`{}` entry", spec.name);
                    let nul = element
                        .as_str()
                        .map(|raw| refuse_nul(self.sink, raw, at, &described, PATH).is_none());
                    if nul == Some(true) {
                        continue;
                    }
                    match element.as_str().map(normalise_path) {
                        Some(Ok(path)) => paths.push(path),
                        Some(Err((message, hint))) => self.sink.error(
                            at,
                            format!("`{}` entry {message}", spec.name),
                            Some(hint),
                        ),
                        None => self.sink.error(
                            at,
                            format!(
                                "`{}` must list paths as strings, found {}",
                                spec.name,
                                value_type(element)
                            ),
                            Some(format!("write {} = {}", spec.name, spec.example)),
                        ),
                    }
                }
                Some(Typed::Paths(paths))
            }
            Kind::EnvVars => {
                let Some(table) = self.item.as_table_like() else {
                    return self.wrong_type("a table of strings");
                };
                Some(Typed::EnvVars(env_vars(
                    self.sink,
                    table,
                    self.value_at,
                    VariableRules::Environment,
                )))
            }
            Kind::TerraformVars => {
                let Some(table) = self.item.as_table_like() else {
                    return self.wrong_type("a table of strings");
                };
                Some(Typed::EnvVars(env_vars(
                    self.sink,
                    table,
                    self.value_at,
                    VariableRules::Terraform,
                )))
            }
            Kind::Table(section) => {
                let Some(table) = self.item.as_table_like() else {
                    return self.wrong_type("a table");
                };
                let owner = format!("`[{}]`", self.path);
                let at = table_at(self.item, self.key_at);
                Some(Typed::Table(check_table(
                    self.sink, table, at, section, &owner, self.path,
                )))
            }
            Kind::Named(section) => {
                let Some(table) = self.item.as_table_like() else {
                    return self.wrong_type("a table");
                };
                Some(Typed::Named(self.named_entries(table, section, &[])))
            }
            Kind::NamedWithSettings { settings, named } => {
                let Some(table) = self.item.as_table_like() else {
                    return self.wrong_type("a table");
                };
                let at = table_at(self.item, self.key_at);
                let mut fields = Fields {
                    section: settings,
                    at,
                    entries: BTreeMap::new(),
                    written: Vec::new(),
                };
                for (raw, item) in table.iter() {
                    let Some(spec) = settings.key(raw) else {
                        continue;
                    };
                    let key_at = key_span(table, raw).unwrap_or(self.value_at);
                    let value_at = item.span().map_or(key_at, |span| span.start);
                    if item.is_table_like() {
                        fields.written.push(spec.name);
                        self.sink.error(
                            key_at,
                            format!(
                                "`{raw}` is a setting of `[{}]`, not a {} name",
                                self.path, named.label
                            ),
                            Some(format!(
                                "write {raw} = {} under `[{}]`, and give the {} another name",
                                spec.example, self.path, named.label
                            )),
                        );
                        continue;
                    }
                    let child_path = format!("{}.{raw}", self.path);
                    fields.check_key(self.sink, spec, item, key_at, value_at, &child_path);
                }
                let reserved: Vec<&str> = settings.keys.iter().map(|spec| spec.name).collect();
                let entries = self.named_entries(table, named, &reserved);
                Some(Typed::NamedWithSettings(fields, entries))
            }
        }
    }

    /// Each entry of a table of named entries, every key but `skip` (settings of the table).
    fn named_entries(
        &mut self,
        table: &dyn TableLike,
        section: &'static Section,
        skip: &[&str],
    ) -> Vec<(Located<Name>, Fields)> {
        let mut entries = Vec::new();
        for (raw, item) in table.iter() {
            if skip.contains(&raw) {
                continue;
            }
            let key_at = key_span(table, raw).unwrap_or(self.value_at);
            let what = format!("{} name", section.label);
            let Some(name) = parse_name(self.sink, raw, key_at, &what) else {
                continue;
            };
            let owner = format!("{} `{name}`", section.label);
            let Some(entry) = item.as_table_like() else {
                self.sink.error(
                    item.span().map_or(key_at, |span| span.start),
                    format!("{owner} must be a table, found {}", item_type(item)),
                    Some(format!("write it as a `[{}.{name}]` section", self.path)),
                );
                continue;
            };
            let at = table_at(item, key_at);
            let path = format!("{}.{name}", self.path);
            let fields = check_table(self.sink, entry, at, section, &owner, &path);
            entries.push((
                Located {
                    value: name,
                    at: key_at,
                },
                fields,
            ));
        }
        entries
    }

    fn string(&mut self) -> Option<String> {
        match self.item.as_str() {
            Some(value) => Some(value.to_owned()),
            None => {
                self.wrong_type::<()>("a string");
                None
            }
        }
    }

    fn wrong_type<T>(&mut self, expected: &str) -> Option<T> {
        let spec = self.spec;
        let hint = match spec.kind {
            // Whole sections: an example value would not help, the shape would.
            Kind::Table(_) => format!("write it as a `[{}]` section", self.path),
            Kind::Named(section) | Kind::NamedWithSettings { named: section, .. } => {
                format!(
                    "write each {} as a `[{}.<name>]` section",
                    section.label, self.path
                )
            }
            _ => format!("write {} = {}", spec.name, spec.example),
        };
        self.sink.error(
            self.value_at,
            format!(
                "`{}` must be {expected}, found {}",
                spec.name,
                item_type(self.item)
            ),
            Some(hint),
        );
        None
    }
}

fn parse_name(sink: &mut Sink<'_>, raw: &str, at: usize, what: &str) -> Option<Name> {
    match Name::parse(raw) {
        Ok(name) => Some(name),
        Err(error) => {
            sink.error(
                at,
                match error {
                    NameError::Empty => format!("invalid {what}: it is empty"),
                    _ => format!("invalid {what} {}: it {}", quoted(raw), error.problem()),
                },
                Some(error.hint().to_owned()),
            );
            None
        }
    }
}

/// Which names a table of variables may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VariableRules {
    /// A component's `env`: environment variables, none of sandpit's own.
    Environment,
    /// A terraform component's `vars`: each becomes `TF_VAR_<name>`, so an environment variable
    /// name too; `sha`, `env` and `biome` are sandpit's.
    Terraform,
}

impl VariableRules {
    fn noun(self) -> &'static str {
        match self {
            VariableRules::Environment => "environment variable",
            VariableRules::Terraform => "terraform variable",
        }
    }
}

/// The variables sandpit passes to every terraform run itself.
pub(crate) const RESERVED_TERRAFORM_VARS: [&str; 3] = ["sha", "env", "biome"];

fn env_vars(
    sink: &mut Sink<'_>,
    table: &dyn TableLike,
    at: usize,
    rules: VariableRules,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for (name, item) in table.iter() {
        let key_at = key_span(table, name).unwrap_or(at);
        if !is_env_var_name(name) {
            let (what, hint) = match rules {
                VariableRules::Environment => ("environment variable", env_var_name_hint()),
                VariableRules::Terraform => (
                    "terraform variable",
                    "it is passed as TF_VAR_<name>: letters, digits and `_`, not starting with a digit".to_owned(),
                ),
            };
            sink.error(
                key_at,
                format!("{} is not a valid {what} name", quoted(name)),
                Some(hint),
            );
            continue;
        }
        if rules == VariableRules::Terraform && RESERVED_TERRAFORM_VARS.contains(&name) {
            sink.error(
                key_at,
                format!("`{name}` is set by sandpit and cannot be given in `vars`"),
                Some("sandpit passes `sha` (the commit), `env` and `biome` to every terraform run; declare them as variables in the module and choose another name here".to_owned()),
            );
            continue;
        }
        if rules == VariableRules::Environment
            && (name.starts_with("SANDPIT_") || RESERVED_ENV_VARS.contains(&name))
        {
            sink.error(
                key_at,
                format!("`{name}` is set by sandpit and cannot be overridden in `env`"),
                Some("sandpit sets PORT, DATABASE_URL and SANDPIT_* for every component; choose another name".to_owned()),
            );
            continue;
        }
        match item.as_str() {
            Some(value) => {
                let value_at = item.span().map_or(key_at, |span| span.start);
                let described = format!("{} `{name}`", rules.noun());
                if refuse_nul(sink, value, value_at, &described, PROCESS).is_some() {
                    vars.insert(name.to_owned(), value.to_owned());
                }
            }
            None => {
                let value_at = item.span().map_or(key_at, |span| span.start);
                // Suggest the quoted form of what was written (`PORT_OFFSET = 8` → `"8"`).
                let written = match item.as_value() {
                    Some(Value::Integer(value)) => value.value().to_string(),
                    Some(Value::Float(value)) => value.value().to_string(),
                    Some(Value::Boolean(value)) => value.value().to_string(),
                    _ => "value".to_owned(),
                };
                sink.error(
                    value_at,
                    format!(
                        "{} `{name}` must be a string, found {}",
                        rules.noun(),
                        item_type(item)
                    ),
                    Some(format!("quote it: {name} = \"{written}\"")),
                );
            }
        }
    }
    vars
}

/// Why a NUL cannot be in a command or an environment variable: `execve` takes C strings.
const PROCESS: &str = "which cannot be passed to a process";
/// Why a NUL cannot be in a path: the file system takes C strings.
const PATH: &str = "which cannot be part of a path";

/// Refuses a string holding a NUL (written `\u0000`; TOML has no raw NUL) where the value ends
/// up in a C string, at the value; `None` when refused.
fn refuse_nul(sink: &mut Sink<'_>, raw: &str, at: usize, described: &str, why: &str) -> Option<()> {
    let Some(offset) = raw.find('\0') else {
        return Some(());
    };
    let character = raw[..offset].chars().count() + 1;
    sink.error(
        at,
        format!(
            "{described} contains a NUL character (character {character} of the string), {why}"
        ),
        Some("remove the `\\u0000` escape from the string".to_owned()),
    );
    None
}

fn is_env_var_name(raw: &str) -> bool {
    let mut chars = raw.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn env_var_name_hint() -> String {
    "environment variable names are letters, digits and `_`, not starting with a digit, e.g. `LOG_LEVEL`".to_owned()
}

/// Normalises a relative path (`./a//b/` → `a/b`, `""`-like → `.`), refusing anything that could
/// leave the project: sandpit builds from a clean checkout and must never read outside it.
fn normalise_path(raw: &str) -> Result<String, (String, String)> {
    if raw.is_empty() {
        return Err((
            "must not be empty".to_owned(),
            "write \".\" for the directory itself".to_owned(),
        ));
    }
    if raw.contains('\\') {
        return Err((
            format!("must use `/` as the separator, found {}", quoted(raw)),
            format!("write {}", toml_string(&raw.replace('\\', "/"))),
        ));
    }
    let looks_like_drive =
        raw.len() >= 2 && raw.as_bytes()[1] == b':' && raw.as_bytes()[0].is_ascii_alphabetic();
    if raw.starts_with('/') || raw.starts_with('~') || looks_like_drive {
        return Err((
            format!("must be a relative path, found {}", quoted(raw)),
            "write it relative to the directory holding sandpit.toml, e.g. \"services/api\""
                .to_owned(),
        ));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err((
                    format!("must stay inside the project, found `..` in {}", quoted(raw)),
                    "sandpit builds from a clean checkout of this repository; move what you need inside it".to_owned(),
                ))
            }
            part => parts.push(part),
        }
    }
    Ok(if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    })
}

/// Where a table is: its `[header]`, or its key when it has no header of its own (implicit or
/// dotted tables).
fn table_at(item: &Item, key_at: usize) -> usize {
    item.span().map_or(key_at, |span| span.start)
}

fn key_span(table: &dyn TableLike, name: &str) -> Option<usize> {
    table
        .get_key_value(name)
        .and_then(|(key, _): (&Key, _)| key.span())
        .map(|span| span.start)
}

fn item_type(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(value) => value_type(value),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_kept_inside() {
        let cases: &[(&str, Option<&str>)] = &[
            (".", Some(".")),
            ("./", Some(".")),
            ("services/api", Some("services/api")),
            ("./services//api/", Some("services/api")),
            ("a/./b", Some("a/b")),
            ("", None),
            ("/srv/api", None),
            ("~/api", None),
            ("C:/api", None),
            ("a\\b", None),
            ("../other", None),
            ("a/../b", None),
            ("a/..", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                normalise_path(input).ok().as_deref(),
                *expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn env_var_names() {
        for good in ["A", "_x", "LOG_LEVEL", "a1"] {
            assert!(is_env_var_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }
}
