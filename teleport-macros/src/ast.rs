//! Parse: the attribute's arguments and the trait, read into a model that
//! keeps every original span. Nothing is judged here beyond what is needed
//! to read the input; [`check`](crate::check) validates the model.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemTrait, LitStr, Pat, PathArguments, Receiver,
    ReturnType, Signature, TraitItem, Type,
};

use crate::errors::Errors;

/// The arguments of `#[service(...)]`.
#[derive(Default)]
pub(crate) struct Args {
    /// `group = "/prefix"`: a prefix for every derived URI.
    pub(crate) group: Option<LitStr>,
}

impl Args {
    /// Reads `group = "..."`, the only argument there is.
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Args> {
        let mut args = Args::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("group") {
                if args.group.is_some() {
                    return Err(meta.error("`group` is given twice"));
                }
                args.group = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("unknown `service` argument: the only one is `group = \"/prefix\"`"))
            }
        });
        syn::parse::Parser::parse2(parser, tokens)?;
        Ok(args)
    }
}

/// The service: the trait, its methods and the attribute's arguments.
pub(crate) struct Service {
    /// The trait as written, minus the macro's own method attributes.
    pub(crate) item: ItemTrait,
    /// The group prefix, if any.
    pub(crate) group: Option<LitStr>,
    /// The `fn` items of the trait, in order.
    pub(crate) methods: Vec<Method>,
    /// Trait items that are not methods (consts, types, macros).
    pub(crate) non_methods: Vec<TraitItem>,
}

/// Whether a method is a pull (request and reply) or a push (one-way).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Kind {
    Pull,
    Push,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Pull => "pull",
            Kind::Push => "push",
        }
    }
}

/// One method of the trait.
pub(crate) struct Method {
    /// The attributes left for the generated code (docs, `cfg`, lints...).
    pub(crate) attrs: Vec<Attribute>,
    /// Pull or push.
    pub(crate) kind: Kind,
    /// `#[uri = "/custom"]`: the URI instead of the derived one.
    pub(crate) uri: Option<LitStr>,
    /// `#[idempotent]`: safe to run twice, so a balanced client may resend
    /// it after a connection failure.
    pub(crate) idempotent: Option<Span>,
    /// The signature as written.
    pub(crate) sig: Signature,
    /// The receiver (`&self`, `self`, `&mut self`...), if any.
    pub(crate) receiver: Option<Receiver>,
    /// The typed parameters after the receiver, in order.
    pub(crate) args: Vec<Arg>,
    /// What the method returns.
    pub(crate) reply: Reply,
}

/// One typed parameter.
pub(crate) struct Arg {
    pub(crate) pat: Pat,
    pub(crate) ty: Type,
    /// Whether its type is the call context (`Ctx`, `teleport::Ctx`): a
    /// path whose last segment is `Ctx`, without generics, or a shared
    /// reference to one.
    pub(crate) is_ctx: bool,
    /// Whether it is the call context by reference (`&Ctx`), which only a
    /// plain `fn` may take.
    pub(crate) ctx_by_ref: bool,
}

impl Method {
    /// Whether it is an `async fn` (served through its future) rather than
    /// a plain `fn` (served by a synchronous route).
    pub(crate) fn is_async(&self) -> bool {
        self.sig.asyncness.is_some()
    }
}

impl Arg {
    /// The parameter's name, when its pattern is a plain name.
    pub(crate) fn name(&self) -> Option<&Ident> {
        match &self.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
            _ => None,
        }
    }
}

/// The return type of a method.
pub(crate) enum Reply {
    /// No return type (or `()`).
    Unit,
    /// A plain value `T`: the reply is always status 200.
    Value(Type),
    /// `Result<T, E>` (any path ending in `Result` with type arguments): the
    /// reply is `T`, or `E` converted into a status.
    Result {
        /// `T`.
        ok: Type,
    },
}

impl Reply {
    fn from_return_type(output: &ReturnType) -> Reply {
        let ReturnType::Type(_, ty) = output else {
            return Reply::Unit;
        };
        match &**ty {
            Type::Tuple(t) if t.elems.is_empty() => Reply::Unit,
            Type::Path(p) if p.qself.is_none() => {
                let last = p.path.segments.last().expect("a path has a segment");
                if last.ident == "Result" {
                    if let PathArguments::AngleBracketed(args) = &last.arguments {
                        if let Some(GenericArgument::Type(ok)) = args.args.first() {
                            return Reply::Result { ok: ok.clone() };
                        }
                    }
                }
                Reply::Value((**ty).clone())
            }
            other => Reply::Value(other.clone()),
        }
    }

