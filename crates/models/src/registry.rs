//! Who serves what: each biome's model registrations (and the environment's base), and how a
//! requested name resolves. Pure: no I/O.
//!
//! At the root, `name` is the base's model and `<biome>.<name>` the biome's (names are DNS labels,
//! so the dot is unambiguous). Under `/biomes/<biome>`, plain names resolve to the biome's model.
//! A biome without its own version of a model falls back to the base's, but only a biome that is
//! registered (possibly with zero models): a name the endpoint never heard of, or one that was
//! unregistered by `sandpit down`, is an unknown biome, never the base in disguise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sandpit_domain::ArtifactName;

/// One registered model artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The artifact's name, e.g. `grade-<40 hex>.zip`.
    pub artifact: String,
    /// The artifact file's sha256 digest (`sha256:<hex>`).
    pub digest: String,
    /// Where the artifact (the zip, or an already extracted ONNX file) is on disk.
    pub path: PathBuf,
    /// The ONNX file's name inside the zip.
    pub file: String,
}

impl ModelRef {
    /// The version this artifact answers as (metadata's `versions`, responses' `model_version`,
    /// the `/versions/{version}` routes): the first 12 hex of the artifact's commit, keeping a
    /// `-dirty-<hex>` suffix, so it can be matched against `sandpit trace` and the artifact file.
    /// An artifact whose name carries no version (registered by hand) answers as the first 12
    /// hex of its digest, which still tells two artifacts apart.
    pub fn version(&self) -> String {
        match ArtifactName::parse(&self.artifact) {
            Some(name) => {
                let full = name.version.to_string();
                let dirty = full.find("-dirty-").map_or("", |at| &full[at..]);
                format!("{}{dirty}", name.version.commit().short())
            }
            None => {
                let hex = self.digest.strip_prefix("sha256:").unwrap_or(&self.digest);
                hex.chars().take(12).collect()
            }
        }
    }
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

/// Why a lookup found nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// The biome is not registered: never brought up here, or taken down.
    UnknownBiome(String),
    /// The biome is known (or the request is at the root) but neither it nor the base has
    /// the model.
    UnknownModel,
}

/// One registration's share of the loaded models ([`Registry::usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationUsage {
    /// `None` for the environment's base.
    pub biome: Option<String>,
    /// The memory of the loaded models charged to it.
    pub bytes: u64,
    /// Its own models, by name.
    pub models: Vec<ModelUsage>,
}

/// One registered model and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUsage {
    pub name: String,
    /// The version it answers as ([`ModelRef::version`]).
    pub version: String,
    /// The memory charged for its digest while loaded; `None` when it is not loaded.
    pub loaded_bytes: Option<u64>,
    /// Whether this registration pays for it (see [`Registry::usage`]).
    pub charged: bool,
}

