//! Tensors: the KServe v2 JSON form (`name`, `shape`, `datatype`, `data`) and the typed internal
//! form the engine runs, plus validation of a request's inputs against a model's metadata.
//!
//! Request tensors are untrusted: every way they can be wrong (a datatype not exchanged, a shape
//! too large to address, ragged or mis-nested `data`, a value out of its datatype's range, binary
//! parts of the wrong size) is a [`ModelError::BadRequest`] naming the input and, for a value,
//! where it is in `data`; nothing is narrowed, wrapped or saturated on the way in.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use sandpit_domain::quoted;

use crate::error::ModelError;
use crate::metadata::{ModelMetadata, TensorSpec};

/// The datatypes this endpoint exchanges, named as in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Fp32,
    Fp64,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Bool,
}

impl Datatype {
    /// Every supported datatype, for error messages.
    pub const ALL: [Datatype; 11] = [
        Datatype::Fp32,
        Datatype::Fp64,
        Datatype::Int8,
        Datatype::Int16,
        Datatype::Int32,
        Datatype::Int64,
        Datatype::Uint8,
        Datatype::Uint16,
        Datatype::Uint32,
        Datatype::Uint64,
        Datatype::Bool,
    ];

    /// The protocol's name (`FP32`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Bool => "BOOL",
        }
    }

    /// Parses a protocol name; `None` for names this endpoint does not exchange.
    pub fn parse(raw: &str) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|d| d.as_str() == raw)
    }

    /// Bytes per element in the binary tensor data extension (one per BOOL).
    pub fn width(self) -> usize {
        match self {
            Datatype::Int8 | Datatype::Uint8 | Datatype::Bool => 1,
            Datatype::Int16 | Datatype::Uint16 => 2,
            Datatype::Fp32 | Datatype::Int32 | Datatype::Uint32 => 4,
            Datatype::Fp64 | Datatype::Int64 | Datatype::Uint64 => 8,
        }
    }
}

/// The values of a tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Bool(Vec<bool>),
}

