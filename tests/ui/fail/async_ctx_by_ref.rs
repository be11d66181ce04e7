use teleport::Ctx;

#[teleport::service]
trait Home {
    async fn echo(&self, ctx: &Ctx, text: String) -> String;
    fn sync_echo(&self, ctx: &Ctx, text: String) -> String;
}

fn main() {}
