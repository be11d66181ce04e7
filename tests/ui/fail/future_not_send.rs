use std::rc::Rc;

#[teleport::service]
trait Home {
    async fn echo(&self, text: String) -> String;
}

struct HomeImpl;

impl Home for HomeImpl {
    async fn echo(&self, text: String) -> String {
        let shared = Rc::new(text);
        tokio::task::yield_now().await;
        (*shared).clone()
    }
}

fn main() {}
