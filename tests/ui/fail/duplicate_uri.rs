#[teleport::service]
trait Home {
    async fn echo(&self, text: String) -> String;
    #[uri = "/home/echo"]
    async fn echo_again(&self, text: String) -> String;
}

fn main() {}
