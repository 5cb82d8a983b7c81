//! The wasmtime engine every tenant shares: its configuration, the linker that
//! grants what a tenant may use (and nothing more), compilation, and the epoch
//! ticker the CPU deadlines count on.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::Engine;

use super::bindings::{v0_1, Tenant};
use super::compiler::{compile_in_worker, Worker};
use super::contract::{Contract, Pre};
use super::engine::{engine_config, instance_pool, DEFAULT_LIVE_INSTANCES, DEFAULT_WASM_STACK};
use super::load_error::LoadError;
use super::shape::CompileLimits;
use super::state::TenantState;
use super::ticker::Ticker;
use crate::durable::{self, sha256_hex};

/// The interfaces a tenant may import (names without their `@version`); the linker
/// links exactly these (see `add_granted_wasi`).
const GRANTED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/exit",
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
    "nsbox:tenant/host",
    "nsbox:tenant/sockets",
    "nsbox:tenant/timers",
    "nsbox:tenant/types",
    "nsbox:tenant/storage",
    "nsbox:tenant/cluster",
    "wasi:keyvalue/store",
    "wasi:keyvalue/atomics",
    "wasi:keyvalue/batch",
    "wasi:config/store",
];

/// Tells a component from a core module or from something else by its 8-byte header.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE: [u8; 4] = [1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    if bytes[4..8] == CORE {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// The engine and linker shared by all tenants.
pub struct Runtime {
    engine: Engine,
    /// Advances the epoch while a call runs.
    ticker: Arc<Ticker>,
    linker: Linker<TenantState>,
    /// Identifies this engine's compiled code: part of every cache key.
    compatibility: u64,
    cache_hits: AtomicU64,
    pooled: bool,
    wasm_stack_bytes: usize,
    worker: Option<Worker>,
    compile_limits: CompileLimits,
}

/// The host's settings for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// The wasm stack one call may use; deeper recursion traps (`call stack exhausted`).
    pub wasm_stack_bytes: usize,
    /// Instances that may be live at once, all tenants together: the size of the pool
    /// reserved at start (address space, not memory). 0 allocates each instance when
    /// it starts instead, which is slower and costs more memory mappings per instance.
    pub live_instances: u32,
    /// Where untrusted components are compiled (see [`Runtime::compile_untrusted`]):
    /// a child process, or without one this process, unbounded.
    pub worker: Option<Worker>,
    /// What compiling one untrusted component may cost.
    pub compile_limits: CompileLimits,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            wasm_stack_bytes: DEFAULT_WASM_STACK,
            live_instances: DEFAULT_LIVE_INSTANCES,
            worker: None,
            compile_limits: CompileLimits::default(),
        }
    }
}

/// A compiled component, ready to instantiate as many times as needed.
pub struct Code {
    pub(crate) pre: Pre,
    component: Component,
    image_made: AtomicBool,
}

impl Code {
    /// The contract version the component was built for.
    pub fn contract(&self) -> Contract {
        self.pre.contract()
    }

    /// Makes the heap image its instances map copy-on-write, once, on a blocking thread:
    /// else the first instantiation makes it, on the CPU clock of the tenant's call (for
    /// a JS or Python snapshot, megabytes to copy: most of that first start's cost).
    /// Not when the component is loaded, so that a tenant never started costs no image.
    pub(crate) async fn make_image(self: &Arc<Self>) {
        if self.image_made.load(Ordering::Acquire) {
            return;
        }
        let code = self.clone();
        // A failure shows again, as the instantiation's own error.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = code.component.initialize_copy_on_write_image();
            code.image_made.store(true, Ordering::Release);
        })
        .await;
    }
}

impl Runtime {
    /// An engine with epoch interruption and only the proposals tenants need, a linker
    /// granting `wasi:io`, `wasi:clocks`, `wasi:random` and `wasi:cli` (with no
    /// environment, arguments or stdin) plus the `nsbox:tenant` host, and the epoch ticker.
    pub fn new() -> anyhow::Result<Arc<Runtime>> {
        Runtime::with_options(RuntimeOptions::default())
    }