    /// The type of the reply body (`()` for none).
    pub(crate) fn body_type(&self) -> Type {
        match self {
            Reply::Unit => syn::parse_quote!(()),
            Reply::Value(t) | Reply::Result { ok: t, .. } => t.clone(),
        }
    }
}

impl Method {
    /// The type the trait method's future yields: the return type as
    /// written, `()` without one.
    pub(crate) fn output_type(&self) -> Type {
        match &self.sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => (**ty).clone(),
        }
    }
}

impl Service {
    /// Reads the trait. Malformed macro attributes (`#[push(x)]`, a `#[uri]`
    /// that is not a string) are reported to `errors`.
    pub(crate) fn from_syn(args: Args, mut item: ItemTrait, errors: &mut Errors) -> Service {
        let mut methods = Vec::new();
        let mut non_methods = Vec::new();
        for trait_item in &mut item.items {
            match trait_item {
                TraitItem::Fn(f) => {
                    let idempotent = take_idempotent(&mut f.attrs, errors);
                    let (attrs, push_span, uri) = take_method_attrs(&mut f.attrs, errors);
                    f.attrs = attrs.clone();
                    let mut receiver = None;
                    let mut method_args = Vec::new();
                    for input in &f.sig.inputs {
                        match input {
                            FnArg::Receiver(r) => receiver = Some(r.clone()),
                            FnArg::Typed(t) => {
                                let ctx_by_ref = matches!(&*t.ty, Type::Reference(r)
                                    if r.mutability.is_none() && is_ctx_type(&r.elem));
                                method_args.push(Arg {
                                    pat: (*t.pat).clone(),
                                    ty: (*t.ty).clone(),
                                    is_ctx: ctx_by_ref || is_ctx_type(&t.ty),
                                    ctx_by_ref,
                                });
                            }
                        }
                    }
                    methods.push(Method {
                        attrs,
                        kind: if push_span.is_some() {
                            Kind::Push
                        } else {
                            Kind::Pull
                        },
                        uri,
                        idempotent,
                        sig: f.sig.clone(),
                        receiver,
                        args: method_args,
                        reply: Reply::from_return_type(&f.sig.output),
                    });
                }
                other => non_methods.push(other.clone()),
            }
        }
        Service {
            item,
            group: args.group,
            methods,
            non_methods,
        }
    }
}

/// Takes `#[idempotent]` off a method: its span if it was there.
fn take_idempotent(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> Option<Span> {
    let mut found = None;
    attrs.retain(|attr| {
        if !attr.path().is_ident("idempotent") {
            return true;
        }
        if let Err(e) = attr.meta.require_path_only() {
            errors.push(syn::Error::new(
                e.span(),
                "`#[idempotent]` takes no arguments: write `#[idempotent]`",
            ));
        }
        if found.is_some() {
            errors.push(syn::Error::new(
                attr.span(),
                "`#[idempotent]` is given twice",
            ));
        }
        found = Some(attr.path().span());
        false
    });
    found
}

/// Splits the macro's own attributes (`#[push]`, `#[uri = ".."]`) from the
/// rest.
fn take_method_attrs(
    attrs: &mut [Attribute],
    errors: &mut Errors,
) -> (Vec<Attribute>, Option<Span>, Option<LitStr>) {
    let mut kept = Vec::new();
    let mut push = None;
    let mut uri = None;
    for attr in attrs.iter() {
        if attr.path().is_ident("push") {
            if let Err(e) = attr.meta.require_path_only() {
                errors.push(syn::Error::new(
                    e.span(),
                    "`#[push]` takes no arguments: write `#[push]`",
                ));
            }
            if push.is_some() {
                errors.push(syn::Error::new(attr.span(), "`#[push]` is given twice"));
            }
            push = Some(attr.span());
        } else if attr.path().is_ident("uri") {
            match &attr.meta {
                syn::Meta::NameValue(nv) => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => {
                        if uri.is_some() {
                            errors.push(syn::Error::new(attr.span(), "`#[uri]` is given twice"));
                        }
                        uri = Some(s.clone());
                    }
                    other => errors.push(syn::Error::new(
                        other.span(),
                        "`#[uri]` takes a string: write `#[uri = \"/path\"]`",
                    )),
                },
                _ => errors.push(syn::Error::new(
                    attr.span(),
                    "`#[uri]` takes a string: write `#[uri = \"/path\"]`",
                )),
            }
        } else {
            kept.push(attr.clone());
        }
    }
    (kept, push, uri)
}

