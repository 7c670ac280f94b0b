use clap::Parser;

#[tokio::main]
async fn main() {
    let cfg = chat_bench::Config::parse();
    if let Err(e) = chat_bench::run(&cfg).await {
        eprintln!("chat-bench: {e}");
        std::process::exit(1);
    }
}
