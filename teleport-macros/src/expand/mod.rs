//! Generate: from a checked model, the rewritten trait, the client and the
//! server. On any error, the original trait (minus the macro's own
//! attributes) plus the errors, so the user sees the mistakes and nothing
//! that cascades from them.

mod client;
mod server;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Ident, ItemTrait, LitStr};

use crate::ast::{Args, Kind, Method, Service};
use crate::check;
use crate::errors::Errors;
use crate::naming;

/// The whole macro: parse → check → generate.
pub(crate) fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemTrait = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format_args!(
                    "`#[teleport::service]` goes on a trait of `async fn` and `fn` methods: {e}"
                ),
            );
            let error = e.to_compile_error();
            return quote!(#input #error);
        }
    };
    let mut errors = Errors::default();
    let args = Args::parse(args).unwrap_or_else(|e| {
        errors.push(e);
        Args::default()
    });
    let service = Service::from_syn(args, item, &mut errors);
    check::check(&service, &mut errors);
    match errors.finish() {
        Ok(()) => generate(&service),
        Err(e) => {
            let item = fallback(service.item);
            let error = e.to_compile_error();
            quote!(#item #error)
        }
    }
}

/// The trait to emit next to the errors: as written, but with argument
/// patterns that a method without a body cannot have (already reported)
/// turned into `_`, so the compiler adds no error of its own about them.
fn fallback(mut item: ItemTrait) -> ItemTrait {
    for trait_item in &mut item.items {
        let syn::TraitItem::Fn(f) = trait_item else {
            continue;
        };
        if f.default.is_some() {
            continue;
        }
        for input in &mut f.sig.inputs {
            if let syn::FnArg::Typed(t) = input {
                if !matches!(&*t.pat, syn::Pat::Ident(_) | syn::Pat::Wild(_)) {
                    let span = t.pat.span();
                    *t.pat = syn::Pat::Wild(syn::PatWild {
                        attrs: Vec::new(),
                        underscore_token: syn::Token![_](span),
                    });
                }
            }
        }
    }
    item
}

/// A method with everything generation needs worked out.
pub(crate) struct Route<'a> {
    pub(crate) method: &'a Method,
    /// The full URI.
    pub(crate) uri: LitStr,
}

impl Route<'_> {
    /// The method's name.
    pub(crate) fn ident(&self) -> &Ident {
        &self.method.sig.ident
    }

    /// Whether the first parameter is the call context.
    pub(crate) fn takes_ctx(&self) -> bool {
        self.method.args.first().is_some_and(|a| a.is_ctx)
    }

    /// The parameters that travel over the wire: name and type.
    pub(crate) fn wire_args(&self) -> impl Iterator<Item = (&Ident, &syn::Type)> {
        self.method
            .args
            .iter()
            .filter(|a| !a.is_ctx)
            .map(|a| (a.name().expect("checked: plain names"), &a.ty))
    }

    /// The method's `#[cfg]` attributes, to copy onto everything generated for it.
    pub(crate) fn cfgs(&self) -> impl Iterator<Item = &Attribute> {
        self.method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
    }

    /// The method's doc comments.
    pub(crate) fn docs(&self) -> impl Iterator<Item = &Attribute> {
        self.method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
    }

    /// `pull` or `push`, for docs.
    pub(crate) fn kind(&self) -> Kind {
        self.method.kind
    }
}

fn generate(service: &Service) -> TokenStream {
    let group = service
        .group
        .as_ref()
        .map(LitStr::value)
        .unwrap_or_default();
    let routes: Vec<Route<'_>> = service
        .methods
        .iter()
        .map(|method| Route {
            method,
            uri: method.uri.clone().unwrap_or_else(|| {
                LitStr::new(
                    &naming::route(&group, &service.item.ident, &method.sig.ident),
                    method.sig.ident.span(),
                )
            }),
        })
        .collect();
    let service_trait = service_trait(service);
    let client = client::generate(service, &routes);
    let server = server::generate(service, &routes);
    quote! {
        #service_trait
        #client
        #server
    }
}

/// The trait, rewritten so its futures are `Send` and implementations can
/// be shared: `async fn m(&self, ..) -> T` becomes
/// `fn m(&self, ..) -> impl Future<Output = T> + Send`, which an
/// implementation still writes as `async fn`.
fn service_trait(service: &Service) -> TokenStream {
    let mut item = service.item.clone();
    let bounds: syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]> =
        syn::parse_quote!(::teleport::__private::Send + ::teleport::__private::Sync + 'static);
    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }
    item.supertraits.extend(bounds);
    let mut methods = service.methods.iter();
    for trait_item in &mut item.items {
        let syn::TraitItem::Fn(f) = trait_item else {
            continue;
        };
        let method = methods.next().expect("one model method per fn item");
        if !method.is_async() {
            // A plain `fn` is served by a synchronous route as written.
            continue;
        }
        let output = method.output_type();
        let span = method.sig.span();
        f.sig.asyncness = None;
        f.sig.output = syn::parse2(quote_spanned! {span=>
            -> impl ::teleport::__private::Future<Output = #output> + ::teleport::__private::Send
        })
        .expect("a return type");
        if let Some(body) = &f.default {
            f.default = Some(syn::parse_quote_spanned! {body.span()=> { async move #body } });
        }
    }
    quote!(#item)
}

/// `#[doc = "..."]` for generated docs.
pub(crate) fn doc(text: impl AsRef<str>) -> TokenStream {
    let text = text.as_ref();
    quote!(#[doc = #text])
}

/// A local of generated code: hygienic, so it cannot clash with user
/// names, but located at `at` for error messages.
pub(crate) fn local(name: &str, at: Span) -> Ident {
    Ident::new(name, Span::mixed_site().located_at(at))
}

#[cfg(test)]
mod tests;
