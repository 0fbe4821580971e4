//! Components written in Python (componentize-py) and JavaScript
//! (componentize-js, the engine of `jco componentize`), deployed and
//! answering — host imports included. The Python one is built against the
//! current contract (0.2.0), the JavaScript one against the frozen 0.1.0:
//! both versions run side by side.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, js_example, python_example, temp_data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agent_round_trip() {
    let wasm = python_example("py-echo");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_agent_round_trip_and_wasi_http_refused_before_compiling() {
    let wasm = js_example(false);
    let with_http = js_example(true);
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);

    // The default jco build imports wasi:http: refused from the import
    // section (a 12 MB component would take seconds to compile), naming
    // the import and the flags of the recipe.
    let deploy = crate::harness::deploy_body("js-http", &with_http, json!({}));
    let started = Instant::now();
    let (status, body) = server.post("/api/v1/agents", &deploy).await;
    let took = started.elapsed();
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("`wasi:http/") && message.contains("-d http -d fetch-event"),
        "{message}"
    );
    // Compiling it takes seconds even on an idle machine; a refusal from
    // the import section takes milliseconds (the bound leaves room for a
    // loaded one).
    assert!(took < Duration::from_secs(5), "refused in {took:?}");

    // The JavaScript example is built against the frozen 0.1.0 contract:
    // such a component keeps working next to the 0.2.0 ones.
    let bytes = std::fs::read(&wasm).expect("the built component");
    let names = |version: &str| {
        let needle = format!("caxton:agent/agent-handler@{version}");
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    };
    assert!(
        names("0.1.0") && !names("0.2.0"),
        "js-echo should export the 0.1.0 handler"
    );
    let agent = server.deploy("js-echo", &wasm, json!({})).await;
    assert_eq!(agent["capabilities"], json!(["shouting"]));
    for (text, seen) in [("caxton", 1), ("again", 2)] {
        let (status, body) = server.message("js-echo", text).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reply"]["content_type"], "application/json");
        let content: Value =
            serde_json::from_str(body["reply"]["content"].as_str().expect("content"))
                .expect("JSON");
        assert_eq!(
            content,
            json!({"shouted": text.to_uppercase(), "seen": seen}),
            "keyvalue state through the JS bindings"
        );
    }
    let (_, logs) = server.get("/api/v1/agents/js-echo/logs").await;
    assert!(logs.to_string().contains("message 2 from user"), "{logs}");
}
