#[teleport::service]
trait Home {
    #[push]
    #[idempotent]
    async fn note(&self, text: String);
}

fn main() {}
