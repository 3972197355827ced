//! Semantic validation: the rules that span keys and tables (references, cycles, uniqueness,
//! combinations), turning type-checked [`Fields`] into the [`Spec`] model.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sandpit_domain::{quoted, ComponentKind, Name};

use crate::diagnostic::{did_you_mean, Sink};
use crate::model::{
    Biomes, Component, Database, DatabaseUrl, Environment, Gateway, Gitlab, Pipelines, Project,
    Spec, TerraformSettings,
};
use crate::typecheck::{Fields, Located};

/// Models have no `start_timeout` key; this is how long the model endpoint may take to load one.
const MODEL_LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `terraform apply` (or destroy) of a terraform component may take.
const TERRAFORM_APPLY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Builds the model from the checked root table, reporting every semantic problem into `sink`.
/// Returns `None` only when something the model cannot do without is missing.
pub(crate) fn build_spec(sink: &mut Sink<'_>, root: &Fields) -> Option<Spec> {
    let project = root.table("project").and_then(project);
    let environments = environments(sink, root);
    let components = components(sink, root);
    let database = root.table("database").and_then(|fields| {
        Some(Database {
            migrations: fields.string("migrations")?,
            seed: fields.string("seed"),
            shared: fields.string("shared"),
        })
    });
    let pipelines = root
        .table("pipelines")
        .map(|fields| pipelines(sink, fields, &environments))
        .unwrap_or_default();
    let gitlab = root.table("gitlab").and_then(|fields| gitlab(sink, fields));
    let gateway = Gateway {
        port: root
            .table("gateway")
            .and_then(|fields| fields.integer("port"))
            .and_then(|port| u16::try_from(port).ok()),
    };
    let biomes = root
        .table("biomes")
        .map(|fields| biomes(sink, fields))
        .unwrap_or_default();
    let terraform = TerraformSettings {
        binary: root
            .settings("terraform")
            .and_then(|fields| fields.string("binary"))
            .unwrap_or_else(|| TerraformSettings::default().binary),
    };
    if terraform.binary.trim().is_empty() || terraform.binary.contains('\0') {
        let at = root
            .settings("terraform")
            .map_or(0, |fields| fields.value_at("binary"));
        sink.error(
            at,
            format!(
                "`binary` must name a program, found {}",
                quoted(&terraform.binary)
            ),
            Some("write binary = \"terraform\", \"tofu\" or a path to one".to_owned()),
        );
    }
    Some(Spec {
        project: project?,
        environments,
        components,
        database,
        pipelines,
        gitlab,
        gateway,
        biomes,
        terraform,
    })
}

fn biomes(sink: &mut Sink<'_>, fields: &Fields) -> Biomes {
    let defaults = Biomes::default();
    let reap_max_percent = fields
        .integer("reap_max_percent")
        .unwrap_or(defaults.reap_max_percent);
    if reap_max_percent > 100 {
        sink.error(
            fields.value_at("reap_max_percent"),
            format!("`reap_max_percent` is a percentage, at most 100, found {reap_max_percent}"),
            Some("write reap_max_percent = 50".to_owned()),
        );
    }
    Biomes {
        idle_timeout: fields.span("idle_timeout"),
        ttl: fields.span("ttl").unwrap_or(defaults.ttl),
        overlay: fields.bool("overlay").unwrap_or(defaults.overlay),
        reap_max_percent: reap_max_percent.min(100),
    }
}

