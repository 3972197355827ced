//! The inference engine behind a small interface, and its ONNX Runtime implementation.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`) from the shared library that PyPI's
//! `onnxruntime` wheel ships; [`find_onnxruntime`] finds it. The library is initialised once per
//! process: the first successful [`OrtEngine::new`] wins, later calls reuse that environment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};

use crate::error::ModelError;
use crate::metadata::{ModelMetadata, SkippedOutput, TensorSpec};
use crate::tensor::{Datatype, Tensor, TensorData};

/// Something that turns ONNX bytes into a runnable model.
pub trait Engine: Send + Sync {
    /// Loads a model; a model the engine cannot run is [`ModelError::Unsupported`].
    fn load(&self, onnx: &[u8]) -> Result<Box<dyn LoadedModel>, ModelError>;
}

/// A model ready to run.
pub trait LoadedModel: Send + Sync {
    fn metadata(&self) -> &ModelMetadata;
    /// Runs the model on validated inputs; returns the outputs listed in the metadata, in order.
    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError>;
    /// The memory this model is charged against the cache's budget.
    fn memory_bytes(&self) -> u64;
}

/// Loads a model to validate it and returns its metadata (what `sandpit build` writes as
/// `model.json`); fails with the engine's message when the model cannot be loaded.
pub fn inspect(engine: &dyn Engine, onnx: &[u8]) -> Result<ModelMetadata, ModelError> {
    Ok(engine.load(onnx)?.metadata().clone())
}

/// Python code that prints the path of the shared library inside the `onnxruntime` package.
const FIND_LIBRARY: &str = "import glob, os, onnxruntime\n\
capi = os.path.join(os.path.dirname(onnxruntime.__file__), 'capi')\n\
found = sorted(glob.glob(os.path.join(capi, 'libonnxruntime.so*')) + glob.glob(os.path.join(capi, 'libonnxruntime*.dylib')) + glob.glob(os.path.join(capi, 'onnxruntime.dll')))\n\
print(found[0] if found else '')\n";

/// Where [`find_onnxruntime`] looks for ONNX Runtime's shared library, in this order.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeSearch<'a> {
    /// The caller's `ORT_DYLIB_PATH`: when given, the only place looked at.
    pub explicit: Option<&'a Path>,
    /// sandpit's own executable: the virtual environment `<its dir>/../python` is where the
    /// setup installs the wheel (`target/python` for `target/debug/sandpit`), found without any
    /// variable (see [`venv_beside`]).
    pub executable: Option<&'a Path>,
    /// The interpreter asked last (the caller's `SANDPIT_PYTHON`, else `python3`).
    pub python: &'a str,
}

/// Which rule of [`RuntimeSearch`] found the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSource {
    /// `ORT_DYLIB_PATH`.
    Explicit,
    /// The `onnxruntime` package of the virtual environment `venv` beside the executable.
    BesideExecutable { venv: PathBuf },
    /// The `onnxruntime` package of this interpreter.
    Python { interpreter: String },
}

/// ONNX Runtime's shared library, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRuntime {
    pub library: PathBuf,
    pub source: RuntimeSource,
}

/// Finds ONNX Runtime's shared library: `explicit` (the caller's `ORT_DYLIB_PATH`) when given,
/// else the one in the `onnxruntime` package of the `python` interpreter.
pub fn locate_onnxruntime(explicit: Option<&Path>, python: &str) -> Result<PathBuf, ModelError> {
    find_onnxruntime(&RuntimeSearch {
        explicit,
        executable: None,
        python,
    })
    .map(|found| found.library)
}

