//! Validate: every rule a service trait must follow, each broken rule
//! reported at the span of what broke it, with what to do instead. All
//! errors are collected (with `syn::Error::combine`) so the user sees every
//! mistake at once.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::visit::Visit;
use syn::{Pat, Type};

use crate::ast::{Kind, Method, Service};
use crate::errors::Errors;
use crate::naming;

/// Checks the whole service.
pub(crate) fn check(service: &Service, errors: &mut Errors) {
    let item = &service.item;
    if let Some(unsafety) = &item.unsafety {
        errors.at(unsafety.span, "a service trait cannot be `unsafe`");
    }
    if let Some(auto) = &item.auto_token {
        errors.at(auto.span, "a service trait cannot be an `auto` trait");
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.over(
            &item.generics,
            "a service trait cannot be generic: every route needs one concrete argument and reply type",
        );
    }
    for item in &service.non_methods {
        errors.over(
            item,
            "a service trait holds only methods (`async fn` or `fn`): move this item out of the trait",
        );
    }
    if let Some(group) = &service.group {
        if let Some(problem) = naming::group_problem(&group.value()) {
            errors.at(group.span(), format_args!("the group prefix {problem}"));
        }
    }
    for method in &service.methods {
        check_method(method, errors);
    }
    check_duplicate_uris(service, errors);
}

