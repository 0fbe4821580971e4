//! The one wasmtime engine every agent shares, and the epoch ticker that
//! gives wall-clock limits their granularity.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the engine's epoch advances. A running guest yields to the
/// async executor at every tick, which is when wall-time limits are checked.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Fuel a guest may burn between cooperative yields, so one agent in a
/// tight loop cannot starve the executor thread it runs on.
pub const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

pub fn new_engine() -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    let engine =
        Engine::new(&config).map_err(|e| anyhow::anyhow!("creating wasmtime engine: {e}"))?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advances the epoch from a plain thread until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("caxton-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch thread, wall-time limits will not fire: {e}");
    }
}

/// A short, stable-for-this-build fingerprint of the engine's settings.
/// Compiled artifacts are only valid for an identical engine, so the
/// on-disk cache is keyed by it.
pub fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
