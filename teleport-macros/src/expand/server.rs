//! The server: `{Trait}Server<S>`, which registers an implementation's
//! methods as typed pull and push routes of a router or a group.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::{Route, doc, local};
use crate::ast::{Kind, Reply, Service};
use crate::naming;

pub(super) fn generate(service: &Service, routes: &[Route<'_>]) -> TokenStream {
    let vis = &service.item.vis;
    let trait_ident = &service.item.ident;
    let server = naming::server_ident(trait_ident);
    let p = quote!(::teleport::__private);

    let struct_doc = [
        doc(format!(
            "Serves the [`{trait_ident}`] service: registers an implementation's methods as routes of a router."
        )),
        doc(""),
        doc(
            "The implementation is shared behind an `Arc` by every session of the peer; each call \
             runs the method on it concurrently with the others.",
        ),
    ];
    let mut routes_doc = vec![doc(""), doc("Routes:")];
    routes_doc.extend(
        routes
            .iter()
            .map(|r| doc(format!("- {} `{}`", r.kind().as_str(), r.uri.value()))),
    );
    let group = local("group", proc_macro2::Span::call_site());
    // The implementation's type parameter: `S`, unless that is the trait's own name.
    let s = if trait_ident == "S" {
        syn::Ident::new("Service", proc_macro2::Span::call_site())
    } else {
        syn::Ident::new("S", proc_macro2::Span::call_site())
    };
    // A service without methods registers nothing.
    let unused = routes.is_empty().then(|| quote!(let _ = #group;));
    let registrations = routes
        .iter()
        .map(|r| registration(r, trait_ident, &s, &group, &p));

    quote! {
        #(#struct_doc)*
        #[allow(dead_code)]
        #vis struct #server<#s> {
            service: #p::Arc<#s>,
        }

        impl<#s> ::core::clone::Clone for #server<#s> {
            fn clone(&self) -> Self {
                Self {
                    service: #p::Arc::clone(&self.service),
                }
            }
        }

        impl<#s> ::core::fmt::Debug for #server<#s> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#server)).finish_non_exhaustive()
            }
        }

        #[allow(dead_code)]
        impl<#s: #trait_ident> #server<#s> {
            /// Wraps an implementation of the service.
            #vis fn new(service: #s) -> Self {
                Self {
                    service: #p::Arc::new(service),
                }
            }

            /// Wraps an implementation that is already shared.
            #vis fn from_arc(service: #p::Arc<#s>) -> Self {
                Self { service }
            }

            /// The implementation.
            #vis fn service(&self) -> &#p::Arc<#s> {
                &self.service
            }

            /// Registers every method of the service on `router`, at its URI.
            #(#routes_doc)*
            ///
            /// # Panics
            ///
            /// If the router already has a route of the same kind at one of these URIs.
            #vis fn register(&self, router: &mut #p::Router) {
                self.register_in(&mut router.group(""));
            }

            /// Registers every method of the service on a router group: each URI is
            /// prefixed with the group's prefix (call it with a client made
            /// `with_prefix` the same prefix). On `router.spawned()`, each call
            /// runs as its own task, for methods that burn CPU.
            ///
            /// # Panics
            ///
            /// If the router already has a route of the same kind at one of these URIs.
            #[allow(deprecated)]
            #vis fn register_in(&self, #group: &mut #p::Group<'_>) {
                #unused
                #(#registrations)*
            }
        }
    }
}

/// One `group.pull(..)` or `group.push(..)` for an `async fn`: a closure
/// that clones the shared implementation into a `'static` future and calls
/// the method on it. A plain `fn` gets `group.pull_sync(..)` or
/// `group.push_sync(..)`, whose closure calls it in place.
fn registration(
    route: &Route<'_>,
    trait_ident: &syn::Ident,
    s: &syn::Ident,
    group: &syn::Ident,
    p: &TokenStream,
) -> TokenStream {
    let ident = route.ident();
    // Spanned at the method's name, so a type the router cannot take (an
    // argument that cannot be decoded, an error that is not a status) is
    // reported there rather than at the attribute.
    let span = ident.span();
    let uri = &route.uri;
    let cfgs = route.cfgs();
    let service = local("service", span);
    let ctx = local("ctx", span);
    let arg = local("arg", span);
    let wire: Vec<syn::Ident> = route
        .wire_args()
        .enumerate()
        .map(|(i, _)| local(&format!("arg{i}"), span))
        .collect();
    // One argument is the body itself; several are a tuple; none is `()`.
    let pattern = match &wire[..] {
        [] => quote!(()),
        [one] => quote!(#one),
        many => quote!((#(#many),*)),
    };
    let is_async = route.method.is_async();
    // A synchronous route lends the context: a method that takes it by
    // value gets a clone.
    let ctx_arg = route.method.args.first().filter(|a| a.is_ctx).map(|a| {
        if is_async || a.ctx_by_ref {
            quote!(#ctx,)
        } else {
            quote!(::core::clone::Clone::clone(#ctx),)
        }
    });
    let ctx_param = if route.takes_ctx() {
        quote!(#ctx)
    } else {
        quote!(_)
    };
    let call = if is_async {
        quote!(<#s as #trait_ident>::#ident(&*#service, #ctx_arg #(#wire),*).await)
    } else {
        quote!(<#s as #trait_ident>::#ident(&*#service, #ctx_arg #(#wire),*))
    };
    let body = match (route.kind(), &route.method.reply) {
        (Kind::Push, _) | (Kind::Pull, Reply::Result { .. }) => call,
        (Kind::Pull, Reply::Unit | Reply::Value(_)) => {
            quote_spanned!(span=> #p::Result::<_, #p::Status>::Ok(#call))
        }
    };
    let register = match (route.kind(), is_async) {
        (Kind::Push, true) => quote_spanned!(span=> push),
        (Kind::Pull, true) => quote_spanned!(span=> pull),
        (Kind::Push, false) => quote_spanned!(span=> push_sync),
        (Kind::Pull, false) => quote_spanned!(span=> pull_sync),
    };
    if !is_async {
        // Called in place: the closure's own `Arc` is borrowed, not cloned.
        return quote_spanned! {span=>
            #(#cfgs)*
            {
                let #service = #p::Arc::clone(&self.service);
                #group.#register(#uri, move |#ctx_param: &#p::Ctx, #arg| {
                    let #pattern = #arg;
                    #body
                });
            }
        };
    }
    quote_spanned! {span=>
        #(#cfgs)*
        {
            let #service = #p::Arc::clone(&self.service);
            #group.#register(#uri, move |#ctx_param: #p::Ctx, #arg| {
                let #service = #p::Arc::clone(&#service);
                async move {
                    let #pattern = #arg;
                    #body
                }
            });
        }
    }
}
