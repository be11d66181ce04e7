#[teleport::service(prefix = "/v1")]
trait Home {
    async fn echo(&self, text: String) -> String;
}

fn main() {}