    /// [`Runtime::new`] with the host's settings: the wasm stack of a call and how many
    /// instances live at once. One engine serves every tenant, so these are the
    /// host's, not a tenant's.
    pub fn with_options(options: RuntimeOptions) -> anyhow::Result<Arc<Runtime>> {
        let (engine, pooled) = match options.live_instances {
            0 => (
                Engine::new(&engine_config(options.wasm_stack_bytes, None))?,
                false,
            ),
            live => {
                let pool = instance_pool(live);
                match Engine::new(&engine_config(options.wasm_stack_bytes, Some(pool))) {
                    Ok(engine) => (engine, true),
                    Err(error) => {
                        // Too little address space for the pool (a small VA or a ulimit):
                        // serve anyway, allocating each instance when it starts.
                        tracing::warn!(
                            live,
                            error = %format!("{error:#}"),
                            "cannot reserve the instance pool; allocating instances on demand"
                        );
                        (
                            Engine::new(&engine_config(options.wasm_stack_bytes, None))?,
                            false,
                        )
                    }
                }
            }
        };

        let mut linker = Linker::new(&engine);
        add_granted_wasi(&mut linker)?;
        Tenant::add_to_linker::<_, HasSelf<TenantState>>(&mut linker, |state| state)?;
        v0_1::Tenant::add_to_linker::<_, HasSelf<TenantState>>(&mut linker, |state| state)?;

        let ticker = Ticker::start(&engine)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compatibility = hasher.finish();
        Ok(Arc::new(Runtime {
            engine,
            ticker,
            linker,
            compatibility,
            cache_hits: AtomicU64::new(0),
            pooled,
            wasm_stack_bytes: options.wasm_stack_bytes,
            worker: options.worker,
            compile_limits: options.compile_limits,
        }))
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The epoch's ticker: every call into a tenant's code is counted on it while it
    /// runs, and a store's epoch callback tells it when a call is interrupted.
    pub(crate) fn ticker(&self) -> &Arc<Ticker> {
        &self.ticker
    }

    /// Whether instances come from the pool reserved at start (else each is allocated
    /// when it starts).
    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// Compiles a component and checks it against the world and the granted imports.
    /// Compiling takes tens of milliseconds of CPU: when serving, use
    /// [`Runtime::compile_off_thread`].
    pub fn compile(&self, bytes: &[u8]) -> Result<Code, LoadError> {
        check_header(bytes)?;
        let component = Component::new(&self.engine, bytes)
            .map_err(|error| LoadError::Invalid(format!("{error:#}")))?;
        self.prepare(component)
    }

    /// [`Runtime::compile`], keeping the compiled form in `cache_dir` under the
    /// component's digest and this engine's compatibility hash, so a restart loads it in
    /// a fraction of a millisecond instead of compiling again. An entry whose own digest
    /// does not match its sidecar, or that this engine refuses, is rebuilt, not trusted.
    pub fn compile_cached(&self, bytes: &[u8], cache_dir: &Path) -> Result<Code, LoadError> {
        check_header(bytes)?;
        let key = format!("{}-{}", sha256_hex(bytes), self.cache_tag());
        let artifact = cache_dir.join(format!("{key}.cwasm"));
        let digest = cache_dir.join(format!("{key}.sha256"));
        if let Some(component) = self.load_cached(&artifact, &digest) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return self.prepare(component);
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|error| LoadError::Invalid(format!("{error:#}")))?;
        let code = self.prepare(component.clone())?;
        // Only what passed every check is cached; a failed write just means no cache.
        let stored = durable::create_private_dir(cache_dir).and_then(|()| {
            let serialized = component.serialize().map_err(std::io::Error::other)?;
            durable::write(&artifact, &serialized)?;
            durable::write(&digest, sha256_hex(&serialized).as_bytes())
        });
        if let Err(error) = stored {
            tracing::warn!(%error, "cannot cache a compiled component");
        }
        Ok(code)
    }

    /// Compiles on a blocking thread, so the async runtime keeps serving meanwhile
    /// (compiling takes tens of milliseconds of CPU); with `cache`, through
    /// [`Runtime::compile_cached`].
    pub async fn compile_off_thread(
        self: &Arc<Self>,
        bytes: impl AsRef<[u8]> + Send + 'static,
        cache: Option<PathBuf>,
    ) -> Result<Arc<Code>, LoadError> {
        let runtime = self.clone();
        off_thread(move || match cache {
            Some(cache) => runtime.compile_cached(bytes.as_ref(), &cache),
            None => runtime.compile(bytes.as_ref()),
        })
        .await?
        .map(Arc::new)
    }

