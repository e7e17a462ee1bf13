//! `client [--config PATH]`: one agency, in the mode its configuration names
//! (`client --help` for the `gen-data` and `load` subcommands, `--version`).

use std::process::ExitCode;
use std::time::Instant;

use client::agency::{Agency, Event};
use client::cli::{self, Command};
use client::config::{Config, Mode};
use client::data::load_bets;
use client::link::{Conversation, Link, Stop};
use client::reconnect::{Next, REFUSALS, Reconnect};
use log::{Level, LevelFilter, debug, error, info, log, warn};
use lottery_protocol::{Bet, Status};
use tp0_log::field;

fn main() -> ExitCode {
    tp0_log::end_on_closed_output();
    simple_logger::SimpleLogger::new()
        .with_level(LevelFilter::Trace)
        .with_utc_timestamps()
        .init()
        .expect("the logger is installed once");
    log::set_max_level(LevelFilter::Info);

    let file = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(file)) => file,
        Ok(Command::GenData {
            agency,
            bets,
            winners,
            out,
        }) => return gen_data(&agency, &bets, &winners, &out),
        Ok(Command::Load(args)) => return load(&args),
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("{}", cli::VERSION);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("client: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
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
    let (config, unknown) = match Config::parse(&text, |key| std::env::var(key).ok()) {
        Ok(parsed) => parsed,
        Err(e) => {
            error!(
                "action: config | result: fail | file: {path} | error: {}",
                field(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    for key in unknown {
        warn!(
            "action: config | result: success | client_id: {} | file: {path} | warning: {}",
            config.id,
            field(&key)
        );
    }
    log::set_max_level(config.log_level);
    info!("action: config | result: success | {}", config.summary());
    if let Some(asked) = config.batch_max_amount_clamped_from {
        warn!(
            "action: config | result: success | client_id: {} | warning: batch.maxAmount {asked} clamped to {} so that a batch stays under 8 kB",
            config.id, config.batch_max_amount
        );
    }

    let mut link = match Link::new() {
        Ok(link) => link,
        Err(e) => {
            error!(
                "action: start | result: fail | client_id: {} | error: {}",
                config.id,
                field(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let (action, result) = match config.mode {
        Mode::Echo => ("receive_message", run_echo(&config, &mut link)),
        Mode::Bet => ("apuesta_enviada", run_bet(&config, &mut link)),
        Mode::Agency => ("consulta_ganadores", run_agency(&config, &mut link)),
    };
    if link.close() {
        info!(
            "action: close_socket | result: success | client_id: {}",
            config.id
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Stop(Stop::Signal(name))) => {
            info!(
                "action: shutdown | result: success | client_id: {} | signal: {name}",
                config.id
            );
            ExitCode::SUCCESS
        }
        Err(Failure::Stop(Stop::Io(e) | Stop::Lost(e))) => {
            error!(
                "action: {action} | result: fail | client_id: {} | error: {}",
                config.id,
                field(&e)
            );
            ExitCode::FAILURE
        }
        Err(Failure::Input(action, e)) => {
            error!(
                "action: {action} | result: fail | client_id: {} | error: {}",
                config.id,
                field(&e)
            );
            ExitCode::FAILURE
        }
    }
}

/// `client gen-data`: writes a deterministic agency file (see `generate`).
fn gen_data(agency: &str, bets: &str, winners: &str, out: &str) -> ExitCode {
    let (Ok(agency), Ok(bets), Ok(winners)) =
        (agency.parse::<u16>(), bets.parse(), winners.parse())
    else {
        eprintln!("gen-data: AGENCY (1-65535), BETS and WINNERS are whole numbers");
        return ExitCode::from(2);
    };
    if winners > bets {
        eprintln!("gen-data: {winners} winners cannot be among {bets} bets");
        return ExitCode::from(2);
    }
    let data = client::generate::agency_bets(agency, bets, winners, u64::from(agency));
    // Written beside it and renamed into place: a run cut short (a full disk,
    // Ctrl-C) leaves no torn file that gen-data.sh would then keep as done.
    let partial = format!("{out}.partial");
    let result = std::fs::File::create(&partial)
        .and_then(|file| client::generate::write_csv(&data, std::io::BufWriter::new(file)))
        .and_then(|()| std::fs::rename(&partial, out))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        });
    match result {
        Ok(()) => {
            info!(
                "action: gen_data | result: success | agency: {agency} | file: {} | cantidad: {bets} | ganadores: {winners}",
                field(out)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(
                "action: gen_data | result: fail | file: {} | error: {}",
                field(out),
                field(&e)
            );
            ExitCode::FAILURE
        }
    }
}

/// `client load`: the load generator against a running server (see `load`).
fn load(args: &[String]) -> ExitCode {
    let parsed = (|| -> Option<client::load::LoadConfig> {
        let [address, agencies, bets, rest @ ..] = args else {
            return None;
        };
        Some(client::load::LoadConfig {
            address: std::net::ToSocketAddrs::to_socket_addrs(address.as_str())
                .ok()?
                .next()?,
            agencies: agencies.parse().ok()?,
            bets_per_agency: bets.parse().ok()?,
            winners_per_agency: 1,
            window: rest.first().map_or(Some(8), |w| w.parse().ok())?,
            per_batch: rest.get(1).map_or(Some(103), |b| b.parse().ok())?,
            connecting_at_once: 256,
            deadline: std::time::Duration::from_secs(600),
        })
    })();
    let Some(config) = parsed else {
        eprintln!("usage: client load ADDRESS AGENCIES BETS_PER_AGENCY [WINDOW [BETS_PER_BATCH]]");
        return ExitCode::from(2);
    };
    match client::load::run(&config) {
        Ok(report) if report.errors.is_empty() => {
            info!(
                "action: load | result: success | agencies: {} | bets: {} | seconds: {:.3} | bets_per_s: {:.0} | ack_p50_ms: {:.3} | ack_p99_ms: {:.3}",
                report.agencies_done,
                report.bets,
                report.elapsed.as_secs_f64(),
                report.bets_per_second(),
                report.latency(0.5).as_secs_f64() * 1e3,
                report.latency(0.99).as_secs_f64() * 1e3
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for e in report.errors.iter().take(20) {
                error!("action: load | result: fail | error: {}", field(e));
            }
            error!(
                "action: load | result: fail | agencies_done: {} | errors: {}",
                report.agencies_done,
                report.errors.len()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            error!("action: load | result: fail | error: {}", field(&e));
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Stop(Stop),
    /// The agency's own data is unusable; nothing was sent.
    Input(&'static str, String),
}

impl From<Stop> for Failure {
    fn from(stop: Stop) -> Failure {
        Failure::Stop(stop)
    }
}

/// Exercises 1-4: one connection per message, `loop.period` apart.
fn run_echo(config: &Config, link: &mut Link) -> Result<(), Failure> {
    for k in 1..=config.loop_amount {
        link.connect(&config.server_address, config.connect_timeout)?;
        let mut echo = Echo {
            out: format!("[CLIENT {}] Message N°{k}\n", config.id).into_bytes(),
            sent: 0,
            reply: Vec::new(),
        };
        link.converse(&mut echo)?;
        link.close();
        info!(
            "action: receive_message | result: success | client_id: {} | msg: {}",
            config.id,
            field(String::from_utf8_lossy(&echo.reply).trim_end())
        );
        if k < config.loop_amount {
            link.sleep(config.loop_period)?;
        }
    }
    info!(
        "action: loop_finished | result: success | client_id: {}",
        config.id
    );
    Ok(())
}

struct Echo {
    out: Vec<u8>,
    sent: usize,
    reply: Vec<u8>,
}

impl Conversation for Echo {
    fn to_send(&self, _now: Instant) -> &[u8] {
        &self.out[self.sent..]
    }
    fn sent(&mut self, n: usize, _now: Instant) {
        self.sent += n;
    }
    fn on_input(&mut self, data: &[u8]) -> Result<bool, Stop> {
        self.reply.extend_from_slice(data);
        Ok(self.reply.ends_with(b"\n"))
    }
}

/// Exercise 5: the one bet in `NOMBRE`, `APELLIDO`, `DOCUMENTO`, `NACIMIENTO`, `NUMERO`.
fn run_bet(config: &Config, link: &mut Link) -> Result<(), Failure> {
    let var = |name: &'static str| {
        std::env::var(name).map_err(|_| {
            Failure::Input(
                "apuesta_enviada",
                format!("environment variable {name} is not set"),
            )
        })
    };
    let number = |name: &'static str| -> Result<u32, Failure> {
        let value = var(name)?;
        value.trim().parse().map_err(|_| {
            Failure::Input(
                "apuesta_enviada",
                format!("{name} = \"{value}\" is not a whole number from 0 to 4294967295"),
            )
        })
    };
    let bet = Bet::new(
        config.id,
        &var("NOMBRE")?,
        &var("APELLIDO")?,
        number("DOCUMENTO")?,
        &var("NACIMIENTO")?,
        number("NUMERO")?,
    )
    .map_err(|e| Failure::Input("apuesta_enviada", e.to_string()))?;
    send_bets(config, link, &[bet], Level::Info)
}

/// Exercises 6-8: the agency's file in batches, then its winners.
fn run_agency(config: &Config, link: &mut Link) -> Result<(), Failure> {
    let bets = load_bets(&config.agency_data_file, config.id)
        .map_err(|e| Failure::Input("load_bets", e.to_string()))?;
    info!(
        "action: load_bets | result: success | client_id: {} | file: {} | cantidad: {}",
        config.id,
        field(config.agency_data_file.display()),
        bets.len()
    );
    send_bets(config, link, &bets, Level::Debug)
}

/// Sends `bets` and the end frame, `loop.period` between batches, checks
/// every ack, then reads the winners. Each stored bet is logged at `per_bet`
/// level. A lost connection is followed by a new one and the conversation
/// starts over (see [`reconnect`]); the first connect is bounded by
/// `server.connectTimeout` alone, as in echo mode.
fn send_bets(
    config: &Config,
    link: &mut Link,
    bets: &[Bet],
    per_bet: Level,
) -> Result<(), Failure> {
    link.connect(&config.server_address, config.connect_timeout)?;
    let mut retry = Reconnect::new(config.reconnect_timeout);
    let mut talk = AgencyTalk {
        id: config.id,
        bets,
        agency: Agency::new(
            config.id,
            bets,
            config.batch_max_amount,
            config.batch_window,
        )
        .with_period(config.loop_period),
        per_bet,
        winners: None,
    };
    loop {
        let acked = talk.agency.acked_ever();
        let lost = match link.converse(&mut talk) {
            Ok(()) => break,
            Err(Stop::Lost(cause)) if retry.enabled() => cause,
            Err(stop) => return Err(stop.into()),
        };
        link.close();
        if talk.agency.acked_ever() > acked {
            retry.progress();
        }
        let (bets_acked, ended) = talk.agency.position();
        if retry.closed_at((bets_acked, ended)) {
            let refused = format!(
                "the server closed {REFUSALS} connections in a row at the same place ({bets_acked} bets acked on each): it refuses this agency's stream there, and its log says why (a resent bet that is not the one it stored, an agency the draw's deadline left out, a server full of agencies)"
            );
            error!(
                "action: reconnect | result: fail | client_id: {} | lost: {} | error: {}",
                config.id,
                field(&lost),
                field(&refused)
            );
            return Err(Failure::Stop(Stop::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                refused,
            ))));
        }
        reconnect(config, link, &mut retry, &lost, talk.agency.acked_ever())?;
        talk.agency.restart();
    }
    let winners = talk.winners.unwrap_or_default();
    info!(
        "action: consulta_ganadores | result: success | client_id: {} | cant_ganadores: {}",
        config.id,
        winners.len()
    );
    debug!(
        "action: consulta_ganadores | result: success | client_id: {} | dni_ganadores: {winners:?}",
        config.id
    );
    Ok(())
}

/// After `lost` (the connection is closed): waits and tries to connect again
/// as `retry` says, logging each attempt (`action: reconnect | result:
/// in_progress`) and the one that succeeds (with the `batches_acked` whose
/// acks the new connection checks again without logging them). Errors: a
/// signal; the budget spent (logged here as `action: reconnect | result:
/// fail`, naming why the connection was lost and the last attempt's error).
fn reconnect(
    config: &Config,
    link: &mut Link,
    retry: &mut Reconnect,
    lost: &std::io::Error,
    batches_acked: usize,
) -> Result<(), Failure> {
    retry.lost(Instant::now());
    let mut last_attempt: Option<std::io::Error> = None;
    loop {
        let (attempt, delay) = match retry.next(Instant::now()) {
            Next::Attempt { attempt, delay } => (attempt, delay),
            Next::GiveUp { attempts } => {
                let budget = humantime::format_duration(config.reconnect_timeout);
                let last = last_attempt
                    .map(|e| format!("; last attempt: {e}"))
                    .unwrap_or_default();
                error!(
                    "action: reconnect | result: fail | client_id: {} | attempts: {attempts} | lost: {} | error: {}",
                    config.id,
                    field(lost),
                    field(format!(
                        "no connection to {} within {budget} (server.reconnectTimeout){last}",
                        config.server_address
                    ))
                );
                return Err(Failure::Stop(Stop::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the connection was lost and did not come back within {budget}"),
                ))));
            }
        };
        let after = last_attempt.as_ref().unwrap_or(lost);
        info!(
            "action: reconnect | result: in_progress | client_id: {} | attempt: {attempt} | after: {} | delay: {}",
            config.id,
            field(after),
            // Whole milliseconds: the last wait is cut to the budget's end.
            humantime::format_duration(std::time::Duration::from_millis(delay.as_millis() as u64))
        );
        link.sleep(delay)?;
        let bound = retry.attempt_bound(Instant::now(), config.connect_timeout);
        match link.connect_once(&config.server_address, bound) {
            Ok(_) => {
                retry.connected(Instant::now());
                info!(
                    "action: reconnect | result: success | client_id: {} | attempt: {attempt} | batches_acked: {batches_acked}",
                    config.id
                );
                return Ok(());
            }
            // Refused, unreachable, not resolvable, timed out: the next attempt may do better.
            Err(Stop::Io(e) | Stop::Lost(e)) => last_attempt = Some(e),
            Err(stop @ Stop::Signal(_)) => return Err(stop.into()),
        }
    }
}

struct AgencyTalk<'a> {
    id: u16,
    bets: &'a [Bet],
    agency: Agency,
    per_bet: Level,
    winners: Option<Vec<u32>>,
}

impl Conversation for AgencyTalk<'_> {
    fn to_send(&self, now: Instant) -> &[u8] {
        self.agency.to_send(now)
    }
    fn sent(&mut self, n: usize, now: Instant) {
        self.agency.sent(n, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.agency.poll_timeout()
    }
    fn closed_early(&self) -> String {
        self.agency.closed_early().to_string()
    }
    fn on_input(&mut self, data: &[u8]) -> Result<bool, Stop> {
        let events = self
            .agency
            .on_input(data)
            .map_err(|e| Stop::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        for event in events {
            match event {
                // Reported on the connection that first had it acked.
                Event::BatchAcked { again: true, .. } => {}
                Event::BatchAcked {
                    index,
                    first,
                    bets,
                    rejected,
                    again: false,
                } => self.log_batch(index, first, bets, &rejected),
                Event::Winners(winners) => self.winners = Some(winners),
            }
        }
        Ok(self.agency.is_done())
    }
}

impl AgencyTalk<'_> {
    fn log_batch(&self, index: usize, first: usize, count: usize, rejected: &[(usize, u8)]) {
        for (i, bet) in self.bets[first..first + count].iter().enumerate() {
            if let Some(&(_, status)) = rejected.iter().find(|(r, _)| *r == first + i) {
                let reason = Status::from_byte(status)
                    .map_or_else(|| format!("status {status}"), |s| s.to_string());
                warn!(
                    "action: apuesta_enviada | result: fail | client_id: {} | dni: {} | numero: {} | error: {reason}",
                    self.id, bet.document, bet.number
                );
            } else {
                log!(
                    self.per_bet,
                    "action: apuesta_enviada | result: success | client_id: {} | dni: {} | numero: {}",
                    self.id,
                    bet.document,
                    bet.number
                );
            }
        }
        if rejected.is_empty() {
            info!(
                "action: batch_enviado | result: success | client_id: {} | batch: {} | cantidad: {count}",
                self.id,
                index + 1
            );
        } else {
            warn!(
                "action: batch_enviado | result: fail | client_id: {} | batch: {} | cantidad: {count} | rechazadas: {}",
                self.id,
                index + 1,
                rejected.len()
            );
        }
    }
}
