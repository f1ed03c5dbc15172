//! The `tokend` binary: parse the command line, load config, start telemetry, dispatch.

#![forbid(unsafe_code)]

use clap::Parser as _;

use tokend::cli::{Cli, Command};
use tokend::config::{Config, EXIT_CONFIG, LogFormat};

fn main() {
    tokend::outbound::install_crypto_provider();
    // A malformed command line is a usage error: exit 64 (sysexits' EX_USAGE), like every
    // other usage error of tokend's; `--help` and `--version` exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            std::process::exit(if err.use_stderr() { EXIT_CONFIG } else { 0 });
        }
    };
    match cli.command {
        Some(Command::Bench(args)) => std::process::exit(tokend::cli::bench_main(*args)),
        Some(Command::Admin(args)) => std::process::exit(tokend::admin::main(*args)),
        Some(Command::Completions { shell }) => {
            tokend::cli::print_completions(shell);
            std::process::exit(0);
        }
        _ => {}
    }
    if let Err(message) = cli.check() {
        eprintln!("tokend: {message}");
        std::process::exit(EXIT_CONFIG);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tokend: {err}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("tokend: cannot start the async runtime: {err}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async move {
        let telemetry = match tokend::telemetry::init(config.log == LogFormat::Json) {
            Ok(guard) => guard,
            Err(err) => {
                eprintln!("tokend: cannot start telemetry: {err:#}");
                return 1;
            }
        };
        let result = tokend::cli::run(cli.command.unwrap_or(Command::Serve), config).await;
        let code = match result {
            Ok(()) => 0,
            Err(err) => {
                tracing::error!(error = format!("{err:#}"), "tokend failed");
                let (message, code) = tokend::cli::failure(&err);
                eprintln!("tokend: {message}");
                code
            }
        };
        telemetry.shutdown();
        code
    });
    std::process::exit(code);
}
