//! The command line: `server [--check] [--config PATH]`, `--help`, `--version`.

use std::ffi::OsString;

use lexopt::prelude::*;
use tp0_config::ConfigFile;

/// The synopsis, printed after a usage error.
pub const USAGE: &str = "usage: server [--check] [--config PATH]
       server --help | --version";

/// `--help`'s text.
pub const HELP: &str = "usage: server [--check] [--config PATH]
       server --help | --version

Runs the lottery server until SIGTERM or SIGINT.

  --check         only say what a start would do with the round in BETS_FILE
                  (new, resumed or archived, or why it would refuse to start:
                  the round's files, MAX_CONNECTIONS against AGENCIES),
                  changing nothing, and exit: 0 when a start would go on, 1
                  when it would refuse
  --config PATH   the INI file to read, section [DEFAULT] (default: ./config.ini,
                  which may be absent since every key may come from the
                  environment; a PATH given here must exist)
  -h, --help      print this help and exit
  -V, --version   print the version and exit

Each key can be overridden by an environment variable of the same name:
SERVER_PORT, SERVER_IP (an IP address or a host name; empty: every interface),
SERVER_LISTEN_BACKLOG, LOGGING_LEVEL, AGENCIES, BETS_FILE, STALL_TIMEOUT,
WINNERS_DELAY, DRAW_DEADLINE, MAX_CONNECTIONS. See the README's Configuration
section.
";

/// `--version`'s text.
pub const VERSION: &str = concat!("server ", env!("CARGO_PKG_VERSION"));

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server with this config file.
    Run(ConfigFile),
    /// Say what a start with this config file would do with its round.
    Check(ConfigFile),
    Help,
    Version,
}

/// Parses the arguments after the program name; an error is a usage error
/// (exit status 2).
pub fn parse(
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<Command, lexopt::Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut config = ConfigFile::Default("config.ini");
    let mut check = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("check") => check = true,
            Long("config") => config = ConfigFile::Named(parser.value()?.into()),
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(if check {
        Command::Check(config)
    } else {
        Command::Run(config)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let run = |path: &str| Ok(Command::Run(ConfigFile::Named(path.into())));
        let table: &[(&[&str], Result<Command, &str>)] = &[
            (&[], Ok(Command::Run(ConfigFile::Default("config.ini")))),
            (&["--config", "a.ini"], run("a.ini")),
            (&["--config=b.ini"], run("b.ini")),
            (&["--help"], Ok(Command::Help)),
            (&["-h"], Ok(Command::Help)),
            (&["--config", "a.ini", "--help"], Ok(Command::Help)),
            (&["--version"], Ok(Command::Version)),
            (
                &["--check"],
                Ok(Command::Check(ConfigFile::Default("config.ini"))),
            ),
            (
                &["--config", "a.ini", "--check"],
                Ok(Command::Check(ConfigFile::Named("a.ini".into()))),
            ),
            (&["-V"], Ok(Command::Version)),
            (&["--config"], Err("missing argument for option '--config'")),
            (&["--verbose"], Err("invalid option '--verbose'")),
            (&["config.ini"], Err("unexpected argument \"config.ini\"")),
        ];
        for (args, want) in table {
            let got = parse(args.iter()).map_err(|e| e.to_string());
            assert_eq!(got, want.clone().map_err(String::from), "{args:?}");
        }
    }
}
