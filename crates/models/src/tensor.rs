//! Tensors: the KServe v2 JSON form (`name`, `shape`, `datatype`, `data`) and the typed internal
//! form the engine runs, plus validation of a request's inputs against a model's metadata.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ModelError;
use crate::metadata::{ModelMetadata, TensorSpec};

/// The datatypes this endpoint exchanges, named as in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Fp32,
    Fp64,
    Int32,
    Int64,
    Bool,
}

impl Datatype {
    /// Every supported datatype, for error messages.
    pub const ALL: [Datatype; 5] = [
        Datatype::Fp32,
        Datatype::Fp64,
        Datatype::Int32,
        Datatype::Int64,
        Datatype::Bool,
    ];

    /// The protocol's name (`FP32`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Bool => "BOOL",
        }
    }

    /// Parses a protocol name; `None` for names this endpoint does not exchange.
    pub fn parse(raw: &str) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|d| d.as_str() == raw)
    }
}

/// The values of a tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Bool(Vec<bool>),
}

impl TensorData {
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Bool(_) => Datatype::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn to_json(&self) -> Value {
        match self {
            TensorData::Fp32(v) => Value::from(v.iter().map(|x| f64::from(*x)).collect::<Vec<_>>()),
            TensorData::Fp64(v) => Value::from(v.clone()),
            TensorData::Int32(v) => Value::from(v.clone()),
            TensorData::Int64(v) => Value::from(v.clone()),
            TensorData::Bool(v) => Value::from(v.clone()),
        }
    }
}

/// A named, shaped, typed tensor as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: TensorData,
}

/// A tensor as the protocol's JSON carries it. `data` may be flat or nested (row-major); it is
/// absent when the values travel in the binary part of the request (`parameters.binary_data_size`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `[-1, 3]`.
pub fn show_shape(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn flatten<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other),
    }
}

fn element_error(name: &str, datatype: Datatype, index: usize, value: &Value) -> ModelError {
    ModelError::BadRequest(format!(
        "input `{name}`: element {index} ({value}) is not a valid {} value",
        datatype.as_str()
    ))
}

fn convert<T>(
    name: &str,
    datatype: Datatype,
    values: &[&Value],
    parse: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, ModelError> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            parse(value).ok_or_else(|| element_error(name, datatype, index, value))
        })
        .collect()
}

