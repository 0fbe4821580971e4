//! A component written in Python (componentize-py), built against the same
//! `wit/`, deployed and answering — host imports included.

use serde_json::{Value, json};

use crate::harness::{Server, python_example, temp_data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agent_round_trip() {
    let wasm = python_example();
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    let agent = server.deploy("py-echo", &wasm, json!({})).await;
    assert_eq!(agent["capabilities"], json!(["reversing"]));

    let (status, body) = server.message("py-echo", "caxton").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["content_type"], "application/json");
    let content: Value =
        serde_json::from_str(body["reply"]["content"].as_str().expect("content")).expect("JSON");
    assert_eq!(content, json!({"reversed": "notxac", "seen": 1}));

    let (_, body) = server.message("py-echo", "ab").await;
    let content: Value =
        serde_json::from_str(body["reply"]["content"].as_str().expect("content")).expect("JSON");
    assert_eq!(
        content,
        json!({"reversed": "ba", "seen": 2}),
        "keyvalue state through the Python bindings"
    );
}
