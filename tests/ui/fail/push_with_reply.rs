#[teleport::service]
trait Home {
    #[push]
    async fn note(&self, text: String) -> bool;
}

fn main() {}
