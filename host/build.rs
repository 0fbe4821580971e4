//! Builds the built-in components (`builtin-components/`, for
//! wasm32-wasip2) so the `caxton` binary can embed them with
//! `include_bytes!`. They are ordinary guest crates with their own
//! workspace and target directory; this runs `cargo build --release` there.

use std::path::{Path, PathBuf};
use std::process::Command;

const COMPONENTS: &[&str] = &["config_agent"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let workspace = root.join("builtin-components");
    for watched in [
        workspace.join("Cargo.toml"),
        workspace.join("config-agent"),
        root.join("guest-sdk/src"),
        root.join("guest-sdk/Cargo.toml"),
        root.join("wit"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(&workspace).args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--quiet",
    ]);
    // The outer build's settings are for the host, not for the guest.
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command.status().unwrap_or_else(|e| {
        panic!("cannot run cargo to build builtin-components: {e}");
    });
    if !status.success() {
        panic!(
            "building builtin-components for wasm32-wasip2 failed (see above); \
             if the target is missing: `rustup target add wasm32-wasip2`"
        );
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    for name in COMPONENTS {
        let built = workspace.join(format!("target/wasm32-wasip2/release/{name}.wasm"));
        copy(&built, &out_dir.join(format!("{name}.wasm")));
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}
