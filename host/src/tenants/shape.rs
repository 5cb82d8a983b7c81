//! The shape of a component, checked before it is compiled: how many functions, how
//! big each is, how many locals, how deep its blocks nest and its operand stack grows.
//! A valid component can be built to make the compiler spend minutes and gigabytes
//! (a million nested blocks, 50,000 live locals, a 7 MB function); these bounds
//! refuse such shapes in one linear pass, before any compilation starts. (The
//! compiler still runs in a child process with memory and CPU limits: the bounds are
//! the cheap first line, not the only one.)

use serde::{Deserialize, Serialize};
use wasmparser::{
    FuncValidatorAllocations, OperatorsReader, Parser, ValType, ValidPayload, Validator,
};

/// What compiling one upload may cost: its shape, checked first, and the compiler's
/// memory and CPU time, enforced on the child process that compiles it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompileLimits {
    /// Address space of the compiling process, in bytes.
    pub memory_bytes: u64,
    /// CPU time of the compiling process (all its threads), in milliseconds.
    pub cpu_ms: u64,
    /// Functions defined in all of the component's core modules together.
    pub functions: u64,
    /// Bytes of one function's body.
    pub function_bytes: u64,
    /// Locals of one function (its parameters aside).
    pub locals: u64,
    /// How deep blocks, loops and ifs may nest in one function.
    pub nesting: u32,
    /// How many values one function's operand stack may hold at once.
    pub operand_stack: u32,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            memory_bytes: 2 << 30,
            cpu_ms: 60_000,
            functions: 100_000,
            function_bytes: 4 << 20,
            locals: 10_000,
            nesting: 10_000,
            operand_stack: 10_000,
        }
    }
}

/// Why a component's shape was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// It does not parse or validate.
    #[error("{0}")]
    Invalid(String),
    /// It is beyond one of the [`CompileLimits`].
    #[error("{what}: more than {limit} (compile limits)")]
    Beyond {
        /// What was counted, e.g. `functions in the component`.
        what: String,
        /// The limit.
        limit: u64,
    },
}

impl From<wasmparser::BinaryReaderError> for ShapeError {
    fn from(error: wasmparser::BinaryReaderError) -> Self {
        ShapeError::Invalid(error.to_string())
    }
}

/// Checks `bytes` (a component) against the shape limits, validating it as it goes.
pub fn check(bytes: &[u8], limits: &CompileLimits) -> Result<(), ShapeError> {
    let mut validator = Validator::new();
    let mut functions = 0u64;
    let mut allocs = FuncValidatorAllocations::default();
    for payload in Parser::new(0).parse_all(bytes) {
        let ValidPayload::Func(func, body) = validator.payload(&payload?)? else {
            continue;
        };
        functions += 1;
        beyond("functions in the component", functions, limits.functions)?;
        let index = func.index;
        let size = body.range().len() as u64;
        beyond(
            &format!("bytes in function {index}"),
            size,
            limits.function_bytes,
        )?;
        let mut reader = body.get_binary_reader();
        let mut validator = func.into_validator(allocs);
        let mut locals = 0u64;
        for _ in 0..reader.read_var_u32()? {
            let offset = reader.original_position();
            let count = reader.read_var_u32()?;
            let ty: ValType = reader.read()?;
            locals += u64::from(count);
            beyond(
                &format!("locals in function {index}"),
                locals,
                limits.locals,
            )?;
            validator.define_locals(offset, count, ty)?;
        }
        let mut operators = OperatorsReader::new(reader);
        while !operators.eof() {
            let offset = operators.original_position();
            validator.op(offset, &operators.read()?)?;
            let nesting = validator.control_stack_height();
            beyond(
                &format!("nesting depth in function {index}"),
                u64::from(nesting),
                u64::from(limits.nesting),
            )?;
            let stack = validator.operand_stack_height();
            beyond(
                &format!("operand stack in function {index}"),
                u64::from(stack),
                u64::from(limits.operand_stack),
            )?;
        }
        operators.finish()?;
        allocs = validator.into_allocations();
    }
    Ok(())
}

fn beyond(what: &str, count: u64, limit: u64) -> Result<(), ShapeError> {
    if count > limit {
        return Err(ShapeError::Beyond {
            what: what.to_owned(),
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with one function of `body` (WAT), wrapped in a component.
    fn component(body: &str) -> Vec<u8> {
        let wat =
            format!("(component (core module (func {body})) (core instance (instantiate 0)))");
        wat::parse_str(wat).expect("valid WAT")
    }

    fn limits() -> CompileLimits {
        CompileLimits {
            functions: 3,
            function_bytes: 1000,
            locals: 10,
            nesting: 8,
            operand_stack: 5,
            ..CompileLimits::default()
        }
    }

    #[test]
    fn shapes_within_the_limits_pass() {
        let body = "(local i32 i32) (block (block (drop (i32.add (i32.const 1) (i32.const 2)))))";
        assert_eq!(check(&component(body), &limits()), Ok(()));
    }

    #[test]
    fn each_limit_refuses_what_is_beyond_it() {
        let nested = format!("{}{}", "(block ".repeat(9), ")".repeat(9));
        let deep_stack = format!("{}{}", "(i32.const 0)".repeat(6), "(drop)".repeat(6));
        let long = "(nop)".repeat(1001);
        for (body, says) in [
            (
                "(local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)",
                "locals",
            ),
            (nested.as_str(), "nesting"),
            (deep_stack.as_str(), "operand stack"),
            (long.as_str(), "bytes in function"),
        ] {
            match check(&component(body), &limits()) {
                Err(ShapeError::Beyond { what, .. }) => assert!(what.contains(says), "{what}"),
                other => panic!("{says}: {other:?}"),
            }
        }
        let four = wat::parse_str(
            "(component (core module (func) (func) (func) (func)) (core instance (instantiate 0)))",
        )
        .expect("valid WAT");
        assert!(matches!(
            check(&four, &limits()),
            Err(ShapeError::Beyond { what, .. }) if what.contains("functions")
        ));
    }

    #[test]
    fn what_does_not_validate_is_invalid() {
        assert!(matches!(
            check(&component("(drop)"), &limits()),
            Err(ShapeError::Invalid(_))
        ));
        assert!(matches!(
            check(b"\0asm garbage", &limits()),
            Err(ShapeError::Invalid(_))
        ));
    }
}
