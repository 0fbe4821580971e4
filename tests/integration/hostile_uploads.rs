//! Uploads that must be refused with a clear 4xx, leaving nothing stored.

use std::io::{Read, Write};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{Server, deploy_body, rust_example, temp_data_dir};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn refused(server: &Server, body: Value, status: u16, code: &str) -> String {
    let (got, answer) = server.post("/api/v1/agents", &body).await;
    assert_eq!(got, status, "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!message.is_empty());
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_get_clear_errors_and_change_nothing() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("echo", &rust_example("echo"), json!({}))
        .await;
    let echo = std::fs::read(rust_example("echo")).expect("read");

    let message = refused(
        &server,
        json!({"name": "a", "wasm_module": "this is *not* base64!"}),
        400,
        "invalid_base64",
    )
    .await;
    assert!(
        message.contains("base64 -w0"),
        "says how to fix it: {message}"
    );

    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let message = refused(
        &server,
        json!({"name": "b", "wasm_module": b64(&random)}),
        400,
        "not_wasm",
    )
    .await;
    assert!(message.contains("not a WebAssembly binary"), "{message}");

    // The smallest valid core module: a module, not a component.
    let message = refused(
        &server,
        json!({"name": "c", "wasm_module": b64(b"\0asm\x01\0\0\0")}),
        400,
        "core_module_not_component",
    )
    .await;
    assert!(message.contains("wasm32-wasip2"), "{message}");

    // The smallest valid component: it exports nothing, so not the agent world.
    let message = refused(
        &server,
        json!({"name": "d", "wasm_module": b64(b"\0asm\x0d\0\x01\0")}),
        422,
        "wrong_world",
    )
    .await;
    assert!(message.contains("agent-handler"), "{message}");

    // A real component cut in half.
    refused(
        &server,
        json!({"name": "e", "wasm_module": b64(&echo[..echo.len() / 2])}),
        400,
        "invalid_component",
    )
    .await;

    let message = refused(
        &server,
        deploy_body(
            "f",
            &rust_example("echo"),
            json!({"max_memory_bytes": 1u64 << 40}),
        ),
        422,
        "invalid_resource_limits",
    )
    .await;
    assert!(
        message.contains("max_memory_bytes") && message.contains("ceiling"),
        "{message}"
    );
    refused(
        &server,
        deploy_body("g", &rust_example("echo"), json!({"max_fuel": 0})),
        422,
        "invalid_resource_limits",
    )
    .await;
    refused(
        &server,
        deploy_body("h", &rust_example("echo"), json!({"max_cpu": 5})),
        400,
        "invalid_json",
    )
    .await;
    refused(
        &server,
        deploy_body("bad name!", &rust_example("echo"), json!({})),
        400,
        "invalid_name",
    )
    .await;
    refused(
        &server,
        deploy_body("echo", &rust_example("echo"), json!({})),
        409,
        "name_conflict",
    )
    .await;
    let mut with_config = deploy_body("i", &rust_example("echo"), json!({}));
    with_config["config"] = json!([1, 2]);
    refused(&server, with_config, 400, "invalid_config").await;
    let message = refused(&server, json!({"name": "j"}), 400, "invalid_json").await;
    assert!(
        message.contains("wasm_module"),
        "names the missing field: {message}"
    );

    // A component importing `wasi:http` (what jco builds by default) is
    // refused from its import section, before compiling, with the import
    // named and the flag that drops it.
    let before = compiles(&server).await;
    let started = std::time::Instant::now();
    let message = refused(
        &server,
        json!({"name": "k", "wasm_module": b64(&importing("wasi:http/outgoing-handler@0.2.3"))}),
        422,
        "wrong_world",
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused in {:?}",
        started.elapsed()
    );
    assert!(
        message.contains("`wasi:http/outgoing-handler@0.2.3`")
            && message.contains("-d http -d fetch-event")
            && message.contains("wasi:cli"),
        "{message}"
    );
    let message = refused(
        &server,
        json!({"name": "k", "wasm_module": b64(&importing("wasi:cli/environment@0.3.0"))}),
        422,
        "wrong_world",
    )
    .await;
    assert!(message.contains("WASI 0.2"), "{message}");
    assert_eq!(compiles(&server).await, before, "nothing was compiled");

    // A deploy refused after compiling (its init runs out of fuel), sent
    // again, does not compile the same bytes again.
    refused(
        &server,
        deploy_body("l", &rust_example("asker"), json!({"max_fuel": 1})),
        422,
        "agent_start_failed",
    )
    .await;
    server.deploy("l", &rust_example("asker"), json!({})).await;
    assert_eq!(
        compiles(&server).await,
        before + 1,
        "asker was compiled once for two deploys"
    );
    let (status, body) = server.delete("/api/v1/agents/l").await;
    assert_eq!(status, 200, "{body}");

    // A 100 MB body is refused without being stored or crashing anything.
    let status = post_huge_body(&server, 100 * 1000 * 1000);
    assert_eq!(status, 413);

    let (_, list) = server.get("/api/v1/agents").await;
    assert_eq!(list["total"], 1, "only echo is deployed: {list}");
    assert_eq!(server.ask("echo", "still here").await, "still here");
    let server = server.restart();
    let (_, list) = server.get("/api/v1/agents").await;
    assert_eq!(list["total"], 1, "nothing was stored: {list}");
    let cached = std::fs::read_dir(data.join("cache/components"))
        .expect("cache")
        .count();
    assert_eq!(cached, 1, "only echo's compiled component is cached");
}

/// The smallest component that imports the interface `name` (an empty
/// instance): enough for the host's import check.
fn importing(name: &str) -> Vec<u8> {
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
    };
    let mut types = ComponentTypeSection::new();
    types.instance(&InstanceType::new());
    let mut imports = ComponentImportSection::new();
    imports.import(name, ComponentTypeRef::Instance(0));
    let mut component = Component::new();
    component.section(&types);
    component.section(&imports);
    component.finish()
}

/// `caxton_component_compiles_total` now.
async fn compiles(server: &Server) -> u64 {
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("caxton_component_compiles_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no compile counter in {metrics}"))
}

/// Sends `size` bytes of body on a raw connection; returns the status code.
fn post_huge_body(server: &Server, size: usize) -> u16 {
    let address = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    let head = format!(
        "POST /api/v1/agents HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("write head");
    let mut writer = stream.try_clone().expect("clone stream");
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'A'; 1 << 20];
        let mut sent = 0;
        while sent < size {
            let n = chunk.len().min(size - sent);
            if writer.write_all(&chunk[..n]).is_err() {
                break; // the server answered and closed early: fine
            }
            sent += n;
        }
    });
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in response: {text:.200}"))
}
