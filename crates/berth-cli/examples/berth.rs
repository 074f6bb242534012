//! Development entry point: `cargo run -p berth-cli --example berth -- ps`.

#[tokio::main]
async fn main() {
    let code = berth_cli::run(std::env::args_os().collect()).await;
    std::process::exit(code);
}