    /// Compiles a component from someone the host does not trust (an upload, a file
    /// named in the configuration): in the compile worker, under the compile limits,
    /// when the runtime has one (else as [`Runtime::compile_off_thread`]). With `cache`,
    /// a compiled form kept there is used, and a new one kept. Dropping the future
    /// stops the compilation.
    pub async fn compile_untrusted(
        self: &Arc<Self>,
        bytes: bytes::Bytes,
        cache: Option<PathBuf>,
    ) -> Result<Arc<Code>, LoadError> {
        let Some(worker) = &self.worker else {
            return self.compile_off_thread(bytes, cache).await;
        };
        check_header(&bytes)?;
        let key = format!("{}-{}", sha256_hex(&bytes), self.cache_tag());
        let paths = cache.as_ref().map(|dir| {
            (
                dir.join(format!("{key}.cwasm")),
                dir.join(format!("{key}.sha256")),
            )
        });
        if let Some((artifact, digest)) = paths.clone() {
            let runtime = self.clone();
            let cached = off_thread(move || {
                let component = runtime.load_cached(&artifact, &digest)?;
                runtime.cache_hits.fetch_add(1, Ordering::Relaxed);
                Some(runtime.prepare(component))
            })
            .await?;
            if let Some(code) = cached {
                return code.map(Arc::new);
            }
        }
        let artifact =
            compile_in_worker(worker, self.wasm_stack_bytes, &self.compile_limits, &bytes).await?;
        let runtime = self.clone();
        off_thread(move || {
            // SAFETY: as in `load_cached`: the worker is this program, compiling with an
            // engine configured as this one (`worker_engine`); wasmtime checks the header
            // and the configuration and refuses what does not fit.
            #[allow(unsafe_code)]
            let component =
                unsafe { Component::deserialize(&runtime.engine, &artifact) }.map_err(|error| {
                    LoadError::Invalid(format!("the compiled form was refused: {error:#}"))
                })?;
            let code = runtime.prepare(component)?;
            if let (Some(dir), Some((path, digest))) = (&cache, &paths) {
                let stored = durable::create_private_dir(dir).and_then(|()| {
                    durable::write(path, &artifact)?;
                    durable::write(digest, sha256_hex(&artifact).as_bytes())
                });
                if let Err(error) = stored {
                    tracing::warn!(%error, "cannot cache a compiled component");
                }
            }
            Ok(Arc::new(code))
        })
        .await?
    }

    /// What names this engine's entries in the compiled cache (after the component's
    /// digest): another engine's are not used, and can be pruned.
    pub fn cache_tag(&self) -> String {
        format!("{:016x}", self.compatibility)
    }

    /// How many components were loaded from the cache instead of compiled.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    fn load_cached(&self, artifact: &Path, digest: &Path) -> Option<Component> {
        let bytes = std::fs::read(artifact).ok()?;
        let expected = std::fs::read_to_string(digest).ok()?;
        if sha256_hex(&bytes) != expected.trim() {
            tracing::warn!(path = %artifact.display(), "cached component does not match its digest; rebuilding");
            return None;
        }
        // SAFETY: `deserialize` trusts its input to be wasmtime's own output for this
        // engine. These bytes are what `Component::serialize` (or the compile worker's
        // `precompile_component`) wrote for an engine with the same compatibility hash
        // (it is part of the file name), checked against the digest written next to
        // them, in the host's own data directory. wasmtime still checks the header and
        // the engine configuration and refuses what does not fit.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &bytes) };
        match component {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %artifact.display(), %error, "cached component refused; rebuilding");
                None
            }
        }
    }

    /// Checks a compiled component against the granted imports and the world.
    fn prepare(&self, component: Component) -> Result<Code, LoadError> {
        for (import, _) in component.component_type().imports(&self.engine) {
            let interface = import.split('@').next().unwrap_or(import);
            if !GRANTED.contains(&interface) {
                return Err(LoadError::ForbiddenImport {
                    import: import.to_owned(),
                });
            }
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|error| LoadError::World(format!("{error:#}")))?;
        let pre = Pre::new(instance_pre).map_err(|error| LoadError::World(format!("{error:#}")))?;
        Ok(Code {
            pre,
            component,
            image_made: AtomicBool::new(false),
        })
    }
}

/// Runs loading work (reading, deserialising, preparing a component: milliseconds for a
/// large one) on a blocking thread, so the async threads keep serving meanwhile.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LoadError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| LoadError::Invalid(format!("the loader stopped: {error}")))
}

