//! Configuration helpers shared by the server (`config.ini`) and the client
//! (`config.yaml`).
//!
//! Each binary parses its own file format into a flat map of keys to text and
//! then reads every key through [`Settings`]: the environment wins over the
//! file, a closure parses the text, and a missing or unusable value is a
//! [`ValueError`] naming the key, the value and where it came from:
//!
//! ```text
//! SERVER_PORT = "99999" (from the config file) is not a port number (0-65535)
//! id = "0" (from the environment, CLI_ID) is not an agency number from 1 to 65535
//! ```
//!
//! Nothing here reads the process environment: the caller passes a lookup
//! closure, so every rule is tested in memory. The one piece of I/O is
//! [`ConfigFile::read`].

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;

/// How the environment variable that overrides a key is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// The key itself (the server: `SERVER_PORT`).
    Key,
    /// The prefix, then the key upper-cased with dots as underscores (the
    /// client: `batch.maxAmount` -> `CLI_BATCH_MAXAMOUNT`).
    Prefixed(&'static str),
}

impl Naming {
    /// The environment variable that overrides `key`.
    pub fn var(self, key: &str) -> String {
        match self {
            Naming::Key => key.to_owned(),
            Naming::Prefixed(prefix) => {
                format!("{prefix}{}", key.to_ascii_uppercase().replace('.', "_"))
            }
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The config file.
    File,
    /// The environment. `var` is the variable's name when it is not the key's
    /// own (with [`Naming::Key`] naming it again would only repeat the key).
    Environment { var: Option<String> },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File => f.write_str("the config file"),
            Source::Environment { var: None } => f.write_str("the environment"),
            Source::Environment { var: Some(var) } => write!(f, "the environment, {var}"),
        }
    }
}

/// A key that cannot be used: set nowhere though required, or set to text
/// that does not parse. Its `Display` names the key, the value and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// A required key that neither the file nor the environment sets.
    Missing {
        key: &'static str,
        /// The variable's name when it is not the key's own (see [`Source`]).
        var: Option<String>,
        /// Where in the file the key was looked for, e.g. "the config file".
        place: &'static str,
    },
    /// A value that does not parse.
    Invalid {
        key: &'static str,
        /// The value as written.
        value: String,
        source: Source,
        /// What a value must be, written to follow "is not".
        expected: Cow<'static, str>,
    },
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Missing {
                key,
                var: None,
                place,
            } => write!(
                f,
                "{key} is not set (neither in {place} nor in the environment)"
            ),
            ValueError::Missing {
                key,
                var: Some(var),
                place,
            } => write!(f, "{key} is not set (neither in {place} nor as {var})"),
            ValueError::Invalid {
                key,
                value,
                source,
                expected,
            } => write!(f, "{key} = \"{value}\" (from {source}) is not {expected}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// A configuration's raw values, read one key at a time: the environment
/// variable when it is set (even to an empty string), else the file's value.
pub struct Settings<E> {
    file: HashMap<String, String>,
    env: E,
    naming: Naming,
    place: &'static str,
}

impl<E: Fn(&str) -> Option<String>> Settings<E> {
    /// `file` holds the file's keys and values as written (empty without a
    /// file); `env` looks up one environment variable. Variables are named as
    /// the keys ([`Naming::Key`]) and a missing key was looked for in "the
    /// config file" until [`Settings::naming`] or [`Settings::place`] say
    /// otherwise.
    pub fn new(file: HashMap<String, String>, env: E) -> Settings<E> {
        Settings {
            file,
            env,
            naming: Naming::Key,
            place: "the config file",
        }
    }

    /// How the environment variables are named.
    pub fn naming(self, naming: Naming) -> Settings<E> {
        Settings { naming, ..self }
    }

    /// Where the file's keys live, for "is not set" errors (the server's INI
    /// reads only its `[DEFAULT]` section, so it says so).
    pub fn place(self, place: &'static str) -> Settings<E> {
        Settings { place, ..self }
    }

    /// The environment variable that overrides `key`.
    pub fn var(&self, key: &str) -> String {
        self.naming.var(key)
    }

    /// `key`'s text and where it came from; `None` when it is set nowhere.
    pub fn get(&self, key: &str) -> Option<(String, Source)> {
        let var = self.var(key);
        if let Some(value) = (self.env)(&var) {
            let var = (var != key).then_some(var);
            return Some((value, Source::Environment { var }));
        }
        self.file.get(key).map(|v| (v.clone(), Source::File))
    }

    /// Reads `key` and parses its trimmed text with `parse`; `None` from
    /// `parse` is an [`ValueError::Invalid`] that says the value is not
    /// `expected`. A key set nowhere takes `default`, or is
    /// [`ValueError::Missing`] when there is none.
    pub fn value<T>(
        &self,
        key: &'static str,
        default: Option<T>,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ValueError> {
        self.value_with(key, default, |v| parse(v).ok_or(Cow::Borrowed(expected)))
    }

    /// As [`Settings::value`], for a parse whose failure has something to
    /// add: its error is the `expected` text (e.g. "a host name that resolves
    /// (<the resolver's error>)").
    pub fn value_with<T>(
        &self,
        key: &'static str,
        default: Option<T>,
        parse: impl FnOnce(&str) -> Result<T, Cow<'static, str>>,
    ) -> Result<T, ValueError> {
        match self.get(key) {
            Some((value, source)) => parse(value.trim()).map_err(|expected| ValueError::Invalid {
                key,
                value,
                source,
                expected,
            }),
            None => default.ok_or_else(|| {
                let var = self.var(key);
                ValueError::Missing {
                    key,
                    var: (var != key).then_some(var),
                    place: self.place,
                }
            }),
        }
    }
}

/// A key of the config file that the binary does not read. Worth a warning,
/// not an error: a misspelt optional key would otherwise keep its default
/// without a word. Displays as `unknown key KEY ignored`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnknownKey(pub String);

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown key {} ignored", self.0)
    }
}

