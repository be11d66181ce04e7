#[teleport::service]
trait Home<T> {
    async fn echo(&self, text: String) -> String;
}

fn main() {}
