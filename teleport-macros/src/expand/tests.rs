//! Snapshot of what the macro generates, checked in for review next to the
//! code that generates it. Regenerate with
//! `UPDATE_SNAPSHOTS=1 cargo test -p teleport-macros` (then `rustfmt` it).

use quote::{ToTokens, quote};

/// The two-method trait of the snapshot.
fn two_methods() -> proc_macro2::TokenStream {
    super::service(
        quote!(),
        quote! {
            /// A home.
            pub trait Home {
                /// Echoes the text back.
                async fn echo(&self, ctx: teleport::Ctx, text: String) -> Result<String, teleport::Status>;
                /// Leaves a note.
                #[push]
                async fn note(&self, from: String, text: String);
            }
        },
    )
}

#[test]
fn two_method_expansion_matches_the_snapshot() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/expand/snapshots/two_methods.rs"
    );
    let generated = two_methods();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, format!("{generated}\n")).unwrap();
    }
    let snapshot = std::fs::read_to_string(path).unwrap();
    let snapshot: syn::File = syn::parse_str(&snapshot).unwrap();
    // Compared as token streams, so the snapshot can be formatted freely
    // (rustfmt adds trailing commas, which are dropped on both sides).
    let file: syn::File = syn::parse2(generated).unwrap();
    assert_eq!(
        without_trailing_commas(&file.to_token_stream().to_string()),
        without_trailing_commas(&snapshot.to_token_stream().to_string()),
        "the expansion changed: rerun with UPDATE_SNAPSHOTS=1, rustfmt the snapshot, review the diff"
    );
}

fn without_trailing_commas(tokens: &str) -> String {
    tokens
        .replace(" ,)", ")")
        .replace(", )", ")")
        .replace(" , }", " }")
        .replace(" ,]", "]")
        .replace(" , >", " >")
}

#[test]
fn invalid_traits_expand_to_the_trait_and_the_errors_only() {
    let out = super::service(
        quote!(),
        quote! {
            trait Home {
                async fn echo(&self, ctx: &Ctx);
                #[push] async fn note(&self) -> u8;
            }
        },
    )
    .to_string();
    assert!(out.starts_with("trait Home"), "{out}");
    assert_eq!(out.matches("compile_error").count(), 2, "{out}");
    assert!(!out.contains("HomeClient"), "{out}");
    assert!(
        !out.contains("# [push]"),
        "the macro's attribute is taken off: {out}"
    );
}

#[test]
fn non_trait_input_is_refused_with_advice() {
    let out = super::service(
        quote!(),
        quote!(
            struct Home;
        ),
    )
    .to_string();
    assert!(
        out.contains("goes on a trait of `async fn` and `fn` methods"),
        "{out}"
    );
}

#[test]
fn arguments_travel_as_the_body_a_tuple_or_unit() {
    let out = super::service(
        quote!(group = "/g"),
        quote! {
            trait Shapes {
                async fn none(&self);
                async fn one(&self, a: u8);
                async fn two(&self, a: u8, b: u16);
                #[uri = "/custom"]
                async fn custom(&self);
            }
        },
    )
    .to_string();
    assert!(out.contains("pull_with (& self . caller , :: teleport :: __private :: uri_at (& self . uris , 0usize , \"/g/shapes/none\") , & ()"), "{out}");
    assert!(
        out.contains("pull_owned (& self . caller , :: teleport :: __private :: uri_at (& self . uris , 1usize , \"/g/shapes/one\") , a ,"),
        "one argument is handed over: {out}"
    );
    assert!(
        out.contains("uri_at (& self . uris , 2usize , \"/g/shapes/two\") , & (a , b) ,"),
        "{out}"
    );
    assert!(out.contains("\"/custom\""), "{out}");
    assert!(!out.contains("/g/shapes/custom"), "{out}");
    assert!(
        out.contains("uris : :: teleport :: __private :: uris (& prefix , & self . query , & [\"/g/shapes/none\" , \"/g/shapes/one\" , \"/g/shapes/two\" , \"/custom\"])"),
        "a prefixed client composes every route's URI once, in the order the methods index them: {out}"
    );
}

#[test]
fn idempotent_pulls_go_through_the_retrying_call() {
    let out = super::service(
        quote!(),
        quote! {
            trait Counter {
                #[idempotent]
                async fn get(&self) -> u64;
                async fn bump(&self) -> u64;
            }
        },
    )
    .to_string();
    assert!(out.contains("Caller :: pull_idempotent (& self . caller , :: teleport :: __private :: uri_at (& self . uris , 0usize , \"/counter/get\""), "{out}");
    assert!(out.contains("Caller :: pull_with (& self . caller , :: teleport :: __private :: uri_at (& self . uris , 1usize , \"/counter/bump\""), "{out}");
    assert!(
        !out.contains("# [idempotent]"),
        "the attribute is taken off the trait: {out}"
    );
}

#[test]
fn plain_fn_methods_stay_as_written_and_register_synchronous_routes() {
    let out = super::service(
        quote!(),
        quote! {
            trait Home {
                fn echo(&self, ctx: &Ctx, text: String) -> String;
                #[push]
                fn note(&self, ctx: Ctx, text: String);
                async fn wait(&self) -> u8;
            }
        },
    )
    .to_string();
    assert!(
        out.contains("fn echo (& self , ctx : & Ctx , text : String) -> String ;"),
        "a plain fn is not rewritten: {out}"
    );
    assert!(
        out.contains("fn wait (& self) -> impl :: teleport :: __private :: Future < Output = u8 >"),
        "an async fn is: {out}"
    );
    assert!(out.contains(". pull_sync (\"/home/echo\""), "{out}");
    assert!(out.contains(". push_sync (\"/home/note\""), "{out}");
    assert!(out.contains(". pull (\"/home/wait\""), "{out}");
    assert!(
        out.contains(":: core :: clone :: Clone :: clone (ctx)"),
        "a plain fn that takes the context by value gets a clone: {out}"
    );
    // The client is the same for both: every call is async on its side.
    assert!(
        out.contains("async fn echo (& self , text : String)"),
        "{out}"
    );
}
