//! WASI is deny-by-default: no files, no sockets, no environment.

use serde_json::json;

use crate::harness::{Server, rust_example, temp_data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_cannot_open_files_sockets_or_read_the_environment() {
    let (_guard, data) = temp_data_dir();
    let server = Server::start(&data);
    server
        .deploy("prober", &rust_example("misbehave"), json!({}))
        .await;

    let secret = data.parent().expect("parent").join("secret.txt");
    std::fs::write(&secret, "top secret").expect("write");
    for path in ["/etc/passwd", secret.to_str().expect("utf-8")] {
        let (status, body) = server.message("prober", &format!("open-file {path}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reply"]["performative"], "failure", "{body}");
        assert!(
            body["reply"]["content"]
                .as_str()
                .unwrap_or("")
                .starts_with("open-file denied"),
            "{body}"
        );
    }

    // The server's own port is listening; the guest still cannot connect.
    let address = server.base.trim_start_matches("http://").to_string();
    let (status, body) = server
        .message("prober", &format!("connect {address}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"]["performative"], "failure", "{body}");
    assert!(
        body["reply"]["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("connect denied"),
        "{body}"
    );

    assert_eq!(server.ask("prober", "env").await, "0 variables: ");
}
