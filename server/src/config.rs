//! The server's configuration: `config.ini`, section `[DEFAULT]`, each key
//! overridable by an environment variable of the same name.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;
use tp0_config::{Settings, UnknownKey, ValueError, parse_duration, parse_level};

/// Everything the server reads at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The address to bind: `SERVER_IP` as written when it is an IP address,
    /// else what its host name resolved to; `0.0.0.0` when it is empty.
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
    /// When set, the draw runs this long after the round started with the
    /// agencies that finished, without the others. Unset: it waits for every
    /// agency, however long.
    pub draw_deadline: Option<Duration>,
    /// Connections held at once; at the cap, the oldest connection that has
    /// not yet named its agency is closed to admit a new one. `None`: derived
    /// from the descriptor limit at start ([`max_connections_for`]).
    pub max_connections: Option<usize>,
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A line of the file that is neither `KEY = value`, a `[SECTION]`, a
    /// comment nor blank.
    Syntax { line: usize, text: String },
    /// A key missing or set to an unusable value; names key, value and source.
    Value(ValueError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Syntax { line, text } => {
                write!(
                    f,
                    "line {line}: expected `KEY = value` or `[SECTION]`, found \"{text}\""
                )
            }
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

/// Every key the server reads; any other key of `[DEFAULT]` is warned about.
pub const KEYS: [&str; 10] = [
    "SERVER_PORT",
    "SERVER_IP",
    "SERVER_LISTEN_BACKLOG",
    "LOGGING_LEVEL",
    "AGENCIES",
    "BETS_FILE",
    "STALL_TIMEOUT",
    "WINNERS_DELAY",
    "DRAW_DEADLINE",
    "MAX_CONNECTIONS",
];

/// `MAX_CONNECTIONS` when unset: three quarters of the descriptor limit,
/// leaving room for the files, the listener, the poll and the peers waiting
/// to be accepted, and at least 16.
pub fn max_connections_for(descriptor_limit: u64) -> usize {
    (descriptor_limit.saturating_mul(3) / 4).max(16) as usize
}

/// `WINNERS_DELAY` when unset: far above the time a blocked reader takes to
/// wake on loopback or a LAN, and paid only by agencies that finish within it
/// of the draw (see the README).
pub const DEFAULT_WINNERS_DELAY: Duration = Duration::from_millis(100);

impl Config {
    /// Builds the configuration from the text of an INI file (empty if there is
    /// none), an environment lookup and a host-name resolver ([`resolve`] in
    /// the binary; called only when `SERVER_IP` is neither empty nor an IP
    /// address). Returns the configuration and the keys of the `[DEFAULT]`
    /// section it did not know (worth a warning, not an error).
    pub fn parse(
        ini: &str,
        env: impl Fn(&str) -> Option<String>,
        resolve: impl Fn(&str) -> io::Result<Vec<IpAddr>>,
    ) -> Result<(Config, Vec<UnknownKey>), ConfigError> {
        let file = parse_ini_defaults(ini)?;
        let unknown = tp0_config::unknown_keys(file.keys().map(String::as_str), &KEYS);
        let settings = Settings::new(file, env).place("the [DEFAULT] section");
        let config = Config {
            ip: settings.value_with("SERVER_IP", None, |v| bind_ip(v, &resolve))?,
            port: settings.value("SERVER_PORT", None, "a port number (0-65535)", |v| {
                v.parse().ok()
            })?,
            listen_backlog: settings.value(
                "SERVER_LISTEN_BACKLOG",
                None,
                "a whole number from 1 to 65535",
                |v| v.parse::<u16>().ok().filter(|&n| n > 0).map(i32::from),
            )?,
            logging_level: settings.value(
                "LOGGING_LEVEL",
                None,
                "one of TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL, OFF",
                parse_level,
            )?,
            agencies: settings.value(
                "AGENCIES",
                Some(5),
                "a whole number from 0 to 65535",
                |v| v.parse().ok(),
            )?,
            bets_file: settings.value(
                "BETS_FILE",
                Some(PathBuf::from("bets.csv")),
                "a file path",
                |v| (!v.is_empty()).then(|| PathBuf::from(v)),
            )?,
            stall_timeout: settings.value(
                "STALL_TIMEOUT",
                Some(Duration::from_secs(30)),
                "a duration above zero such as 30s or 500ms",
                |v| parse_duration(v).filter(|d| !d.is_zero()),
            )?,
            winners_delay: settings.value(
                "WINNERS_DELAY",
                Some(DEFAULT_WINNERS_DELAY),
                "a duration such as 100ms or 0s",
                parse_duration,
            )?,
            draw_deadline: settings.value(
                "DRAW_DEADLINE",
                Some(None),
                "a duration above zero such as 10m, or off",
                |v| match v {
                    "" | "off" => Some(None),
                    v => parse_duration(v).filter(|d| !d.is_zero()).map(Some),
                },
            )?,
            max_connections: settings.value(
                "MAX_CONNECTIONS",
                Some(None),
                "a whole number from 16, or auto",
                |v| match v {
                    "" | "auto" => Some(None),
                    v => v.parse().ok().filter(|&n: &usize| n >= 16).map(Some),
                },
            )?,
        };
        Ok((config, unknown))
    }

    /// The `action: config` log line's details.
    pub fn summary(&self) -> String {
        format!(
            "port: {} | listen_backlog: {} | logging_level: {} | ip: {} | agencies: {} | bets_file: {} | stall_timeout: {} | winners_delay: {} | draw_deadline: {} | max_connections: {}",
            self.port,
            self.listen_backlog,
            self.logging_level,
            self.ip,
            self.agencies,
            tp0_log::field(self.bets_file.display()),
            humantime::format_duration(self.stall_timeout),
            humantime::format_duration(self.winners_delay),
            self.draw_deadline
                .map_or("off".to_owned(), |d| humantime::format_duration(d)
                    .to_string()),
            self.max_connections
                .map_or("auto".to_owned(), |n| n.to_string()),
        )
    }
}

/// The addresses a host name resolves to, through the system's resolver
/// (`/etc/hosts`, then DNS: inside Compose, a service's name is its
/// container's address).
pub fn resolve(host: &str) -> io::Result<Vec<IpAddr>> {
    Ok((host, 0).to_socket_addrs()?.map(|a| a.ip()).collect())
}

/// `SERVER_IP`'s address: every interface when empty (the exercise's own file
/// says `SERVER_IP = ` for that), the address itself, or a host name's.
fn bind_ip(
    value: &str,
    resolve: impl Fn(&str) -> io::Result<Vec<IpAddr>>,
) -> Result<IpAddr, Cow<'static, str>> {
    const EXPECTED: &str = "an IP address or a host name that resolves";
    if value.is_empty() {
        return Ok(Ipv4Addr::UNSPECIFIED.into());
    }
    if let Ok(ip) = value.parse() {
        return Ok(ip);
    }
    let ips = resolve(value).map_err(|e| format!("{EXPECTED} ({e})"))?;
    // The reference server binds an AF_INET socket, so Python resolves the
    // name to IPv4 only; `localhost` may list ::1 first.
    ips.iter()
        .find(|ip| ip.is_ipv4())
        .or(ips.first())
        .copied()
        .ok_or_else(|| format!("{EXPECTED} (it resolves to no address)").into())
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

    /// A resolver for the cases that must not need one.
    fn no_dns(host: &str) -> io::Result<Vec<IpAddr>> {
        panic!("{host:?} was resolved")
    }

    #[test]
    fn the_exercise_file_with_four_keys_works_with_defaults() {
        let (config, unknown) = Config::parse(EXERCISE_INI, no_env, no_dns).unwrap();
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
                draw_deadline: None,
                max_connections: None,
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
                    "DRAW_DEADLINE" => "10m",
                    "MAX_CONNECTIONS" => "500",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let (config, _) = Config::parse(EXERCISE_INI, env, no_dns).unwrap();
        assert_eq!(config.port, 5000);
        assert_eq!(config.ip.to_string(), "127.0.0.1");
        assert_eq!(config.listen_backlog, 64);
        assert_eq!(config.logging_level, LevelFilter::Debug);
        assert_eq!(config.agencies, 300);
        assert_eq!(config.bets_file, PathBuf::from("/data/bets.csv"));
        assert_eq!(config.stall_timeout, Duration::from_millis(250));
        assert_eq!(config.winners_delay, Duration::ZERO);
        assert_eq!(config.draw_deadline, Some(Duration::from_secs(600)));
        assert_eq!(config.max_connections, Some(500));
        assert_eq!(max_connections_for(20_000), 15_000);
        assert_eq!(max_connections_for(8), 16);
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
                Some(("DRAW_DEADLINE", "0s")),
                "DRAW_DEADLINE = \"0s\" (from the environment) is not a duration above zero such as 10m, or off",
            ),
            (
                EXERCISE_INI,
                Some(("MAX_CONNECTIONS", "3")),
                "MAX_CONNECTIONS = \"3\" (from the environment) is not a whole number from 16, or auto",
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
            let err = Config::parse(
                ini,
                |k| env.filter(|(key, _)| *key == k).map(|(_, v)| v.to_owned()),
                no_dns,
            )
            .unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn ini_details() {
        let ini = "# comment\n; another\n[DEFAULT]\nserver_port: 7\nSERVER_IP = ::1\nSERVER_LISTEN_BACKLOG=1\nLOGGING_LEVEL = WARNING\nEXTRA = 1\n[other]\nSERVER_PORT = 8\n";
        let (config, unknown) = Config::parse(ini, no_env, no_dns).unwrap();
        assert_eq!(
            config.port, 7,
            "lower-case key, colon separator, other section ignored"
        );
        assert_eq!(config.ip.to_string(), "::1");
        assert_eq!(config.logging_level, LevelFilter::Warn);
        assert_eq!(unknown, [UnknownKey("EXTRA".into())]);
    }

    fn with_ip(ip: &'static str) -> impl Fn(&str) -> Option<String> {
        move |key| (key == "SERVER_IP").then(|| ip.to_owned())
    }

    #[test]
    fn server_ip_is_an_address_a_host_name_or_empty() {
        // A stand-in resolver: the names a compose network would know.
        let dns = |host: &str| -> io::Result<Vec<IpAddr>> {
            match host {
                "server" => Ok(vec!["172.18.0.2".parse().unwrap()]),
                "dual" => Ok(vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()]),
                "six" => Ok(vec!["fd00::2".parse().unwrap()]),
                "none" => Ok(vec![]),
                _ => Err(io::Error::other("Name or service not known")),
            }
        };
        let table: &[(&str, &str)] = &[
            ("", "0.0.0.0"),
            ("  ", "0.0.0.0"),
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("server", "172.18.0.2"),
            ("dual", "127.0.0.1"),
            ("six", "fd00::2"),
        ];
        for &(value, want) in table {
            let (config, _) = Config::parse(EXERCISE_INI, with_ip(value), dns).unwrap();
            assert_eq!(config.ip.to_string(), want, "{value:?}");
        }
        let (config, _) = Config::parse(
            &EXERCISE_INI.replace("SERVER_IP = ", "SERVER_IP = server"),
            no_env,
            dns,
        )
        .unwrap();
        assert_eq!(
            config.ip.to_string(),
            "172.18.0.2",
            "the course's config.ini"
        );
        let table: &[(&str, &str)] = &[
            (
                "nosuch.invalid",
                "SERVER_IP = \"nosuch.invalid\" (from the environment) is not an IP address or a host name that resolves (Name or service not known)",
            ),
            (
                "none",
                "SERVER_IP = \"none\" (from the environment) is not an IP address or a host name that resolves (it resolves to no address)",
            ),
        ];
        for &(value, want) in table {
            let err = Config::parse(EXERCISE_INI, with_ip(value), dns).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn the_system_resolver() {
        let (config, _) = Config::parse(EXERCISE_INI, with_ip("localhost"), resolve).unwrap();
        assert!(config.ip.is_loopback(), "{}", config.ip);
        assert!(config.ip.is_ipv4(), "IPv4 first, as the reference binds");
        let err = Config::parse(EXERCISE_INI, with_ip("nosuch.invalid"), resolve).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "SERVER_IP = \"nosuch.invalid\" (from the environment) is not an IP address or a host name that resolves ("
            ),
            "{err}"
        );
    }
}
