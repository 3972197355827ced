//! Whether a manifest whose signature verified is one this agent may apply: it is the manifest
//! its key names (not a copy under another sequence), of this agent's project and environment,
//! with a valid definition that declares the environment, and exactly one artifact for each of
//! the definition's components. Pure: the reasons are the `refused` report's message.

use sandpit_domain::{ArtifactName, Name};
use sandpit_manifest::Manifest;
use sandpit_spec::Spec;

/// The manifest's definition, parsed, when the agent may apply it; else why not.
pub fn admit(
    manifest: &Manifest,
    sequence: u64,
    id: &str,
    project: &Name,
    env: &Name,
) -> Result<Spec, String> {
    if manifest.sequence != sequence || manifest.id != id {
        return Err(format!(
            "its key names manifest {sequence} `{id}`, its content is manifest {} `{}` (a copy under another name is never applied)",
            manifest.sequence, manifest.id
        ));
    }
    if manifest.project != project.as_str() || manifest.env != env.as_str() {
        return Err(format!(
            "it is for `{}` in `{}`; this agent deploys `{project}` in `{env}`",
            manifest.project, manifest.env
        ));
    }
    let spec = crate::project::parse_spec(&manifest.definition.text)
        .map_err(|error| format!("its sandpit.toml is invalid: {error:#}"))?;
    if spec.project.name != *project {
        return Err(format!(
            "its sandpit.toml is of project `{}`, not `{project}`",
            spec.project.name
        ));
    }
    if !spec.environments.contains_key(env) {
        return Err(format!("its sandpit.toml declares no environment `{env}`"));
    }
    for artifact in &manifest.artifacts {
        let Some(name) = ArtifactName::parse(&artifact.file) else {
            return Err(format!("`{}` is not an artifact name", artifact.file));
        };
        if name.component.as_str() != artifact.component {
            return Err(format!(
                "artifact `{}` is listed for component `{}`",
                artifact.file, artifact.component
            ));
        }
        if !spec.components.contains_key(&name.component) {
            return Err(format!(
                "artifact `{}` is of no component of its sandpit.toml",
                artifact.file
            ));
        }
        if name.version.to_string() != manifest.version {
            return Err(format!(
                "artifact `{}` is not of version {}",
                artifact.file, manifest.version
            ));
        }
    }
    for component in spec.components.keys() {
        let count = manifest
            .artifacts
            .iter()
            .filter(|a| a.component == component.as_str())
            .count();
        if count != 1 {
            return Err(format!(
                "it lists {count} artifacts for component `{component}`; exactly one is needed"
            ));
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandpit_manifest::{Artifact, Definition, SCHEMA_VERSION};

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn manifest() -> Manifest {
        Manifest {
            schema: SCHEMA_VERSION,
            sequence: 4,
            id: "m-1".to_owned(),
            project: "shop".to_owned(),
            env: "prod".to_owned(),
            version: SHA.to_owned(),
            created_at: "2026-12-05T06:00:00Z".to_owned(),
            requester: "ci".to_owned(),
            definition: Definition::new(
                "[project]\nname = \"shop\"\n\n[environments.prod]\n\n[services.api]\npath = \"api\"\nrun = \"./api\"\n"
                    .to_owned(),
            ),
            artifacts: vec![Artifact {
                component: "api".to_owned(),
                file: format!("api-{SHA}.zip"),
                sha256: "00".repeat(32),
                size: 1,
            }],
        }
    }

    fn admitted(manifest: &Manifest) -> Result<Spec, String> {
        admit(
            manifest,
            4,
            "m-1",
            &Name::parse("shop").unwrap(),
            &Name::parse("prod").unwrap(),
        )
    }

    #[test]
    fn a_manifest_of_this_agent_with_every_artifact_is_admitted() {
        let spec = admitted(&manifest()).unwrap();
        assert_eq!(spec.project.name.as_str(), "shop");
    }

    #[test]
    fn each_refusal_says_why() {
        type Change = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|m| m.sequence = 9), "a copy under another name"),
            (
                Box::new(|m| m.env = "dev".to_owned()),
                "is for `shop` in `dev`",
            ),
            (
                Box::new(|m| m.definition = Definition::new("[project]\n".to_owned())),
                "sandpit.toml is invalid",
            ),
            (
                Box::new(|m| {
                    m.definition = Definition::new(
                        m.definition
                            .text
                            .replace("[environments.prod]", "[environments.dev]"),
                    )
                }),
                "declares no environment `prod`",
            ),
            (
                Box::new(|m| m.artifacts.clear()),
                "0 artifacts for component `api`",
            ),
            (
                Box::new(|m| m.artifacts[0].component = "web".to_owned()),
                "listed for component `web`",
            ),
            (
                Box::new(|m| m.artifacts[0].file = format!("web-{SHA}.zip")),
                "listed for component `api`",
            ),
            (
                Box::new(|m| m.version = "fedcba9876543210fedcba9876543210fedcba98".to_owned()),
                "is not of version",
            ),
        ];
        for (change, expected) in cases {
            let mut m = manifest();
            change(&mut m);
            let error = admitted(&m).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }
}