impl Tensor {
    /// The datatype and element count a protocol tensor declares, checked.
    fn declared(json: &JsonTensor) -> Result<(Datatype, usize), ModelError> {
        let name = json.name.as_str();
        let datatype = Datatype::parse(&json.datatype).ok_or_else(|| {
            let known: Vec<&str> = Datatype::ALL.iter().map(|d| d.as_str()).collect();
            ModelError::BadRequest(format!(
                "input `{name}`: datatype `{}` is not supported; use one of {}",
                json.datatype,
                known.join(", ")
            ))
        })?;
        if let Some(bad) = json.shape.iter().find(|d| **d < 0) {
            return Err(ModelError::BadRequest(format!(
                "input `{name}`: shape {} has a negative dimension ({bad}); a request's shape must be concrete",
                show_shape(&json.shape)
            )));
        }
        let expected = json
            .shape
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(usize::try_from(*d).ok()?))
            .ok_or_else(|| {
                ModelError::BadRequest(format!(
                    "input `{name}`: shape {} is too large",
                    show_shape(&json.shape)
                ))
            })?;
        Ok((datatype, expected))
    }

    /// Parses a protocol tensor: a supported datatype, a non-negative shape, and exactly
    /// product(shape) values of that datatype (nested arrays are flattened row-major).
    pub fn from_json(json: &JsonTensor) -> Result<Tensor, ModelError> {
        let name = json.name.as_str();
        let (datatype, expected) = Tensor::declared(json)?;
        if json.data.is_null() {
            return Err(ModelError::BadRequest(format!(
                "input `{name}` has no `data` (and no binary data)"
            )));
        }
        let mut flat = Vec::new();
        flatten(&json.data, &mut flat);
        if flat.len() != expected {
            return Err(ModelError::BadRequest(format!(
                "input `{name}`: shape {} needs {expected} values, got {}",
                show_shape(&json.shape),
                flat.len()
            )));
        }
        let data = match datatype {
            Datatype::Fp32 => TensorData::Fp32(convert(name, datatype, &flat, |v| {
                v.as_f64().map(|x| x as f32)
            })?),
            Datatype::Fp64 => TensorData::Fp64(convert(name, datatype, &flat, Value::as_f64)?),
            Datatype::Int32 => TensorData::Int32(convert(name, datatype, &flat, |v| {
                v.as_i64().and_then(|x| i32::try_from(x).ok())
            })?),
            Datatype::Int64 => TensorData::Int64(convert(name, datatype, &flat, Value::as_i64)?),
            Datatype::Bool => TensorData::Bool(convert(name, datatype, &flat, Value::as_bool)?),
        };
        Ok(Tensor {
            name: json.name.clone(),
            shape: json.shape.clone(),
            data,
        })
    }

    /// Parses a tensor whose values came in the binary part of a request (the binary tensor data
    /// extension): little-endian, row-major, one byte per BOOL.
    pub fn from_binary(json: &JsonTensor, bytes: &[u8]) -> Result<Tensor, ModelError> {
        let name = json.name.as_str();
        let (datatype, expected) = Tensor::declared(json)?;
        let width = match datatype {
            Datatype::Fp32 | Datatype::Int32 => 4,
            Datatype::Fp64 | Datatype::Int64 => 8,
            Datatype::Bool => 1,
        };
        if bytes.len() != expected * width {
            return Err(ModelError::BadRequest(format!(
                "input `{name}`: shape {} of {} needs {} bytes of binary data, got {}",
                show_shape(&json.shape),
                datatype.as_str(),
                expected * width,
                bytes.len()
            )));
        }
        fn words<const N: usize, T>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|chunk| from(chunk.try_into().unwrap_or([0; N])))
                .collect()
        }
        let data = match datatype {
            Datatype::Fp32 => TensorData::Fp32(words(bytes, f32::from_le_bytes)),
            Datatype::Fp64 => TensorData::Fp64(words(bytes, f64::from_le_bytes)),
            Datatype::Int32 => TensorData::Int32(words(bytes, i32::from_le_bytes)),
            Datatype::Int64 => TensorData::Int64(words(bytes, i64::from_le_bytes)),
            Datatype::Bool => TensorData::Bool(bytes.iter().map(|b| *b != 0).collect()),
        };
        Ok(Tensor {
            name: json.name.clone(),
            shape: json.shape.clone(),
            data,
        })
    }

    /// The protocol form, with flat data.
    pub fn to_json(&self) -> JsonTensor {
        JsonTensor {
            name: self.name.clone(),
            shape: self.shape.clone(),
            datatype: self.data.datatype().as_str().to_string(),
            data: self.data.to_json(),
            parameters: None,
        }
    }
}

fn shape_matches(expected: &[i64], got: &[i64]) -> bool {
    expected.len() == got.len() && expected.iter().zip(got).all(|(e, g)| *e < 0 || e == g)
}

fn list_inputs(metadata: &ModelMetadata) -> String {
    let inputs: Vec<String> = metadata
        .inputs
        .iter()
        .map(|spec| format!("`{}` {}", spec.name, spec.describe()))
        .collect();
    inputs.join(", ")
}

fn check_one(spec: &TensorSpec, tensor: &Tensor) -> Result<(), ModelError> {
    let datatype = tensor.data.datatype().as_str();
    if spec.datatype != datatype || !shape_matches(&spec.shape, &tensor.shape) {
        return Err(ModelError::BadRequest(format!(
            "input `{}` expects {} with shape {}, got {} {}",
            spec.name,
            spec.datatype,
            show_shape(&spec.shape),
            datatype,
            show_shape(&tensor.shape)
        )));
    }
    Ok(())
}

