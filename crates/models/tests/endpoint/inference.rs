//! Numerical answers, datatypes and metadata.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{config, Server, V1};

#[tokio::test]
async fn linear_model_answers_the_hand_computed_values() {
    let server = Server::new(config());
    let linear = server.package(V1, "linear");
    server.register("_base", &[("linear", &linear)]).await;
    // Nested data, two rows: [1, 2, 3]·[1, 2, 3] + 0.5 = 14.5 and [0.5, -1, 2]·[1, 2, 3] + 0.5 = 5.0.
    let body = json!({
        "id": "req-1",
        "inputs": [{ "name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [0.5, -1, 2]] }]
    });
    let (status, answer) = server
        .call("POST", "/v2/models/linear/infer", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["model_name"], "linear");
    assert_eq!(answer["id"], "req-1");
    assert_eq!(
        answer["outputs"],
        json!([{ "name": "y", "shape": [2, 1], "datatype": "FP32", "data": [14.5, 5.0] }])
    );
}

#[tokio::test]
async fn every_datatype_round_trips() {
    let server = Server::new(config());
    let types = server.package("datatypes.onnx", "types");
    server.register("_base", &[("types", &types)]).await;
    let body = json!({ "inputs": [
        { "name": "a", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, -4_000_000_000_i64]] },
        { "name": "b", "shape": [3], "datatype": "BOOL", "data": [true, false, true] },
        { "name": "c", "shape": [2], "datatype": "FP64", "data": [0.1, 1e300] },
        { "name": "d", "shape": [2], "datatype": "INT32", "data": [7, -1_000_000_000] },
    ]});
    let (status, answer) = server
        .call("POST", "/v2/models/types/infer", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["outputs"],
        json!([
            { "name": "a2", "shape": [2, 2], "datatype": "INT64", "data": [2, 4, 6, -8_000_000_000_i64] },
            { "name": "not_b", "shape": [3], "datatype": "BOOL", "data": [false, true, false] },
            { "name": "c2", "shape": [2], "datatype": "FP64", "data": [0.2, 2e300] },
            { "name": "d2", "shape": [2], "datatype": "INT32", "data": [14, -2_000_000_000] },
            { "name": "a_f64", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2.0, 3.0, -4e9] },
        ])
    );

    // Asking for some outputs returns only those.
    let mut only = body;
    only["outputs"] = json!([{ "name": "not_b" }]);
    let (status, answer) = server
        .call("POST", "/v2/models/types/infer", Some(only.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(answer["outputs"][0]["name"], "not_b");

    only["outputs"] = json!([{ "name": "nope" }]);
    let (status, answer) = server
        .call("POST", "/v2/models/types/infer", Some(only))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no output `nope`"),
        "{answer}"
    );
}

#[tokio::test]
async fn metadata_comes_from_the_artifact_without_a_load() {
    let server = Server::new(config());
    let linear = server.package(V1, "linear");
    server.register("_base", &[("linear", &linear)]).await;
    let (status, answer) = server.call("GET", "/v2/models/linear", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({
            "name": "linear",
            "versions": [linear.version],
            "platform": "onnxruntime_onnx",
            "inputs": [{ "name": "x", "datatype": "FP32", "shape": [-1, 3] }],
            "outputs": [{ "name": "y", "datatype": "FP32", "shape": [-1, 1] }],
        })
    );
    assert_eq!(server.metric("sandpit_models_loaded").await, 0.0);
    assert_eq!(
        server
            .metric("sandpit_model_loads_total{model=\"linear\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn non_tensor_outputs_are_skipped_and_said_so() {
    let server = Server::new(config());
    let seq = server.package("sequence_output.onnx", "seq");
    server.register("_base", &[("seq", &seq)]).await;
    let (status, answer) = server.call("GET", "/v2/models/seq", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["outputs"],
        json!([{ "name": "y", "datatype": "FP32", "shape": [2] }])
    );
    let skipped = &answer["parameters"]["skipped_outputs"][0];
    assert_eq!(skipped["name"], "seq");
    assert!(
        skipped["reason"].as_str().unwrap().contains("sequence"),
        "{skipped}"
    );

    let body =
        json!({ "inputs": [{ "name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, -2] }] });
    let (status, answer) = server
        .call("POST", "/v2/models/seq/infer", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["outputs"],
        json!([{ "name": "y", "shape": [2], "datatype": "FP32", "data": [1.5, -2.0] }])
    );
}

#[test]
fn an_unknown_operator_is_unsupported_naming_it() {
    let bytes = std::fs::read(crate::support::model_file("unsupported.onnx")).unwrap();
    let error = sandpit_models::inspect(crate::support::engine().as_ref(), &bytes).unwrap_err();
    assert!(
        matches!(error, sandpit_models::ModelError::Unsupported { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("Frobnicate"), "{error}");
}

#[test]
fn a_missing_runtime_says_what_to_install() {
    let expected = "ONNX Runtime was not found: install it with `pip install onnxruntime` (or set ORT_DYLIB_PATH to libonnxruntime.so)";
    let explicit = sandpit_models::locate_onnxruntime(
        Some(std::path::Path::new("/nonexistent/libonnxruntime.so")),
        "python3",
    );
    assert!(explicit.unwrap_err().to_string().starts_with(expected));
    let no_python = sandpit_models::locate_onnxruntime(None, "/nonexistent/python3");
    assert!(no_python.unwrap_err().to_string().starts_with(expected));
}

/// The binary tensor data extension, as `tritonclient` sends by default: a JSON header whose
/// length is in `Inference-Header-Content-Length`, then each input's little-endian bytes.
#[tokio::test]
async fn binary_inputs_as_tritonclient_sends_them() {
    use axum::body::Body;
    use axum::http::Request;

    let server = Server::new(config());
    let types = server.package("datatypes.onnx", "types");
    server.register("_base", &[("types", &types)]).await;
    let header = json!({
        "inputs": [
            { "name": "a", "shape": [2, 2], "datatype": "INT64", "parameters": { "binary_data_size": 32 } },
            { "name": "b", "shape": [2], "datatype": "BOOL", "parameters": { "binary_data_size": 2 } },
            { "name": "c", "shape": [1], "datatype": "FP64", "data": [1.25] },
            { "name": "d", "shape": [1], "datatype": "INT32", "parameters": { "binary_data_size": 4 } },
        ],
        "parameters": { "binary_data_output": true },
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    for a in [1i64, -2, 3, 4] {
        body.extend_from_slice(&a.to_le_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(-21i32).to_le_bytes());
    let request = |body: Vec<u8>, json_len: usize| {
        Request::post("/v2/models/types/infer")
            .header("Inference-Header-Content-Length", json_len.to_string())
            .header("content-type", "application/octet-stream")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, answer) = server.request(request(body.clone(), header.len())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outputs"][0]["data"], json!([2, -4, 6, 8]));
    assert_eq!(answer["outputs"][1]["data"], json!([false, true]));
    assert_eq!(answer["outputs"][2]["data"], json!([2.5]));
    assert_eq!(answer["outputs"][3]["data"], json!([-42]));

    // One byte short: the message says how many were needed.
    let (status, answer) = server
        .request(request(body[..body.len() - 1].to_vec(), header.len()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("binary_data_size 4"),
        "{answer}"
    );
    let (status, answer) = server.request(request(body.clone(), body.len() + 1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("Inference-Header-Content-Length"),
        "{answer}"
    );
}
