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