/// The keys among `found` (those of the file) that are not in `known`,
/// sorted, each once.
pub fn unknown_keys<'a>(
    found: impl IntoIterator<Item = &'a str>,
    known: &[&str],
) -> Vec<UnknownKey> {
    found
        .into_iter()
        .filter(|key| !known.contains(key))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|key| UnknownKey(key.to_owned()))
        .collect()
}

/// A log level by name, in any case. Accepts Python's names (`WARNING`,
/// `CRITICAL`: the course's server config), Go's and Rust's (`WARN`, `FATAL`,
/// `PANIC`), and `OFF`; each binary documents its own set, and accepting the
/// other's names too spares a surprise.
pub fn parse_level(text: &str) -> Option<LevelFilter> {
    Some(match text.to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::Trace,
        "DEBUG" => LevelFilter::Debug,
        "INFO" => LevelFilter::Info,
        "WARN" | "WARNING" => LevelFilter::Warn,
        "ERROR" | "CRITICAL" | "FATAL" | "PANIC" => LevelFilter::Error,
        "OFF" => LevelFilter::Off,
        _ => return None,
    })
}

/// A duration in humantime's syntax (`100ms`, `5s`, `1m 30s`); `0s` is zero.
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text).ok()
}

/// The config file a binary reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// The default path (no `--config`): it may be absent, since every key
    /// may come from the environment.
    Default(&'static str),
    /// The path given with `--config`: it must exist, or a typo in it would
    /// silently run on defaults and the environment.
    Named(PathBuf),
}

impl ConfigFile {
    /// The path to read.
    pub fn path(&self) -> &Path {
        match self {
            ConfigFile::Default(path) => Path::new(path),
            ConfigFile::Named(path) => path,
        }
    }

