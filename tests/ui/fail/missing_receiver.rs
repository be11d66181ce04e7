#[teleport::service]
trait Home {
    async fn echo(text: String) -> String;
}

fn main() {}
