//! `server [--config PATH]`: runs the lottery server until SIGTERM or SIGINT.

use std::process::ExitCode;

use log::{LevelFilter, debug, error, warn};
use server::config::Config;
use server::server::Server;

fn main() -> ExitCode {
    // Every level is compiled in; the configured one is applied once it is known.
    simple_logger::SimpleLogger::new()
        .with_level(LevelFilter::Trace)
        .with_utc_timestamps()
        .init()
        .expect("the logger is installed once");
    log::set_max_level(LevelFilter::Info);

    let path = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => "config.ini".to_owned(),
        [flag, path] if flag == "--config" => path.clone(),
        _ => {
            eprintln!("usage: server [--config PATH]   (default: ./config.ini)");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // Every key may come from the environment instead.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            error!("action: config | result: fail | file: {path} | error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::parse(&text, |key| std::env::var(key).ok()) {
        Ok((config, unknown)) => {
            for key in unknown {
                warn!(
                    "action: config | result: success | file: {path} | warning: unknown key {key} ignored"
                );
            }
            config
        }
        Err(e) => {
            error!("action: config | result: fail | file: {path} | error: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::set_max_level(config.logging_level);
    debug!("action: config | result: success | {}", config.summary());

    let result = Server::new(config).and_then(Server::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("action: server | result: fail | error: {e}");
            ExitCode::FAILURE
        }
    }
}
