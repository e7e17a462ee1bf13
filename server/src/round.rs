//! What a round is made of on disk, read back after a restart. Sans-IO: bytes
//! in, the round (or a precise error) out, so recovery is tested in memory and
//! fuzzed.
//!
//! Two files make a round:
//!
//! - the bets file, `agency,first_name,last_name,document,birthdate,number`
//!   rows (the course's format), appended and synced once per loop turn;
//! - beside it, `<bets file>.state`, a short text log of the round's events,
//!   appended and synced in the same group commit as the batch that caused
//!   them, so no ack leaves before the record of what it acknowledges:
//!
//! ```text
//! round 1 agencies 5 started 1764460800     the header: format version, AGENCIES, start (unix s)
//! finished 3 16014                          agency 3's end batch is durable, with its 16,014 bets
//! drawn                                     the draw ran (excluded agencies follow, if a deadline cut them)
//! drawn excluded 2 5
//! delivered 3                               agency 3's winners were written to it
//! ```
//!
//! Only the last line of either file can be torn by a crash or a full disk,
//! and nothing in it was acknowledged: reading stops at the last complete
//! row or line and says how many bytes follow it, for the caller to cut.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use lottery_protocol::{Bet, WINNING_NUMBER};

/// The state file's format version.
pub const FORMAT: u32 = 1;

/// The longest row the server writes: the agency, two names of 30 bytes,
/// each quoted with every byte a doubled quote at worst, the document, the
/// date, the number, the commas and the newline.
pub const MAX_ROW_LEN: usize = 5 + 2 * (2 + 2 * 30) + 10 + 10 + 10 + 5 + 1;

/// One event of a round, as a line of its state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The first line: the round's agencies and its start, in unix seconds.
    Header { agencies: u16, started: u64 },
    /// An agency's end batch is durable, with this many bets stored.
    Finished { agency: u16, bets: u64 },
    /// The draw ran; `excluded` agencies had not finished at the deadline.
    Drawn { excluded: Vec<u16> },
    /// An agency's winners were written to it.
    Delivered { agency: u16 },
}

impl Entry {
    /// Appends the entry as one line.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let line = match self {
            Entry::Header { agencies, started } => {
                format!("round {FORMAT} agencies {agencies} started {started}\n")
            }
            Entry::Finished { agency, bets } => format!("finished {agency} {bets}\n"),
            Entry::Drawn { excluded } if excluded.is_empty() => "drawn\n".to_owned(),
            Entry::Drawn { excluded } => {
                let list: Vec<String> = excluded.iter().map(u16::to_string).collect();
                format!("drawn excluded {}\n", list.join(" "))
            }
            Entry::Delivered { agency } => format!("delivered {agency}\n"),
        };
        out.extend_from_slice(line.as_bytes());
    }

    fn parse(line: &str) -> Option<Entry> {
        let words: Vec<&str> = line.split(' ').collect();
        let num = |w: &str| w.parse::<u64>().ok();
        let agency = |w: &str| w.parse::<u16>().ok().filter(|&a| a > 0);
        Some(match words.as_slice() {
            ["round", format, "agencies", agencies, "started", started] => {
                (format.parse::<u32>().ok()? == FORMAT).then_some(())?;
                Entry::Header {
                    agencies: agencies.parse().ok()?,
                    started: num(started)?,
                }
            }
            ["finished", a, bets] => Entry::Finished {
                agency: agency(a)?,
                bets: num(bets)?,
            },
            ["drawn"] => Entry::Drawn {
                excluded: Vec::new(),
            },
            ["drawn", "excluded", list @ ..] if !list.is_empty() => Entry::Drawn {
                excluded: list.iter().map(|w| agency(w)).collect::<Option<_>>()?,
            },
            ["delivered", a] => Entry::Delivered { agency: agency(a)? },
            _ => return None,
        })
    }
}