/// Links the WASI interfaces a guest's standard library or language runtime needs
/// (the JS and Python runtimes import the filesystem, CPython the sockets too), granting nothing
/// through them: the filesystem has nothing preopened, so no file can be named; the
/// sockets may not be created and names not looked up (`TenantState`'s `WasiCtx`).
/// Anything else (HTTP, for one) is not linked at all, so a component importing it is
/// refused when it is loaded, not when it first tries.
fn add_granted_wasi(linker: &mut Linker<TenantState>) -> anyhow::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

    wasmtime_wasi_io::add_to_linker_async(linker)?;
    let l = linker;
    type T = TenantState;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    let network = sockets::network::LinkOptions::default();
    sockets::network::add_to_linker::<T, WasiSockets>(l, &network, T::sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Arc<Runtime> {
        Runtime::new().expect("the engine starts")
    }

    fn compile_err(bytes: &[u8]) -> LoadError {
        match runtime().compile(bytes) {
            Ok(_) => panic!("expected the component to be refused"),
            Err(error) => error,
        }
    }

    #[test]
    fn instances_come_from_a_pool_unless_it_is_turned_off() {
        assert!(runtime().pooled());
        let on_demand = Runtime::with_options(RuntimeOptions {
            live_instances: 0,
            ..RuntimeOptions::default()
        })
        .expect("the engine starts");
        assert!(!on_demand.pooled());
    }

    #[test]
    fn garbage_and_core_modules_are_not_components() {
        assert!(matches!(
            compile_err(b"not wasm at all"),
            LoadError::NotWasm
        ));
        assert!(matches!(compile_err(b""), LoadError::NotWasm));
        let core = wat::parse_str("(module)").expect("valid wat");
        assert!(matches!(compile_err(&core), LoadError::CoreModule));
        let mut truncated = wat::parse_str("(component)").expect("valid wat");
        truncated.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(compile_err(&truncated), LoadError::Invalid(_)));
    }

    #[test]
    fn a_component_without_the_exports_does_not_fit_the_world() {
        let empty = wat::parse_str("(component)").expect("valid wat");
        let error = compile_err(&empty);
        assert!(matches!(error, LoadError::World(_)), "{error}");
        assert!(
            error.to_string().contains("nsbox:tenant/handlers@0.2.3"),
            "{error}"
        );
    }

    #[test]
    fn imports_the_host_does_not_grant_are_refused_by_name() {
        for import in [
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:http/types@0.2.6",
            "wasi:nn/inference@0.2.0-rc-2024-10-28",
        ] {
            let text = format!(r#"(component (import "{import}" (instance (export "f" (func)))))"#);
            let component = wat::parse_str(&text).expect("valid wat");
            let error = compile_err(&component);
            assert!(
                matches!(error, LoadError::ForbiddenImport { .. }),
                "{error}"
            );
            assert!(error.to_string().contains(import), "{error}");
        }
    }

    #[cfg(feature = "builtin-tenants")]
    #[test]
    fn the_compiled_cache_is_used_and_a_tampered_entry_rebuilt() {
        let runtime = runtime();
        let dir = std::env::temp_dir().join(format!("nsbox-cache-{}", rand::random::<u64>()));
        let echo = super::super::builtin::component("echo").expect("built in");
        assert!(runtime.compile_cached(echo, &dir).is_ok());
        assert_eq!(runtime.cache_hits(), 0);
        assert!(runtime.compile_cached(echo, &dir).is_ok());
        assert_eq!(runtime.cache_hits(), 1);
        // Flip a byte of the artifact: the digest no longer matches, so it is rebuilt.
        let artifact = std::fs::read_dir(&dir)
            .expect("the cache")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .expect("an artifact");
        let mut bytes = std::fs::read(&artifact).expect("readable");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&artifact, bytes).expect("tampered");
        assert!(runtime.compile_cached(echo, &dir).is_ok());
        assert_eq!(runtime.cache_hits(), 1, "the tampered entry was not used");
        assert!(runtime.compile_cached(echo, &dir).is_ok());
        assert_eq!(runtime.cache_hits(), 2, "and was rebuilt");
        // A bad component is refused before the cache is consulted or filled.
        assert!(matches!(
            runtime.compile_cached(b"junk", &dir),
            Err(LoadError::NotWasm)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The inodes of wasmtime's heap images (memfds) this process holds.
    fn heap_images() -> std::collections::BTreeSet<u64> {
        use std::os::unix::fs::MetadataExt;
        let fds = std::fs::read_dir("/proc/self/fd").expect("/proc is mounted");
        fds.flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.to_string_lossy().contains("wasm-memory-image"))
            })
            .filter_map(|fd| std::fs::metadata(fd.path()).ok())
            .map(|meta| meta.ino())
            .collect()
    }

    #[cfg(feature = "builtin-tenants")]
    #[tokio::test]
    async fn make_image_makes_the_heap_image_its_instances_map() {
        let echo = super::super::builtin::component("echo").expect("built in");
        let code = runtime()
            .compile_off_thread(echo, None)
            .await
            .expect("compiles");
        // Other tests running beside this one may make images too, never remove this one.
        let loaded = heap_images();
        code.make_image().await;
        let made = heap_images();
        assert!(
            made.difference(&loaded).count() >= 1,
            "no new image: {loaded:?} -> {made:?}"
        );
    }

    #[cfg(feature = "builtin-tenants")]
    #[test]
    fn the_example_tenants_compile() {
        let runtime = runtime();
        for name in super::super::builtin::names() {
            let bytes = super::super::builtin::component(name).expect("built in");
            let code = runtime
                .compile(bytes)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(code.contract(), Contract::V0_2_3, "{name}");
            // Its optional exports, at 0.2.3, are found by their earliest version.
            assert_eq!(
                code.pre.optional_exports(),
                [
                    "on-server-event",
                    "on-sockets-fetched",
                    "on-broadcast-replies",
                    "on-recovered"
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn a_component_built_for_0_1_0_is_still_served() {
        // The echo example as the SDK built it for nsbox:tenant@0.1.0, kept as it was.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/echo-0.1.0.wasm"
        );
        let bytes = std::fs::read(path).expect("the 0.1.0 fixture");
        let code = runtime().compile(&bytes).expect("a 0.1.0 component loads");
        assert_eq!(code.contract(), Contract::V0_1);
        assert_eq!(code.contract().as_str(), "0.1.0");
    }

    #[test]
    fn a_component_built_for_0_2_0_is_served_under_0_2_3() {
        // The echo example as the SDK built it for nsbox:tenant@0.2.0: its imports are
        // found at 0.2.3, and it has no optional exports to call.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/echo-0.2.0.wasm"
        );
        let bytes = std::fs::read(path).expect("the 0.2.0 fixture");
        let code = runtime().compile(&bytes).expect("a 0.2.0 component loads");
        assert_eq!(code.contract(), Contract::V0_2);
        assert_eq!(code.contract().as_str(), "0.2.0");
        assert!(code.pre.optional_exports().is_empty());
    }

    #[test]
    fn a_component_built_for_0_2_1_is_served_under_0_2_3() {
        // The echo example as the SDK built it for nsbox:tenant@0.2.1: its imports are
        // found at 0.2.3, its cluster-handlers are called, and it has no
        // broadcast-handlers to call.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/echo-0.2.1.wasm"
        );
        let bytes = std::fs::read(path).expect("the 0.2.1 fixture");
        let code = runtime().compile(&bytes).expect("a 0.2.1 component loads");
        assert_eq!(code.contract(), Contract::V0_2_1);
        assert_eq!(
            code.pre.optional_exports(),
            ["on-server-event", "on-sockets-fetched"]
        );
    }

    #[test]
    fn a_component_built_for_0_2_2_is_served_under_0_2_3() {
        // The echo example as the SDK built it for nsbox:tenant@0.2.2: its imports are
        // found at 0.2.3, and it has no recovery-handlers to call.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/echo-0.2.2.wasm"
        );
        let bytes = std::fs::read(path).expect("the 0.2.2 fixture");
        let code = runtime().compile(&bytes).expect("a 0.2.2 component loads");
        assert_eq!(code.contract(), Contract::V0_2_2);
        assert_eq!(
            code.pre.optional_exports(),
            [
                "on-server-event",
                "on-sockets-fetched",
                "on-broadcast-replies"
            ]
        );
    }

    #[tokio::test]
    async fn a_compile_worker_that_cannot_start_is_the_hosts_failure() {
        let options = RuntimeOptions {
            worker: Some(Worker {
                program: "/nonexistent/nsbox-compile-worker".into(),
                args: Vec::new(),
            }),
            live_instances: 0,
            ..RuntimeOptions::default()
        };
        let runtime = Runtime::with_options(options).expect("the engine starts");
        let echo = super::super::builtin::component("echo").expect("built in");
        match runtime.compile_untrusted(echo.to_vec().into(), None).await {
            Err(error @ LoadError::Compiler(_)) => {
                assert_eq!(error.code(), "compiler_failed");
                assert!(error.to_string().contains("cannot start"), "{error}");
            }
            Err(other) => panic!("expected the compiler's failure, got {other}"),
            Ok(_) => panic!("compiled without a worker"),
        }
    }
}