/// Finds ONNX Runtime's shared library as [`RuntimeSearch`] says: `explicit` alone when given
/// (a wrong one is an error, never passed over), else the virtual environment beside the
/// executable, else the `onnxruntime` package of the interpreter. The error says every place
/// that was looked at.
pub fn find_onnxruntime(search: &RuntimeSearch<'_>) -> Result<FoundRuntime, ModelError> {
    if let Some(path) = search.explicit {
        return if path.is_file() {
            Ok(FoundRuntime {
                library: path.to_path_buf(),
                source: RuntimeSource::Explicit,
            })
        } else {
            Err(ModelError::RuntimeNotFound {
                detail: format!(
                    "; ORT_DYLIB_PATH is {}, which is not a file",
                    path.display()
                ),
            })
        };
    }
    let mut looked = String::new();
    if let Some(venv) = search.executable.and_then(venv_beside) {
        if let Some(library) = library_in_venv(&venv) {
            return Ok(FoundRuntime {
                library,
                source: RuntimeSource::BesideExecutable { venv },
            });
        }
        looked = format!("; not in {} (beside sandpit's executable)", venv.display());
    }
    let python = search.python;
    let asked = if looked.is_empty() { "; " } else { ", and " };
    let output = Command::new(python)
        .arg("-c")
        .arg(FIND_LIBRARY)
        .output()
        .map_err(|e| ModelError::RuntimeNotFound {
            detail: format!("{looked}{asked}could not run `{python}`: {e}"),
        })?;
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || printed.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .last()
            .unwrap_or("no library in the package")
            .trim()
            .to_string();
        return Err(ModelError::RuntimeNotFound {
            detail: format!("{looked}{asked}`{python}` says: {last}"),
        });
    }
    Ok(FoundRuntime {
        library: PathBuf::from(printed),
        source: RuntimeSource::Python {
            interpreter: python.to_owned(),
        },
    })
}

/// The virtual environment the setup makes beside an executable: `<exe dir>/../python`, which
/// for `target/debug/sandpit` and `target/release/sandpit` is the checkout's `target/python`.
/// Computed from the path (not `..`), so it is the same directory however the executable was
/// reached; `None` for an executable at the root.
pub fn venv_beside(executable: &Path) -> Option<PathBuf> {
    Some(executable.parent()?.parent()?.join("python"))
}

/// The library of the `onnxruntime` package in a virtual environment:
/// `<venv>/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` (or `.dylib`), the
/// newest Python's first, and of several files the first by name, as [`FIND_LIBRARY`] picks.
pub fn library_in_venv(venv: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .strip_prefix("python3")?
                .split('.')
                .filter(|part| !part.is_empty())
                .map(|part| part.parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()?;
            Some((version, entry.path()))
        })
        .collect();
    pythons.sort_by(|left, right| right.0.cmp(&left.0));
    pythons.into_iter().find_map(|(_, dir)| {
        let capi = dir.join("site-packages/onnxruntime/capi");
        let mut libraries: Vec<PathBuf> = std::fs::read_dir(&capi)
            .ok()?
            .filter_map(Result::ok)
            .filter(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libonnxruntime.so")
                    || (name.starts_with("libonnxruntime") && name.ends_with(".dylib"))
            })
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        libraries.sort();
        libraries.into_iter().next()
    })
}

/// The version in the library's file name, as the wheel names it: `libonnxruntime.so.1.32.0`
/// (and `libonnxruntime.1.32.0.dylib`) → `1.32.0`; `None` for an unversioned name.
///
/// The name rather than `OrtGetApiBase()->GetVersionString`: `ort` keeps that call to itself
/// (it checks the version when the library is loaded, and refuses one that is too old), while
/// the name is known before anything is loaded.
pub fn version_from_file_name(library: &Path) -> Option<String> {
    let name = library.file_name()?.to_str()?;
    let version = name.strip_prefix("libonnxruntime.so.").or_else(|| {
        name.strip_prefix("libonnxruntime.")
            .and_then(|rest| rest.strip_suffix(".dylib"))
    })?;
    let numeric = !version.is_empty()
        && version
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    numeric.then(|| version.to_owned())
}

static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

/// Session overhead charged on top of the model's weights: ONNX Runtime's session state, kernel
/// registry and the (single-threaded) arena of a small model come to a few MiB.
pub const SESSION_OVERHEAD_BYTES: u64 = 2 * 1024 * 1024;

/// [`Engine`] on ONNX Runtime: one session per loaded model, one intra-op thread each.
pub struct OrtEngine {
    environment: ort::environment::Environment,
}

impl std::fmt::Debug for OrtEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrtEngine")
    }
}

