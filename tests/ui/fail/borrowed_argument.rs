#[teleport::service]
trait Home {
    async fn echo(&self, text: &str) -> String;
}

fn main() {}
