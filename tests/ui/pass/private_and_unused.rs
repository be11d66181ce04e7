//! A private service whose client or server goes unused warns about nothing.
#![deny(warnings)]

#[teleport::service]
trait Home {
    async fn echo(&self, text: String) -> String;
}

fn main() {}
