//! The command line: `client [--config PATH]`, the `gen-data` and `load`
//! subcommands, `--help`, `--version`.

use std::ffi::OsString;

use lexopt::prelude::*;
use tp0_config::ConfigFile;

/// The synopsis, printed after a usage error.
pub const USAGE: &str = "usage: client [--config PATH]
       client gen-data AGENCY BETS WINNERS OUT.csv
       client load ADDRESS AGENCIES BETS_PER_AGENCY [WINDOW [BETS_PER_BATCH]]
       client --help | --version";

/// `--help`'s text.
pub const HELP: &str = "usage: client [--config PATH]
       client gen-data AGENCY BETS WINNERS OUT.csv
       client load ADDRESS AGENCIES BETS_PER_AGENCY [WINDOW [BETS_PER_BATCH]]
       client --help | --version

client [--config PATH]
  One agency, in the mode its configuration names (echo, bet, agency).
  --config PATH   the YAML file to read (default: ./config.yaml, which may be
                  absent since every key may come from the environment; a
                  PATH given here must exist)
  Each key can be overridden by CLI_ + the key upper-cased, dots as
  underscores (server.address: CLI_SERVER_ADDRESS). See the README's
  Configuration section.

client gen-data AGENCY BETS WINNERS OUT.csv
  Writes a deterministic agency file: BETS bets of agency AGENCY, WINNERS of
  them winning.

client load ADDRESS AGENCIES BETS_PER_AGENCY [WINDOW [BETS_PER_BATCH]]
  Drives the server at ADDRESS with AGENCIES concurrent agencies and checks
  every ack and winner (WINDOW batches in flight, default 8; BETS_PER_BATCH
  bets per batch, default 103).

  -h, --help      print this help and exit
  -V, --version   print the version and exit
";

/// `--version`'s text.
pub const VERSION: &str = concat!("client ", env!("CARGO_PKG_VERSION"));

/// What the command line asks for. Subcommands' values are checked by the
/// subcommands themselves; here only their count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run one agency with this config file.
    Run(ConfigFile),
    GenData {
        agency: String,
        bets: String,
        winners: String,
        out: String,
    },
    /// `ADDRESS AGENCIES BETS_PER_AGENCY [WINDOW [BETS_PER_BATCH]]`.
    Load(Vec<String>),
    Help,
    Version,
}

/// Parses the arguments after the program name; an error is a usage error
/// (exit status 2).
pub fn parse(
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<Command, lexopt::Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut config = ConfigFile::Default("config.yaml");
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") => config = ConfigFile::Named(parser.value()?.into()),
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Value(name) if name == "gen-data" => {
                let Some(values) = positionals(&mut parser)? else {
                    return Ok(Command::Help);
                };
                let [agency, bets, winners, out] = <[String; 4]>::try_from(values)
                    .map_err(|_| "gen-data takes AGENCY BETS WINNERS OUT.csv")?;
                return Ok(Command::GenData {
                    agency,
                    bets,
                    winners,
                    out,
                });
            }
            Value(name) if name == "load" => {
                let Some(values) = positionals(&mut parser)? else {
                    return Ok(Command::Help);
                };
                if !(3..=5).contains(&values.len()) {
                    return Err(
                        "load takes ADDRESS AGENCIES BETS_PER_AGENCY [WINDOW [BETS_PER_BATCH]]"
                            .into(),
                    );
                }
                return Ok(Command::Load(values));
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Command::Run(config))
}

/// A subcommand's values; `None` when they include `--help`.
fn positionals(parser: &mut lexopt::Parser) -> Result<Option<Vec<String>>, lexopt::Error> {
    let mut values = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(value) => values.push(value.string()?),
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let run = |path: &str| Ok(Command::Run(ConfigFile::Named(path.into())));
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let table: Vec<(&[&str], Result<Command, &str>)> = vec![
            (&[], Ok(Command::Run(ConfigFile::Default("config.yaml")))),
            (&["--config", "a.yaml"], run("a.yaml")),
            (&["--config=b.yaml"], run("b.yaml")),
            (&["--help"], Ok(Command::Help)),
            (&["-h"], Ok(Command::Help)),
            (&["--version"], Ok(Command::Version)),
            (&["-V"], Ok(Command::Version)),
            (
                &["gen-data", "1", "100", "3", "out.csv"],
                Ok(Command::GenData {
                    agency: "1".into(),
                    bets: "100".into(),
                    winners: "3".into(),
                    out: "out.csv".into(),
                }),
            ),
            (&["gen-data", "--help"], Ok(Command::Help)),
            (
                &["load", "127.0.0.1:1", "5", "10"],
                Ok(Command::Load(strings(&["127.0.0.1:1", "5", "10"]))),
            ),
            (
                &["load", "h:1", "5", "10", "1", "7"],
                Ok(Command::Load(strings(&["h:1", "5", "10", "1", "7"]))),
            ),
            (&["load", "-h"], Ok(Command::Help)),
            (
                &["gen-data", "1", "100", "3"],
                Err("gen-data takes AGENCY BETS WINNERS OUT.csv"),
            ),
            (
                &["load", "h:1", "5"],
                Err("load takes ADDRESS AGENCIES BETS_PER_AGENCY [WINDOW [BETS_PER_BATCH]]"),
            ),
            (
                &["load", "h:1", "5", "10", "1", "7", "8"],
                Err("load takes ADDRESS AGENCIES BETS_PER_AGENCY [WINDOW [BETS_PER_BATCH]]"),
            ),
            (
                &["load", "h:1", "--fast", "5", "10"],
                Err("invalid option '--fast'"),
            ),
            (&["--config"], Err("missing argument for option '--config'")),
            (&["--verbose"], Err("invalid option '--verbose'")),
            (&["run"], Err("unexpected argument \"run\"")),
        ];
        for (args, want) in table {
            let got = parse(args.iter()).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(String::from), "{args:?}");
        }
    }
}
