//! Components built by hand: they implement the `nsbox:tenant` world (so they pass
//! every check an upload makes) but misbehave while being instantiated, before any
//! export is called, which the SDK cannot express. Each is the generated skeleton of
//! the world (every export `unreachable`) plus a few module fields of WAT.

use std::path::Path;

use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve};

/// The ways an instantiation can go wrong, as module fields added to the skeleton.
pub const HOSTILE_STARTS: &[(&str, &str)] = &[
    // A start function that never returns.
    (
        "startloop",
        "(func $forever (loop $again (br $again))) (start $forever)",
    ),
    // A start function that recurses without end (wasm calls, no shadow stack).
    ("startrecurse", "(func $down (call $down)) (start $down)"),
    // A start function that traps.
    ("starttrap", "(func $boom unreachable) (start $boom)"),
    // A start function that grows memory to 128 MiB.
    (
        "startgrow",
        "(func $grow (drop (memory.grow (i32.const 2048)))) (start $grow)",
    ),
    // A data segment far beyond the memory it initialises.
    ("bigdata", r#"(data (i32.const 100000000) "nsbox")"#),
    // A table far beyond the element limit, allocated before anything runs.
    ("bigtable", "(table 1000000 funcref)"),
    // More memories than an instance may have.
    (
        "memories",
        "(memory 1) (memory 1) (memory 1) (memory 1) (memory 1) (memory 1) (memory 1) (memory 1)",
    ),
];

/// Components that are valid tenants but costly to compile, by name: each is the
/// skeleton plus one shape the compile limits are there for.
pub fn costly_components() -> Vec<(&'static str, String)> {
    // One function of 20,000 nested blocks (the default nesting limit is 10,000).
    let nested = format!("(func {}{})", "(block ".repeat(20_000), ")".repeat(20_000));
    // One function of 11,000 locals (the default limit is 10,000).
    let locals = format!("(func (local {}))", "i64 ".repeat(11_000));
    // 9,000 locals all live around a loop: within the shape limits, seconds of
    // register allocation for 90 KB.
    let n = 9_000;
    let mut body = String::from("(loop $again ");
    for i in 0..n {
        body += &format!(
            "(local.set {i} (i64.add (local.get {i}) (local.get {})))",
            (i + 1) % n
        );
    }
    body += "(br_if $again (i64.ne (local.get 0) (i64.const 0))))";
    let looping = format!("(func (local {}) {body})", "i64 ".repeat(n));
    // 99,000 small functions (the skeleton has a few more; the limit is 100,000): 1 MB
    // that takes the compiler about 9 s of CPU and 470 MB.
    let functions: String = (0..99_000)
        .map(|i| format!("(func (result i32) (i32.add (i32.const {i}) (i32.const 1)))"))
        .collect();
    vec![
        ("nested", nested),
        ("locals", locals),
        ("looping", looping),
        ("functions", functions),
    ]
}

/// Writes every costly component into `dir` as `<name>.wasm`.
pub fn write_costly_components(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    for (name, fields) in costly_components() {
        std::fs::write(dir.join(format!("{name}.wasm")), component(&fields)?)?;
    }
    Ok(())
}

/// The tenant world's skeleton with `fields` added, as a component.
pub fn component(fields: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut resolve = Resolve::new();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let (package, _) = resolve.push_path(&wit)?;
    let world = resolve.select_world(&[package], Some("tenant"))?;
    let skeleton =
        wit_component::dummy_module(&resolve, world, ManglingAndAbi::Legacy(LiftLowerAbi::Sync));
    let text = wasmprinter::print_bytes(&skeleton)?;
    let end = text.rfind(')').ok_or("the skeleton is not a module")?;
    let mut module = wat::parse_str(format!("{}\n{fields}\n)", &text[..end]))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        StringEncoding::UTF8,
        false,
    )?;
    Ok(ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .encode()?)
}

/// A component that imports `import` (an interface the host does not link, such as
/// `wasi:http/outgoing-handler@0.2.6`) and nothing else.
pub fn importing(import: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let text = format!(r#"(component (import "{import}" (instance (export "handle" (func)))))"#);
    Ok(wat::parse_str(text)?)
}

/// Writes every hostile start into `dir` as `<name>.wasm`; returns the names.
pub fn write_hostile_starts(dir: &Path) -> Result<Vec<&'static str>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    for (name, fields) in HOSTILE_STARTS {
        std::fs::write(dir.join(format!("{name}.wasm")), component(fields)?)?;
    }
    Ok(HOSTILE_STARTS.iter().map(|(name, _)| *name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skeleton_alone_is_a_valid_tenant_component() {
        let bytes = component("").expect("a component");
        assert_eq!(&bytes[..4], b"\0asm");
        let runtime = nsbox::tenants::Runtime::new().expect("a runtime");
        runtime.compile(&bytes).expect("passes the world check");
    }
}
