//! A documented public service compiles without a warning under strict lints.
#![deny(missing_docs, warnings, unreachable_pub, rust_2018_idioms)]

use teleport::{Ctx, Status};

/// A home.
#[teleport::service(group = "/g")]
pub trait Home {
    /// Echoes.
    async fn echo(&self, ctx: Ctx, text: String) -> String;
    /// Divides.
    async fn div(&self, a: i64, b: i64) -> Result<i64, Status>;
    /// Only on unix.
    #[cfg(unix)]
    async fn unix_only(&self) -> u8;
    /// Never compiled.
    #[cfg(any())]
    async fn never(&self, missing: DoesNotExist) -> u8;
    /// Notes.
    #[push]
    async fn note(&self, text: String);
    /// Old.
    #[deprecated = "use echo"]
    async fn old_echo(&self, text: String) -> String;
    /// Counts, synchronously, with the context borrowed.
    fn count(&self, ctx: &Ctx, text: String) -> usize;
    /// Counts, synchronously, with the context by value.
    fn count_owned(&self, ctx: Ctx, text: String) -> Result<usize, Status>;
    /// Forgets, synchronously.
    #[push]
    fn forget(&self, text: String);
    /// Old and synchronous.
    #[deprecated = "use count"]
    fn old_count(&self, text: String) -> usize;
}

struct HomeImpl;

impl Home for HomeImpl {
    async fn echo(&self, _ctx: Ctx, text: String) -> String {
        text
    }
    async fn div(&self, a: i64, b: i64) -> Result<i64, Status> {
        a.checked_div(b).ok_or_else(|| Status::new(599, "by zero"))
    }
    #[cfg(unix)]
    async fn unix_only(&self) -> u8 {
        1
    }
    async fn note(&self, _text: String) {}
    async fn old_echo(&self, text: String) -> String {
        text
    }
    fn count(&self, _ctx: &Ctx, text: String) -> usize {
        text.len()
    }
    fn count_owned(&self, _ctx: Ctx, text: String) -> Result<usize, Status> {
        Ok(text.len())
    }
    fn forget(&self, _text: String) {}
    fn old_count(&self, text: String) -> usize {
        text.len()
    }
}

fn main() {
    let mut router = teleport::Router::new();
    HomeServer::new(HomeImpl).register(&mut router);
    assert!(router.contains_pull("/g/home/echo"));
    assert_eq!(router.contains_pull("/g/home/unix_only"), cfg!(unix));
    assert!(router.contains_pull("/g/home/count_owned"));
    assert!(router.contains_push("/g/home/forget"));
    let _ = HomeServer::new(HomeImpl).clone();
}
