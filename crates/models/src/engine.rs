//! The inference engine behind a small interface, and its ONNX Runtime implementation.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`) from the shared library that PyPI's
//! `onnxruntime` wheel ships; [`locate_onnxruntime`] finds it. The library is initialised once per
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

/// Finds ONNX Runtime's shared library: `explicit` (the caller's `ORT_DYLIB_PATH`) when given,
/// else the one in the `onnxruntime` package of the `python` interpreter.
pub fn locate_onnxruntime(explicit: Option<&Path>, python: &str) -> Result<PathBuf, ModelError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(ModelError::RuntimeNotFound {
                detail: format!(
                    "; ORT_DYLIB_PATH is {}, which is not a file",
                    path.display()
                ),
            })
        };
    }
    let output = Command::new(python)
        .arg("-c")
        .arg(FIND_LIBRARY)
        .output()
        .map_err(|e| ModelError::RuntimeNotFound {
            detail: format!("; could not run `{python}`: {e}"),
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
            detail: format!("; `{python}` says: {last}"),
        });
    }
    Ok(PathBuf::from(printed))
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
