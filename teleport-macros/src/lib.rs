//! Procedural macros for [`teleport`](https://docs.rs/teleport).
//!
//! Use them through the `teleport` crate (`teleport::service`), not directly.
