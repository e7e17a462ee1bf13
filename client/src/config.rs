//! The client's configuration: `config.yaml`, each key overridable by an
//! environment variable `CLI_` + the key upper-cased with dots as underscores
//! (`batch.maxAmount` -> `CLI_BATCH_MAXAMOUNT`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;
use yaml_rust2::{Yaml, YamlLoader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exercises 1-4: `loop.amount` echo messages, one connection each.
    Echo,
    /// Exercise 5: one bet from `NOMBRE`, `APELLIDO`, `DOCUMENTO`, `NACIMIENTO`, `NUMERO`.
    Bet,
    /// Exercises 6-8: the agency's file in batches, then its winners.
    Agency,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub id: u16,
    pub server_address: String,
    pub loop_amount: u32,
    pub loop_period: Duration,
    /// `loop.period` exactly as written, for the log line.
    pub loop_period_text: String,
    pub log_level: LevelFilter,
    /// Bets per batch, already clamped to what fits in 8 kB.
    pub batch_max_amount: usize,
    /// The configured value, when it had to be clamped.
    pub batch_max_amount_clamped_from: Option<u64>,
    /// Batches sent before their acks are back (1 = stop-and-wait).
    pub batch_window: usize,
    pub mode: Mode,
    pub agency_data_file: PathBuf,
    /// How long to keep retrying while the server is not listening yet.
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Yaml(String),
    Missing {
        key: &'static str,
        env: String,
    },
    Invalid {
        key: &'static str,
        value: String,
        from: String,
        expected: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Yaml(e) => write!(f, "config file is not valid YAML: {e}"),
            ConfigError::Missing { key, env } => {
                write!(
                    f,
                    "{key} is not set (neither in the config file nor as {env})"
                )
            }
            ConfigError::Invalid {
                key,
                value,
                from,
                expected,
            } => {
                write!(f, "{key} = {value:?} (from {from}) is not {expected}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The environment variable that overrides a YAML key.
pub fn env_name(key: &str) -> String {
    format!("CLI_{}", key.to_ascii_uppercase().replace('.', "_"))
}

impl Config {
    /// Builds the configuration from YAML text (empty if there is no file) and
    /// an environment lookup.
    pub fn parse(yaml: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let docs = YamlLoader::load_from_str(yaml).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let mut file = HashMap::new();
        if let Some(doc) = docs.first() {
            flatten("", doc, &mut file);
        }
        let lookup = |key: &'static str| -> Option<(String, String)> {
            let name = env_name(key);
            env(&name)
                .map(|v| (v, format!("the environment, {name}")))
                .or_else(|| {
                    file.get(key)
                        .map(|v| (v.clone(), "the config file".to_owned()))
                })
        };
        let loop_period_text = lookup("loop.period").map_or("5s".to_owned(), |(v, _)| v);
        let requested_batch: u64 = value(
            &lookup,
            "batch.maxAmount",
            Some(103),
            "a whole number above zero",
            |v| v.parse().ok().filter(|&n| n > 0),
        )?;
        let batch_max_amount =
            requested_batch.min(lottery_protocol::MAX_BETS_PER_BATCH as u64) as usize;
        let id: u16 = value(
            &lookup,
            "id",
            None,
            "an agency number from 1 to 65535",
            |v| v.parse().ok().filter(|&n| n > 0),
        )?;
        Ok(Config {
            id,
            server_address: value(
                &lookup,
                "server.address",
                None,
                "a host:port address",
                |v| {
                    v.rsplit_once(':')
                        .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                        .map(|_| v.to_owned())
                },
            )?,
            loop_amount: value(&lookup, "loop.amount", Some(5), "a whole number", |v| {
                v.parse().ok()
            })?,
            loop_period: value(
                &lookup,
                "loop.period",
                Some(Duration::from_secs(5)),
                "a duration such as 100ms or 5s",
                |v| humantime::parse_duration(v).ok(),
            )?,
            loop_period_text,
            log_level: value(
                &lookup,
                "log.level",
                Some(LevelFilter::Info),
                "one of TRACE, DEBUG, INFO, WARN, ERROR, OFF",
                parse_level,
            )?,
            batch_max_amount,
            batch_max_amount_clamped_from: (requested_batch != batch_max_amount as u64)
                .then_some(requested_batch),
            batch_window: value(
                &lookup,
                "batch.window",
                Some(8),
                "a whole number from 1 to 1024",
                |v| v.parse().ok().filter(|n| (1..=1024).contains(n)),
            )?,
            mode: value(
                &lookup,
                "mode",
                Some(Mode::Agency),
                "one of echo, bet, agency",
                |v| match v.to_ascii_lowercase().as_str() {
                    "echo" => Some(Mode::Echo),
                    "bet" => Some(Mode::Bet),
                    "agency" => Some(Mode::Agency),
                    _ => None,
                },
            )?,
            agency_data_file: value(
                &lookup,
                "agency.data_file",
                Some(PathBuf::from(format!(".data/agency-{id}.csv"))),
                "a file path",
                |v| (!v.is_empty()).then(|| PathBuf::from(v)),
            )?,
            connect_timeout: value(
                &lookup,
                "server.connectTimeout",
                Some(Duration::from_secs(10)),
                "a duration such as 10s",
                |v| humantime::parse_duration(v).ok(),
            )?,
        })
    }

    /// The `action: config` log line's details.
    pub fn summary(&self) -> String {
        format!(
            "client_id: {} | server_address: {} | loop_amount: {} | loop_period: {} | log_level: {} | mode: {} | batch_max_amount: {} | batch_window: {}",
            self.id,
            self.server_address,
            self.loop_amount,
            self.loop_period_text,
            self.log_level,
            format!("{:?}", self.mode).to_ascii_lowercase(),
            self.batch_max_amount,
            self.batch_window,
        )
    }
}

/// Reads `key` from the environment or the file and parses it; its default
/// when it is set nowhere.
fn value<T>(
    lookup: &impl Fn(&'static str) -> Option<(String, String)>,
    key: &'static str,
    default: Option<T>,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    match lookup(key) {
        Some((value, from)) => parse(value.trim()).ok_or(ConfigError::Invalid {
            key,
            value,
            from,
            expected,
        }),
        None => default.ok_or_else(|| ConfigError::Missing {
            key,
            env: env_name(key),
        }),
    }
}

fn parse_level(value: &str) -> Option<LevelFilter> {
    Some(match value.to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::Trace,
        "DEBUG" => LevelFilter::Debug,
        "INFO" => LevelFilter::Info,
        "WARN" | "WARNING" => LevelFilter::Warn,
        "ERROR" | "FATAL" | "PANIC" => LevelFilter::Error,
        "OFF" => LevelFilter::Off,
        _ => return None,
    })
}

/// `server: {address: x}` -> `server.address = x`; scalars as their text.
fn flatten(prefix: &str, yaml: &Yaml, out: &mut HashMap<String, String>) {
    let text = match yaml {
        Yaml::Hash(map) => {
            for (k, v) in map {
                if let Some(k) = k.as_str() {
                    let key = if prefix.is_empty() {
                        k.to_owned()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            return;
        }
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => return,
    };
    out.insert(prefix.to_owned(), text);
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXERCISE_YAML: &str = "server:\n  address: \"server:12345\"\nloop:\n  amount: 5\n  period: \"100ms\"\nlog:\n  level: \"info\"\nbatch:\n  maxAmount: 50\n";

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_exercise_file() {
        let config = Config::parse(EXERCISE_YAML, env_of(&[("CLI_ID", "3")])).unwrap();
        assert_eq!(config.id, 3);
        assert_eq!(config.server_address, "server:12345");
        assert_eq!(config.loop_amount, 5);
        assert_eq!(config.loop_period, Duration::from_millis(100));
        assert_eq!(config.log_level, LevelFilter::Info);
        assert_eq!(config.batch_max_amount, 50);
        assert_eq!(config.mode, Mode::Agency);
        assert_eq!(config.agency_data_file, PathBuf::from(".data/agency-3.csv"));
        assert_eq!(
            config.summary(),
            "client_id: 3 | server_address: server:12345 | loop_amount: 5 | loop_period: 100ms | log_level: INFO | mode: agency | batch_max_amount: 50 | batch_window: 8"
        );
    }

    #[test]
    fn environment_overrides() {
        let env = env_of(&[
            ("CLI_ID", "7"),
            ("CLI_SERVER_ADDRESS", "127.0.0.1:9000"),
            ("CLI_LOOP_AMOUNT", "3"),
            ("CLI_LOOP_PERIOD", "1m 30s"),
            ("CLI_LOG_LEVEL", "DEBUG"),
            ("CLI_BATCH_MAXAMOUNT", "500"),
            ("CLI_BATCH_WINDOW", "1"),
            ("CLI_MODE", "echo"),
            ("CLI_AGENCY_DATA_FILE", "/data/agency.csv"),
            ("CLI_SERVER_CONNECTTIMEOUT", "2s"),
        ]);
        let config = Config::parse(EXERCISE_YAML, env).unwrap();
        assert_eq!(config.server_address, "127.0.0.1:9000");
        assert_eq!(config.loop_amount, 3);
        assert_eq!(config.loop_period, Duration::from_secs(90));
        assert_eq!(
            config.loop_period_text, "1m 30s",
            "printed exactly as configured"
        );
        assert_eq!(config.log_level, LevelFilter::Debug);
        assert_eq!(config.batch_max_amount, 103, "clamped to what fits in 8 kB");
        assert_eq!(config.batch_max_amount_clamped_from, Some(500));
        assert_eq!(config.batch_window, 1);
        assert_eq!(config.mode, Mode::Echo);
        assert_eq!(config.agency_data_file, PathBuf::from("/data/agency.csv"));
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn errors_name_the_key_and_where_it_came_from() {
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let table: &[Case] = &[
            (
                EXERCISE_YAML,
                &[],
                "id is not set (neither in the config file nor as CLI_ID)",
            ),
            (
                EXERCISE_YAML,
                &[("CLI_ID", "0")],
                "id = \"0\" (from the environment, CLI_ID) is not an agency number from 1 to 65535",
            ),
            (
                "loop:\n  period: soon\n",
                &[("CLI_ID", "1"), ("CLI_SERVER_ADDRESS", "h:1")],
                "loop.period = \"soon\" (from the config file) is not a duration such as 100ms or 5s",
            ),
            (
                EXERCISE_YAML,
                &[("CLI_ID", "1"), ("CLI_SERVER_ADDRESS", "server")],
                "server.address = \"server\" (from the environment, CLI_SERVER_ADDRESS) is not a host:port address",
            ),
            (
                EXERCISE_YAML,
                &[("CLI_ID", "1"), ("CLI_BATCH_MAXAMOUNT", "0")],
                "batch.maxAmount = \"0\" (from the environment, CLI_BATCH_MAXAMOUNT) is not a whole number above zero",
            ),
            (
                EXERCISE_YAML,
                &[("CLI_ID", "1"), ("CLI_MODE", "lottery")],
                "mode = \"lottery\" (from the environment, CLI_MODE) is not one of echo, bet, agency",
            ),
        ];
        for &(yaml, env, want) in table {
            assert_eq!(
                Config::parse(yaml, env_of(env)).unwrap_err().to_string(),
                want
            );
        }
        assert!(
            Config::parse("server: [", env_of(&[]))
                .unwrap_err()
                .to_string()
                .starts_with("config file is not valid YAML")
        );
    }
}
