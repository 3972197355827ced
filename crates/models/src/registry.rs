//! Who serves what: each biome's model registrations (and the environment's base), and how a
//! requested name resolves. Pure: no I/O.
//!
//! At the root, `name` is the base's model and `<biome>.<name>` the biome's (names are DNS labels,
//! so the dot is unambiguous). Under `/biomes/<biome>`, plain names resolve to the biome's model.
//! A biome without its own version of a model falls back to the base's.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One registered model artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The artifact's name, e.g. `grade-1a2b3c4.zip`.
    pub artifact: String,
    /// The artifact file's sha256 digest (`sha256:<hex>`).
    pub digest: String,
    /// Where the artifact (the zip, or an already extracted ONNX file) is on disk.
    pub path: PathBuf,
    /// The ONNX file's name inside the zip.
    pub file: String,
}

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'r> {
    /// The model's own name (without a biome prefix).
    pub model: String,
    /// Whose registration answered: `None` for the base.
    pub owner: Option<String>,
    pub model_ref: &'r ModelRef,
}

/// Registrations per biome (`None` = the environment's base).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    biomes: BTreeMap<Option<String>, BTreeMap<String, ModelRef>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Replaces a biome's registrations; returns the ones it had.
    pub fn replace(
        &mut self,
        biome: Option<&str>,
        models: BTreeMap<String, ModelRef>,
    ) -> Vec<ModelRef> {
        let key = biome.map(str::to_string);
        let old = if models.is_empty() {
            self.biomes.remove(&key)
        } else {
            self.biomes.insert(key, models)
        };
        old.map(|m| m.into_values().collect()).unwrap_or_default()
    }

    /// Removes a biome's registrations; returns them.
    pub fn remove(&mut self, biome: Option<&str>) -> Vec<ModelRef> {
        self.replace(biome, BTreeMap::new())
    }

    /// Whether any registration still uses this digest.
    pub fn uses_digest(&self, digest: &str) -> bool {
        self.biomes
            .values()
            .flat_map(BTreeMap::values)
            .any(|m| m.digest == digest)
    }

    fn lookup(&self, biome: Option<&str>, model: &str) -> Option<Resolved<'_>> {
        let own = biome.and_then(|b| {
            self.biomes
                .get(&Some(b.to_string()))
                .and_then(|models| models.get(model))
                .map(|model_ref| Resolved {
                    model: model.to_string(),
                    owner: Some(b.to_string()),
                    model_ref,
                })
        });
        own.or_else(|| {
            self.biomes
                .get(&None)
                .and_then(|models| models.get(model))
                .map(|model_ref| Resolved {
                    model: model.to_string(),
                    owner: None,
                    model_ref,
                })
        })
    }

    /// Resolves `name` as requested under `scope` (`None` = the root, `Some(b)` = `/biomes/<b>`).
    pub fn resolve(&self, scope: Option<&str>, name: &str) -> Option<Resolved<'_>> {
        match (scope, name.split_once('.')) {
            (None, Some((biome, model))) => self.lookup(Some(biome), model),
            (None, None) => self.lookup(None, name),
            (Some(_), Some(_)) => None,
            (Some(biome), None) => self.lookup(Some(biome), name),
        }
    }

    /// Every name that resolves under `scope`, as it would be requested there, sorted.
    pub fn names(&self, scope: Option<&str>) -> Vec<String> {
        let models_of = |biome: Option<&str>| {
            self.biomes
                .get(&biome.map(str::to_string))
                .into_iter()
                .flat_map(|models| models.keys().cloned())
        };
        let mut names: Vec<String> = match scope {
            None => self
                .biomes
                .iter()
                .flat_map(|(biome, models)| {
                    models.keys().map(move |model| match biome {
                        Some(b) => format!("{b}.{model}"),
                        None => model.clone(),
                    })
                })
                .collect(),
            Some(biome) => models_of(None).chain(models_of(Some(biome))).collect(),
        };
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_ref(digest: &str) -> ModelRef {
        ModelRef {
            artifact: format!("m-{digest}.zip"),
            digest: digest.to_string(),
            path: PathBuf::from(format!("/store/{digest}.zip")),
            file: "model.onnx".to_string(),
        }
    }

    fn registry() -> Registry {
        let mut registry = Registry::new();
        registry.replace(
            None,
            BTreeMap::from([
                ("grade".to_string(), model_ref("base-grade")),
                ("tonnage".to_string(), model_ref("base-tonnage")),
            ]),
        );
        registry.replace(
            Some("alice"),
            BTreeMap::from([("grade".to_string(), model_ref("alice-grade"))]),
        );
        registry.replace(
            Some("bob"),
            BTreeMap::from([("extra".to_string(), model_ref("bob-extra"))]),
        );
        registry
    }

    #[test]
    fn resolution_table() {
        let registry = registry();
        // (scope, requested name, expected digest and owner, or None for not found)
        type Case<'a> = (Option<&'a str>, &'a str, Option<(&'a str, Option<&'a str>)>);
        let cases: [Case; 12] = [
            (None, "grade", Some(("base-grade", None))),
            (None, "alice.grade", Some(("alice-grade", Some("alice")))),
            (None, "alice.tonnage", Some(("base-tonnage", None))),
            (None, "bob.grade", Some(("base-grade", None))),
            (None, "bob.extra", Some(("bob-extra", Some("bob")))),
            (None, "extra", None),
            (None, "nobody.grade", Some(("base-grade", None))),
            (Some("alice"), "grade", Some(("alice-grade", Some("alice")))),
            (Some("alice"), "tonnage", Some(("base-tonnage", None))),
            (Some("alice"), "extra", None),
            (Some("alice"), "alice.grade", None),
            (Some("carol"), "grade", Some(("base-grade", None))),
        ];
        for (scope, name, expected) in cases {
            let got = registry
                .resolve(scope, name)
                .map(|r| (r.model_ref.digest.as_str(), r.owner.clone()));
            let expected = expected.map(|(d, o)| (d, o.map(str::to_string)));
            assert_eq!(got, expected, "scope {scope:?} name {name}");
        }
    }

    #[test]
    fn names_per_scope() {
        let registry = registry();
        assert_eq!(
            registry.names(None),
            ["alice.grade", "bob.extra", "grade", "tonnage"]
        );
        assert_eq!(registry.names(Some("alice")), ["grade", "tonnage"]);
        assert_eq!(registry.names(Some("bob")), ["extra", "grade", "tonnage"]);
    }

    #[test]
    fn replace_and_remove_report_old_registrations() {
        let mut registry = registry();
        assert!(registry.uses_digest("alice-grade"));
        let old = registry.replace(
            Some("alice"),
            BTreeMap::from([("grade".to_string(), model_ref("alice-v2"))]),
        );
        assert_eq!(old, vec![model_ref("alice-grade")]);
        assert!(!registry.uses_digest("alice-grade"));
        assert_eq!(registry.remove(Some("alice")), vec![model_ref("alice-v2")]);
        assert_eq!(
            registry
                .resolve(None, "alice.grade")
                .unwrap()
                .model_ref
                .digest,
            "base-grade"
        );
        assert!(registry.remove(Some("alice")).is_empty());
    }
}
