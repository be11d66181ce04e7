#[teleport::service]
trait Home {
    async fn new(&self, text: String) -> String;
}

fn main() {}
