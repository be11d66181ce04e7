#[teleport::service]
struct Home;

fn main() {}
