//! How the wasmtime engine is configured: one configuration for the host's engine and
//! the compile worker's, and the instance pool.

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

/// The default size of the instance pool.
pub const DEFAULT_LIVE_INSTANCES: u32 = 1_000;

/// The most elements one pooled table may hold; a tenant's own `table_elements` limit
/// (20,000 by default) is what normally stops it first.
const POOL_TABLE_ELEMENTS: usize = 1 << 20;

/// The engine's configuration: the host's and the compile worker's alike, so that the
/// worker's output loads in the host's engine (the pool changes nothing compiled).
pub(crate) fn engine_config(
    wasm_stack_bytes: usize,
    pool: Option<PoolingAllocationConfig>,
) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.wasm_memory64(false);
    config.max_wasm_stack(wasm_stack_bytes);
    // Calls run on fibers of this size; they must hold the wasm stack and the host's frames.
    config.async_stack_size(wasm_stack_bytes + HOST_STACK);
    config.profiler(profiler());
    if let Some(pool) = pool {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // A stack goes back to the pool when its instance stops: give its pages back
        // too (an evicted tenant then holds no stack memory), and leave nothing of one
        // tenant's frames for the next.
        config.async_stack_zeroing(true);
    }
    config
}

/// `NSBOX_WASM_PROFILER=perfmap` (or `jitdump`) names the tenants' compiled functions
/// to `perf`, to see where a tenant's time goes; off otherwise.
fn profiler() -> ProfilingStrategy {
    match std::env::var("NSBOX_WASM_PROFILER").as_deref() {
        Ok("perfmap") => ProfilingStrategy::PerfMap,
        Ok("jitdump") => ProfilingStrategy::JitDump,
        _ => ProfilingStrategy::None,
    }
}

/// A pool for `live` instances. Each live store keeps one fiber stack, so there is a
/// stack per instance. A component built by cargo has one memory, a few tables and a
/// few core instances; one built by componentize-qjs has two memories, the second
/// empty, so there are two a live instance for those to fit too; a tenant with more
/// takes more of the pool. An unused memory slot is address space only. The per-component
/// caps are loose: a tenant's own limits (`max_memories` and the rest) are what stop
/// it, with a message that names them.
pub(crate) fn instance_pool(live: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(live)
        .total_core_instances(live.saturating_mul(16))
        .total_memories(live.saturating_mul(2))
        .total_tables(live.saturating_mul(8))
        .total_stacks(live)
        .max_core_instances_per_component(1_000)
        .max_memories_per_component(100)
        .max_memories_per_module(100)
        .max_tables_per_component(100)
        .max_tables_per_module(100)
        .table_elements(POOL_TABLE_ELEMENTS)
        .async_stack_keep_resident(0);
    pool
}

/// The default limit on a call's wasm stack (wasmtime's own default).
pub const DEFAULT_WASM_STACK: usize = 512 << 10;

/// Room on a call's fiber beyond the wasm stack, for the host functions it calls.
const HOST_STACK: usize = 1 << 20;

/// The engine the compile worker compiles with: configured as the host's (without
/// the instance pool, which changes nothing in the compiled code), so that its output
/// loads in the host's engine.
pub(crate) fn worker_engine(wasm_stack_bytes: usize) -> anyhow::Result<Engine> {
    Ok(Engine::new(&engine_config(wasm_stack_bytes, None))?)
}
