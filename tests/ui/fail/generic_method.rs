#[teleport::service]
trait Home {
    async fn echo<T: serde::Serialize>(&self, value: T) -> String;
}

fn main() {}
