//! The build plan, pure: from each component's inputs and what the store already holds, decide
//! what is rebuilt and what is reused. No I/O here — the caller looks things up and passes them in.

use sandpit_artifact::StoredArtifact;
use sandpit_domain::Name;
use sandpit_spec::model::Component;
use sha2::{Digest as _, Sha256};

/// Version of the packaging format and of the input-key encoding. Bump it whenever packaging
/// changes the bytes it writes (compression level, entry metadata…) so that old artifacts stop
/// matching new input keys. 2: deflate by zlib-rs instead of miniz_oxide (same level, same
/// record layout), entries compressed in parallel and written by hand.
pub const PACKAGING_FORMAT: &str = "sandpit-zip-2";

/// One component and the git tree id of its source subtree at the version being built.
#[derive(Debug, Clone)]
pub struct ComponentInput<'a> {
    pub component: &'a Component,
    pub input_tree: String,
    /// The tree ids of the component's extra `inputs`, in declaration order: `(path, tree id)`.
    pub extra_trees: Vec<(String, String)>,
}

/// What happens to one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedStep {
    /// Nothing that decides the artifact's bytes changed: give `existing`'s bytes the new name.
    Reuse {
        component: Name,
        input_tree: String,
        input_key: String,
        existing: Box<StoredArtifact>,
    },
    /// Run the build (or package as is) and store the result.
    Build {
        component: Name,
        input_tree: String,
        input_key: String,
    },
}

impl PlannedStep {
    pub fn component(&self) -> &Name {
        match self {
            PlannedStep::Reuse { component, .. } | PlannedStep::Build { component, .. } => {
                component
            }
        }
    }

    pub fn input_key(&self) -> &str {
        match self {
            PlannedStep::Reuse { input_key, .. } | PlannedStep::Build { input_key, .. } => {
                input_key
            }
        }
    }

    pub fn input_tree(&self) -> &str {
        match self {
            PlannedStep::Reuse { input_tree, .. } | PlannedStep::Build { input_tree, .. } => {
                input_tree
            }
        }
    }

    pub fn is_build(&self) -> bool {
        matches!(self, PlannedStep::Build { .. })
    }
}

/// The hex sha256 of everything that decides a component's artifact bytes: the packaging format,
/// the kind, the source tree and any extra input trees, the build command, the output directory, the model file and the
/// build environment. Not the run command, health path or dependencies: changing those does not
/// change the bytes.
///
/// Every field is length-prefixed and labelled, so no two different inputs encode the same.
pub fn input_key(
    component: &Component,
    input_tree: &str,
    extra_trees: &[(String, String)],
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |label: &str, value: &str| {
        for part in [label, value] {
            hasher.update(part.len().to_string().as_bytes());
            hasher.update(b":");
            hasher.update(part.as_bytes());
            hasher.update(b",");
        }
    };
    field("format", PACKAGING_FORMAT);
    field("kind", component.kind.as_str());
    field("tree", input_tree);
    // Extra inputs (a shared library, say) decide the bytes as much as `path` does.
    for (path, tree) in extra_trees {
        field("input-path", path);
        field("input-tree", tree);
    }
    match &component.build {
        Some(build) => field("build", build),
        None => field("no-build", ""),
    }
    field("output", &component.output);
    match &component.file {
        Some(file) => field("file", file),
        None => field("no-file", ""),
    }
    // A BTreeMap iterates sorted by name, so file order does not matter.
    field("env-count", &component.env.len().to_string());
    for (name, value) in &component.env {
        field("env-name", name);
        field("env-value", value);
    }
    hex::encode(hasher.finalize())
}