fn gitlab(sink: &mut Sink<'_>, fields: &Fields) -> Option<Gitlab> {
    let api_url = fields.string("api_url")?;
    let project = fields.string("project")?;
    let token_secret = fields.string("token_secret")?;
    let mut valid = true;
    if let Err(problem) = check_api_url(&api_url) {
        sink.error(
            fields.value_at("api_url"),
            format!("`api_url` {problem}: {}", quoted(&api_url)),
            Some(
                "write the API's root, e.g. api_url = \"https://gitlab.example/api/v4\"".to_owned(),
            ),
        );
        valid = false;
    }
    if project.trim().is_empty() || project.starts_with('/') || project.ends_with('/') {
        sink.error(
            fields.value_at("project"),
            format!("`project` {} is not a GitLab project", quoted(&project)),
            Some(
                "write its path (project = \"group/app\") or its numeric id (project = \"42\")"
                    .to_owned(),
            ),
        );
        valid = false;
    }
    // A configuration variable's name is upper case (`sandpit config set` refuses others), so
    // any other name could never be set.
    if !token_secret
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        sink.error(
            fields.value_at("token_secret"),
            format!(
                "`token_secret` {} cannot name a configuration secret, whose names are upper case",
                quoted(&token_secret)
            ),
            Some(format!(
                "write token_secret = \"{}\"",
                token_secret.to_ascii_uppercase().replace('-', "_")
            )),
        );
        valid = false;
    }
    valid.then(|| Gitlab {
        api_url: api_url.trim_end_matches('/').to_owned(),
        project,
        token_secret,
    })
}

/// Why `raw` cannot be the root of an HTTP API: only `http://HOST…` and `https://HOST…` can.
fn check_api_url(raw: &str) -> Result<(), &'static str> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or("is not an http(s) URL")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("names no host");
    }
    if raw.contains(['?', '#']) {
        return Err("has a query or fragment, which the API paths cannot follow");
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("has whitespace or control characters");
    }
    Ok(())
}

fn pipelines(
    sink: &mut Sink<'_>,
    fields: &Fields,
    environments: &BTreeMap<Name, Environment>,
) -> Pipelines {
    let tag_promotes_to = fields.name("tag_promotes_to").cloned();
    if let Some(env) = &tag_promotes_to {
        if !environments.contains_key(env) {
            let names = environments.keys().map(Name::as_str);
            let hint = did_you_mean(env.as_str(), names.clone())
                .unwrap_or_else(|| format!("name one of {}", list(names)));
            sink.error(
                fields.value_at("tag_promotes_to"),
                format!("`tag_promotes_to` names environment `{env}`, which is not declared"),
                Some(hint),
            );
        }
    }
    Pipelines {
        branches: fields
            .strings("branches")
            .iter()
            .map(|l| l.value.clone())
            .collect(),
        tag_promotes_to,
    }
}

fn project(fields: &Fields) -> Option<Project> {
    Some(Project {
        name: fields.name("name")?.clone(),
        // The schema's default (2GiB) applies when the key is absent.
        max_artifact_size: fields.size("max_artifact_size")?,
    })
}

/// Deployments per target whose artifacts `sandpit gc` keeps, unless the file says otherwise.
const DEFAULT_KEEP_DEPLOYMENTS: u32 = 10;

