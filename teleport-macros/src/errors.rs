//! The errors a macro run collects: each stage (`ast`, `check`, `expand`)
//! pushes what it finds here instead of stopping at the first, so the user
//! sees every mistake at once (`syn::Error::combine`). A module of its own
//! so the stages depend on it and not on each other.

use proc_macro2::Span;

/// Every error found so far, combined into one `syn::Error`.
#[derive(Default)]
pub(crate) struct Errors {
    inner: Option<syn::Error>,
}

impl Errors {
    /// Adds one error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.inner {
            Some(all) => all.combine(error),
            None => self.inner = Some(error),
        }
    }

    /// An error at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// An error spanning all of `tokens` (not just their first token).
    pub(crate) fn over(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// `Ok` if nothing was reported, else every error combined.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.inner.map_or(Ok(()), Err)
    }
}
