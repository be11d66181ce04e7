//! Compile-time behaviour of `#[teleport::service]`: each mistake a user can
//! make fails with a message at its span (`ui/fail`, with the expected
//! `.stderr` checked in), and correct services compile clean under strict
//! lints (`ui/pass`).
//!
//! After changing a message, regenerate with
//! `TRYBUILD=overwrite cargo test -p teleport-tests --test service_ui` and
//! review the diff of the `.stderr` files.

#[test]
fn service_macro_mistakes_fail_with_precise_errors_and_correct_services_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/fail/*.rs");
    cases.pass("ui/pass/*.rs");
}
