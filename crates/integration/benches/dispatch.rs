//! Dispatch benchmark (filled in once the crate builds).
fn main() {}
