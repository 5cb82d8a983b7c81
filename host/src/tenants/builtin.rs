//! The example tenants built into the binary (feature `builtin-tenants`), named in a
//! configuration as `builtin:echo`, `builtin:admin`, `builtin:chat`, `builtin:bench`,
//! `builtin:countdown`, and `builtin:hostile_panic` (traps on `boom`, for the demo page).

#[cfg(feature = "builtin-tenants")]
const BUILTIN: &[(&str, &[u8])] = &[
    (
        "echo",
        include_bytes!(concat!(env!("NSBOX_EXAMPLES_DIR"), "/echo.wasm")),
    ),
    (
        "admin",
        include_bytes!(concat!(env!("NSBOX_EXAMPLES_DIR"), "/admin.wasm")),
    ),
    (
        "chat",
        include_bytes!(concat!(env!("NSBOX_EXAMPLES_DIR"), "/chat.wasm")),
    ),
    (
        "bench",
        include_bytes!(concat!(env!("NSBOX_EXAMPLES_DIR"), "/bench.wasm")),
    ),
    (
        "countdown",
        include_bytes!(concat!(env!("NSBOX_EXAMPLES_DIR"), "/countdown.wasm")),
    ),
    (
        "hostile_panic",
        include_bytes!(concat!(env!("NSBOX_EXAMPLES_DIR"), "/hostile_panic.wasm")),
    ),
];

#[cfg(not(feature = "builtin-tenants"))]
const BUILTIN: &[(&str, &[u8])] = &[];

/// The component of a built-in example tenant.
pub fn component(name: &str) -> Option<&'static [u8]> {
    BUILTIN
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, bytes)| *bytes)
}

/// The names of the built-in tenants.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// Where the build put the embedded example components; for tests.
#[doc(hidden)]
pub const EXAMPLES_DIR: Option<&str> = option_env!("NSBOX_EXAMPLES_DIR");