/// Registrations per biome (`None` = the environment's base). A biome is known while it has an
/// entry, even an empty one.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    biomes: BTreeMap<Option<String>, BTreeMap<String, ModelRef>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Replaces a biome's registrations (zero models still make the biome known); returns the
    /// ones it had.
    pub fn replace(
        &mut self,
        biome: Option<&str>,
        models: BTreeMap<String, ModelRef>,
    ) -> Vec<ModelRef> {
        self.biomes
            .insert(biome.map(str::to_string), models)
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }

    /// Removes a biome's registrations, making it unknown; returns them.
    pub fn remove(&mut self, biome: Option<&str>) -> Vec<ModelRef> {
        self.biomes
            .remove(&biome.map(str::to_string))
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }

    /// Whether `biome` is registered (with any number of models).
    pub fn knows(&self, biome: &str) -> bool {
        self.biomes.contains_key(&Some(biome.to_string()))
    }

    /// `Ok` at the root and for a known biome; the biome as [`Unresolved::UnknownBiome`] otherwise.
    pub fn check_scope(&self, scope: Option<&str>) -> Result<(), Unresolved> {
        match scope {
            Some(biome) if !self.knows(biome) => Err(Unresolved::UnknownBiome(biome.to_string())),
            _ => Ok(()),
        }
    }

    /// Whether any registration still uses this digest.
    pub fn uses_digest(&self, digest: &str) -> bool {
        self.biomes
            .values()
            .flat_map(BTreeMap::values)
            .any(|m| m.digest == digest)
    }

    /// The digests `biome` registered that no other registration uses: what it alone has
    /// loaded, and what a sleeping biome gives back.
    pub fn digests_only_of(&self, biome: Option<&str>) -> Vec<String> {
        let key = biome.map(str::to_string);
        let Some(own) = self.biomes.get(&key) else {
            return Vec::new();
        };
        let mut digests: Vec<String> = own
            .values()
            .map(|m| m.digest.clone())
            .filter(|digest| {
                !self
                    .biomes
                    .iter()
                    .filter(|(other, _)| **other != key)
                    .flat_map(|(_, models)| models.values())
                    .any(|m| m.digest == *digest)
            })
            .collect();
        digests.sort();
        digests.dedup();
        digests
    }

    fn lookup(&self, biome: Option<&str>, model: &str) -> Result<Resolved<'_>, Unresolved> {
        if let Some(biome) = biome {
            let models = self
                .biomes
                .get(&Some(biome.to_string()))
                .ok_or_else(|| Unresolved::UnknownBiome(biome.to_string()))?;
            if let Some(model_ref) = models.get(model) {
                return Ok(Resolved {
                    model: model.to_string(),
                    owner: Some(biome.to_string()),
                    model_ref,
                });
            }
        }
        self.biomes
            .get(&None)
            .and_then(|models| models.get(model))
            .map(|model_ref| Resolved {
                model: model.to_string(),
                owner: None,
                model_ref,
            })
            .ok_or(Unresolved::UnknownModel)
    }

    /// Resolves `name` as requested under `scope` (`None` = the root, `Some(b)` = `/biomes/<b>`).
    pub fn resolve(&self, scope: Option<&str>, name: &str) -> Result<Resolved<'_>, Unresolved> {
        match (scope, name.split_once('.')) {
            (None, Some((biome, model))) => self.lookup(Some(biome), model),
            (None, None) => self.lookup(None, name),
            (Some(biome), Some(_)) => {
                self.check_scope(Some(biome))?;
                Err(Unresolved::UnknownModel)
            }
            (Some(biome), None) => self.lookup(Some(biome), name),
        }
    }

    /// What each registration (the base first, then the biomes by name) costs in loaded models,
    /// given the memory charged for each loaded digest (`loaded`). A digest is loaded once
    /// however many registrations use it, so it is charged once: to the first registration, in
    /// that order, that registers it as its own — the base when the base has it (a biome that
    /// registers the base's bytes again costs nothing more), else the first biome by name; and
    /// within a registration, to its first model (by name) with those bytes. Models that
    /// answer a biome by falling back to the base are the base's. So the registrations' bytes
    /// add up to what the registered models hold, nothing counted twice.
    pub fn usage(&self, loaded: &BTreeMap<String, u64>) -> Vec<RegistrationUsage> {
        let mut charged: BTreeSet<&str> = BTreeSet::new();
        self.biomes
            .iter()
            .map(|(biome, models)| {
                let models: Vec<ModelUsage> = models
                    .iter()
                    .map(|(name, model_ref)| {
                        let bytes = loaded.get(&model_ref.digest).copied();
                        let charged_here =
                            bytes.is_some() && charged.insert(model_ref.digest.as_str());
                        ModelUsage {
                            name: name.clone(),
                            version: model_ref.version(),
                            loaded_bytes: bytes,
                            charged: charged_here,
                        }
                    })
                    .collect();
                RegistrationUsage {
                    biome: biome.clone(),
                    bytes: models
                        .iter()
                        .filter(|m| m.charged)
                        .filter_map(|m| m.loaded_bytes)
                        .sum(),
                    models,
                }
            })
            .collect()
    }

    /// Every name that resolves under `scope`, as it would be requested there, sorted.
    pub fn names(&self, scope: Option<&str>) -> Result<Vec<String>, Unresolved> {
        self.check_scope(scope)?;
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
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

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
        // carol's branch declares no models: she is known and gets the base's.
        registry.replace(Some("carol"), BTreeMap::new());
        registry
    }

    #[test]
    fn a_registration_gives_back_only_the_digests_nobody_else_registered() {
        let mut registry = registry();
        // dave registered the same bytes as the base's tonnage: unloading them would unload
        // the base's model too.
        registry.replace(
            Some("dave"),
            BTreeMap::from([
                ("tonnage".to_string(), model_ref("base-tonnage")),
                ("grade".to_string(), model_ref("dave-grade")),
            ]),
        );
        assert_eq!(registry.digests_only_of(Some("alice")), ["alice-grade"]);
        assert_eq!(registry.digests_only_of(Some("dave")), ["dave-grade"]);
        assert_eq!(registry.digests_only_of(None), ["base-grade"]);
        assert!(registry.digests_only_of(Some("carol")).is_empty());
        assert!(registry.digests_only_of(Some("nobody")).is_empty());
    }

    #[test]
    fn resolution_table() {
        use Unresolved::{UnknownBiome, UnknownModel};
        let registry = registry();
        let nobody = || UnknownBiome("nobody".to_string());
        // (scope, requested name, expected digest and owner, or why nothing answers)
        type Case<'a> = (
            Option<&'a str>,
            &'a str,
            Result<(&'a str, Option<&'a str>), Unresolved>,
        );
        let cases: [Case; 19] = [
            (None, "grade", Ok(("base-grade", None))),
            (None, "alice.grade", Ok(("alice-grade", Some("alice")))),
            (None, "alice.tonnage", Ok(("base-tonnage", None))),
            (None, "alice.nothing", Err(UnknownModel)),
            (None, "bob.grade", Ok(("base-grade", None))),
            (None, "bob.extra", Ok(("bob-extra", Some("bob")))),
            (None, "extra", Err(UnknownModel)),
            (None, "carol.grade", Ok(("base-grade", None))),
            (None, "carol.extra", Err(UnknownModel)),
            (None, "nobody.grade", Err(nobody())),
            (None, "nobody.nothing", Err(nobody())),
            (Some("alice"), "grade", Ok(("alice-grade", Some("alice")))),
            (Some("alice"), "tonnage", Ok(("base-tonnage", None))),
            (Some("alice"), "extra", Err(UnknownModel)),
            (Some("alice"), "alice.grade", Err(UnknownModel)),
            (Some("carol"), "grade", Ok(("base-grade", None))),
            (Some("nobody"), "grade", Err(nobody())),
            (Some("nobody"), "alice.grade", Err(nobody())),
            (Some("nobody"), "nothing", Err(nobody())),
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
    fn each_loaded_digest_is_charged_once_to_the_registration_that_has_it_as_its_own() {
        let mut registry = registry();
        // dave registers the base's grade again (his branch did not change it) and one of his own
        // twice under two names; erin has bob's extra too.
        registry.replace(
            Some("dave"),
            BTreeMap::from([
                ("grade".to_string(), model_ref("base-grade")),
                ("one".to_string(), model_ref("dave-twice")),
                ("two".to_string(), model_ref("dave-twice")),
            ]),
        );
        registry.replace(
            Some("erin"),
            BTreeMap::from([("extra".to_string(), model_ref("bob-extra"))]),
        );
        let loaded = BTreeMap::from([
            ("base-grade".to_string(), 100),
            ("alice-grade".to_string(), 20),
            ("bob-extra".to_string(), 3),
            ("dave-twice".to_string(), 4000),
            ("nobodys".to_string(), 50_000),
        ]);
        let usage = registry.usage(&loaded);
        // (registration, bytes, [(model, loaded bytes, charged)])
        type Row<'a> = (Option<&'a str>, u64, Vec<(&'a str, Option<u64>, bool)>);
        let got: Vec<Row> = usage
            .iter()
            .map(|r| {
                let models = r
                    .models
                    .iter()
                    .map(|m| (m.name.as_str(), m.loaded_bytes, m.charged))
                    .collect();
                (r.biome.as_deref(), r.bytes, models)
            })
            .collect();
        let expected: Vec<Row> = vec![
            (
                None,
                100,
                vec![("grade", Some(100), true), ("tonnage", None, false)],
            ),
            (Some("alice"), 20, vec![("grade", Some(20), true)]),
            (Some("bob"), 3, vec![("extra", Some(3), true)]),
            // Registered with no models: known, costing nothing.
            (Some("carol"), 0, vec![]),
            (
                Some("dave"),
                4000,
                vec![
                    ("grade", Some(100), false),
                    ("one", Some(4000), true),
                    ("two", Some(4000), false),
                ],
            ),
            (Some("erin"), 0, vec![("extra", Some(3), false)]),
        ];
        assert_eq!(got, expected);
        // Nothing is counted twice: the charges add up to the registered digests' memory.
        let charged: u64 = usage.iter().map(|r| r.bytes).sum();
        assert_eq!(charged, 100 + 20 + 3 + 4000);
        assert!(registry
            .usage(&BTreeMap::new())
            .iter()
            .all(|r| r.bytes == 0));
    }

    #[test]
    fn names_per_scope() {
        let registry = registry();
        assert_eq!(
            registry.names(None).unwrap(),
            ["alice.grade", "bob.extra", "grade", "tonnage"]
        );
        assert_eq!(registry.names(Some("alice")).unwrap(), ["grade", "tonnage"]);
        assert_eq!(
            registry.names(Some("bob")).unwrap(),
            ["extra", "grade", "tonnage"]
        );
        assert_eq!(registry.names(Some("carol")).unwrap(), ["grade", "tonnage"]);
        assert_eq!(
            registry.names(Some("nobody")),
            Err(Unresolved::UnknownBiome("nobody".to_string()))
        );
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
        // Zero models: alice's go, alice stays known and falls back to the base.
        assert_eq!(
            registry.replace(Some("alice"), BTreeMap::new()),
            vec![model_ref("alice-v2")]
        );
        assert!(registry.knows("alice"));
        assert_eq!(
            registry
                .resolve(None, "alice.grade")
                .unwrap()
                .model_ref
                .digest,
            "base-grade"
        );
        // Removed: alice is unknown, not the base in disguise.
        assert!(registry.remove(Some("alice")).is_empty());
        assert!(!registry.knows("alice"));
        assert_eq!(
            registry.resolve(None, "alice.grade"),
            Err(Unresolved::UnknownBiome("alice".to_string()))
        );
        assert_eq!(registry.remove(Some("bob")), vec![model_ref("bob-extra")]);
        assert!(registry.remove(Some("bob")).is_empty());
    }

    #[test]
    fn versions_are_the_short_commit_of_the_artifact() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        // (artifact name, version it answers as)
        let cases = [
            (format!("grade-{SHA}.zip"), "0123456789ab".to_string()),
            (
                format!("grade-api-{SHA}-dirty-fedcba987654.zip"),
                "0123456789ab-dirty-fedcba987654".to_string(),
            ),
            (format!("grade-{SHA}"), "0123456789ab".to_string()),
            // Not `<component>-<version>.zip`: the digest tells the bytes apart instead.
            ("odd.onnx".to_string(), "abababababab".to_string()),
            ("grade-1a2b3c4.zip".to_string(), "abababababab".to_string()),
        ];
        for (artifact, expected) in cases {
            let model_ref = ModelRef {
                artifact: artifact.clone(),
                digest: digest.clone(),
                path: PathBuf::from("/store/x.zip"),
                file: "model.onnx".to_string(),
            };
            assert_eq!(model_ref.version(), expected, "{artifact}");
        }
    }
}
