//! The multi-model inference endpoint: one server per environment, shared by its base and biomes.
//!
//! - [`engine`]: the [`Engine`] interface and [`OrtEngine`] (ONNX Runtime, loaded at run time).
//! - [`tensor`] / [`metadata`]: KServe v2 JSON tensors, typed tensors, and model metadata.
//! - [`registry`] (pure): which artifact answers which name at the root and under `/biomes/<b>`.
//! - [`load`]: one model's load from its artifact (read, digest checked alongside the session's
//!   creation, extract, session), timed per phase.
//! - [`cache`]: loaded models by digest, LRU under a memory budget, single-flight loads.
//! - [`server`]: the HTTP API (Open Inference Protocol v2 REST, model repository, SageMaker
//!   `/invocations`, sandpit's registration API, Prometheus `/metrics`), served within
//!   [`Limits`] by `sandpit_http`.
//! - [`credential`]: the registration API's bearer token, kept in a file only its owner reads.
//! - [`stores`]: which files a registration may name: artifacts inside the endpoint's stores.
//!
//! A model artifact is a zip holding the ONNX file and `model.json` (a serialised
//! [`ModelMetadata`]: `inputs`, `outputs`, `skipped_outputs`). Nothing here reads environment
//! variables: the caller passes `ORT_DYLIB_PATH`, its executable and the Python to ask to
//! [`find_onnxruntime`].

mod artifact;
pub mod cache;
pub mod credential;
pub mod engine;
pub mod error;
pub mod load;
pub mod metadata;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod stores;
pub mod tensor;

pub use cache::{CacheConfig, ModelCache};
pub use engine::{
    find_onnxruntime, inspect, locate_onnxruntime, Engine, FoundRuntime, LoadedModel, OrtEngine,
    RuntimeSearch, RuntimeSource,
};
pub use error::ModelError;
pub use metadata::{ModelMetadata, SkippedOutput, TensorSpec};
pub use registry::{ModelRef, Registry};
pub use sandpit_http::Limits;
pub use server::{router, serve, serve_with_shutdown, AppState, RegisteredModel, ServerConfig};
pub use stores::ArtifactStores;
pub use tensor::{Datatype, JsonTensor, Tensor, TensorData};