impl OrtEngine {
    /// Initialises ONNX Runtime from the shared library at `dylib` (once per process).
    pub fn new(dylib: &Path) -> Result<OrtEngine, ModelError> {
        let mut slot = ENVIRONMENT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(environment) = slot.as_ref() {
            return Ok(OrtEngine {
                environment: environment.clone(),
            });
        }
        if !dylib.is_file() {
            return Err(ModelError::RuntimeNotFound {
                detail: format!("; {} is not a file", dylib.display()),
            });
        }
        let environment = ort::init_from(dylib)
            .map_err(|e| ModelError::Engine {
                detail: format!("{}: {e}", dylib.display()),
            })?
            .with_name("sandpit-models")
            .build()
            .map_err(|e| ModelError::Engine {
                detail: e.to_string(),
            })?;
        *slot = Some(environment.clone());
        Ok(OrtEngine { environment })
    }

    /// The memory a model of `onnx_len` bytes is charged: its weights twice (the parsed graph and
    /// the initialisers ONNX Runtime copies into its own buffers) plus [`SESSION_OVERHEAD_BYTES`].
    pub fn estimate_memory(onnx_len: usize) -> u64 {
        2 * onnx_len as u64 + SESSION_OVERHEAD_BYTES
    }
}

fn datatype_name(ty: TensorElementType) -> &'static str {
    match ty {
        TensorElementType::Float32 => "FP32",
        TensorElementType::Float64 => "FP64",
        TensorElementType::Int32 => "INT32",
        TensorElementType::Int64 => "INT64",
        TensorElementType::Bool => "BOOL",
        TensorElementType::Float16 => "FP16",
        TensorElementType::Bfloat16 => "BF16",
        TensorElementType::Uint8 => "UINT8",
        TensorElementType::Int8 => "INT8",
        TensorElementType::Uint16 => "UINT16",
        TensorElementType::Int16 => "INT16",
        TensorElementType::Uint32 => "UINT32",
        TensorElementType::Uint64 => "UINT64",
        TensorElementType::String => "BYTES",
        _ => "UNKNOWN",
    }
}

fn kind(value_type: &ValueType) -> &'static str {
    match value_type {
        ValueType::Tensor { .. } => "a tensor",
        ValueType::Sequence(_) => "a sequence",
        ValueType::Map { .. } => "a map",
        ValueType::Optional(_) => "an optional value",
    }
}

fn read_metadata(session: &Session) -> Result<ModelMetadata, ModelError> {
    let mut metadata = ModelMetadata::default();
    for input in session.inputs() {
        match input.dtype() {
            ValueType::Tensor { ty, shape, .. } => metadata.inputs.push(TensorSpec {
                name: input.name().to_string(),
                datatype: datatype_name(*ty).to_string(),
                shape: shape.to_vec(),
            }),
            other => {
                return Err(ModelError::Unsupported {
                    detail: format!(
                        "input `{}` is {}; only tensor inputs can be served",
                        input.name(),
                        kind(other)
                    ),
                })
            }
        }
    }
    for output in session.outputs() {
        match output.dtype() {
            ValueType::Tensor { ty, shape, .. }
                if Datatype::parse(datatype_name(*ty)).is_some() =>
            {
                metadata.outputs.push(TensorSpec {
                    name: output.name().to_string(),
                    datatype: datatype_name(*ty).to_string(),
                    shape: shape.to_vec(),
                })
            }
            ValueType::Tensor { ty, .. } => metadata.skipped_outputs.push(SkippedOutput {
                name: output.name().to_string(),
                reason: format!(
                    "{} tensors are not returned by this endpoint",
                    datatype_name(*ty)
                ),
            }),
            other => metadata.skipped_outputs.push(SkippedOutput {
                name: output.name().to_string(),
                reason: format!(
                    "{} is not a tensor; only tensor outputs are returned",
                    kind(other)
                ),
            }),
        }
    }
    Ok(metadata)
}

