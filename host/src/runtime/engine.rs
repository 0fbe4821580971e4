//! The one wasmtime engine every agent shares, and the epoch ticker that
//! gives wall-clock limits their granularity.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances. A running guest yields to the
/// async executor at every tick, which is when wall-time limits are checked.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Fuel a guest may burn between cooperative yields, so one agent in a
/// tight loop cannot starve the executor thread it runs on.
pub const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

/// Instances, memories and async stacks the pool holds at most; one live
/// instance per agent, so this bounds the number of agents that can run.
const POOL_SLOTS: u32 = 1000;

/// The engine. `max_memory_bytes` is the server's ceiling for any agent; the
/// pooling allocator sizes its memory slots to it (a slot caps growth
/// whatever the per-agent limiter says, so it must not be smaller).
/// Without `instance_pool` instances are allocated on demand
/// (`runtime.instance_pool`).
pub fn new_engine(max_memory_bytes: u64, instance_pool: bool) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    // Pooled slots and fiber stacks are reused: a fresh instance (after a
    // trap, say) and every async call avoid mmap/munmap.
    if instance_pool {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 8)
            .total_memories(POOL_SLOTS * 2)
            .total_tables(POOL_SLOTS * 4)
            .total_stacks(POOL_SLOTS)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .table_elements(100_000)
            .max_memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    } else {
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    }
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
