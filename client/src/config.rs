//! The client's configuration: `config.yaml`, each key overridable by an
//! environment variable `CLI_` + the key upper-cased with dots as underscores
//! (`batch.maxAmount` -> `CLI_BATCH_MAXAMOUNT`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;
use tp0_config::{Naming, Settings, UnknownKey, ValueError, parse_duration, parse_level};
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

/// Everything the client reads at start-up.
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
    /// How long to keep retrying while the server is not listening yet; during
    /// a reconnect, the bound of each attempt.
    pub connect_timeout: Duration,
    /// How long a conversation may go without a connection, after one was
    /// lost, before the client gives up (zero: it does not reconnect). See
    /// [`crate::reconnect`].
    pub reconnect_timeout: Duration,
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file is not YAML; the parser's message.
    Yaml(String),
    /// A key missing or set to an unusable value; names key, value and source.
    Value(ValueError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Yaml(e) => write!(f, "config file is not valid YAML: {e}"),
            ConfigError::Value(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ValueError> for ConfigError {
    fn from(e: ValueError) -> ConfigError {
        ConfigError::Value(e)
    }
}

/// Every key the client reads, as written in the YAML (dots for nesting). Any
/// other key in the file is warned about and ignored; a new key goes here.
pub const KEYS: &[&str] = &[
    "id",
    "server.address",
    "server.connectTimeout",
    "server.reconnectTimeout",
    "loop.amount",
    "loop.period",
    "log.level",
    "batch.maxAmount",
    "batch.window",
    "mode",
    "agency.data_file",
];

/// How the environment variable that overrides a key is named.
pub const NAMING: Naming = Naming::Prefixed("CLI_");

/// The environment variable that overrides a YAML key.
pub fn env_name(key: &str) -> String {
    NAMING.var(key)
}

impl Config {
    /// Builds the configuration from YAML text (empty if there is no file) and
    /// an environment lookup. Returns the configuration and the file's keys it
    /// did not know (worth a warning, not an error).
    pub fn parse(
        yaml: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Config, Vec<UnknownKey>), ConfigError> {
        let docs = YamlLoader::load_from_str(yaml).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let mut file = HashMap::new();
        let mut keys = Vec::new();
        if let Some(doc) = docs.first() {
            flatten("", doc, &mut file, &mut keys);
        }
        let unknown = tp0_config::unknown_keys(keys.iter().map(String::as_str), KEYS);
        let settings = Settings::new(file, env).naming(NAMING);
        let mode = settings.value(
            "mode",
            Some(Mode::Agency),
            "one of echo, bet, agency",
            |v| match v.to_ascii_lowercase().as_str() {
                "echo" => Some(Mode::Echo),
                "bet" => Some(Mode::Bet),
                "agency" => Some(Mode::Agency),
                _ => None,
            },
        )?;
        // Unset, the period is the echo loop's 5 s between messages, and no
        // pause between an agency's batches: pacing is asked for, not imposed.
        let default_period = match mode {
            Mode::Echo => "5s",
            Mode::Bet | Mode::Agency => "0s",
        };
        let loop_period_text = settings
            .get("loop.period")
            .map_or(default_period.to_owned(), |(v, _)| v);
        let requested_batch: u64 = settings.value(
            "batch.maxAmount",
            Some(103),
            "a whole number above zero",
            |v| v.parse().ok().filter(|&n| n > 0),
        )?;
        let batch_max_amount =
            requested_batch.min(lottery_protocol::MAX_BETS_PER_BATCH as u64) as usize;
        let id: u16 = settings.value("id", None, "an agency number from 1 to 65535", |v| {
            v.parse().ok().filter(|&n| n > 0)
        })?;
        let config = Config {
            id,
            server_address: settings.value("server.address", None, "a host:port address", |v| {
                v.rsplit_once(':')
                    .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                    .map(|_| v.to_owned())
            })?,
            loop_amount: settings
                .value("loop.amount", Some(5), "a whole number", |v| v.parse().ok())?,
            loop_period: settings.value(
                "loop.period",
                parse_duration(default_period),
                "a duration such as 100ms or 5s",
                parse_duration,
            )?,
            loop_period_text,
            log_level: settings.value(
                "log.level",
                Some(LevelFilter::Info),
                "one of TRACE, DEBUG, INFO, WARN, ERROR, OFF",
                parse_level,
            )?,
            batch_max_amount,
            batch_max_amount_clamped_from: (requested_batch != batch_max_amount as u64)
                .then_some(requested_batch),
            batch_window: settings.value(
                "batch.window",
                Some(8),
                "a whole number from 1 to 1024",
                |v| v.parse().ok().filter(|n| (1..=1024).contains(n)),
            )?,
            mode,
            agency_data_file: settings.value(
                "agency.data_file",
                Some(PathBuf::from(format!(".data/agency-{id}.csv"))),
                "a file path",
                |v| (!v.is_empty()).then(|| PathBuf::from(v)),
            )?,
            connect_timeout: settings.value(
                "server.connectTimeout",
                Some(Duration::from_secs(10)),
                "a duration such as 10s",
                parse_duration,
            )?,
            reconnect_timeout: settings.value(
                "server.reconnectTimeout",
                Some(Duration::from_secs(30)),
                "a duration such as 30s (0s: no reconnecting)",
                parse_duration,
            )?,
        };
        Ok((config, unknown))
    }

    /// The `action: config` log line's details.
    pub fn summary(&self) -> String {
        format!(
            "client_id: {} | server_address: {} | loop_amount: {} | loop_period: {} | log_level: {} | mode: {} | batch_max_amount: {} | batch_window: {} | reconnect_timeout: {}",
            self.id,
            tp0_log::field(&self.server_address),
            self.loop_amount,
            tp0_log::field(&self.loop_period_text),
            self.log_level,
            format!("{:?}", self.mode).to_ascii_lowercase(),
            self.batch_max_amount,
            self.batch_window,
            humantime::format_duration(self.reconnect_timeout),
        )
    }
}

/// `server: {address: x}` -> `server.address = x`; scalars as their text.
/// Every leaf's key goes to `keys` (for unknown-key warnings), whatever its
/// value; a null or a list is no value (as if unset).
fn flatten(prefix: &str, yaml: &Yaml, out: &mut HashMap<String, String>, keys: &mut Vec<String>) {
    let text = match yaml {
        Yaml::Hash(map) => {
            for (k, v) in map {
                // A number or bool used as a key is still a key (`1: x`).
                let k = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out, keys);
            }
            return;
        }
        // A document that is not a mapping has no keys.
        _ if prefix.is_empty() => return,
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    keys.push(prefix.to_owned());
    if let Some(text) = text {
        out.insert(prefix.to_owned(), text);
    }
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
        let (config, unknown) = Config::parse(EXERCISE_YAML, env_of(&[("CLI_ID", "3")])).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(config.id, 3);
        assert_eq!(config.server_address, "server:12345");
        assert_eq!(config.loop_amount, 5);
        assert_eq!(config.loop_period, Duration::from_millis(100));
        assert_eq!(config.log_level, LevelFilter::Info);
        assert_eq!(config.batch_max_amount, 50);
        assert_eq!(config.mode, Mode::Agency);
        assert_eq!(config.agency_data_file, PathBuf::from(".data/agency-3.csv"));
        assert_eq!(config.reconnect_timeout, Duration::from_secs(30));
        assert_eq!(
            config.summary(),
            "client_id: 3 | server_address: server:12345 | loop_amount: 5 | loop_period: 100ms | log_level: INFO | mode: agency | batch_max_amount: 50 | batch_window: 8 | reconnect_timeout: 30s"
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
            ("CLI_SERVER_RECONNECTTIMEOUT", "1m 30s"),
        ]);
        let (config, _) = Config::parse(EXERCISE_YAML, env).unwrap();
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
        assert_eq!(config.reconnect_timeout, Duration::from_secs(90));
        assert!(
            config.summary().ends_with("| reconnect_timeout: 1m 30s"),
            "{}",
            config.summary()
        );
        let (off, _) = Config::parse(
            "server:\n  reconnectTimeout: 0s\n",
            env_of(&[("CLI_ID", "1"), ("CLI_SERVER_ADDRESS", "h:1")]),
        )
        .unwrap();
        assert_eq!(off.reconnect_timeout, Duration::ZERO, "from the file");
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
            (
                EXERCISE_YAML,
                &[("CLI_ID", "1"), ("CLI_SERVER_RECONNECTTIMEOUT", "-1s")],
                "server.reconnectTimeout = \"-1s\" (from the environment, CLI_SERVER_RECONNECTTIMEOUT) is not a duration such as 30s (0s: no reconnecting)",
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

    #[test]
    fn an_unset_period_paces_echo_messages_but_not_batches() {
        type Env = &'static [(&'static str, &'static str)];
        let table: [(Env, Duration, &str); 3] = [
            (
                &[("CLI_ID", "1"), ("CLI_MODE", "echo")],
                Duration::from_secs(5),
                "5s",
            ),
            (
                &[("CLI_ID", "1"), ("CLI_MODE", "agency")],
                Duration::ZERO,
                "0s",
            ),
            (
                &[("CLI_ID", "1"), ("CLI_MODE", "bet")],
                Duration::ZERO,
                "0s",
            ),
        ];
        for (env, want, text) in table {
            let yaml = "server:\n  address: \"h:1\"\n";
            let (config, _) = Config::parse(yaml, env_of(env)).unwrap();
            assert_eq!(
                (config.loop_period, config.loop_period_text.as_str()),
                (want, text),
                "{env:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_named_and_ignored() {
        let yaml = "id: 2\nserver:\n  address: \"h:1\"\n  adress: \"typo:1\"\n  reconnect: [1, 2]\nbatch:\n  maxamount: 7\nextra:\nlog: {level: debug}\n";
        let (config, unknown) = Config::parse(yaml, env_of(&[])).unwrap();
        assert_eq!(config.server_address, "h:1");
        assert_eq!(config.batch_max_amount, 103, "keys are case-sensitive");
        assert_eq!(config.log_level, LevelFilter::Debug);
        let names: Vec<String> = unknown.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "unknown key batch.maxamount ignored",
                "unknown key extra ignored",
                "unknown key server.adress ignored",
                "unknown key server.reconnect ignored",
            ]
        );
    }

    #[test]
    fn every_key_of_the_shipped_file_is_known() {
        let yaml = include_str!("../config.yaml");
        let (_, unknown) = Config::parse(yaml, env_of(&[("CLI_ID", "1")])).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        for key in KEYS {
            assert!(
                env_name(key).starts_with("CLI_"),
                "every key has its variable"
            );
        }
    }

    #[test]
    fn a_document_that_is_not_a_mapping_has_no_keys() {
        let err = Config::parse("just text", env_of(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "id is not set (neither in the config file nor as CLI_ID)"
        );
    }
}
