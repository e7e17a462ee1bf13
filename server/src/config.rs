//! The server's configuration: `config.ini`, section `[DEFAULT]`, each key
//! overridable by an environment variable of the same name.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

/// Everything the server reads at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub ip: IpAddr,
    pub port: u16,
    pub listen_backlog: i32,
    pub logging_level: LevelFilter,
    /// Distinct agencies whose end frame triggers the draw; agencies are numbered
    /// `1..=agencies`. With 0 the server takes no bets (echo only) and never draws.
    pub agencies: u16,
    pub bets_file: PathBuf,
    /// A connection that makes no progress for this long mid-stream is closed; an
    /// agency waiting for the draw is never timed out.
    pub stall_timeout: Duration,
    /// The least time between an agency's end ack leaving and its winners
    /// leaving, so that a client reading its last acks takes them alone (the
    /// reference Go client misreads winners that arrive in the same read).
    pub winners_delay: Duration,
}

/// A configuration that cannot be used; names the key, its value and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Syntax {
        line: usize,
        text: String,
    },
    Missing {
        key: &'static str,
    },
    Invalid {
        key: &'static str,
        value: String,
        source: Source,
        expected: &'static str,
    },
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Environment,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Syntax { line, text } => {
                write!(
                    f,
                    "line {line}: expected `KEY = value` or `[SECTION]`, found {text:?}"
                )
            }
            ConfigError::Missing { key } => write!(
                f,
                "{key} is not set (neither in the [DEFAULT] section nor in the environment)"
            ),
            ConfigError::Invalid {
                key,
                value,
                source,
                expected,
            } => {
                let from = match source {
                    Source::File => "config file",
                    Source::Environment => "environment",
                };
                write!(f, "{key} = {value:?} (from the {from}) is not {expected}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

pub const KEYS: [&str; 8] = [
    "SERVER_PORT",
    "SERVER_IP",
    "SERVER_LISTEN_BACKLOG",
    "LOGGING_LEVEL",
    "AGENCIES",
    "BETS_FILE",
    "STALL_TIMEOUT",
    "WINNERS_DELAY",
];

/// `WINNERS_DELAY` when unset: far above the time a blocked reader takes to
/// wake on loopback or a LAN, and paid only by agencies that finish within it
/// of the draw (see the README).
pub const DEFAULT_WINNERS_DELAY: Duration = Duration::from_millis(100);

impl Config {
    /// Builds the configuration from the text of an INI file (empty if there is
    /// none) and an environment lookup. Returns the configuration and the keys of
    /// the `[DEFAULT]` section it did not know (worth a warning, not an error).
    pub fn parse(
        ini: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let file = parse_ini_defaults(ini)?;
        let unknown = file
            .keys()
            .filter(|k| !KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        let lookup = |key: &'static str| -> Option<(String, Source)> {
            env(key)
                .map(|v| (v, Source::Environment))
                .or_else(|| file.get(key).map(|v| (v.clone(), Source::File)))
        };
        let config = Config {
            ip: value(&lookup, "SERVER_IP", None, "an IP address", |v| {
                // The exercise's file says "" for "every interface".
                if v.is_empty() { "0.0.0.0" } else { v }.parse().ok()
            })?,
            port: value(
                &lookup,
                "SERVER_PORT",
                None,
                "a port number (0-65535)",
                |v| v.parse().ok(),
            )?,
            listen_backlog: value(
                &lookup,
                "SERVER_LISTEN_BACKLOG",
                None,
                "a whole number from 1 to 65535",
                |v| v.parse::<u16>().ok().filter(|&n| n > 0).map(i32::from),
            )?,
            logging_level: value(
                &lookup,
                "LOGGING_LEVEL",
                None,
                "one of TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL, OFF",
                parse_level,
            )?,
            agencies: value(
                &lookup,
                "AGENCIES",
                Some(5),
                "a whole number from 0 to 65535",
                |v| v.parse().ok(),
            )?,
            bets_file: value(
                &lookup,
                "BETS_FILE",
                Some(PathBuf::from("bets.csv")),
                "a file path",
                |v| (!v.is_empty()).then(|| PathBuf::from(v)),
            )?,
            stall_timeout: value(
                &lookup,
                "STALL_TIMEOUT",
                Some(Duration::from_secs(30)),
                "a duration above zero such as 30s or 500ms",
                |v| humantime::parse_duration(v).ok().filter(|d| !d.is_zero()),
            )?,
            winners_delay: value(
                &lookup,
                "WINNERS_DELAY",
                Some(DEFAULT_WINNERS_DELAY),
                "a duration such as 100ms or 0s",
                |v| humantime::parse_duration(v).ok(),
            )?,
        };
        Ok((config, unknown))
    }

    /// The `action: config` log line's details.
    pub fn summary(&self) -> String {
        format!(
            "port: {} | listen_backlog: {} | logging_level: {} | ip: {} | agencies: {} | bets_file: {} | stall_timeout: {} | winners_delay: {}",
            self.port,
            self.listen_backlog,
            self.logging_level,
            self.ip,
            self.agencies,
            self.bets_file.display(),
            humantime::format_duration(self.stall_timeout),
            humantime::format_duration(self.winners_delay),
        )
    }
}

/// Reads `key`: its value from the environment or the file, parsed, or its
/// default when it has one and is set nowhere.
fn value<T>(
    lookup: &impl Fn(&'static str) -> Option<(String, Source)>,
    key: &'static str,
    default: Option<T>,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    match lookup(key) {
        Some((value, source)) => parse(value.trim()).ok_or(ConfigError::Invalid {
            key,
            value,
            source,
            expected,
        }),
        None => default.ok_or(ConfigError::Missing { key }),
    }
}

/// Python's level names (what the exercise's config uses) and Rust's.
pub fn parse_level(value: &str) -> Option<LevelFilter> {
    Some(match value.to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::Trace,
        "DEBUG" => LevelFilter::Debug,
        "INFO" => LevelFilter::Info,
        "WARN" | "WARNING" => LevelFilter::Warn,
        "ERROR" | "CRITICAL" | "FATAL" => LevelFilter::Error,
        "OFF" => LevelFilter::Off,
        _ => return None,
    })
}

/// The keys of the `[DEFAULT]` section, upper-cased as `configparser` folds them.
/// Keys in other sections are ignored; a key before any section is an error.
fn parse_ini_defaults(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut keys = HashMap::new();
    let mut section: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let syntax = || ConfigError::Syntax {
            line: i + 1,
            text: raw.to_owned(),
        };
        if let Some(name) = line.strip_prefix('[') {
            section = Some(name.strip_suffix(']').ok_or_else(syntax)?.trim().to_owned());
            continue;
        }
        let (key, value) = line.split_once(['=', ':']).ok_or_else(syntax)?;
        match section.as_deref() {
            Some("DEFAULT") => {
                keys.insert(key.trim().to_ascii_uppercase(), value.trim().to_owned());
            }
            Some(_) => {}
            None => return Err(syntax()),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXERCISE_INI: &str = "[DEFAULT]\nSERVER_PORT = 12345\nSERVER_IP = \nSERVER_LISTEN_BACKLOG = 5\nLOGGING_LEVEL = INFO\n";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_exercise_file_with_four_keys_works_with_defaults() {
        let (config, unknown) = Config::parse(EXERCISE_INI, no_env).unwrap();
        assert_eq!(
            config,
            Config {
                ip: "0.0.0.0".parse().unwrap(),
                port: 12345,
                listen_backlog: 5,
                logging_level: LevelFilter::Info,
                agencies: 5,
                bets_file: "bets.csv".into(),
                stall_timeout: Duration::from_secs(30),
                winners_delay: Duration::from_millis(100),
            }
        );
        assert!(unknown.is_empty());
    }

    #[test]
    fn environment_overrides_each_key() {
        let env = |key: &str| {
            Some(
                match key {
                    "SERVER_PORT" => "5000",
                    "SERVER_IP" => "127.0.0.1",
                    "SERVER_LISTEN_BACKLOG" => "64",
                    "LOGGING_LEVEL" => "debug",
                    "AGENCIES" => "300",
                    "BETS_FILE" => "/data/bets.csv",
                    "STALL_TIMEOUT" => "250ms",
                    "WINNERS_DELAY" => "0s",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let (config, _) = Config::parse(EXERCISE_INI, env).unwrap();
        assert_eq!(config.port, 5000);
        assert_eq!(config.ip.to_string(), "127.0.0.1");
        assert_eq!(config.listen_backlog, 64);
        assert_eq!(config.logging_level, LevelFilter::Debug);
        assert_eq!(config.agencies, 300);
        assert_eq!(config.bets_file, PathBuf::from("/data/bets.csv"));
        assert_eq!(config.stall_timeout, Duration::from_millis(250));
        assert_eq!(config.winners_delay, Duration::ZERO);
    }

    #[test]
    fn bad_values_name_key_value_and_source() {
        type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a str);
        let table: &[Case] = &[
            (
                "[DEFAULT]\nSERVER_PORT = 99999\nSERVER_IP=\nSERVER_LISTEN_BACKLOG=5\nLOGGING_LEVEL=INFO",
                None,
                "SERVER_PORT = \"99999\" (from the config file) is not a port number (0-65535)",
            ),
            (
                EXERCISE_INI,
                Some(("AGENCIES", "five")),
                "AGENCIES = \"five\" (from the environment) is not a whole number from 0 to 65535",
            ),
            (
                EXERCISE_INI,
                Some(("LOGGING_LEVEL", "LOUD")),
                "LOGGING_LEVEL = \"LOUD\" (from the environment) is not one of TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL, OFF",
            ),
            (
                EXERCISE_INI,
                Some(("STALL_TIMEOUT", "0s")),
                "STALL_TIMEOUT = \"0s\" (from the environment) is not a duration above zero such as 30s or 500ms",
            ),
            (
                EXERCISE_INI,
                Some(("WINNERS_DELAY", "soon")),
                "WINNERS_DELAY = \"soon\" (from the environment) is not a duration such as 100ms or 0s",
            ),
            (
                EXERCISE_INI,
                Some(("SERVER_LISTEN_BACKLOG", "0")),
                "SERVER_LISTEN_BACKLOG = \"0\" (from the environment) is not a whole number from 1 to 65535",
            ),
            (
                "[DEFAULT]\nSERVER_PORT = 1\n",
                None,
                "SERVER_IP is not set (neither in the [DEFAULT] section nor in the environment)",
            ),
            (
                "",
                None,
                "SERVER_IP is not set (neither in the [DEFAULT] section nor in the environment)",
            ),
            (
                "SERVER_PORT = 1\n",
                None,
                "line 1: expected `KEY = value` or `[SECTION]`, found \"SERVER_PORT = 1\"",
            ),
            (
                "[DEFAULT]\njust words\n",
                None,
                "line 2: expected `KEY = value` or `[SECTION]`, found \"just words\"",
            ),
        ];
        for &(ini, env, want) in table {
            let err = Config::parse(ini, |k| {
                env.filter(|(key, _)| *key == k).map(|(_, v)| v.to_owned())
            })
            .unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn ini_details() {
        let ini = "# comment\n; another\n[DEFAULT]\nserver_port: 7\nSERVER_IP = ::1\nSERVER_LISTEN_BACKLOG=1\nLOGGING_LEVEL = WARNING\nEXTRA = 1\n[other]\nSERVER_PORT = 8\n";
        let (config, unknown) = Config::parse(ini, no_env).unwrap();
        assert_eq!(
            config.port, 7,
            "lower-case key, colon separator, other section ignored"
        );
        assert_eq!(config.ip.to_string(), "::1");
        assert_eq!(config.logging_level, LevelFilter::Warn);
        assert_eq!(unknown, ["EXTRA"]);
    }
}
