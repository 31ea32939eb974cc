//! The `rules:if` expression language: parse and evaluate. Input: the expression, then
//! optionally a NUL and `NAME=value` lines defining variables.
#![no_main]

use chatops_ci::{eval_expression, Variables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (expr, defs) = text.split_once('\0').unwrap_or((&text, ""));
    let mut vars = Variables::new();
    for line in defs.lines() {
        if let Some((name, value)) = line.split_once('=') {
            vars.insert(name, value);
        }
    }
    let _ = eval_expression(expr, &vars);
});