/// Whether a type names the call context: a path ending in `Ctx`, without
/// generic arguments (`Ctx`, `teleport::Ctx`, `::teleport::router::Ctx`).
fn is_ctx_type(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Ctx" && s.arguments.is_none()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn service(src: &str) -> (Service, Errors) {
        let mut errors = Errors::default();
        let item: ItemTrait = syn::parse_str(src).unwrap();
        (
            Service::from_syn(Args::default(), item, &mut errors),
            errors,
        )
    }

    #[test]
    fn methods_are_read_with_kind_context_arguments_and_reply() {
        let (s, errors) = service(
            "trait Home {
                /// Echoes.
                async fn echo(&self, ctx: teleport::Ctx, text: String) -> String;
                #[push] async fn note(&self, text: String);
                #[uri = \"/x/div\"] async fn div(&self, a: i64, b: i64) -> Result<i64, Status>;
                async fn ping(&self) -> ();
            }",
        );
        assert!(errors.finish().is_ok());
        let [echo, note, div, ping] = &s.methods[..] else {
            panic!("4 methods")
        };
        assert_eq!(echo.kind, Kind::Pull);
        assert!(echo.args[0].is_ctx && !echo.args[1].is_ctx);
        assert_eq!(echo.args[1].name().unwrap(), "text");
        assert_eq!(echo.attrs.len(), 1, "the doc stays");
        assert!(matches!(echo.reply, Reply::Value(_)));
        assert_eq!(note.kind, Kind::Push);
        assert!(note.attrs.is_empty(), "#[push] is taken off");
        assert_eq!(div.uri.as_ref().unwrap().value(), "/x/div");
        match &div.reply {
            Reply::Result { ok, .. } => assert_eq!(ok.to_token_stream().to_string(), "i64"),
            _ => panic!("a Result reply"),
        }
        assert!(matches!(ping.reply, Reply::Unit));
        // The macro attributes are gone from the trait it hands back.
        let text = s.item.to_token_stream().to_string();
        assert!(!text.contains("push") && !text.contains("uri"), "{text}");
    }

    #[test]
    fn result_is_recognized_by_its_last_segment_only() {
        let (s, _) = service(
            "trait T {
                async fn a(&self) -> std::io::Result<u8>;
                async fn b(&self) -> core::result::Result<u8, E>;
                async fn c(&self) -> Vec<Result<u8, E>>;
                async fn d(&self) -> MyResult;
            }",
        );
        assert!(matches!(s.methods[0].reply, Reply::Result { .. }));
        assert!(matches!(s.methods[1].reply, Reply::Result { .. }));
        assert!(matches!(s.methods[2].reply, Reply::Value(_)));
        assert!(matches!(s.methods[3].reply, Reply::Value(_)));
    }

    #[test]
    fn malformed_macro_attributes_are_reported() {
        let (_, errors) = service(
            "trait T {
                #[push(now)] async fn a(&self);
                #[uri(\"/x\")] async fn b(&self);
                #[uri = 5] async fn c(&self);
            }",
        );
        let messages: Vec<String> = errors
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("`#[push]` takes no arguments"));
        assert!(messages[1].contains("`#[uri]` takes a string"));
        assert!(messages[2].contains("`#[uri]` takes a string"));
    }

    #[test]
    fn group_is_the_only_argument() {
        let args = Args::parse(quote::quote!(group = "/v1")).unwrap();
        assert_eq!(args.group.unwrap().value(), "/v1");
        let err = Args::parse(quote::quote!(prefix = "/v1")).err().unwrap();
        assert!(err.to_string().contains("the only one is `group"));
        assert!(Args::parse(quote::quote!(group = "/a", group = "/b")).is_err());
    }
}
