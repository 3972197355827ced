//! Property tests of request tensors: arbitrary `inputs` JSON and binary parts never panic and
//! come out as valid tensors or as a client error (`ModelError::BadRequest`, answered 400) that
//! says which input and what was wrong; well-formed tensors are always accepted and round-trip.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{json, Map, Number, Value};

use super::*;

/// A fixed seed unless `PROPTEST_RNG_SEED` says otherwise, so a failure seen once (in CI or
/// locally) is seen again by the same command; no persistence files: a failure found becomes a
/// named regression test in `tensor.rs` instead.
fn config() -> Config {
    let defaults = Config::default();
    let rng_seed = match defaults.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0x5a4d_0917),
        chosen => chosen,
    };
    Config {
        failure_persistence: None,
        rng_seed,
        ..defaults
    }
}

const DATATYPES: [&str; 14] = [
    "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "BOOL", "FP16", "BYTES", "fp32",
];

/// Numbers at and around every datatype's limits, and past them.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..300).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            i64::from(i8::MIN) - 1,
            i64::from(i8::MAX) + 1,
            i64::from(i16::MIN) - 1,
            i64::from(u16::MAX) + 1,
            i64::from(i32::MIN) - 1,
            i64::from(u32::MAX) + 1,
            -1,
        ])
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("JSON numbers are finite", Number::from_f64)
            .prop_map(Value::Number),
        prop::sample::select(vec![1e300, -1e39, 3.4028235e38, 3.5e38, 1e-300, 0.5, -0.0])
            .prop_map(|x| Value::Number(Number::from_f64(x).unwrap())),
    ]
}

/// Any JSON, leaning to what tensors hold: numbers, booleans, `"NaN"`-like strings, arrays
/// (nested, ragged), objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => number(),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => prop::sample::select(vec!["NaN", "inf", "-Infinity", "1", ""]).prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            4 => prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            1 => prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn shape_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::vec(0i64..4, 0..4).prop_map(|dims| json!(dims)),
        1 => prop::collection::vec(any::<i64>(), 0..3).prop_map(|dims| json!(dims)),
        1 => prop::collection::vec(
            prop::sample::select(vec![-1i64, 0, 1 << 31, 1 << 40, 1 << 62, i64::MAX]),
            1..4
        )
        .prop_map(|dims| json!(dims)),
        1 => json_value(),
    ]
}

/// One entry of `inputs`, usually with the fields of a tensor, each of any type sometimes.
fn input_value() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        4 => prop::sample::select(vec!["x", "y", "a"]).prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
        1 => json_value(),
    ];
    let datatype = prop_oneof![
        6 => prop::sample::select(DATATYPES.to_vec()).prop_map(Value::from),
        1 => json_value(),
    ];
    let parameters = prop_oneof![
        3 => Just(None),
        2 => (0u64..40).prop_map(|size| Some(json!({ "binary_data_size": size }))),
        1 => json_value().prop_map(|size| Some(json!({ "binary_data_size": size }))),
        1 => json_value().prop_map(Some),
    ];
    (
        name,
        shape_value(),
        datatype,
        prop::option::weighted(0.85, json_value()),
        parameters,
        prop::bool::weighted(0.05),
    )
        .prop_map(|(name, shape, datatype, data, parameters, drop_field)| {
            let mut object = Map::new();
            object.insert("name".into(), name);
            object.insert("shape".into(), shape);
            object.insert("datatype".into(), datatype);
            if let Some(data) = data {
                object.insert("data".into(), data);
            }
            if let Some(parameters) = parameters {
                object.insert("parameters".into(), parameters);
            }
            if drop_field {
                object.remove("shape");
            }
            Value::Object(object)
        })
}

/// What every accepted tensor must be: as many values as its shape holds, of the datatype it
/// declared, FP32 values finite when they came as JSON, and the same tensor after a round trip
/// through its JSON form.
fn check_tensor(
    json: &JsonTensor,
    tensor: &Tensor,
    from_binary: bool,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&tensor.name, &json.name);
    prop_assert_eq!(&tensor.shape, &json.shape);
    prop_assert!(tensor.shape.iter().all(|d| *d >= 0));
    let count: i64 = tensor.shape.iter().product();
    prop_assert_eq!(tensor.data.len() as i64, count);
    prop_assert_eq!(tensor.data.datatype().as_str(), json.datatype.as_str());
    if !from_binary {
        if let TensorData::Fp32(values) = &tensor.data {
            prop_assert!(values.iter().all(|x| x.is_finite()), "{values:?}");
        }
        let again = Tensor::from_json(&tensor.to_json()).ok();
        prop_assert_eq!(again.as_ref(), Some(tensor), "no round trip");
    }
    Ok(())
}