/// Why a round's files cannot be resumed. Each names the file's role, the
/// line, and what is wrong, for an operator to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryError {
    /// A complete row of the bets file is not a bet of this round.
    BadRow { line: u64, reason: String },
    /// A complete line of the state file is not an entry, or breaks the order.
    BadEntry { line: usize, text: String },
    /// The state file does not start with its header.
    NoHeader,
    /// A finished agency has not the bets its end ack acknowledged.
    Lost {
        agency: u16,
        recorded: u64,
        stored: u64,
    },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::BadRow { line, reason } => {
                write!(
                    f,
                    "bets file line {line} is not a bet of this round: {reason}"
                )
            }
            RecoveryError::BadEntry { line, text } => {
                write!(
                    f,
                    "state file line {line} is not a round entry in order: \"{text}\""
                )
            }
            RecoveryError::NoHeader => write!(f, "state file does not start with its header"),
            RecoveryError::Lost {
                agency,
                recorded,
                stored,
            } => write!(
                f,
                "agency {agency} finished with {recorded} bets acknowledged, but the bets file holds {stored} of its bets"
            ),
        }
    }
}

impl std::error::Error for RecoveryError {}

/// One agency's part of a round, as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgencyRound {
    /// `(document << 32) | number` of every stored bet, in stored order: what
    /// a reconnecting agency's resent bets are checked against.
    pub bets: Vec<u64>,
    /// Documents of the winning bets, in stored order.
    pub winners: Vec<u32>,
    /// Bets recorded when its end batch became durable.
    pub finished: Option<u64>,
    pub delivered: bool,
}

/// A round read back from its two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub agencies: u16,
    /// Unix seconds.
    pub started: u64,
    /// Indexed by agency number; index 0 is unused.
    pub agency: Vec<AgencyRound>,
    /// The draw ran, without these agencies (cut by the deadline).
    pub drawn: Option<Vec<u16>>,
    /// Bytes of the bets file after its last complete row (a torn row).
    pub bets_torn: usize,
    /// Bytes of the state file after its last complete line.
    pub state_torn: usize,
    /// Rows stored.
    pub rows: u64,
}

impl Round {
    /// A new, empty round.
    pub fn new(agencies: u16, started: u64) -> Round {
        Round {
            agencies,
            started,
            agency: vec![AgencyRound::default(); usize::from(agencies) + 1],
            drawn: None,
            bets_torn: 0,
            state_torn: 0,
            rows: 0,
        }
    }

    /// Every agency owed winners got them: the round is over, and the next
    /// start may archive it.
    pub fn is_complete(&self) -> bool {
        let Some(excluded) = &self.drawn else {
            return false;
        };
        (1..=self.agencies)
            .filter(|a| !excluded.contains(a))
            .all(|a| self.agency[usize::from(a)].delivered)
    }
}

/// Reads a round from its bets file and its state file (`state` empty when
/// there is none: a round recorded by nothing but its rows). Rows name
/// agencies `1..=agencies` when the state file has no header to say.
pub fn read_round(
    bets: &[u8],
    state: &[u8],
    agencies: u16,
    now: u64,
) -> Result<Round, RecoveryError> {
    let (entries, state_torn) = read_state(state)?;
    let mut round = match entries.first() {
        Some(Entry::Header { agencies, started }) => Round::new(*agencies, *started),
        Some(_) => return Err(RecoveryError::NoHeader),
        None => Round::new(agencies, now),
    };
    round.state_torn = state_torn;
    read_bets(bets, &mut round)?;
    for (i, entry) in entries.iter().enumerate().skip(1) {
        let bad = || RecoveryError::BadEntry {
            line: i + 1,
            text: String::from_utf8_lossy(&{
                let mut line = Vec::new();
                entry.encode(&mut line);
                line
            })
            .trim_end()
            .to_owned(),
        };
        let slot = |round: &Round, agency: u16| -> Option<usize> {
            (agency <= round.agencies).then_some(usize::from(agency))
        };
        match entry {
            Entry::Header { .. } => return Err(bad()),
            Entry::Finished { agency, bets } => {
                let a = slot(&round, *agency).ok_or_else(bad)?;
                if round.drawn.is_some() || round.agency[a].finished.is_some() {
                    return Err(bad());
                }
                round.agency[a].finished = Some(*bets);
            }
            Entry::Drawn { excluded } => {
                // The draw runs when every agency finished, or at the deadline
                // without exactly those that had not: anything else is not a
                // state file this server wrote.
                let unfinished = unfinished(&round);
                if round.drawn.is_some() || *excluded != unfinished {
                    return Err(bad());
                }
                round.drawn = Some(excluded.clone());
            }
            Entry::Delivered { agency } => {
                let a = slot(&round, *agency).ok_or_else(bad)?;
                if round.drawn.is_none() || round.agency[a].finished.is_none() {
                    return Err(bad());
                }
                round.agency[a].delivered = true;
            }
        }
    }
    for a in 1..=round.agencies {
        let agency = &round.agency[usize::from(a)];
        let stored = agency.bets.len() as u64;
        match agency.finished {
            // Rows beyond an acknowledged end cannot be: nothing is stored
            // for a finished agency.
            Some(recorded) if recorded != stored => {
                return Err(RecoveryError::Lost {
                    agency: a,
                    recorded,
                    stored,
                });
            }
            _ => {}
        }
    }
    Ok(round)
}

