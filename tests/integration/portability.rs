//! One binary for every x86-64. The host is built for baseline x86-64 and
//! the SIMD code picks AVX2/FMA at run time, so here the real binary runs
//! under QEMU's user-mode emulator as a `qemu64` CPU (SSE2 and SSE3, no AVX
//! of any kind). A binary built with `target-cpu=x86-64-v3` dies there with
//! SIGILL before printing anything. This one must start, load the real
//! embedding model, say it runs the portable kernels, and rank and score a
//! search as the native run on this machine's AVX2 kernels does.

use std::process::Command;

use serde_json::json;

use crate::harness::{Server, temp_data_dir};

const QEMU: &str = "qemu-x86_64";

async fn seed_and_search(server: &Server) -> Vec<(String, f64)> {
    let (status, body) = server
        .post(
            "/api/v1/memory/entities",
            &json!({"entities": [
                {"name": "Invoice run", "entity_type": "job", "observations": ["Charges every customer on the first of the month"]},
                {"name": "Search cluster", "entity_type": "service", "observations": ["Indexes product descriptions for the shop"]},
                {"name": "Pager rota", "entity_type": "process", "observations": ["Who is woken up when production breaks at night"]}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, found) = server
        .post(
            "/api/v1/memory/search",
            &json!({"query": "monthly billing of customers", "limit": 3}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    found["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let name = r["entity"]["name"].as_str().unwrap_or_default().to_string();
            let score = r["semantic_score"].as_f64();
            (
                name,
                score.unwrap_or_else(|| panic!("no semantic score in {r}")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_embeds_on_a_cpu_without_avx() {
    let qemu_runs = Command::new(QEMU)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        qemu_runs,
        "{QEMU} is missing, so this test cannot run: install qemu-user (scripts/test does)"
    );
    let (_guard, data) = temp_data_dir();
    let log = data.with_extension("qemu.log");
    // QEMU backs the guest's address space with its own bookkeeping, and
    // the instance pool reserves terabytes of it: allocate on demand.
    let config = data.with_extension("qemu.yaml");
    std::fs::write(&config, "runtime:\n  instance_pool: false\n").expect("write config");
    let emulated = Server::start_under(&[QEMU, "-cpu", "qemu64"], &data, Some(&config), &log);
    let (status, health) = emulated.get("/api/v1/health/memory").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["embedding_model"], "loaded", "{health}");
    let slow = seed_and_search(&emulated).await;
    drop(emulated);

    let (_native_guard, native_data) = temp_data_dir();
    let native = Server::start(&native_data);
    let fast = seed_and_search(&native).await;

    assert_eq!(slow[0].0, "Invoice run", "{slow:?}");
    let names = |r: &[(String, f64)]| r.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&slow), names(&fast), "same ranking on both CPUs");
    for ((name, a), (_, b)) in slow.iter().zip(&fast) {
        assert!(
            (a - b).abs() < 1e-4,
            "`{name}` scored {a} on the emulated CPU and {b} natively"
        );
    }
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let portable = log
        .lines()
        .any(|l| l.contains("embedding model loaded") && l.contains("portable"));
    assert!(
        portable,
        "the emulated server must report the portable kernels:\n{log}"
    );
}
