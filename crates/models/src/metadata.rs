//! What a model takes and returns: tensor names, KServe v2 datatypes and shapes (`-1` = dynamic).
//!
//! The same structure is written as `model.json` inside a model artifact by `sandpit build` (via
//! [`crate::inspect`]) and read back by the server so that metadata requests do not force a load.

use serde::{Deserialize, Serialize};

/// One input or output tensor of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    /// The KServe v2 datatype name (`FP32`, `FP64`, `INT8` to `INT64`, `UINT8` to `UINT64`,
    /// `BOOL`, and for tensors this endpoint cannot exchange, the protocol's other names such as
    /// `FP16` or `BYTES`).
    pub datatype: String,
    /// Dimensions; `-1` marks a dynamic dimension.
    pub shape: Vec<i64>,
}

/// An output the endpoint does not return, and why (e.g. scikit-learn's ZipMap, a sequence of maps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedOutput {
    pub name: String,
    pub reason: String,
}

/// The inputs and outputs of a model, read from its ONNX Runtime session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub inputs: Vec<TensorSpec>,
    /// The outputs the endpoint returns (tensors of a supported datatype).
    pub outputs: Vec<TensorSpec>,
    /// Outputs of the ONNX graph that are not returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_outputs: Vec<SkippedOutput>,
}

impl ModelMetadata {
    /// The input called `name`.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|spec| spec.name == name)
    }
}

impl TensorSpec {
    /// `FP32 [-1, 3]`, the way error messages show a spec.
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.datatype,
            crate::tensor::show_shape(&self.shape)
        )
    }
}