/// Does a state file alone record a complete round (every agency owed
/// winners got them)? For a start that finds the state file of an archived
/// round whose bets file was already moved (a crash between the two renames).
pub fn state_is_complete(state: &[u8]) -> bool {
    let Ok((entries, _)) = read_state(state) else {
        return false;
    };
    let Some(Entry::Header { agencies, .. }) = entries.first() else {
        return false;
    };
    let mut round = Round::new(*agencies, 0);
    for entry in &entries[1..] {
        match entry {
            Entry::Drawn { excluded } => round.drawn = Some(excluded.clone()),
            Entry::Delivered { agency } if *agency <= *agencies => {
                round.agency[usize::from(*agency)].delivered = true;
            }
            _ => {}
        }
    }
    round.is_complete()
}

/// The complete lines of a state file, and the bytes after the last one.
fn read_state(state: &[u8]) -> Result<(Vec<Entry>, usize), RecoveryError> {
    let complete = state.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut entries = Vec::new();
    for (i, line) in state[..complete].split(|&b| b == b'\n').enumerate() {
        if i == state[..complete].iter().filter(|&&b| b == b'\n').count() {
            break; // the empty piece after the final newline
        }
        let text = String::from_utf8_lossy(line);
        let entry = Entry::parse(&text).ok_or_else(|| RecoveryError::BadEntry {
            line: i + 1,
            text: text.into_owned(),
        })?;
        entries.push(entry);
    }
    Ok((entries, state.len() - complete))
}