fn environments(sink: &mut Sink<'_>, root: &Fields) -> BTreeMap<Name, Environment> {
    let declared = root.named("environments");
    if declared.is_empty() {
        // A file that says nothing about environments still gets somewhere to run biomes.
        let dev = Name::parse("dev").expect("`dev` is a valid name");
        let environment = Environment {
            name: dev.clone(),
            biomes: true,
            promote_from: None,
            auto_promote: false,
            protected: false,
            approvals: 0,
            keep_deployments: DEFAULT_KEEP_DEPLOYMENTS,
            seed: false,
            database_url: None,
            models_max_memory: None,
            models_max_count: None,
            idle_timeout: None,
        };
        return BTreeMap::from([(dev, environment)]);
    }

    let names: BTreeSet<&Name> = declared.iter().map(|(name, _)| &name.value).collect();
    let mut environments = BTreeMap::new();
    for (name, fields) in declared {
        let name = &name.value;
        let owner = format!("environment `{name}`");
        let promote_from = fields.name("promote_from").cloned();
        if let Some(source) = &promote_from {
            let at = fields.value_at("promote_from");
            if source == name {
                sink.error(
                    at,
                    format!("{owner} promotes from itself"),
                    Some("remove `promote_from`, or name the environment whose artifacts are promoted here".to_owned()),
                );
            } else if !names.contains(source) {
                let hint = did_you_mean(source.as_str(), names.iter().map(|n| n.as_str()))
                    .unwrap_or_else(|| {
                        format!(
                            "declare `[environments.{source}]` or name one of {}",
                            list(names.iter().map(|n| n.as_str()))
                        )
                    });
                sink.error(
                    at,
                    format!("{owner} promotes from `{source}`, which is not declared"),
                    Some(hint),
                );
            }
        }

        let auto_promote = fields.bool("auto_promote").unwrap_or(false);
        if auto_promote && promote_from.is_none() {
            sink.error(
                fields.value_at("auto_promote"),
                format!("{owner} sets auto_promote = true but promotes from no environment"),
                Some("add promote_from = \"ENV\" naming where its artifacts come from, or remove `auto_promote`".to_owned()),
            );
        }

        let protected = fields.bool("protected").unwrap_or(false);
        let approvals = match fields.integer("approvals") {
            Some(approvals) if approvals > 0 && !protected => {
                sink.error(
                    fields.value_at("approvals"),
                    format!(
                        "{owner} requires {approvals} approval{} but is not protected",
                        if approvals == 1 { "" } else { "s" }
                    ),
                    Some("add protected = true, or remove `approvals`".to_owned()),
                );
                0
            }
            Some(approvals) => approvals,
            None if protected => 1,
            None => 0,
        };

        let database_url = fields.table("database").and_then(|database| {
            let owner = format!("`[environments.{name}.database]`");
            match (database.string("url"), database.string("url_env")) {
                (Some(url), None) => Some(DatabaseUrl::Literal(url)),
                (None, Some(variable)) => Some(DatabaseUrl::FromEnv(variable)),
                (Some(_), Some(_)) => {
                    sink.error(
                        database.key_at("url_env"),
                        format!("{owner} sets both `url` and `url_env`"),
                        Some("keep one; `url_env` keeps the secret out of the repository".to_owned()),
                    );
                    None
                }
                // Also reached when a value had the wrong type; only complain if neither was written.
                (None, None) if !database.written("url") && !database.written("url_env") => {
                    sink.error(
                        database.at,
                        format!("{owner} has neither `url` nor `url_env`"),
                        Some("add url_env = \"PROD_DATABASE_URL\" naming the variable that holds the URL".to_owned()),
                    );
                    None
                }
                (None, None) => None,
            }
        });

        let models = fields.table("models");
        environments.insert(
            name.clone(),
            Environment {
                name: name.clone(),
                biomes: fields.bool("biomes").unwrap_or(false),
                promote_from,
                auto_promote,
                protected,
                approvals,
                keep_deployments: fields
                    .integer("keep_deployments")
                    .unwrap_or(DEFAULT_KEEP_DEPLOYMENTS),
                seed: fields.bool("seed").unwrap_or(false),
                database_url,
                models_max_memory: models.and_then(|models| models.size("max_memory")),
                models_max_count: models.and_then(|models| models.integer("max_models")),
                idle_timeout: fields.span("idle_timeout"),
            },
        );
    }
    report_promotion_cycles(sink, declared, &environments);
    environments
}

fn report_promotion_cycles(
    sink: &mut Sink<'_>,
    declared: &[(Located<Name>, Fields)],
    environments: &BTreeMap<Name, Environment>,
) {
    let source_of = |name: &Name| {
        environments
            .get(name)
            .and_then(|env| env.promote_from.as_ref())
    };
    // Each environment promotes from at most one other, so every cycle is a simple loop; reporting
    // it only from its alphabetically first member reports it once.
    for start in environments.keys() {
        let mut chain = vec![start];
        let mut current = start;
        while let Some(source) = source_of(current) {
            if source == current || !environments.contains_key(source) {
                break; // reported already as a self-reference or an unknown name
            }
            if source == start {
                break;
            }
            if chain.contains(&source) {
                chain.clear(); // a cycle not through `start`; found when walking from its own members
                break;
            }
            chain.push(source);
            current = source;
        }
        let closes = source_of(current) == Some(start) && chain.len() > 1;
        if !closes || chain.iter().min() != Some(&start) {
            continue;
        }
        // `chain` follows promote_from (where artifacts come from); show the direction they flow.
        let mut flow: Vec<&str> = chain.iter().rev().map(|name| name.as_str()).collect();
        flow.insert(0, start.as_str());
        let at = declared
            .iter()
            .find(|(name, _)| &name.value == start)
            .map_or(0, |(_, fields)| fields.value_at("promote_from"));
        sink.error(
            at,
            format!("promotion cycle: `{}`", flow.join(" -> ")),
            Some("promotion must flow one way, e.g. dev -> test -> prod; remove one of these `promote_from` keys".to_owned()),
        );
    }
}

