//! The client: `{Trait}Client`, one method per trait method, each sending
//! its arguments as a pull or a push over a `Caller` (a session by default,
//! or a balanced client).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::{Route, doc};
use crate::ast::{Kind, Service};
use crate::naming;

pub(super) fn generate(service: &Service, routes: &[Route<'_>]) -> TokenStream {
    let vis = &service.item.vis;
    let trait_ident = &service.item.ident;
    let client = naming::client_ident(trait_ident);
    let p = quote!(::teleport::__private);

    let struct_doc = [
        doc(format!(
            "A client of the [`{trait_ident}`] service: calls its methods over a `teleport::Caller`: one session \
             (the default, `{client}::new(session)`) or a balanced client over every endpoint of the service \
             (`{client}::new(balanced)`)."
        )),
        doc(""),
        doc(
            "Cheap to clone: clones share the session. Every method has the trait method's arguments \
             (without the call context) and returns once the reply arrives (pull) or once the push is queued.",
        ),
    ];
    let methods = routes
        .iter()
        .enumerate()
        .map(|(i, r)| method(r, i, vis, &p));
    // Every route's path, in the order `uri_at` indexes them.
    let paths = routes.iter().map(|r| &r.uri);
    let paths = quote!(&[#(#paths),*]);

    quote! {
        #(#struct_doc)*
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #[allow(dead_code)]
        #vis struct #client<C = #p::Session> {
            caller: C,
            options: #p::CallOptions,
            prefix: #p::Option<#p::Arc<str>>,
            query: #p::Option<#p::Arc<str>>,
            /// Every route's URI under `prefix` and with `query`, composed
            /// when they were set; `None` without either.
            uris: #p::Option<#p::Arc<[#p::Box<str>]>>,
        }

        #[allow(dead_code)]
        impl<C: #p::Caller> #client<C> {
            /// A client calling the service over `caller` (a session, or a balanced client), with the peer's default call options.
            #vis fn new(caller: C) -> Self {
                Self {
                    caller,
                    options: #p::CallOptions::default(),
                    prefix: #p::Option::None,
                    query: #p::Option::None,
                    uris: #p::Option::None,
                }
            }

            /// A copy of this client whose calls use `options` (timeout, body codec, gzip level, header codec).
            #[must_use]
            #vis fn with_options(&self, options: #p::CallOptions) -> Self {
                Self {
                    options,
                    ..::core::clone::Clone::clone(self)
                }
            }

            /// A copy of this client that calls the service under a group prefix, for a server registered with `register_in` on a router group.
            #[must_use]
            #vis fn with_prefix(&self, prefix: &str) -> Self {
                let prefix = #p::prefix(prefix);
                Self {
                    uris: #p::uris(&prefix, &self.query, #paths),
                    prefix,
                    ..::core::clone::Clone::clone(self)
                }
            }

            /// A copy of this client whose calls carry a query string (`"from=me&x=1"`, already percent-encoded), which the handler reads from its call context.
            #[must_use]
            #vis fn with_query(&self, query: &str) -> Self {
                let query = #p::query(query);
                Self {
                    uris: #p::uris(&self.prefix, &query, #paths),
                    query,
                    ..::core::clone::Clone::clone(self)
                }
            }

            /// What the calls go over.
            #vis fn caller(&self) -> &C {
                &self.caller
            }

            /// The options every call of this client uses.
            #vis fn options(&self) -> #p::CallOptions {
                self.options
            }

            #(#methods)*
        }

        #[allow(dead_code)]
        impl #client<#p::Session> {
            /// The session the calls go over.
            #vis fn session(&self) -> &#p::Session {
                &self.caller
            }
        }
    }
}

/// The client method of `route`, the `index`-th route (its URI's place in
/// the client's `uris`).
fn method(route: &Route<'_>, index: usize, vis: &syn::Visibility, p: &TokenStream) -> TokenStream {
    let method = route.method;
    let vis = vis.clone();
    let ident = route.ident();
    let uri = &route.uri;
    let uri_text = uri.value();
    let docs: Vec<_> = route.docs().collect();
    let cfgs = route.cfgs();
    let deprecated = method
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("deprecated"));
    let (names, types): (Vec<_>, Vec<_>) = route.wire_args().unzip();
    let span = ident.span();
    // Spanned at the argument type, so an argument the codecs cannot carry
    // is reported there.
    let body = match (&names[..], &types[..]) {
        ([], _) => quote!(&()),
        ([one], [ty]) => quote_spanned!(syn::spanned::Spanned::span(ty)=> &#one),
        (many, _) => quote_spanned!(span=> &(#(#many),*)),
    };
    let (summary, call, ret) = match route.kind() {
        Kind::Pull => {
            let reply = method.reply.body_type();
            (
                if method.idempotent.is_some() {
                    format!(
                        "Pulls `{uri_text}` and waits for the reply. Idempotent: a balanced caller may resend it to another endpoint when the connection closes with it in flight."
                    )
                } else {
                    format!("Pulls `{uri_text}` and waits for the reply.")
                },
                if method.idempotent.is_some() {
                    quote_spanned!(span=> #p::Caller::pull_idempotent(&self.caller, #p::uri_at(&self.uris, #index, #uri), #body, self.options).await)
                } else if let ([one], [ty]) = (&names[..], &types[..]) {
                    // One argument: handed over, so that a large `String`
                    // or `Vec<u8>` is written without a copy.
                    let arg = quote_spanned!(syn::spanned::Spanned::span(ty)=> #one);
                    quote_spanned!(span=> #p::Caller::pull_owned(&self.caller, #p::uri_at(&self.uris, #index, #uri), #arg, self.options).await)
                } else {
                    quote_spanned!(span=> #p::Caller::pull_with(&self.caller, #p::uri_at(&self.uris, #index, #uri), #body, self.options).await)
                },
                quote!(#reply),
            )
        }
        Kind::Push => (
            format!(
                "Pushes `{uri_text}` (one-way: returns once the push is queued, not when it is handled)."
            ),
            quote_spanned!(span=> #p::Caller::push_with(&self.caller, #p::uri_at(&self.uris, #index, #uri), #body, self.options).await),
            quote!(()),
        ),
    };
    let separator = (!docs.is_empty()).then(|| doc(""));
    let summary = doc(summary);
    let errors = [
        doc(""),
        doc("# Errors"),
        doc(""),
        doc(match route.kind() {
            Kind::Pull => {
                "`teleport::Error::Status` with the status the service replied (an `Err` it returned, \
                 or a failure such as `404` when nothing serves the URI), or a local failure: timeout, \
                 closed connection, an argument or reply the codec cannot carry."
            }
            Kind::Push => {
                "A local failure: closed connection, or an argument the codec cannot carry."
            }
        }),
    ];
    quote! {
        #(#docs)*
        #separator
        #summary
        #(#errors)*
        #(#cfgs)*
        #(#deprecated)*
        #vis async fn #ident(&self, #(#names: #types),*) -> #p::Result<#ret, #p::Error> {
            #call
        }
    }
}
