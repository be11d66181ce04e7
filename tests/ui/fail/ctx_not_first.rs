use teleport::Ctx;

#[teleport::service]
trait Home {
    async fn echo(&self, text: String, ctx: Ctx) -> String;
}

fn main() {}