impl TensorData {
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Int8(_) => Datatype::Int8,
            TensorData::Int16(_) => Datatype::Int16,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Uint8(_) => Datatype::Uint8,
            TensorData::Uint16(_) => Datatype::Uint16,
            TensorData::Uint32(_) => Datatype::Uint32,
            TensorData::Uint64(_) => Datatype::Uint64,
            TensorData::Bool(_) => Datatype::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Int8(v) => v.len(),
            TensorData::Int16(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Uint8(v) => v.len(),
            TensorData::Uint16(v) => v.len(),
            TensorData::Uint32(v) => v.len(),
            TensorData::Uint64(v) => v.len(),
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
            TensorData::Int8(v) => Value::from(v.clone()),
            TensorData::Int16(v) => Value::from(v.clone()),
            TensorData::Int32(v) => Value::from(v.clone()),
            TensorData::Int64(v) => Value::from(v.clone()),
            TensorData::Uint8(v) => Value::from(v.clone()),
            TensorData::Uint16(v) => Value::from(v.clone()),
            TensorData::Uint32(v) => Value::from(v.clone()),
            TensorData::Uint64(v) => Value::from(v.clone()),
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

/// A tensor as the protocol's JSON carries it. `data` may be flat or nested exactly as `shape`
/// (row-major); it is absent when the values travel in the binary part of the request
/// (`parameters.binary_data_size`).
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

/// `[1][0]`: where an element of `data` is, as the client wrote it.
fn show_index(index: &[usize]) -> String {
    index.iter().map(|i| format!("[{i}]")).collect()
}

/// What a JSON value is, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The dimensions `data` is nested in, checked to be rectangular: every array at one depth has
/// the same length, and values sit only at the deepest level (`[[1, 2], [3]]` is refused, naming
/// the ragged dimension). A scalar has no dimensions.
fn nested_dims(name: &str, data: &Value) -> Result<Vec<usize>, ModelError> {
    let name = quoted(name);
    let mut dims = Vec::new();
    let mut first = data;
    while let Value::Array(items) = first {
        dims.push(items.len());
        match items.first() {
            Some(item) => first = item,
            None => break,
        }
    }
    let ragged = |depth: usize, detail: String| {
        ModelError::BadRequest(format!(
            "input {name}: `data` is ragged in dimension {depth} (counting from 0): {detail}; every row of a dimension must have the same length"
        ))
    };
    // Depth-first with an explicit stack: `data` is as deep as the client made it.
    let mut stack: Vec<(&Value, Vec<usize>)> = vec![(data, Vec::new())];
    while let Some((value, index)) = stack.pop() {
        let depth = index.len();
        let first_at = show_index(&vec![0; depth]);
        match (value, dims.get(depth)) {
            (Value::Array(items), Some(&length)) if items.len() == length => {
                for (i, item) in items.iter().enumerate().rev() {
                    let mut child = index.clone();
                    child.push(i);
                    stack.push((item, child));
                }
            }
            (Value::Array(items), Some(&length)) => {
                return Err(ragged(
                    depth,
                    format!(
                        "`data{}` has {} elements but `data{first_at}` has {length}",
                        show_index(&index),
                        items.len()
                    ),
                ))
            }
            (Value::Array(_), None) => {
                return Err(ragged(
                    depth,
                    format!(
                        "`data{}` is an array where `data{first_at}` is {}",
                        show_index(&index),
                        json_kind(first)
                    ),
                ))
            }
            (other, Some(&length)) => {
                return Err(ragged(
                    depth,
                    format!(
                        "`data{}` is {} where `data{first_at}` is an array of {length}",
                        show_index(&index),
                        json_kind(other)
                    ),
                ))
            }
            (_, None) => {}
        }
    }
    Ok(dims)
}

/// The values of rectangular `data`, row-major.
fn flatten(data: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().rev()),
            other => out.push(other),
        }
    }
    out
}

/// Why one JSON value is not an element of a datatype, in the words a client needs.
fn element_problem(datatype: Datatype, value: &Value) -> String {
    let range = |min: &str, max: &str| {
        format!(
            "is out of range for {}, which holds {min} to {max}",
            datatype.as_str()
        )
    };
    match datatype {
        Datatype::Bool => "is not a boolean; BOOL data are `true` or `false`".to_owned(),
        // `"NaN"` and `"inf"` are what clients send for what JSON numbers cannot say.
        Datatype::Fp32 | Datatype::Fp64 if value.is_string() => format!(
            "is a string, not a number; {} data are JSON numbers, which cannot be NaN or infinite (send those in the binary tensor extension)",
            datatype.as_str()
        ),
        _ if !value.is_number() => format!(
            "is {}, not a number; {} data are JSON numbers",
            json_kind(value),
            datatype.as_str()
        ),
        Datatype::Fp32 => range("-3.4028235e38", "3.4028235e38"),
        Datatype::Fp64 => range("-1.7976931348623157e308", "1.7976931348623157e308"),
        _ if value.as_i64().is_none() && value.as_u64().is_none() => format!(
            "is not a whole number; {} data are integers",
            datatype.as_str()
        ),
        Datatype::Int8 => range(&i8::MIN.to_string(), &i8::MAX.to_string()),
        Datatype::Int16 => range(&i16::MIN.to_string(), &i16::MAX.to_string()),
        Datatype::Int32 => range(&i32::MIN.to_string(), &i32::MAX.to_string()),
        Datatype::Int64 => range(&i64::MIN.to_string(), &i64::MAX.to_string()),
        Datatype::Uint8 => range("0", &u8::MAX.to_string()),
        Datatype::Uint16 => range("0", &u16::MAX.to_string()),
        Datatype::Uint32 => range("0", &u32::MAX.to_string()),
        Datatype::Uint64 => range("0", &u64::MAX.to_string()),
    }
}

