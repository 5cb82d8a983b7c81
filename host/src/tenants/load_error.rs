//! Why a component could not be loaded, with a stable code for APIs and scripts.

/// Why a component could not be loaded; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error(
        "not WebAssembly (no \\0asm header): upload the .wasm file cargo built for wasm32-wasip2"
    )]
    NotWasm,
    /// A core module, not a component.
    #[error("a core WebAssembly module, not a component: build with `--target wasm32-wasip2`, or wrap the module with `wasm-tools component new`")]
    CoreModule,
    /// Larger than the limit.
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// It imports an interface the host does not grant.
    #[error("the component imports `{import}`, which nsbox does not grant (tenants get wasi:io, wasi:clocks, wasi:random, wasi:cli, wasi:filesystem with nothing in it, wasi:sockets that may reach nothing, wasi:keyvalue, wasi:config and nsbox:tenant's interfaces): remove what uses it")]
    ForbiddenImport {
        /// The import's name.
        import: String,
    },
    /// The bytes do not validate or compile.
    #[error("not a valid component: {0}")]
    Invalid(String),
    /// The compile worker could not be started or stopped unexpectedly: the host's
    /// problem, not the component's.
    #[error(
        "the compiler failed (not the component's fault; try again, or tell the operator): {0}"
    )]
    Compiler(String),
    /// Compiling it would cost more than the compile limits allow (its shape, or the
    /// compiler's memory or CPU time).
    #[error("the component is too costly to compile: {0}")]
    CompileLimit(String),
    /// It does not export the `nsbox:tenant` world, or its imports have other types.
    #[error("the component does not fit the nsbox:tenant world, 0.2 or 0.1.0 (build it with the nsbox-guest SDK of this version): {0}")]
    World(String),
}

impl LoadError {
    /// A stable code for APIs and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::NotWasm => "not_wasm",
            LoadError::CoreModule => "core_module",
            LoadError::TooLarge { .. } => "too_large",
            LoadError::ForbiddenImport { .. } => "forbidden_import",
            LoadError::Invalid(_) => "invalid",
            LoadError::CompileLimit(_) => "compile_limit",
            LoadError::Compiler(_) => "compiler_failed",
            LoadError::World(_) => "wrong_world",
        }
    }
}
