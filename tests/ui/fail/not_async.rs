#[teleport::service]
trait Home {
    fn echo(&self, text: String) -> String;
}

fn main() {}