/// Reads the rows into `round`. A row is complete when its terminating
/// newline is in the file; only the last row may be incomplete (torn), and
/// is left out. A complete row that is not a valid bet of the round's
/// agencies is an error: the file is not one this server wrote.
fn read_bets(bets: &[u8], round: &mut Round) -> Result<(), RecoveryError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bets);
    let mut record = csv::ByteRecord::new();
    let mut complete = 0usize;
    let mut line = 0u64;
    loop {
        let read = reader.read_byte_record(&mut record);
        let end = reader.position().byte() as usize;
        // A row is complete when its newline is in the file and is not inside
        // a quoted name left open. The server's writer quotes a name holding a
        // quote and doubles it, so every row it writes has an even number of
        // quotes: an odd number means a quote left open by a tear (the last
        // row, torn right after a line break in a name) or a row this server
        // did not write (any other row: refused, so that a row is never read
        // as a bet at one start and as a torn tail at the next).
        let odd_quotes = bets[complete.min(end)..end]
            .iter()
            .filter(|&&b| b == b'"')
            .count()
            % 2
            == 1;
        let last = end >= bets.len();
        let terminated =
            end > complete && bets.get(end - 1) == Some(&b'\n') && !(odd_quotes && last);
        match read {
            Ok(false) => break,
            Ok(true) if terminated && odd_quotes => {
                return Err(RecoveryError::BadRow {
                    line: line + 1,
                    reason: "a quote left open before more rows".into(),
                });
            }
            Ok(true) if terminated => {
                line += 1;
                let bet = parse_row(&record, round.agencies)
                    .map_err(|reason| RecoveryError::BadRow { line, reason })?;
                let agency = &mut round.agency[usize::from(bet.agency)];
                agency
                    .bets
                    .push(u64::from(bet.document) << 32 | u64::from(bet.number));
                if bet.number == WINNING_NUMBER {
                    agency.winners.push(bet.document);
                }
                round.rows += 1;
                complete = end;
            }
            // The last row, cut short by a crash: never acknowledged.
            Ok(true) if end >= bets.len() => break,
            Ok(true) => {
                return Err(RecoveryError::BadRow {
                    line: line + 1,
                    reason: "a row that ends without a newline before more rows".into(),
                });
            }
            Err(e) => {
                return Err(RecoveryError::BadRow {
                    line: line + 1,
                    reason: e.to_string(),
                });
            }
        }
    }
    round.bets_torn = bets.len() - complete;
    // A torn row is the start of a row this server writes: short, and
    // beginning with an agency number. Anything else after the last complete
    // row (a file that was never a bets file, say) is not cut but refused.
    let tail = &bets[complete..];
    let agency_digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
    let looks_torn = tail.len() <= MAX_ROW_LEN
        && agency_digits <= 5
        && (agency_digits == tail.len() || (agency_digits > 0 && tail[agency_digits] == b','));
    if !tail.is_empty() && !looks_torn {
        return Err(RecoveryError::BadRow {
            line: line + 1,
            reason: format!(
                "{} bytes after the last complete row are not the start of a row",
                tail.len()
            ),
        });
    }
    Ok(())
}

/// A row as the server writes it; the reason names what is wrong.
fn parse_row(record: &csv::ByteRecord, agencies: u16) -> Result<Bet, String> {
    if record.len() != 6 {
        return Err(format!("{} columns, not 6", record.len()));
    }
    let text = |i: usize| {
        std::str::from_utf8(&record[i]).map_err(|_| format!("column {} is not UTF-8", i + 1))
    };
    let agency: u16 = text(0)?
        .parse()
        .ok()
        .filter(|a| (1..=agencies).contains(a))
        .ok_or_else(|| {
            format!(
                "agency \"{}\" is not between 1 and {agencies}",
                text(0).unwrap_or("?")
            )
        })?;
    let number = |i: usize, what: &str| -> Result<u32, String> {
        let t = text(i)?;
        t.parse()
            .map_err(|_| format!("{what} \"{t}\" is not a whole number"))
    };
    Bet::new(
        agency,
        text(1)?,
        text(2)?,
        number(3, "document")?,
        text(4)?,
        number(5, "number")?,
    )
    .map_err(|e| e.to_string())
}

/// The agencies that had not finished, for a draw cut by the deadline.
pub fn unfinished(round: &Round) -> Vec<u16> {
    (1..=round.agencies)
        .filter(|&a| round.agency[usize::from(a)].finished.is_none())
        .collect()
}

/// Agencies whose state is recorded, for tests and logs.
pub fn finished(round: &Round) -> BTreeMap<u16, u64> {
    (1..=round.agencies)
        .filter_map(|a| Some((a, round.agency[usize::from(a)].finished?)))
        .collect()
}