fn components(sink: &mut Sink<'_>, root: &Fields) -> BTreeMap<Name, Component> {
    // Declarations from all three kinds in file order, so a clash is reported at the later one.
    let mut declared: Vec<(ComponentKind, &Located<Name>, &Fields)> = Vec::new();
    for (key, kind) in [
        ("services", ComponentKind::Service),
        ("jobs", ComponentKind::Job),
        ("models", ComponentKind::Model),
        ("terraform", ComponentKind::Terraform),
    ] {
        declared.extend(
            root.named(key)
                .iter()
                .map(|(name, fields)| (kind, name, fields)),
        );
    }
    declared.sort_by_key(|(_, name, _)| name.at);

    let mut components: BTreeMap<Name, Component> = BTreeMap::new();
    let mut depends_on: BTreeMap<Name, &[Located<Name>]> = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    for (kind, name, fields) in declared {
        if let Some(first) = components.get(&name.value) {
            let (first_kind, name_at, name) = (noun(first.kind), name.at, &name.value);
            let kind = noun(kind);
            let message = if first_kind == kind {
                format!("{kind} `{name}` is declared twice")
            } else {
                format!("`{name}` is declared as both a {first_kind} and a {kind}")
            };
            sink.error(
                name_at,
                message,
                Some(
                    "component names must be unique across services, jobs, models and terraform components; rename one"
                        .to_owned(),
                ),
            );
            continue;
        }
        // Dependencies are checked even for a component with other problems, so that every
        // problem in the file is reported at once.
        depends_on.insert(name.value.clone(), fields.names("depends_on"));
        kinds.insert(name.value.clone(), kind);
        let Some(component) = component(sink, kind, &name.value, fields) else {
            continue;
        };
        components.insert(name.value.clone(), component);
    }

    // References are checked against every declared name, including ones with other problems,
    // so one broken component does not cause a cascade of "unknown dependency" errors.
    let known: BTreeSet<&str> = root
        .named("services")
        .iter()
        .chain(root.named("jobs"))
        .chain(root.named("models"))
        .chain(root.named("terraform"))
        .map(|(name, _)| name.value.as_str())
        .collect();
    for (name, dependencies) in &depends_on {
        let kind = kinds[name];
        let described = noun(kind);
        for dependency in dependencies.iter() {
            if &dependency.value == name {
                sink.error(
                    dependency.at,
                    format!("{described} `{name}` depends on itself"),
                    Some("remove it from `depends_on`".to_owned()),
                );
            } else if !known.contains(dependency.value.as_str()) {
                let hint = did_you_mean(dependency.value.as_str(), known.iter().copied())
                    .unwrap_or_else(|| {
                        if known.is_empty() {
                            "declare it as a service, job or model".to_owned()
                        } else {
                            format!("declared components are {}", list(known.iter().copied()))
                        }
                    });
                sink.error(
                    dependency.at,
                    format!("{described} `{name}` depends on `{}`, which is not a component in this file", dependency.value),
                    Some(hint),
                );
            } else if kind == ComponentKind::Terraform
                && kinds.get(&dependency.value) != Some(&ComponentKind::Terraform)
            {
                // Terraform runs before anything starts (its outputs are what the others get),
                // so it cannot wait for a process.
                sink.error(
                    dependency.at,
                    format!(
                        "terraform component `{name}` depends on `{}`, a {}",
                        dependency.value,
                        kinds.get(&dependency.value).map_or("component", |k| k.as_str())
                    ),
                    Some("terraform is applied before services and jobs start; it may depend only on other terraform components (let the service depend on the terraform component instead)".to_owned()),
                );
            }
        }
    }
    report_dependency_cycles(sink, &components, &depends_on);
    components
}

/// What a component of `kind` is called in messages.
fn noun(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Terraform => "terraform component",
        other => other.as_str(),
    }
}

