// Every mistake is reported at once, each at its own span.
#[teleport::service]
trait Home {
    async fn echo(&self, ctx: &teleport::Ctx, text: String) -> String;
    async fn add(self, a: i64, b: i64) -> i64;
    #[push]
    async fn note(&self, _: String) -> u8;
}

fn main() {}