/// Decides, for each component in order, whether it is built or reused. `existing` answers
/// "which artifact was stored for this component with this input key?".
pub fn plan(
    inputs: &[ComponentInput<'_>],
    existing: &dyn Fn(&Name, &str) -> Option<StoredArtifact>,
) -> Vec<PlannedStep> {
    inputs
        .iter()
        .map(|input| {
            let component = input.component.name.clone();
            let key = input_key(input.component, &input.input_tree, &input.extra_trees);
            match existing(&component, &key) {
                Some(found) => PlannedStep::Reuse {
                    component,
                    input_tree: input.input_tree.clone(),
                    input_key: key,
                    existing: Box::new(found),
                },
                None => PlannedStep::Build {
                    component,
                    input_tree: input.input_tree.clone(),
                    input_key: key,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use sandpit_artifact::Provenance;
    use sandpit_domain::{ArtifactName, CommitId, ComponentKind, Digest, Version};

    use super::*;

    const OLD: &str = "1111111111111111111111111111111111111111";

    fn component(name: &str) -> Component {
        Component {
            name: Name::parse(name).unwrap(),
            kind: ComponentKind::Service,
            path: name.to_owned(),
            inputs: Vec::new(),
            build: Some("make".to_owned()),
            output: "dist".to_owned(),
            run: Some("./serve".to_owned()),
            health: Some("/".to_owned()),
            start_timeout: Duration::from_secs(60),
            env: BTreeMap::new(),
            depends_on: Vec::new(),
            file: None,
            vars: BTreeMap::new(),
        }
    }

    fn stored(component: &Component, key: &str) -> StoredArtifact {
        let version = Version::clean(CommitId::parse(OLD).unwrap());
        let name = ArtifactName::new(component.name.clone(), version.clone());
        let digest = Digest::of(component.name.as_str().as_bytes());
        StoredArtifact {
            name: name.clone(),
            digest: digest.clone(),
            size: 1,
            blob_path: PathBuf::from("blob"),
            file_path: PathBuf::from(name.file_name()),
            provenance: Provenance {
                component: component.name.clone(),
                kind: component.kind,
                version: version.clone(),
                commit: version.commit().clone(),
                input_tree: "tree".to_owned(),
                input_key: key.to_owned(),
                build_command: component.build.clone(),
                builder: None,
                sandpit_version: "test".to_owned(),
                started_at: String::new(),
                finished_at: String::new(),
                digest,
                size: 1,
                reused_from: None,
            },
        }
    }

    /// Each case: a change applied to (api, web) after both were stored at the old commit, and
    /// which components must be rebuilt.
    #[test]
    fn only_changed_inputs_are_rebuilt() {
        type Change = fn(&mut Component, &mut String);
        let cases: &[(&str, Change, Change, &[&str])] = &[
            ("nothing changed", |_, _| {}, |_, _| {}, &[]),
            (
                "api's tree changed",
                |_, tree| tree.push('x'),
                |_, _| {},
                &["api"],
            ),
            (
                "web's tree changed",
                |_, _| {},
                |_, tree| tree.push('x'),
                &["web"],
            ),
            (
                "api's build command changed",
                |c, _| c.build = Some("make all".into()),
                |_, _| {},
                &["api"],
            ),
            (
                "api's build removed",
                |c, _| c.build = None,
                |_, _| {},
                &["api"],
            ),
            (
                "api's env changed",
                |c, _| {
                    c.env.insert("MODE".into(), "fast".into());
                },
                |_, _| {},
                &["api"],
            ),
            (
                "api's output changed",
                |c, _| c.output = "build".into(),
                |_, _| {},
                &["api"],
            ),
            (
                "api's model file changed",
                |c, _| c.file = Some("m.onnx".into()),
                |_, _| {},
                &["api"],
            ),
            (
                "api's kind changed",
                |c, _| c.kind = ComponentKind::Job,
                |_, _| {},
                &["api"],
            ),
            (
                "run command is not a build input",
                |c, _| c.run = Some("./other".into()),
                |_, _| {},
                &[],
            ),
            (
                "both changed",
                |_, tree| tree.push('x'),
                |c, _| c.output = ".".into(),
                &["api", "web"],
            ),
        ];
        for (what, change_api, change_web, rebuilt) in cases {
            let (api, web) = (component("api"), component("web"));
            let (api_tree, web_tree) = ("a".repeat(40), "b".repeat(40));
            let mut store: BTreeMap<(Name, String), StoredArtifact> = BTreeMap::new();
            for (c, tree) in [(&api, &api_tree), (&web, &web_tree)] {
                let key = input_key(c, tree, &[]);
                store.insert((c.name.clone(), key.clone()), stored(c, &key));
            }

            let (mut new_api, mut new_web) = (api.clone(), web.clone());
            let (mut new_api_tree, mut new_web_tree) = (api_tree.clone(), web_tree.clone());
            change_api(&mut new_api, &mut new_api_tree);
            change_web(&mut new_web, &mut new_web_tree);
            let inputs = [
                ComponentInput {
                    component: &new_api,
                    input_tree: new_api_tree,
                    extra_trees: Vec::new(),
                },
                ComponentInput {
                    component: &new_web,
                    input_tree: new_web_tree,
                    extra_trees: Vec::new(),
                },
            ];
            let lookup =
                |name: &Name, key: &str| store.get(&(name.clone(), key.to_owned())).cloned();
            let steps = plan(&inputs, &lookup);

            let built: Vec<&str> = steps
                .iter()
                .filter(|s| s.is_build())
                .map(|s| s.component().as_str())
                .collect();
            assert_eq!(built, *rebuilt, "{what}");
            for step in &steps {
                if let PlannedStep::Reuse {
                    component,
                    existing,
                    ..
                } = step
                {
                    assert_eq!(&existing.name.component, component, "{what}");
                }
            }
        }
    }

    #[test]
    fn input_keys_are_unambiguous() {
        // Moving text between adjacent fields must change the key.
        let mut first = component("api");
        first.build = Some("make d".into());
        first.output = "ist".into();
        let mut second = component("api");
        second.build = Some("make".into());
        second.output = "dist".into();
        assert_ne!(input_key(&first, "t", &[]), input_key(&second, "t", &[]));

        let mut with_env = component("api");
        with_env.env.insert("A".into(), "B=C".into());
        let mut other_env = component("api");
        other_env.env.insert("A=B".into(), "C".into());
        assert_ne!(
            input_key(&with_env, "t", &[]),
            input_key(&other_env, "t", &[])
        );

        let key = input_key(&component("api"), "t", &[]);
        assert_eq!(key.len(), 64);
        assert_eq!(key, input_key(&component("api"), "t", &[]), "stable");
        // A shared library among the inputs: its tree decides the key like the component's own.
        let lib = |tree: &str| vec![("lib/common".to_owned(), tree.to_owned())];
        assert_ne!(key, input_key(&component("api"), "t", &lib("l1")));
        assert_ne!(
            input_key(&component("api"), "t", &lib("l1")),
            input_key(&component("api"), "t", &lib("l2"))
        );
        assert_eq!(
            input_key(&component("api"), "t", &lib("l1")),
            input_key(&component("api"), "t", &lib("l1"))
        );
    }
}
