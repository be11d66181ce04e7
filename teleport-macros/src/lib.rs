//! Procedural macros for [`teleport`](https://docs.rs/teleport).
//!
//! Use them through the `teleport` crate (`teleport::service`), not
//! directly. The macro is a pipeline: `ast` reads the trait into a model
//! that keeps the original spans, `check` validates it and collects every
//! error, `expand` generates the trait, the client and the server, with
//! `naming` deriving the URIs; every stage reports into `errors`.
#![doc(test(attr(deny(warnings))))]

mod ast;
mod check;
mod errors;
mod expand;
mod naming;

use proc_macro::TokenStream;

#[doc = include_str!("service.md")]
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::service(args.into(), input.into()).into()
}