    /// The file's text: empty when the default file is absent. A named file
    /// that is absent is an error, as is any other read error.
    pub fn read(&self) -> io::Result<String> {
        match (std::fs::read_to_string(self.path()), self) {
            (Err(e), ConfigFile::Default(_)) if e.kind() == io::ErrorKind::NotFound => {
                Ok(String::new())
            }
            (result, _) => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |var| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.to_string())
        }
    }

    fn number(v: &str) -> Option<u16> {
        v.parse().ok()
    }

    #[test]
    fn the_environment_wins_over_the_file_and_values_are_trimmed() {
        let settings = Settings::new(
            file(&[("PORT", " 1 "), ("LEVEL", "INFO")]),
            env(&[("PORT", "2"), ("EMPTY", "")]),
        );
        assert_eq!(settings.value("PORT", None, "a port", number), Ok(2));
        assert_eq!(
            settings.get("LEVEL"),
            Some(("INFO".to_owned(), Source::File))
        );
        assert_eq!(
            settings.get("EMPTY"),
            Some((String::new(), Source::Environment { var: None })),
            "an empty variable is set"
        );
        assert_eq!(settings.value("OTHER", Some(9), "a port", number), Ok(9));
        let settings = Settings::new(file(&[("PORT", " 1 ")]), env(&[]));
        assert_eq!(settings.value("PORT", None, "a port", number), Ok(1));
    }

    #[test]
    fn prefixed_names() {
        assert_eq!(
            Naming::Prefixed("CLI_").var("batch.maxAmount"),
            "CLI_BATCH_MAXAMOUNT"
        );
        assert_eq!(Naming::Key.var("SERVER_PORT"), "SERVER_PORT");
        let settings = Settings::new(file(&[("server.address", "a:1")]), env(&[("CLI_ID", "3")]))
            .naming(Naming::Prefixed("CLI_"));
        assert_eq!(
            settings.get("id"),
            Some((
                "3".to_owned(),
                Source::Environment {
                    var: Some("CLI_ID".to_owned())
                }
            ))
        );
        assert_eq!(
            settings.get("server.address"),
            Some(("a:1".to_owned(), Source::File))
        );
    }

    #[test]
    fn errors_name_key_value_and_source() {
        let server = Settings::new(file(&[("PORT", "x")]), env(&[("LEVEL", "LOUD")]))
            .place("the [DEFAULT] section");
        let client = Settings::new(file(&[("loop.period", "soon")]), env(&[("CLI_ID", "0")]))
            .naming(Naming::Prefixed("CLI_"));
        let table: Vec<(Result<u16, ValueError>, &str)> = vec![
            (
                server.value("PORT", None, "a port number", number),
                "PORT = \"x\" (from the config file) is not a port number",
            ),
            (
                server.value("LEVEL", None, "a level", number),
                "LEVEL = \"LOUD\" (from the environment) is not a level",
            ),
            (
                server.value("HOST", None, "a host", number),
                "HOST is not set (neither in the [DEFAULT] section nor in the environment)",
            ),
            (
                client.value("id", None, "an agency number", |v| {
                    number(v).filter(|&n| n > 0)
                }),
                "id = \"0\" (from the environment, CLI_ID) is not an agency number",
            ),
            (
                client.value("loop.period", Some(1), "a duration", number),
                "loop.period = \"soon\" (from the config file) is not a duration",
            ),
            (
                client.value("server.address", None, "an address", number),
                "server.address is not set (neither in the config file nor as CLI_SERVER_ADDRESS)",
            ),
            (
                server.value_with("PORT", None, |v| {
                    Err(format!("a number ({v} has letters)").into())
                }),
                "PORT = \"x\" (from the config file) is not a number (x has letters)",
            ),
        ];
        for (got, want) in table {
            assert_eq!(got.unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn unknown_keys_are_sorted_and_once() {
        let found = ["b", "KNOWN", "a", "b"];
        assert_eq!(
            unknown_keys(found, &["KNOWN"]),
            [UnknownKey("a".into()), UnknownKey("b".into())]
        );
        assert_eq!(
            UnknownKey("EXTRA".into()).to_string(),
            "unknown key EXTRA ignored"
        );
        assert!(unknown_keys(["KNOWN"], &["KNOWN"]).is_empty());
    }

    #[test]
    fn levels() {
        let table: &[(&str, Option<LevelFilter>)] = &[
            ("TRACE", Some(LevelFilter::Trace)),
            ("debug", Some(LevelFilter::Debug)),
            ("Info", Some(LevelFilter::Info)),
            ("WARN", Some(LevelFilter::Warn)),
            ("WARNING", Some(LevelFilter::Warn)),
            ("ERROR", Some(LevelFilter::Error)),
            ("CRITICAL", Some(LevelFilter::Error)),
            ("FATAL", Some(LevelFilter::Error)),
            ("PANIC", Some(LevelFilter::Error)),
            ("OFF", Some(LevelFilter::Off)),
            ("LOUD", None),
            ("", None),
        ];
        for &(text, want) in table {
            assert_eq!(parse_level(text), want, "{text:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("10"), None, "a unit is required");
    }

    #[test]
    fn only_the_default_file_may_be_absent() {
        let dir = std::env::temp_dir().join(format!("tp0-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let absent = dir.join("absent.ini");
        let present = dir.join("present.ini");
        std::fs::write(&present, "[DEFAULT]\n").unwrap();
        let leaked: &'static str = absent.to_str().unwrap().to_owned().leak();
        assert_eq!(ConfigFile::Default(leaked).read().unwrap(), "");
        let err = ConfigFile::Named(absent.clone()).read().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            ConfigFile::Named(present.clone()).read().unwrap(),
            "[DEFAULT]\n"
        );
        assert_eq!(ConfigFile::Named(present.clone()).path(), present);
        // A default path that is there but unreadable (a folder) is an error.
        let folder: &'static str = dir.to_str().unwrap().to_owned().leak();
        assert!(ConfigFile::Default(folder).read().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
