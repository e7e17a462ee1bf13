//! `server [--config PATH]`: runs the lottery server until SIGTERM or SIGINT;
//! `server --check` says what a start would do with its round (`--help`,
//! `--version`).

use std::process::ExitCode;

use log::{LevelFilter, debug, error, info, warn};
use server::cli::{self, Command};
use server::config::{self, Config};
use server::server::{Server, connection_cap};
use server::storage;
use tp0_log::field;

fn main() -> ExitCode {
    tp0_log::end_on_closed_output();
    // A file-size limit (RLIMIT_FSIZE) must fail a write with EFBIG, which the
    // storage answers by cutting the file back and naming it, not kill the
    // server mid-row with SIGXFSZ.
    // SAFETY: setting a signal's disposition at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let (file, check) = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(file)) => (file, false),
        Ok(Command::Check(file)) => (file, true),
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("{}", cli::VERSION);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("server: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };

    // Every level is compiled in; the configured one is applied once it is known.
    simple_logger::SimpleLogger::new()
        .with_level(LevelFilter::Trace)
        .with_utc_timestamps()
        .init()
        .expect("the logger is installed once");
    log::set_max_level(LevelFilter::Info);

    let path = field(file.path().display());
    let text = match file.read() {
        Ok(text) => text,
        Err(e) => {
            error!(
                "action: config | result: fail | file: {path} | error: {}",
                field(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let env = |key: &str| std::env::var(key).ok();
    let config = match Config::parse(&text, env, config::resolve) {
        Ok((config, unknown)) => {
            for key in unknown {
                warn!(
                    "action: config | result: success | file: {path} | warning: {}",
                    field(&key)
                );
            }
            config
        }
        Err(e) => {
            error!(
                "action: config | result: fail | file: {path} | error: {}",
                field(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    log::set_max_level(config.logging_level);
    debug!("action: config | result: success | {}", config.summary());
    if check {
        return check_round(&config);
    }

    let result = Server::new(config).and_then(Server::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("action: server | result: fail | error: {}", field(&e));
            ExitCode::FAILURE
        }
    }
}

/// `--check`: what a start would do with the configured round (once no other
/// server holds its files), as one log line, whatever the logging level (it
/// is what was asked for). Exit 0 when a start would go on, 1 when it would
/// refuse: the round's files, and `MAX_CONNECTIONS` against `AGENCIES`.
fn check_round(config: &Config) -> ExitCode {
    log::set_max_level(LevelFilter::Info.max(log::max_level()));
    let file = field(config.bets_file.display());
    let agencies = config.agencies;
    if agencies == 0 {
        info!(
            "action: check_round | result: success | bets_file: {file} | agencies: 0 | round: none (echo only)"
        );
        return ExitCode::SUCCESS;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The descriptor limit that matters is the running server's (a
    // container's), not this process's: only MAX_CONNECTIONS is checked.
    let checked = connection_cap(config, u64::MAX).and_then(|_| {
        storage::check_round(&config.bets_file, agencies, now).map_err(|e| e.to_string())
    });
    match checked {
        Ok(plan) => {
            info!(
                "action: check_round | result: success | bets_file: {file} | agencies: {agencies} | round: {}",
                plan.as_str()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(
                "action: check_round | result: fail | bets_file: {file} | agencies: {agencies} | error: {}",
                field(&e)
            );
            ExitCode::FAILURE
        }
    }
}
