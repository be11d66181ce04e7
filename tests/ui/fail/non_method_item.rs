#[teleport::service]
trait Home {
    const LIMIT: usize;
    async fn echo(&self, text: String) -> String;
}

fn main() {}
