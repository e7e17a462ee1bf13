//! Reading an agency's bets: CSV `first_name,last_name,document,birthdate,number`,
//! UTF-8, no header.
//!
//! The whole file is validated before anything is sent: one malformed row is an
//! error naming the file and line, and the agency sends nothing (a half-sent
//! agency could never finish, and a skipped row would be a bet silently lost).

use std::fmt;
use std::io::Read;
use std::path::Path;

use lottery_protocol::Bet;

#[derive(Debug)]
pub struct DataError {
    pub file: String,
    /// 1-based line, when the problem is in a row.
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for DataError {}

/// Loads and validates every bet of `agency` in the file at `path`.
pub fn load_bets(path: &Path, agency: u16) -> Result<Vec<Bet>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError {
        file: path.display().to_string(),
        line: None,
        message: e.to_string(),
    })?;
    read_bets(file, &path.display().to_string(), agency)
}

/// Parses bets from any reader; `name` is used in errors.
pub fn read_bets(reader: impl Read, name: &str, agency: u16) -> Result<Vec<Bet>, DataError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut bets = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let error = |line: Option<u64>, message: String| DataError {
            file: name.to_owned(),
            line,
            message,
        };
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(bets),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line());
                return Err(error(line, format!("unreadable row: {e}")));
            }
        }
        let line = record.position().map(|p| p.line());
        let [first, last, document, birthdate, number] = record.iter().collect::<Vec<_>>()[..]
        else {
            return Err(error(
                line,
                format!(
                    "expected 5 columns (first_name,last_name,document,birthdate,number), found {}",
                    record.len()
                ),
            ));
        };
        let number_field = |field: &str, what: &str| {
            field.parse::<u32>().map_err(|_| {
                error(
                    line,
                    format!("{what} \"{field}\" is not a whole number from 0 to 4294967295"),
                )
            })
        };
        let document = number_field(document, "document")?;
        let number = number_field(number, "number")?;
        let bet = Bet::new(agency, first, last, document, birthdate, number)
            .map_err(|e| error(line, e.to_string()))?;
        bets.push(bet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_course_format() {
        let text = "Santiago Lionel,Lorca,30904465,1999-03-17,7574\nJoaquín,Ñúñez,1,2000-02-29,0\n";
        let bets = read_bets(text.as_bytes(), "agency-1.csv", 1).unwrap();
        assert_eq!(bets.len(), 2);
        assert_eq!(
            bets[0],
            Bet::new(1, "Santiago Lionel", "Lorca", 30904465, "1999-03-17", 7574).unwrap()
        );
        assert_eq!(bets[1].last_name, "Ñúñez");
        assert!(read_bets("".as_bytes(), "empty.csv", 1).unwrap().is_empty());
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let good = "A,B,1,2000-01-01,1\n";
        let long = "x".repeat(31);
        let table: Vec<(String, &str)> = vec![
            (
                format!("{good}A,B,1,2000-01-01\n"),
                "f.csv:2: expected 5 columns (first_name,last_name,document,birthdate,number), found 4",
            ),
            (
                format!("{good}{good}{long},B,1,2000-01-01,1\n"),
                "f.csv:3: first name is 31 bytes long, the limit is 30",
            ),
            (
                "A,B,1,01/01/2000,1\n".to_string(),
                "f.csv:1: birthdate \"01/01/2000\" is not a real day from 0001-01-01 to 9999-12-31 written as YYYY-MM-DD",
            ),
            (
                // Year 0 exists for chrono, not for Python's `date`.
                format!("{good}{good}A,B,1,0000-01-01,1\n"),
                "f.csv:3: birthdate \"0000-01-01\" is not a real day from 0001-01-01 to 9999-12-31 written as YYYY-MM-DD",
            ),
            (
                format!("{good}A,B,12a,2000-01-01,1\n"),
                "f.csv:2: document \"12a\" is not a whole number from 0 to 4294967295",
            ),
            (
                format!("{good}A,B,1,2000-01-01,-1\n"),
                "f.csv:2: number \"-1\" is not a whole number from 0 to 4294967295",
            ),
            (
                "A,,1,2000-01-01,1\n".to_string(),
                "f.csv:1: last name is empty",
            ),
        ];
        for (text, want) in table {
            assert_eq!(
                read_bets(text.as_bytes(), "f.csv", 1)
                    .unwrap_err()
                    .to_string(),
                want
            );
        }
        let bad_utf8 = b"A,B,1,2000-01-01,1\n\xff,B,1,2000-01-01,1\n";
        let err = read_bets(&bad_utf8[..], "f.csv", 1).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }
}
