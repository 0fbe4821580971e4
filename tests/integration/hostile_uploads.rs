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
