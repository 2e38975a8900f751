//! Fuzzes the CEL filter compiler and evaluator: any text compiles or is refused with a typed
//! error, never a panic or a stack overflow; whatever compiles evaluates (to a boolean or a
//! typed error) within its iteration budget, on a fixed event and on one the input shapes.
//!
//! The input is the filter text, optionally followed by a NUL byte and a JSON payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use switchyard_runtime_events::{Event, Filter, FilterLimits};

fuzz_target!(|input: &[u8]| {
    let (text, payload) = match input.iter().position(|&b| b == 0) {
        Some(at) => (&input[..at], Some(&input[at + 1..])),
        None => (input, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    // A small budget, so an evaluation that ran past it would show as a slow input.
    let limits = FilterLimits {
        max_iterations: 10_000,
        ..FilterLimits::default()
    };
    let Ok(filter) = Filter::compile_with(text, &limits) else {
        return;
    };
    let fixed = Event::new(
        "s",
        "issue.created",
        json!({"n": 3, "s": "text", "list": [1, 2, 3], "map": {"a": 1}, "nested": {"x": [{"y": true}]}}),
    );
    let _ = filter.matches(&fixed);
    if let Some(data) = payload.and_then(|p| serde_json::from_slice(p).ok()) {
        let _ = filter.matches(&Event::new("s", "t", data));
    }
});