fn check_method(method: &Method, errors: &mut Errors) {
    let sig = &method.sig;
    let name = &sig.ident;
    if let Some(c) = &sig.constness {
        errors.at(c.span, "service methods cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        errors.at(u.span, "service methods cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.over(abi, "service methods cannot have an `extern` ABI");
    }
    if let Some(v) = &sig.variadic {
        errors.over(v, "service methods cannot be variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.over(
            &sig.generics,
            "service methods cannot be generic: the argument is decoded from the wire into one concrete type",
        );
    }
    if naming::CLIENT_RESERVED.iter().any(|r| name == r) {
        errors.at(
            name.span(),
            format_args!(
                "a method named `{name}` would collide with the generated client's own `{name}`: rename it (`#[uri = \"...\"]` keeps any route you need)"
            ),
        );
    }
    check_receiver(method, errors);
    check_args(method, errors);
    check_reply(method, errors);
    if let Some(uri) = &method.uri {
        if let Some(problem) = naming::uri_problem(&uri.value()) {
            errors.at(uri.span(), format_args!("the URI {problem}"));
        }
    }
}

fn check_receiver(method: &Method, errors: &mut Errors) {
    const WHY: &str = "the implementation is shared by every session behind an `Arc`; keep mutable state in a `Mutex` or atomics";
    match &method.receiver {
        None => errors.at(
            method.sig.paren_token.span.join(),
            format_args!(
                "service methods take `&self` first: write `{}(&self, ...)`; {WHY}",
                method.sig.ident
            ),
        ),
        Some(r) => {
            let is_ref_self = r.reference.is_some()
                && r.mutability.is_none()
                && r.colon_token.is_none()
                && r.reference
                    .as_ref()
                    .is_some_and(|(_, lifetime)| lifetime.is_none());
            if !is_ref_self {
                errors.over(
                    r,
                    format_args!(
                        "service methods take `&self`, not `{}`: {WHY}",
                        receiver_text(r)
                    ),
                );
            }
        }
    }
}

/// How a receiver reads in source (`&mut self`, `self: Arc<Self>`).
fn receiver_text(r: &syn::Receiver) -> String {
    let mut text = String::new();
    if let Some((_, lifetime)) = &r.reference {
        text.push('&');
        if let Some(lifetime) = lifetime {
            text.push_str(&format!("{lifetime} "));
        }
    }
    if r.mutability.is_some() {
        text.push_str("mut ");
    }
    text.push_str("self");
    if r.colon_token.is_some() {
        text.push_str(": ");
        text.push_str(&type_text(&r.ty));
    }
    text
}

/// How a type reads in source, near enough for a message.
fn type_text(ty: &Type) -> String {
    quote::quote!(#ty)
        .to_string()
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
}

fn check_args(method: &Method, errors: &mut Errors) {
    for (i, arg) in method.args.iter().enumerate() {
        if arg.name().is_none() {
            let hint = match &arg.pat {
                Pat::Wild(_) => "give it a name",
                _ => "bind it to a name and destructure it in the body",
            };
            errors.over(
                &arg.pat,
                format_args!(
                    "the generated client needs a plain name for every argument: {hint}, e.g. `arg: {}`",
                    type_text(&arg.ty)
                ),
            );
        }
        if arg.is_ctx && i != 0 {
            errors.over(
                &arg.ty,
                "the call context must be the first parameter after `&self`",
            );
        }
        if arg.ctx_by_ref && method.is_async() {
            errors.over(
                &arg.ty,
                "an `async fn` takes the call context by value, `ctx: Ctx`: its future outlives the call's borrow (a plain `fn` may take `&Ctx`)",
            );
        }
        if !arg.is_ctx {
            check_owned(&arg.ty, "argument", errors);
        }
    }
}

fn check_reply(method: &Method, errors: &mut Errors) {
    if let (Kind::Push, Some(span)) = (method.kind, method.idempotent) {
        errors.at(
            span,
            "`#[idempotent]` marks a pull that may be resent after a connection failure; a `#[push]` is never resent once written: remove `#[idempotent]`",
        );
    }
    if let syn::ReturnType::Type(_, ty) = &method.sig.output {
        if !method.is_async() && returns_future(ty) {
            // A hand-desugared `async fn`: a plain `fn` is served
            // synchronously, so its return type is the reply itself.
            errors.over(
                ty,
                format_args!(
                    "a plain `fn` method is served synchronously and its return type is the reply: to reply once a future is done, write `async fn {}(&self, ...)` and return its output",
                    method.sig.ident
                ),
            );
            return;
        }
    }
    if method.kind == Kind::Push {
        if let syn::ReturnType::Type(_, ty) = &method.sig.output {
            if !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) {
                errors.over(
                    ty,
                    "a `#[push]` method is one-way and returns nothing: remove the return type, or remove `#[push]` to make it a pull with a reply",
                );
            }
        }
    } else if let syn::ReturnType::Type(_, ty) = &method.sig.output {
        check_owned(ty, "reply", errors);
    }
}

/// Whether a return type is `impl Future<..>` (any path ending in
/// `Future`), as a hand-desugared `async fn` returns.
fn returns_future(ty: &Type) -> bool {
    let Type::ImplTrait(t) = ty else {
        return false;
    };
    t.bounds.iter().any(|b| {
        matches!(b, syn::TypeParamBound::Trait(t)
            if t.path.segments.last().is_some_and(|s| s.ident == "Future"))
    })
}

/// Arguments and replies cross the wire: they must be owned types, free of
/// references, lifetimes and `impl Trait`.
fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    struct Finder(Option<(TokenStream, &'static str)>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            self.0.get_or_insert((r.to_token_stream(), "a reference"));
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            self.0.get_or_insert((l.to_token_stream(), "a lifetime"));
        }
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.0.get_or_insert((t.to_token_stream(), "`impl Trait`"));
        }
        fn visit_type_trait_object(&mut self, t: &'ast syn::TypeTraitObject) {
            self.0
                .get_or_insert((t.to_token_stream(), "a trait object"));
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    if let Some((tokens, found)) = finder.0 {
        errors.over(
            tokens,
            format_args!(
                "a service {what} travels over the wire and must be an owned type, not {found}: use e.g. `String` for `&str`, `Vec<T>` for `&[T]`"
            ),
        );
    }
}

fn check_duplicate_uris(service: &Service, errors: &mut Errors) {
    let group = service
        .group
        .as_ref()
        .map(|g| g.value())
        .unwrap_or_default();
    let mut seen: HashMap<(Kind, String), &syn::Ident> = HashMap::new();
    for method in &service.methods {
        let (uri, span) = match &method.uri {
            Some(lit) => (lit.value(), lit.span()),
            None => (
                naming::route(&group, &service.item.ident, &method.sig.ident),
                method.sig.ident.span(),
            ),
        };
        if let Some(first) = seen.get(&(method.kind, uri.clone())) {
            errors.at(
                span,
                format_args!(
                    "the {} URI `{uri}` of `{}` is already the URI of `{first}`: give one of them another with `#[uri = \"/...\"]`",
                    method.kind.as_str(),
                    method.sig.ident
                ),
            );
        } else {
            seen.insert((method.kind, uri), &method.sig.ident);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Args, Service};

    /// The messages `check` reports for a trait, in order.
    fn problems(attr: proc_macro2::TokenStream, src: &str) -> Vec<String> {
        let mut errors = Errors::default();
        let args = Args::parse(attr).unwrap();
        let service = Service::from_syn(args, syn::parse_str(src).unwrap(), &mut errors);
        check(&service, &mut errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_correct_trait_passes() {
        let found = problems(
            quote::quote!(group = "/g"),
            "pub trait Home {
                async fn echo(&self, ctx: Ctx, text: String) -> String;
                async fn div(&self, a: i64, b: i64) -> Result<i64, Status>;
                #[push] async fn note(&self, text: String);
                #[push] #[uri = \"/g/home/echo\"] async fn echo_push(&self, text: String);
                async fn nothing(&self) { }
            }",
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let found = problems(
            quote::quote!(),
            "trait Bad<T> {
                const N: u8;
                async fn ctx_by_ref(&self, ctx: &Ctx);
                async fn generic<T>(&self, t: T);
                async fn no_receiver(x: u8);
                async fn by_value(self);
                async fn by_mut(&mut self);
                async fn tuple(&self, (a, b): (u8, u8));
                async fn wild(&self, _: u8);
                async fn late_ctx(&self, a: u8, ctx: Ctx);
                async fn borrowed(&self, s: &str) -> Vec<&'static str>;
                #[push] async fn push_reply(&self) -> u8;
                async fn new(&self);
                fn desugared(&self) -> impl std::future::Future<Output = u8> + Send;
            }",
        );
        let expected = [
            "cannot be generic",
            "holds only methods",
            "takes the call context by value",
            "methods cannot be generic",
            "take `&self` first",
            "not `self`",
            "not `&mut self`",
            "plain name",
            "give it a name",
            "context must be the first",
            "not a reference",
            "not a reference",
            "one-way",
            "collide",
            "write `async fn desugared(&self, ...)`",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (got, want) in found.iter().zip(expected) {
            assert!(got.contains(want), "{got:?} should contain {want:?}");
        }
    }

    #[test]
    fn duplicate_uris_are_refused_within_a_kind_only() {
        let found = problems(
            quote::quote!(),
            "trait Home {
                async fn echo(&self);
                #[uri = \"/home/echo\"] async fn other(&self);
                #[push] #[uri = \"/home/echo\"] async fn pushed(&self);
            }",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("pull URI `/home/echo` of `other` is already the URI of `echo`"));
    }

    #[test]
    fn bad_uris_and_groups_are_refused() {
        let found = problems(
            quote::quote!(group = "/a?b"),
            "trait Home { #[uri = \"relative\"] async fn echo(&self); }",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("the group prefix"));
        assert!(found[1].contains("must start with `/`"));
    }
}