impl Engine for OrtEngine {
    fn load(&self, onnx: &[u8]) -> Result<Box<dyn LoadedModel>, ModelError> {
        let unsupported = |e: ort::Error| ModelError::Unsupported {
            detail: e.to_string(),
        };
        let builder_error =
            |e: ort::Error<ort::session::builder::SessionBuilder>| ModelError::Engine {
                detail: e.to_string(),
            };
        let session = Session::builder(&self.environment)
            .map_err(|e| ModelError::Engine {
                detail: e.to_string(),
            })?
            .with_intra_threads(1)
            .map_err(builder_error)?
            .with_inter_threads(1)
            .map_err(builder_error)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(builder_error)?
            .commit_from_memory(onnx)
            .map_err(unsupported)?;
        let metadata = read_metadata(&session)?;
        Ok(Box::new(OrtModel {
            session: Mutex::new(session),
            metadata,
            memory_bytes: OrtEngine::estimate_memory(onnx.len()),
        }))
    }
}

/// A model loaded in ONNX Runtime. `Session::run` needs `&mut`, so runs of one model take turns;
/// runs of different models are independent.
struct OrtModel {
    session: Mutex<Session>,
    metadata: ModelMetadata,
    memory_bytes: u64,
}

fn to_value(tensor: Tensor) -> Result<DynValue, ort::Error> {
    let shape = tensor.shape;
    Ok(match tensor.data {
        TensorData::Fp32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Fp64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Int32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Int64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Int8(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Int16(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Uint8(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Uint16(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Uint32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Uint64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Bool(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
    })
}

fn extract(spec: &TensorSpec, value: &DynValue) -> Result<Tensor, ort::Error> {
    fn get<T: ort::value::PrimitiveTensorElementType + Clone>(
        value: &DynValue,
    ) -> Result<(Vec<i64>, Vec<T>), ort::Error> {
        let (shape, data) = value.try_extract_tensor::<T>()?;
        Ok((shape.to_vec(), data.to_vec()))
    }
    let (shape, data) = match Datatype::parse(&spec.datatype) {
        Some(Datatype::Fp32) => get::<f32>(value).map(|(s, d)| (s, TensorData::Fp32(d)))?,
        Some(Datatype::Fp64) => get::<f64>(value).map(|(s, d)| (s, TensorData::Fp64(d)))?,
        Some(Datatype::Int32) => get::<i32>(value).map(|(s, d)| (s, TensorData::Int32(d)))?,
        Some(Datatype::Int64) => get::<i64>(value).map(|(s, d)| (s, TensorData::Int64(d)))?,
        Some(Datatype::Int8) => get::<i8>(value).map(|(s, d)| (s, TensorData::Int8(d)))?,
        Some(Datatype::Int16) => get::<i16>(value).map(|(s, d)| (s, TensorData::Int16(d)))?,
        Some(Datatype::Uint8) => get::<u8>(value).map(|(s, d)| (s, TensorData::Uint8(d)))?,
        Some(Datatype::Uint16) => get::<u16>(value).map(|(s, d)| (s, TensorData::Uint16(d)))?,
        Some(Datatype::Uint32) => get::<u32>(value).map(|(s, d)| (s, TensorData::Uint32(d)))?,
        Some(Datatype::Uint64) => get::<u64>(value).map(|(s, d)| (s, TensorData::Uint64(d)))?,
        Some(Datatype::Bool) | None => get::<bool>(value).map(|(s, d)| (s, TensorData::Bool(d)))?,
    };
    Ok(Tensor {
        name: spec.name.clone(),
        shape,
        data,
    })
}

impl LoadedModel for OrtModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
        let failed = |e: ort::Error| ModelError::Inference(e.to_string());
        let values = inputs
            .into_iter()
            .map(|tensor| Ok((tensor.name.clone(), to_value(tensor)?)))
            .collect::<Result<Vec<(String, DynValue)>, ort::Error>>()
            .map_err(failed)?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session.run(values).map_err(failed)?;
        self.metadata
            .outputs
            .iter()
            .map(|spec| {
                let value = outputs.get(&spec.name).ok_or_else(|| {
                    ModelError::Inference(format!("output `{}` was not produced", spec.name))
                })?;
                extract(spec, value).map_err(failed)
            })
            .collect()
    }

    fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A virtual environment laid out as `python3 -m venv` and `pip install onnxruntime` make it.
    fn venv_with(root: &Path, python: &str, files: &[&str]) -> PathBuf {
        let venv = root.join("python");
        let capi = venv
            .join("lib")
            .join(python)
            .join("site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for file in files {
            std::fs::write(capi.join(file), b"\x7fELF").unwrap();
        }
        venv
    }

    #[test]
    fn the_venv_beside_the_executable_is_the_checkouts_target_python() {
        for (executable, expected) in [
            (
                "/src/sandpit/target/debug/sandpit",
                Some("/src/sandpit/target/python"),
            ),
            (
                "/src/sandpit/target/release/sandpit",
                Some("/src/sandpit/target/python"),
            ),
            ("/usr/local/bin/sandpit", Some("/usr/local/python")),
            ("/sandpit", None),
        ] {
            assert_eq!(
                venv_beside(Path::new(executable)),
                expected.map(PathBuf::from),
                "{executable}"
            );
        }
    }

    #[test]
    fn the_library_is_found_in_a_venv_beside_the_executable_without_asking_python() {
        let root = tempfile::tempdir().unwrap();
        let venv = venv_with(
            root.path(),
            "python3.11",
            &[
                "libonnxruntime.so.1.32.0",
                "libonnxruntime_providers_shared.so",
                "__init__.py",
            ],
        );
        let executable = root.path().join("debug").join("sandpit");
        let found = find_onnxruntime(&RuntimeSearch {
            explicit: None,
            executable: Some(&executable),
            // Never run: the venv answers first.
            python: "/nonexistent/python3",
        })
        .unwrap();
        assert_eq!(
            found,
            FoundRuntime {
                library: venv
                    .join("lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0"),
                source: RuntimeSource::BesideExecutable { venv: venv.clone() },
            }
        );

        // ORT_DYLIB_PATH comes first, even when the venv has a library.
        let explicit = root.path().join("elsewhere.so");
        std::fs::write(&explicit, b"").unwrap();
        let found = find_onnxruntime(&RuntimeSearch {
            explicit: Some(&explicit),
            executable: Some(&executable),
            python: "/nonexistent/python3",
        })
        .unwrap();
        assert_eq!(found.library, explicit);
        assert_eq!(found.source, RuntimeSource::Explicit);
    }

    #[test]
    fn the_newest_python_of_a_venv_wins_and_one_without_the_package_is_passed_over() {
        let root = tempfile::tempdir().unwrap();
        venv_with(root.path(), "python3.9", &["libonnxruntime.so.1.16.0"]);
        let venv = venv_with(root.path(), "python3.12", &["libonnxruntime.so.1.32.0"]);
        // Newer, but without onnxruntime's library.
        venv_with(root.path(), "python3.13", &["__init__.py"]);
        std::fs::create_dir_all(venv.join("lib/python-not-a-version")).unwrap();
        assert_eq!(
            library_in_venv(&venv),
            Some(
                venv.join("lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0")
            )
        );
        assert_eq!(library_in_venv(&root.path().join("no-venv")), None);
    }

    #[test]
    fn nothing_found_names_every_place_looked_at() {
        let root = tempfile::tempdir().unwrap();
        let executable = root.path().join("debug").join("sandpit");
        let error = find_onnxruntime(&RuntimeSearch {
            explicit: None,
            executable: Some(&executable),
            python: "/nonexistent/python3",
        })
        .unwrap_err()
        .to_string();
        let venv = root.path().join("python");
        assert!(
            error.ends_with(&format!(
                "; not in {} (beside sandpit's executable), and could not run `/nonexistent/python3`: No such file or directory (os error 2)",
                venv.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn the_version_comes_from_the_library_file_name() {
        for (name, expected) in [
            ("libonnxruntime.so.1.32.0", Some("1.32.0")),
            ("libonnxruntime.so.1.20", Some("1.20")),
            ("libonnxruntime.1.19.2.dylib", Some("1.19.2")),
            ("libonnxruntime.so", None),
            ("libonnxruntime.so.", None),
            ("libonnxruntime.so.1..2", None),
            ("libonnxruntime.so.1.x", None),
            ("onnxruntime.dll", None),
        ] {
            assert_eq!(
                version_from_file_name(&Path::new("/capi").join(name)).as_deref(),
                expected,
                "{name}"
            );
        }
    }
}