/// A client error that says which input (or which bytes) and what is wrong, readably.
fn check_refusal(error: &ModelError) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(error, ModelError::BadRequest(_)),
        "not a client error: {error:?}"
    );
    let message = error.to_string();
    prop_assert!(
        message.starts_with("input ") || message.contains("bytes of binary data"),
        "does not say which input: {message}"
    );
    prop_assert!(
        !message.chars().any(char::is_control),
        "a raw control character in {message:?}"
    );
    prop_assert!(message.chars().count() < 600, "too long: {message}");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_inputs_are_tensors_or_client_errors(
        inputs in prop::collection::vec(input_value(), 0..4),
        binary in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        // What the server does: the JSON must have the protocol's shape (else the whole body is
        // refused with a 400 of its own), then the inputs are parsed.
        let Ok(inputs) = serde_json::from_value::<Vec<JsonTensor>>(Value::Array(inputs)) else {
            return Ok(());
        };
        match parse_inputs(&inputs, &binary) {
            Ok(tensors) => {
                prop_assert_eq!(tensors.len(), inputs.len());
                for (json, tensor) in inputs.iter().zip(&tensors) {
                    let from_binary = json.data.is_null();
                    check_tensor(json, tensor, from_binary)?;
                }
            }
            Err(error) => check_refusal(&error)?,
        }
    }

    #[test]
    fn arbitrary_binary_parts_are_tensors_or_client_errors(
        datatype in prop::sample::select(DATATYPES.to_vec()),
        shape in prop::collection::vec(prop_oneof![4 => 0i64..5, 1 => any::<i64>()], 0..4),
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let json = JsonTensor {
            name: "x".into(),
            shape,
            datatype: datatype.into(),
            data: Value::Null,
            parameters: None,
        };
        match Tensor::from_binary(&json, &bytes) {
            Ok(tensor) => {
                check_tensor(&json, &tensor, true)?;
                prop_assert_eq!(bytes.len(), tensor.data.len() * tensor.data.datatype().width());
            }
            Err(error) => check_refusal(&error)?,
        }
    }

    /// The other half: nothing well-formed is refused, boundary values included, flat or
    /// nested exactly as the shape.
    #[test]
    fn well_formed_tensors_are_accepted(
        datatype in prop::sample::select(Datatype::ALL.to_vec()),
        shape in prop::collection::vec(0usize..4, 0..4),
        nested in any::<bool>(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 64),
    ) {
        let count: usize = shape.iter().product();
        let pool = in_range(datatype);
        let values: Vec<Value> = picks.iter().cycle().take(count).map(|i| i.get(&pool).clone()).collect();
        let data = if nested && shape.len() > 1 { nest(&values, &shape) } else { Value::Array(values) };
        let json = JsonTensor {
            name: "x".into(),
            shape: shape.iter().map(|d| *d as i64).collect(),
            datatype: datatype.as_str().into(),
            data,
            parameters: None,
        };
        match Tensor::from_json(&json) {
            Ok(tensor) => check_tensor(&json, &tensor, false)?,
            Err(error) => prop_assert!(false, "refused {}: {error}", json.data),
        }
    }
}

/// Values every datatype must accept: its limits, zero, one and (for floats) fractions.
fn in_range(datatype: Datatype) -> Vec<Value> {
    let float = |x: f64| Value::Number(Number::from_f64(x).unwrap());
    match datatype {
        Datatype::Fp32 => vec![
            float(f64::from(f32::MAX)),
            float(f64::from(f32::MIN)),
            float(0.5),
            json!(0),
            json!(-3),
        ],
        Datatype::Fp64 => vec![float(f64::MAX), float(f64::MIN), float(1e-300), json!(7)],
        Datatype::Int8 => vec![json!(i8::MIN), json!(i8::MAX), json!(0)],
        Datatype::Int16 => vec![json!(i16::MIN), json!(i16::MAX), json!(1)],
        Datatype::Int32 => vec![json!(i32::MIN), json!(i32::MAX), json!(-1)],
        Datatype::Int64 => vec![json!(i64::MIN), json!(i64::MAX), json!(2)],
        Datatype::Uint8 => vec![json!(0), json!(u8::MAX)],
        Datatype::Uint16 => vec![json!(0), json!(u16::MAX)],
        Datatype::Uint32 => vec![json!(0), json!(u32::MAX)],
        Datatype::Uint64 => vec![json!(0), json!(u64::MAX)],
        Datatype::Bool => vec![json!(true), json!(false)],
    }
}

/// `values` (row-major) nested as `shape`.
fn nest(values: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] | [_] => Value::Array(values.to_vec()),
        [rows, rest @ ..] => {
            let row_len: usize = rest.iter().product();
            Value::Array(
                (0..*rows)
                    .map(|row| nest(&values[row * row_len..(row + 1) * row_len], rest))
                    .collect(),
            )
        }
    }
}
