//! The `ccgw` command line: `serve`, `doctor`, `keys`, `mock-upstream`.

use std::net::SocketAddr;
use std::path::PathBuf;

use ccgw::config::Config;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ccgw",
    version,
    about = "The Claude Code CLI as an OpenAI- and Anthropic-compatible API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Check the CLI and the upstream with one real turn, and explain what is wrong.
    Doctor(DoctorArgs),
    /// Manage the API keys kept in the store.
    Keys {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        command: ccgw::keys_cli::KeysCommand,
    },
    /// Run the scripted Anthropic-compatible mock upstream (for tests and benchmarks).
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 8089)]
        port: u16,
    },
}

#[derive(Args)]
struct ConfigArgs {
    /// TOML config file.
    #[arg(long, env = "CCGW_CONFIG")]
    config: Option<PathBuf>,
    /// Where sessions, workspaces and the CLI's own config live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    /// Answer with the built-in scripted mock model instead of a real upstream.
    #[arg(long)]
    demo: bool,
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Check against the built-in mock upstream instead of the configured one.
    #[arg(long)]
    demo: bool,
}

fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    Ok(cfg)
}

fn init_logging(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CCGW_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        "json" => true,
        "text" => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    // The CLI processes' supervisor runs before anything else, without a runtime: it must stay
    // small (see `claude::supervise`).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == ccgw::claude::supervise::SUBCOMMAND)
    {
        std::process::exit(ccgw::claude::supervise::run(&args[2..]));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            // What the command line says wins over the file and the environment, on every
            // reload too.
            let (host, port, data_dir, demo) = (
                args.host,
                args.port,
                args.config.data_dir.clone(),
                args.demo,
            );
            let overrides = move |cfg: &mut Config| {
                if let Some(h) = &host {
                    cfg.host = h.clone();
                }
                if let Some(p) = port {
                    cfg.port = p;
                }
                if let Some(d) = &data_dir {
                    cfg.data_dir = d.clone();
                }
                cfg.demo |= demo;
            };
            let mut cfg = Config::load(args.config.config.as_deref())?;
            overrides(&mut cfg);
            init_logging(&cfg.log_format);
            tracing::info!(config = ?cfg, "starting");
            let loaded = cfg.clone();
            let server = ccgw::server::start(cfg).await?;
            let source = ccgw::reload::Source {
                file: args.config.config.clone(),
                overrides: Box::new(overrides),
            };
            ccgw::reload::Reloader::new(source, server.state.clone(), loaded).spawn();
            server.run_until_signal().await;
            Ok(())
        }
        Command::Doctor(args) => {
            let mut cfg = load(&args.config)?;
            cfg.demo |= args.demo;
            let ok = ccgw::doctor::run(cfg).await;
            std::process::exit(if ok { 0 } else { 1 });
        }
        Command::Keys { config, command } => ccgw::keys_cli::run(load(&config)?, command).await,
        Command::MockUpstream { host, port } => {
            init_logging("auto");
            let addr: SocketAddr = format!("{host}:{port}").parse()?;
            ccgw::mock_upstream::serve_forever(addr).await
        }
    }
}
