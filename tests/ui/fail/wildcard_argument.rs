#[teleport::service]
trait Home {
    async fn add(&self, a: i64, _: i64) -> i64;
}

fn main() {}