fn component(
    sink: &mut Sink<'_>,
    kind: ComponentKind,
    name: &Name,
    fields: &Fields,
) -> Option<Component> {
    let file = if kind == ComponentKind::Model {
        let file = fields.string("file")?;
        if !file.ends_with(".onnx") {
            sink.error(
                fields.value_at("file"),
                format!(
                    "model `{name}`: `file` must be an ONNX file ending in `.onnx`, found {}",
                    quoted(&file)
                ),
                Some(
                    "export the model to ONNX and name the file, e.g. file = \"model.onnx\""
                        .to_owned(),
                ),
            );
            return None;
        }
        Some(file)
    } else {
        None
    };
    let start_timeout = match kind {
        ComponentKind::Model => MODEL_LOAD_TIMEOUT,
        ComponentKind::Terraform => TERRAFORM_APPLY_TIMEOUT,
        _ => Duration::from_secs(u64::from(fields.integer("start_timeout")?)),
    };
    let run = match kind {
        ComponentKind::Model | ComponentKind::Terraform => None,
        _ => Some(fields.string("run")?),
    };
    let output = match kind {
        // A root module is packaged as written: no build, the subtree itself.
        ComponentKind::Terraform => ".".to_owned(),
        _ => fields.string("output")?,
    };
    Some(Component {
        name: name.clone(),
        kind,
        path: fields.string("path")?,
        inputs: fields.paths("inputs"),
        build: fields.string("build"),
        output,
        run,
        health: fields.string("health"),
        start_timeout,
        env: fields.env_vars("env"),
        depends_on: fields
            .names("depends_on")
            .iter()
            .map(|name| name.value.clone())
            .collect(),
        file,
        vars: fields.env_vars("vars"),
    })
}

/// Reports each dependency cycle once, as a path such as `a -> b -> a`, at the `depends_on` entry
/// of its alphabetically first member.
fn report_dependency_cycles(
    sink: &mut Sink<'_>,
    components: &BTreeMap<Name, Component>,
    depends_on: &BTreeMap<Name, &[Located<Name>]>,
) {
    let mut in_a_cycle: BTreeSet<Name> = BTreeSet::new();
    for start in components.keys() {
        if in_a_cycle.contains(start) {
            continue;
        }
        if let Some(path) = shortest_cycle(start, depends_on) {
            // Only report from the smallest member, so a cycle is named the same way every time.
            if path.iter().min() != Some(start) {
                continue;
            }
            in_a_cycle.extend(path.iter().cloned());
            let at = depends_on[start]
                .iter()
                .find(|dependency| dependency.value == path[1])
                .map_or(0, |dependency| dependency.at);
            let names: Vec<&str> = path.iter().map(Name::as_str).collect();
            sink.error(
                at,
                format!("dependency cycle: `{}`", names.join(" -> ")),
                Some("components cannot wait for each other; remove one of these `depends_on` entries".to_owned()),
            );
        }
    }
}

/// The shortest path `start -> … -> start` along `depends_on` (breadth-first), self-references
/// excluded (they are reported on their own).
fn shortest_cycle(
    start: &Name,
    depends_on: &BTreeMap<Name, &[Located<Name>]>,
) -> Option<Vec<Name>> {
    let mut came_from: BTreeMap<&Name, &Name> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(current) = queue.pop_front() {
        for next in depends_on
            .get(current)
            .into_iter()
            .flat_map(|deps| deps.iter())
        {
            let next = &next.value;
            if next == current || !depends_on.contains_key(next) {
                continue;
            }
            if next == start {
                let mut path = vec![current.clone()];
                let mut step = current;
                while step != start {
                    step = came_from[step];
                    path.push(step.clone());
                }
                path.reverse();
                path.push(start.clone());
                return Some(path);
            }
            if !came_from.contains_key(next) {
                came_from.insert(next, current);
                queue.push_back(next);
            }
        }
    }
    None
}

fn list<'n>(names: impl IntoIterator<Item = &'n str>) -> String {
    let names: Vec<String> = names.into_iter().map(|name| format!("`{name}`")).collect();
    names.join(", ")
}
