//! End-to-end tests across Switchyard crates live in `tests/`; this library is empty on purpose.
#![deny(missing_docs)]
