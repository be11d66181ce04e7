#[teleport::service]
trait Home {
    #[uri = "home/echo?x=1"]
    async fn echo(&self, text: String) -> String;
}

fn main() {}
