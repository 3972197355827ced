//! The one error type of the model endpoint; the server maps each variant to an HTTP status.

/// What can go wrong locating the engine, loading a model, or answering a request.
///
/// `Clone` because one failed load is reported to every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The ONNX Runtime shared library could not be found; `detail` says where we looked.
    #[error("ONNX Runtime was not found: install it with `pip install onnxruntime` (or set ORT_DYLIB_PATH to libonnxruntime.so){detail}")]
    RuntimeNotFound { detail: String },
    /// The library was found but could not be initialised (wrong version, not a library, ...).
    #[error("ONNX Runtime could not be initialised: {detail}")]
    Engine { detail: String },
    /// The engine refused the model; `detail` is ONNX Runtime's own message (it names the operator).
    #[error("the model cannot be loaded by ONNX Runtime: {detail}")]
    Unsupported { detail: String },
    /// A client mistake in a request: the message says what was expected.
    #[error("{0}")]
    BadRequest(String),
    /// A registration request without this endpoint's credential; the message says what to send.
    #[error("{0}")]
    Unauthorized(String),
    /// The endpoint cannot check credentials (its token file is missing or untrusted); `detail`
    /// is logged, never sent.
    #[error("the endpoint cannot check registration credentials: {detail}")]
    CredentialUnavailable { detail: String },
    /// A registration names a file outside the artifact stores the endpoint serves.
    #[error("{0}")]
    Forbidden(String),
    /// No registration answers this name.
    #[error("{0}")]
    NotFound(String),
    /// The request names a biome that is not registered: never brought up in this environment,
    /// or taken down. Answered as such rather than by the base's models.
    #[error("biome `{biome}` is not known to this model endpoint: it was never brought up in this environment, or it has been taken down\nhint: `sandpit up {biome}` brings it up; without the biome (at the root, plain model names) the environment's base answers")]
    UnknownBiome { biome: String },
    /// A versioned route asked for a version other than the one that answers the name.
    #[error("model `{model}` is served at version `{served}`, not `{requested}`\nhint: the model's metadata lists the version that answers; ask for `/versions/{served}` or leave the version out")]
    VersionNotServed {
        model: String,
        requested: String,
        served: String,
    },
    /// The model does not fit the memory budget even with every other model evicted.
    #[error("model `{model}` needs {needed} bytes (estimated) but the endpoint's budget is {budget} bytes for at most {max_models} models; raise `max_memory` / the model count")]
    InsufficientMemory {
        model: String,
        needed: u64,
        budget: u64,
        max_models: usize,
    },
    /// Loading the model failed (unreadable or corrupt artifact, engine refusal); retried after a backoff.
    #[error("model `{model}` failed to load: {reason}")]
    LoadFailed { model: String, reason: String },
    /// The engine failed while running a model on inputs that passed validation.
    #[error("inference failed: {0}")]
    Inference(String),
}