/// A float that survives the conversion: `1e300` as FP32 would be infinity, never sent.
fn finite_f32(value: &Value) -> Option<f32> {
    let narrowed = value.as_f64()? as f32;
    narrowed.is_finite().then_some(narrowed)
}

fn integer<T: TryFrom<i64> + TryFrom<u64>>(value: &Value) -> Option<T> {
    match (value.as_i64(), value.as_u64()) {
        (Some(signed), _) => T::try_from(signed).ok(),
        (None, Some(unsigned)) => T::try_from(unsigned).ok(),
        (None, None) => None,
    }
}

/// Converts every value, or says which one (by its place in `data`) is not of the datatype.
fn convert<T>(
    name: &str,
    datatype: Datatype,
    values: &[&Value],
    dims: &[usize],
    parse: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, ModelError> {
    let name = quoted(name);
    values
        .iter()
        .enumerate()
        .map(|(flat, value)| {
            parse(value).ok_or_else(|| {
                // Where the client wrote it: `data[1][0]` for nested data, `data[2]` for flat.
                let index = if dims.len() <= 1 {
                    vec![flat]
                } else {
                    let mut index = vec![0; dims.len()];
                    let mut rest = flat;
                    for (slot, dim) in index.iter_mut().zip(dims).rev() {
                        *slot = rest % (*dim).max(1);
                        rest /= (*dim).max(1);
                    }
                    index
                };
                ModelError::BadRequest(format!(
                    "input {name}: `data{}` ({}) {}",
                    show_index(&index),
                    quoted(&value.to_string()),
                    element_problem(datatype, value)
                ))
            })
        })
        .collect()
}

impl Tensor {
    /// The datatype and element count a protocol tensor declares, checked.
    fn declared(json: &JsonTensor) -> Result<(Datatype, usize), ModelError> {
        let name = quoted(&json.name);
        let datatype = Datatype::parse(&json.datatype).ok_or_else(|| {
            let known: Vec<&str> = Datatype::ALL.iter().map(|d| d.as_str()).collect();
            ModelError::BadRequest(format!(
                "input {name}: datatype {} is not supported; use one of {}",
                quoted(&json.datatype),
                known.join(", ")
            ))
        })?;
        if let Some(bad) = json.shape.iter().find(|d| **d < 0) {
            return Err(ModelError::BadRequest(format!(
                "input {name}: shape {} has a negative dimension ({bad}); a request's shape must be concrete",
                show_shape(&json.shape)
            )));
        }
        let expected = json
            .shape
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(usize::try_from(*d).ok()?))
            // Counted in bytes too, so the binary size below cannot overflow either.
            .filter(|count| count.checked_mul(datatype.width()).is_some())
            .ok_or_else(|| {
                ModelError::BadRequest(format!(
                    "input {name}: shape {} has more elements than can be addressed",
                    show_shape(&json.shape)
                ))
            })?;
        Ok((datatype, expected))
    }

    /// Parses a protocol tensor: a supported datatype, a non-negative shape, and exactly
    /// product(shape) values of that datatype, each in its range, flat or nested exactly as the
    /// shape (never ragged).
    pub fn from_json(json: &JsonTensor) -> Result<Tensor, ModelError> {
        let name = quoted(&json.name);
        let (datatype, expected) = Tensor::declared(json)?;
        if json.data.is_null() {
            return Err(ModelError::BadRequest(format!(
                "input {name} has no `data` (and no `parameters.binary_data_size`)"
            )));
        }
        let dims = nested_dims(&json.name, &json.data)?;
        let shape_dims: Option<Vec<usize>> = json
            .shape
            .iter()
            .map(|d| usize::try_from(*d).ok())
            .collect();
        // Nested data must be nested as the shape; an empty row cannot show the dimensions
        // below it (`[[], []]` for [2, 0, 3]), so those are not asked for.
        let nested_as_shape = shape_dims.as_deref().is_some_and(|shape| {
            shape == dims.as_slice() || (dims.last() == Some(&0) && shape.starts_with(&dims))
        });
        if dims.len() > 1 && !nested_as_shape {
            let nested: Vec<i64> = dims.iter().map(|d| *d as i64).collect();
            return Err(ModelError::BadRequest(format!(
                "input {name}: `data` is nested as {} but the shape is {}; send it flat, or nested exactly as the shape",
                show_shape(&nested),
                show_shape(&json.shape)
            )));
        }
        let flat = flatten(&json.data);
        if flat.len() != expected {
            return Err(ModelError::BadRequest(format!(
                "input {name}: shape {} needs {expected} values, got {}",
                show_shape(&json.shape),
                flat.len()
            )));
        }
        let values = flat.as_slice();
        let dims = dims.as_slice();
        let data = match datatype {
            Datatype::Fp32 => {
                TensorData::Fp32(convert(&json.name, datatype, values, dims, finite_f32)?)
            }
            Datatype::Fp64 => {
                TensorData::Fp64(convert(&json.name, datatype, values, dims, Value::as_f64)?)
            }
            Datatype::Int8 => {
                TensorData::Int8(convert(&json.name, datatype, values, dims, integer)?)
            }
            Datatype::Int16 => {
                TensorData::Int16(convert(&json.name, datatype, values, dims, integer)?)
            }
            Datatype::Int32 => {
                TensorData::Int32(convert(&json.name, datatype, values, dims, integer)?)
            }
            Datatype::Int64 => {
                TensorData::Int64(convert(&json.name, datatype, values, dims, integer)?)
            }
            Datatype::Uint8 => {
                TensorData::Uint8(convert(&json.name, datatype, values, dims, integer)?)
            }
            Datatype::Uint16 => {
                TensorData::Uint16(convert(&json.name, datatype, values, dims, integer)?)
            }
            Datatype::Uint32 => {
                TensorData::Uint32(convert(&json.name, datatype, values, dims, integer)?)
            }
            Datatype::Uint64 => {
                TensorData::Uint64(convert(&json.name, datatype, values, dims, integer)?)
            }
            Datatype::Bool => {
                TensorData::Bool(convert(&json.name, datatype, values, dims, Value::as_bool)?)
            }
        };
        Ok(Tensor {
            name: json.name.clone(),
            shape: json.shape.clone(),
            data,
        })
    }

    /// Parses a tensor whose values came in the binary part of a request (the binary tensor data
    /// extension): little-endian, row-major, one byte per BOOL (any non-zero byte is true).
    /// Binary FP32/FP64 may carry NaN and infinities: the client chose those bits.
    pub fn from_binary(json: &JsonTensor, bytes: &[u8]) -> Result<Tensor, ModelError> {
        let name = quoted(&json.name);
        let (datatype, expected) = Tensor::declared(json)?;
        let needed = expected * datatype.width(); // checked in `declared`
        if bytes.len() != needed {
            return Err(ModelError::BadRequest(format!(
                "input {name}: shape {} of {} needs {needed} bytes of binary data, got {}",
                show_shape(&json.shape),
                datatype.as_str(),
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
            Datatype::Int8 => TensorData::Int8(words(bytes, i8::from_le_bytes)),
            Datatype::Int16 => TensorData::Int16(words(bytes, i16::from_le_bytes)),
            Datatype::Int32 => TensorData::Int32(words(bytes, i32::from_le_bytes)),
            Datatype::Int64 => TensorData::Int64(words(bytes, i64::from_le_bytes)),
            Datatype::Uint8 => TensorData::Uint8(bytes.to_vec()),
            Datatype::Uint16 => TensorData::Uint16(words(bytes, u16::from_le_bytes)),
            Datatype::Uint32 => TensorData::Uint32(words(bytes, u32::from_le_bytes)),
            Datatype::Uint64 => TensorData::Uint64(words(bytes, u64::from_le_bytes)),
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

/// The inputs of a request, taking binary values in input order from `binary` (the part after
/// `Inference-Header-Content-Length` bytes of JSON): an input with
/// `parameters.binary_data_size` takes that many bytes, the others carry `data`.
pub fn parse_inputs(inputs: &[JsonTensor], mut binary: &[u8]) -> Result<Vec<Tensor>, ModelError> {
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        let size = input
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
            .map(|size| {
                let Some(size) = size.as_u64() else {
                    return Err(ModelError::BadRequest(format!(
                        "input {}: `parameters.binary_data_size` must be a number of bytes, found {}",
                        quoted(&input.name),
                        quoted(&size.to_string())
                    )));
                };
                usize::try_from(size)
                    .ok()
                    .filter(|size| *size <= binary.len())
                    .ok_or_else(|| {
                        ModelError::BadRequest(format!(
                            "input {}: binary_data_size {size} does not fit the {} bytes of binary data left",
                            quoted(&input.name),
                            binary.len()
                        ))
                    })
            })
            .transpose()?;
        tensors.push(match size {
            Some(_) if !input.data.is_null() => {
                return Err(ModelError::BadRequest(format!(
                    "input {} has both `data` and `parameters.binary_data_size`; send its values one way",
                    quoted(&input.name)
                )))
            }
            Some(size) => {
                let (bytes, rest) = binary.split_at(size);
                binary = rest;
                Tensor::from_binary(input, bytes)?
            }
            None => Tensor::from_json(input)?,
        });
    }
    if !binary.is_empty() {
        return Err(ModelError::BadRequest(format!(
            "{} bytes of binary data are not claimed by any input's binary_data_size",
            binary.len()
        )));
    }
    Ok(tensors)
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
                "the model has no input {}; its inputs are {}",
                quoted(&tensor.name),
                list_inputs(metadata)
            )));
        };
        if inputs[..index]
            .iter()
            .any(|earlier| earlier.name == tensor.name)
        {
            return Err(ModelError::BadRequest(format!(
                "input {} is given more than once",
                quoted(&tensor.name)
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
mod properties;

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
                "input `x`: `data[0]` (`1.5`) is not a whole number; INT32 data are integers",
            ),
            (
                json!({"name":"x","shape":[1],"datatype":"INT32","data":[5000000000i64]}),
                "`data[0]` (`5000000000`) is out of range for INT32, which holds -2147483648 to 2147483647",
            ),
            (
                json!({"name":"x","shape":[1],"datatype":"BOOL","data":["yes"]}),
                "`data[0]` (`\"yes\"`) is not a boolean; BOOL data are `true` or `false`",
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

    /// Regression: FP32 `data` went through `as f32`, so `1e300` became infinity and was run;
    /// NaN and infinity cannot be JSON numbers, and as strings they are refused the same way.
    #[test]
    fn fp32_values_out_of_range_are_bad_requests() {
        let cases = [
            (
                json!([1.0, 1e300]),
                "input `x`: `data[1]` (`1e+300`) is out of range for FP32, which holds -3.4028235e38 to 3.4028235e38",
            ),
            (json!([-1e39, 0.0]), "`data[0]` (`-1e+39`) is out of range for FP32"),
            (
                json!(["NaN", 1.0]),
                "`data[0]` (`\"NaN\"`) is a string, not a number; FP32 data are JSON numbers, which cannot be NaN or infinite (send those in the binary tensor extension)",
            ),
            (json!([1.0, "inf"]), "`data[1]` (`\"inf\"`) is a string, not a number"),
        ];
        for (data, needle) in cases {
            let json = json!({"name":"x","shape":[2],"datatype":"FP32","data":data});
            let err = parse(json.clone()).unwrap_err();
            assert!(matches!(err, ModelError::BadRequest(_)), "{json}: {err:?}");
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
        // The largest finite FP32 still passes.
        let max = json!({"name":"x","shape":[1],"datatype":"FP32","data":[3.4028235e38]});
        assert_eq!(parse(max).unwrap().data, TensorData::Fp32(vec![f32::MAX]));
    }

    /// Regression: integer datatypes other than INT32/INT64 were refused outright, and a range
    /// check is what makes them safe to accept: nothing wraps or saturates on the way in.
    #[test]
    fn integers_out_of_range_and_negative_unsigned_values_are_bad_requests() {
        let refused = [
            (
                "INT8",
                json!(128),
                "out of range for INT8, which holds -128 to 127",
            ),
            ("INT8", json!(-129), "out of range for INT8"),
            (
                "INT16",
                json!(32768),
                "out of range for INT16, which holds -32768 to 32767",
            ),
            ("INT32", json!(-2147483649i64), "out of range for INT32"),
            (
                "INT64",
                json!(9223372036854775808u64),
                "out of range for INT64",
            ),
            (
                "UINT8",
                json!(-1),
                "`data[0]` (`-1`) is out of range for UINT8, which holds 0 to 255",
            ),
            ("UINT8", json!(256), "out of range for UINT8"),
            (
                "UINT16",
                json!(65536),
                "out of range for UINT16, which holds 0 to 65535",
            ),
            ("UINT32", json!(-5), "out of range for UINT32"),
            (
                "UINT64",
                json!(-1),
                "out of range for UINT64, which holds 0 to 18446744073709551615",
            ),
            (
                "UINT64",
                json!(1.0),
                "is not a whole number; UINT64 data are integers",
            ),
        ];
        for (datatype, value, needle) in refused {
            let json = json!({"name":"x","shape":[1],"datatype":datatype,"data":[value]});
            let err = parse(json.clone()).unwrap_err();
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
        let accepted = [
            (
                "INT8",
                json!([-128, 127]),
                TensorData::Int8(vec![-128, 127]),
            ),
            (
                "INT16",
                json!([-32768, 32767]),
                TensorData::Int16(vec![-32768, 32767]),
            ),
            ("UINT8", json!([0, 255]), TensorData::Uint8(vec![0, 255])),
            (
                "UINT16",
                json!([0, 65535]),
                TensorData::Uint16(vec![0, 65535]),
            ),
            (
                "UINT32",
                json!([0, 4294967295u32]),
                TensorData::Uint32(vec![0, u32::MAX]),
            ),
            (
                "UINT64",
                json!([0, u64::MAX]),
                TensorData::Uint64(vec![0, u64::MAX]),
            ),
        ];
        for (datatype, data, expected) in accepted {
            let json = json!({"name":"x","shape":[2],"datatype":datatype,"data":data});
            assert_eq!(parse(json).unwrap().data, expected, "{datatype}");
        }
    }

    /// Regression: `[[1, 2], [3]]` was flattened to three values and only the count was
    /// checked, so ragged data with the right number of values was run as if rectangular.
    #[test]
    fn ragged_data_is_a_bad_request_naming_the_dimension() {
        let cases = [
            (
                json!([[1, 2], [3]]),
                json!([2, 2]),
                "input `x`: `data` is ragged in dimension 1 (counting from 0): `data[1]` has 1 elements but `data[0]` has 2; every row of a dimension must have the same length",
            ),
            (
                json!([[1, 2], [3, 4, 5]]),
                json!([5]),
                "ragged in dimension 1 (counting from 0): `data[1]` has 3 elements but `data[0]` has 2",
            ),
            (
                json!([[1, 2], 3]),
                json!([3]),
                "ragged in dimension 1 (counting from 0): `data[1]` is a number where `data[0]` is an array of 2",
            ),
            (
                json!([1, [2, 3]]),
                json!([3]),
                "ragged in dimension 1 (counting from 0): `data[1]` is an array where `data[0]` is a number",
            ),
            (
                json!([[[1], [2]], [[3], [4, 5]]]),
                json!([2, 2, 1]),
                "ragged in dimension 2 (counting from 0): `data[1][1]` has 2 elements but `data[0][0]` has 1",
            ),
            (
                json!([[1, 2, 3], [4, 5, 6]]),
                json!([3, 2]),
                "`data` is nested as [2, 3] but the shape is [3, 2]; send it flat, or nested exactly as the shape",
            ),
        ];
        for (data, shape, needle) in cases {
            let json = json!({"name":"x","shape":shape,"datatype":"INT64","data":data});
            let err = parse(json.clone()).unwrap_err();
            assert!(matches!(err, ModelError::BadRequest(_)), "{json}: {err:?}");
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
        // Where a bad value is, as written: nested indices for nested data.
        let json = json!({"name":"x","shape":[2,2],"datatype":"INT8","data":[[1, 2], [3, 400]]});
        assert!(parse(json)
            .unwrap_err()
            .to_string()
            .contains("`data[1][1]` (`400`)"));
    }

    /// Regression: a shape whose element count fits `usize` but whose byte count does not
    /// overflowed `expected * width` (a panic in debug builds) instead of being refused.
    #[test]
    fn binary_shapes_too_large_to_address_are_bad_requests() {
        let json: JsonTensor = serde_json::from_value(
            json!({"name":"x","shape":[4611686018427387904i64],"datatype":"FP64"}),
        )
        .unwrap();
        let err = Tensor::from_binary(&json, &[0; 8]).unwrap_err();
        assert!(
            err.to_string()
                .contains("shape [4611686018427387904] has more elements than can be addressed"),
            "{err}"
        );
    }

    #[test]
    fn binary_inputs_take_their_bytes_in_order() {
        let inputs: Vec<JsonTensor> = serde_json::from_value(json!([
            {"name":"a","shape":[2],"datatype":"UINT16","parameters":{"binary_data_size":4}},
            {"name":"b","shape":[1],"datatype":"BOOL","data":[true]},
            {"name":"c","shape":[1],"datatype":"INT8","parameters":{"binary_data_size":1}},
        ]))
        .unwrap();
        let tensors = parse_inputs(&inputs, &[1, 0, 2, 1, 0xff]).unwrap();
        assert_eq!(tensors[0].data, TensorData::Uint16(vec![1, 258]));
        assert_eq!(tensors[1].data, TensorData::Bool(vec![true]));
        assert_eq!(tensors[2].data, TensorData::Int8(vec![-1]));
        let cases = [
            (
                json!([{"name":"a","shape":[1],"datatype":"INT8","parameters":{"binary_data_size":2}}]),
                vec![0u8],
                "input `a`: binary_data_size 2 does not fit the 1 bytes of binary data left",
            ),
            (
                json!([{"name":"a","shape":[1],"datatype":"INT8","parameters":{"binary_data_size":"2"}}]),
                vec![0u8],
                "input `a`: `parameters.binary_data_size` must be a number of bytes, found `\"2\"`",
            ),
            (
                json!([{"name":"a","shape":[1],"datatype":"INT8","data":[1],"parameters":{"binary_data_size":1}}]),
                vec![0],
                "input `a` has both `data` and `parameters.binary_data_size`; send its values one way",
            ),
            (
                json!([{"name":"a","shape":[1],"datatype":"INT8","data":[1]}]),
                vec![0, 0],
                "2 bytes of binary data are not claimed by any input's binary_data_size",
            ),
            (
                json!([{"name":"a","shape":[2],"datatype":"INT16","parameters":{"binary_data_size":2}}]),
                vec![0, 0],
                "input `a`: shape [2] of INT16 needs 4 bytes of binary data, got 2",
            ),
        ];
        for (inputs, binary, needle) in cases {
            let inputs: Vec<JsonTensor> = serde_json::from_value(inputs).unwrap();
            let err = parse_inputs(&inputs, &binary).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
