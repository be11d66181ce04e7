//! Compile-time behaviour of `#[teleport::service]`: each mistake a user can
//! make fails with a message at its span (`fail/`, with the expected
//! `.stderr` checked in). The correct services of `pass/` are test targets
//! of this package of their own (see `Cargo.toml`), compiled under strict
//! lints and run.
//!
//! All fail cases go to trybuild in one batch, which it checks with a single
//! `cargo check` of its scratch project.
//!
//! After changing a message, regenerate with
//! `TRYBUILD=overwrite cargo test -p teleport-ui-tests --test service_ui` and
//! review the diff of the `.stderr` files.

#[test]
fn service_macro_mistakes_fail_with_precise_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("fail/*.rs");
}