/// Agencies that got their winners.
pub fn delivered(round: &Round) -> BTreeSet<u16> {
    (1..=round.agencies)
        .filter(|&a| round.agency[usize::from(a)].delivered)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            e.encode(&mut out);
        }
        out
    }

    const BETS: &str = "1,Ana,Gómez,100,1990-01-01,7574\n2,\"Pérez, Jr.\",B,200,1990-01-01,1\n1,C,D,101,2000-02-29,5\n";

    #[test]
    fn entries_round_trip_as_lines() {
        let all = [
            Entry::Header {
                agencies: 5,
                started: 1764460800,
            },
            Entry::Finished {
                agency: 3,
                bets: 16014,
            },
            Entry::Drawn {
                excluded: vec![2, 5],
            },
            Entry::Drawn { excluded: vec![] },
            Entry::Delivered { agency: 3 },
        ];
        let text = String::from_utf8(state(&all)).unwrap();
        assert_eq!(
            text,
            "round 1 agencies 5 started 1764460800\nfinished 3 16014\ndrawn excluded 2 5\ndrawn\ndelivered 3\n"
        );
        let (read, torn) = read_state(text.as_bytes()).unwrap();
        assert_eq!((read, torn), (all.to_vec(), 0));
    }

    #[test]
    fn a_round_reads_back_with_its_bets_winners_and_events() {
        let s = state(&[
            Entry::Header {
                agencies: 2,
                started: 7,
            },
            Entry::Finished { agency: 2, bets: 1 },
        ]);
        let round = read_round(BETS.as_bytes(), &s, 9, 99).unwrap();
        assert_eq!((round.agencies, round.started, round.rows), (2, 7, 3));
        assert_eq!(round.agency[1].bets, [100 << 32 | 7574, 101 << 32 | 5]);
        assert_eq!(round.agency[1].winners, [100]);
        assert_eq!(round.agency[2].finished, Some(1));
        assert_eq!(finished(&round), BTreeMap::from([(2, 1)]));
        assert_eq!(unfinished(&round), [1]);
        assert!(!round.is_complete());
        // No state file: the rows alone, agencies from the configuration.
        let round = read_round(BETS.as_bytes(), b"", 3, 99).unwrap();
        assert_eq!((round.agencies, round.started, round.rows), (3, 99, 3));
    }

    #[test]
    fn torn_tails_are_measured_not_read() {
        for cut in 1..BETS.len() {
            let bytes = &BETS.as_bytes()[..cut];
            let round = read_round(bytes, b"", 2, 0).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            assert_eq!(round.bets_torn, cut - complete, "cut {cut}");
            assert_eq!(
                round.rows as usize,
                BETS[..complete].lines().count(),
                "cut {cut}"
            );
        }
        let s = state(&[
            Entry::Header {
                agencies: 2,
                started: 1,
            },
            Entry::Finished { agency: 1, bets: 2 },
        ]);
        for cut in 0..s.len() {
            let round = read_round(BETS.as_bytes(), &s[..cut], 2, 0);
            match round {
                Ok(r) => assert!(r.state_torn < s.len()),
                Err(e) => assert_eq!(e, RecoveryError::NoHeader, "cut {cut}"),
            }
        }
    }

    #[test]
    fn a_row_torn_after_a_line_break_inside_a_quoted_name_is_torn() {
        let rows = "1,\"Ana\nMaría\",Gómez,1,1990-01-01,7\n";
        for tail in ["1,\"Eva\n", "1,\"Eva\nRo", "1,\"Eva\n\"\"x\n"] {
            let bytes = format!("{rows}{tail}");
            let round =
                read_round(bytes.as_bytes(), b"", 1, 0).unwrap_or_else(|e| panic!("{tail:?}: {e}"));
            assert_eq!((round.rows, round.bets_torn), (1, tail.len()), "{tail:?}");
        }
    }

    /// What a fuzzer found: a complete row with a stray quote read as a bet
    /// while more bytes followed it, and as a torn tail once they were cut.
    #[test]
    fn a_row_is_read_the_same_at_every_start() {
        let stray = "1,Q\",n,0,0001-01-01,1\n";
        assert_eq!(
            read_round(format!("{stray}h").as_bytes(), b"", 2, 0),
            Err(RecoveryError::BadRow {
                line: 1,
                reason: "a quote left open before more rows".into()
            })
        );
        let round = read_round(stray.as_bytes(), b"", 2, 0).unwrap();
        assert_eq!(
            (round.rows, round.bets_torn),
            (0, stray.len()),
            "torn, and only torn"
        );
        let again = read_round(b"", b"", 2, 0).unwrap();
        assert_eq!((again.rows, again.bets_torn), (0, 0));
    }

    #[test]
    fn only_the_start_of_a_row_is_a_torn_tail() {
        let row = "1,Ana,B,1,1990-01-01,7\n";
        for (tail, torn) in [
            ("2", true),
            ("12,Jua", true),
            ("12345,", true),
            ("important notes, do not delete", false),
            (",x", false),
            ("123456,", false),
        ] {
            let bytes = format!("{row}{tail}");
            let got = read_round(bytes.as_bytes(), b"", 9, 0);
            assert_eq!(got.is_ok(), torn, "{tail:?}: {got:?}");
        }
        // A file that holds nothing but such text is refused, not emptied.
        assert!(read_round(b"important notes, do not delete", b"", 9, 0).is_err());
        let long = format!("1,{}", "x".repeat(MAX_ROW_LEN));
        assert!(
            read_round(long.as_bytes(), b"", 9, 0).is_err(),
            "longer than any row"
        );
    }

    #[test]
    fn a_draw_that_cannot_have_run_is_refused() {
        let h = "round 1 agencies 3 started 1\n";
        for state in [
            format!("{h}finished 1 0\ndrawn\n"),
            format!("{h}finished 1 0\ndrawn excluded 2\n"),
            format!("{h}drawn excluded 1 2 3 4\n"),
        ] {
            assert!(
                matches!(
                    read_round(b"", state.as_bytes(), 3, 0),
                    Err(RecoveryError::BadEntry { .. })
                ),
                "{state:?}"
            );
        }
        let fine = format!("{h}finished 1 0\ndrawn excluded 2 3\n");
        assert_eq!(
            read_round(b"", fine.as_bytes(), 3, 0).unwrap().drawn,
            Some(vec![2, 3])
        );
    }

    #[test]
    fn what_cannot_be_resumed_is_named() {
        let h = Entry::Header {
            agencies: 2,
            started: 1,
        };
        let table: Vec<(&str, Vec<u8>, RecoveryError)> = vec![
            (
                "1,Ana,B,1,1990-01-01,7\n3,Ana,B,1,1990-01-01,7\n",
                state(std::slice::from_ref(&h)),
                RecoveryError::BadRow { line: 2, reason: "agency \"3\" is not between 1 and 2".into() },
            ),
            (
                "1,Ana,B,1,1990-13-01,7\n",
                vec![],
                RecoveryError::BadRow {
                    line: 1,
                    reason: "birthdate \"1990-13-01\" is not a real day from 0001-01-01 to 9999-12-31 written as YYYY-MM-DD".into(),
                },
            ),
            (
                "1,Ana,B,1\n",
                vec![],
                RecoveryError::BadRow { line: 1, reason: "4 columns, not 6".into() },
            ),
            ("", b"finished 1 0\n".to_vec(), RecoveryError::NoHeader),
            (
                "",
                state(&[h.clone(), Entry::Delivered { agency: 1 }]),
                RecoveryError::BadEntry { line: 2, text: "delivered 1".into() },
            ),
            (
                "",
                [state(std::slice::from_ref(&h)), b"finished one\n".to_vec()].concat(),
                RecoveryError::BadEntry { line: 2, text: "finished one".into() },
            ),
            (
                "1,Ana,B,1,1990-01-01,7\n",
                state(&[h.clone(), Entry::Finished { agency: 1, bets: 2 }]),
                RecoveryError::Lost { agency: 1, recorded: 2, stored: 1 },
            ),
        ];
        for (bets, s, want) in table {
            assert_eq!(
                read_round(bets.as_bytes(), &s, 2, 0),
                Err(want.clone()),
                "{want}"
            );
        }
    }

    #[test]
    fn a_round_is_complete_once_every_agency_owed_winners_has_them() {
        let mut s = state(&[
            Entry::Header {
                agencies: 3,
                started: 1,
            },
            Entry::Finished { agency: 1, bets: 0 },
            Entry::Finished { agency: 3, bets: 0 },
            Entry::Drawn { excluded: vec![2] },
            Entry::Delivered { agency: 1 },
        ]);
        assert!(!read_round(b"", &s, 3, 0).unwrap().is_complete());
        Entry::Delivered { agency: 3 }.encode(&mut s);
        let round = read_round(b"", &s, 3, 0).unwrap();
        assert!(round.is_complete());
        assert_eq!(delivered(&round), BTreeSet::from([1, 3]));
    }
}