/// Checks that `inputs` are exactly the model's inputs (each once) with matching datatypes and
/// shapes (dynamic dimensions `-1` accept any size); the error names what was expected.
pub fn validate_inputs(metadata: &ModelMetadata, inputs: &[Tensor]) -> Result<(), ModelError> {
    for (index, tensor) in inputs.iter().enumerate() {
        let Some(spec) = metadata.input(&tensor.name) else {
            return Err(ModelError::BadRequest(format!(
                "the model has no input `{}`; its inputs are {}",
                tensor.name,
                list_inputs(metadata)
            )));
        };
        if inputs[..index]
            .iter()
            .any(|earlier| earlier.name == tensor.name)
        {
            return Err(ModelError::BadRequest(format!(
                "input `{}` is given more than once",
                tensor.name
            )));
        }
        check_one(spec, tensor)?;
    }
    if let Some(missing) = metadata
        .inputs
        .iter()
        .find(|spec| !inputs.iter().any(|tensor| tensor.name == spec.name))
    {
        return Err(ModelError::BadRequest(format!(
            "input `{}` ({}) is missing; the model's inputs are {}",
            missing.name,
            missing.describe(),
            list_inputs(metadata)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Tensor, ModelError> {
        Tensor::from_json(&serde_json::from_value(value).unwrap())
    }

    fn linear() -> ModelMetadata {
        ModelMetadata {
            inputs: vec![TensorSpec {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 3],
            }],
            outputs: vec![],
            skipped_outputs: vec![],
        }
    }

    #[test]
    fn nested_and_flat_data_are_the_same_tensor() {
        let flat =
            parse(json!({"name":"x","shape":[2,2],"datatype":"INT64","data":[1,2,3,4]})).unwrap();
        let nested =
            parse(json!({"name":"x","shape":[2,2],"datatype":"INT64","data":[[1,2],[3,4]]}))
                .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.data, TensorData::Int64(vec![1, 2, 3, 4]));
    }

    #[test]
    fn malformed_tensors_are_bad_requests() {
        let cases = [
            (
                json!({"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}),
                "needs 3 values, got 2",
            ),
            (
                json!({"name":"x","shape":[1],"datatype":"FP16","data":[1]}),
                "datatype `FP16` is not supported",
            ),
            (
                json!({"name":"x","shape":[-1],"datatype":"FP32","data":[1]}),
                "negative dimension",
            ),
            (
                json!({"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}),
                "not a valid INT32",
            ),
            (
                json!({"name":"x","shape":[1],"datatype":"INT32","data":[5000000000i64]}),
                "not a valid INT32",
            ),
            (
                json!({"name":"x","shape":[1],"datatype":"BOOL","data":["yes"]}),
                "not a valid BOOL",
            ),
        ];
        for (value, needle) in cases {
            let err = parse(value.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{value}: {err}");
        }
    }

    #[test]
    fn validation_names_what_was_expected() {
        let meta = linear();
        let ok = parse(json!({"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}))
            .unwrap();
        validate_inputs(&meta, std::slice::from_ref(&ok)).unwrap();
        let wrong_type =
            parse(json!({"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]})).unwrap();
        assert_eq!(
            validate_inputs(&meta, &[wrong_type])
                .unwrap_err()
                .to_string(),
            "input `x` expects FP32 with shape [-1, 3], got FP64 [1, 3]"
        );
        let wrong_shape =
            parse(json!({"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]})).unwrap();
        assert!(validate_inputs(&meta, &[wrong_shape])
            .unwrap_err()
            .to_string()
            .contains("[-1, 3]"));
        let wrong_name =
            parse(json!({"name":"z","shape":[1,3],"datatype":"FP32","data":[1,2,3]})).unwrap();
        assert!(validate_inputs(&meta, &[wrong_name])
            .unwrap_err()
            .to_string()
            .contains("no input `z`; its inputs are `x` FP32 [-1, 3]"));
        assert!(validate_inputs(&meta, &[])
            .unwrap_err()
            .to_string()
            .contains("input `x` (FP32 [-1, 3]) is missing"));
        assert!(validate_inputs(&meta, &[ok.clone(), ok])
            .unwrap_err()
            .to_string()
            .contains("more than once"));
    }
}
