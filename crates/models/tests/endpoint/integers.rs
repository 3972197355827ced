//! The small integer datatypes (INT8, INT16, UINT8, UINT16, UINT32, UINT64) through ONNX
//! Runtime, as JSON and as binary data, and their range checks answered 400.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{config, Server};

#[tokio::test]
async fn small_integer_datatypes_round_trip_at_their_limits() {
    let server = Server::new(config());
    let integers = server.package("integers.onnx", "integers");
    server.register("_base", &[("integers", &integers)]).await;
    let body = json!({ "inputs": [
        { "name": "i8", "shape": [2], "datatype": "INT8", "data": [-128, 127] },
        { "name": "i16", "shape": [2], "datatype": "INT16", "data": [-32768, 32767] },
        { "name": "u8", "shape": [2], "datatype": "UINT8", "data": [0, 255] },
        { "name": "u16", "shape": [2], "datatype": "UINT16", "data": [0, 65535] },
        { "name": "u32", "shape": [2], "datatype": "UINT32", "data": [0, 4294967295u32] },
        { "name": "u64", "shape": [2], "datatype": "UINT64", "data": [0, u64::MAX] },
    ]});
    let (status, answer) = server
        .call("POST", "/v2/models/integers/infer", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["outputs"],
        json!([
            { "name": "i8_out", "shape": [2], "datatype": "INT8", "data": [-128, 127] },
            { "name": "i16_out", "shape": [2], "datatype": "INT16", "data": [-32768, 32767] },
            { "name": "u8_out", "shape": [2], "datatype": "UINT8", "data": [0, 255] },
            { "name": "u16_out", "shape": [2], "datatype": "UINT16", "data": [0, 65535] },
            { "name": "u32_out", "shape": [2], "datatype": "UINT32", "data": [0, 4294967295u32] },
            { "name": "u64_out", "shape": [2], "datatype": "UINT64", "data": [0, u64::MAX] },
        ])
    );

    // The metadata lists them as inputs and outputs the endpoint exchanges, none skipped.
    let (status, metadata) = server.call("GET", "/v2/models/integers", None).await;
    assert_eq!(status, StatusCode::OK, "{metadata}");
    assert_eq!(
        metadata["outputs"].as_array().unwrap().len(),
        6,
        "{metadata}"
    );
}

#[tokio::test]
async fn small_integers_in_binary_and_out_of_range_values() {
    let server = Server::new(config());
    let integers = server.package("integers.onnx", "integers");
    server.register("_base", &[("integers", &integers)]).await;
    let inputs = |u8_data: serde_json::Value| {
        json!({ "inputs": [
            { "name": "i8", "shape": [1], "datatype": "INT8", "parameters": { "binary_data_size": 1 } },
            { "name": "i16", "shape": [1], "datatype": "INT16", "parameters": { "binary_data_size": 2 } },
            { "name": "u8", "shape": [1], "datatype": "UINT8", "data": u8_data },
            { "name": "u16", "shape": [1], "datatype": "UINT16", "data": [7] },
            { "name": "u32", "shape": [1], "datatype": "UINT32", "data": [7] },
            { "name": "u64", "shape": [1], "datatype": "UINT64", "data": [7] },
        ]})
        .to_string()
    };
    let request = |header: String| {
        let mut body = header.clone().into_bytes();
        body.push(0xff); // INT8 -1
        body.extend_from_slice(&(-300i16).to_le_bytes());
        Request::post("/v2/models/integers/infer")
            .header("Inference-Header-Content-Length", header.len().to_string())
            .body(Body::from(body))
            .unwrap()
    };
    let (status, answer) = server.request(request(inputs(json!([9])))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outputs"][0]["data"], json!([-1]));
    assert_eq!(answer["outputs"][1]["data"], json!([-300]));
    assert_eq!(answer["outputs"][2]["data"], json!([9]));

    for (data, expected) in [
        (
            json!([-1]),
            "input `u8`: `data[0]` (`-1`) is out of range for UINT8, which holds 0 to 255",
        ),
        (
            json!([256]),
            "input `u8`: `data[0]` (`256`) is out of range for UINT8, which holds 0 to 255",
        ),
    ] {
        let (status, answer) = server.request(request(inputs(data))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"], expected);
    }
}
