#[teleport::service]
trait Home {
    async fn echo(&mut self, text: String) -> String;
}

fn main() {}
