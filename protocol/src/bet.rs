//! The bet: its owned form (built by clients from their files) and its borrowed
//! form (decoded by the server straight out of its input buffer, no allocation).

use std::fmt;

/// The number that wins the draw (the exercise's fixed draw).
pub const WINNING_NUMBER: u32 = 7574;

/// Bytes a name occupies in a frame; longer names cannot be sent.
pub const NAME_LEN: usize = 30;
/// Bytes of a birthdate in a frame: ASCII `YYYY-MM-DD`.
pub const DATE_LEN: usize = 10;

/// A birthdate that is a real calendar day from 0001-01-01 to 9999-12-31
/// written as `YYYY-MM-DD`.
///
/// Stored as its 10 ASCII bytes, so it round-trips byte for byte between the
/// wire, the client's file and the server's CSV.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BirthDate([u8; DATE_LEN]);

impl BirthDate {
    /// Accepts exactly `YYYY-MM-DD` (four, two and two ASCII digits) naming a day
    /// that exists (`2001-02-29` does not) in years 1 to 9999. Returns `None`
    /// otherwise.
    pub fn parse(bytes: &[u8]) -> Option<BirthDate> {
        let raw: [u8; DATE_LEN] = bytes.try_into().ok()?;
        if raw[4] != b'-' || raw[7] != b'-' {
            return None;
        }
        // Runs for every bet: plain arithmetic on the digit positions.
        let mut value = [0u32; 3];
        for (part, range) in value.iter_mut().zip([0..4, 5..7, 8..10]) {
            for &byte in &raw[range] {
                let digit = byte.wrapping_sub(b'0');
                if digit > 9 {
                    return None;
                }
                *part = *part * 10 + u32::from(digit);
            }
        }
        let [year, month, day] = value;
        // Year 0 is a real day for chrono (proleptic ISO 8601) but not for
        // Python's `datetime.date`, which the course's tools read the bets
        // file with: one such row would make the whole file unreadable.
        if year == 0 {
            return None;
        }
        chrono::NaiveDate::from_ymd_opt(year as i32, month, day)?;
        Some(BirthDate(raw))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and dashes get past `parse`.
        std::str::from_utf8(&self.0).expect("a parsed birthdate is ASCII")
    }

    pub fn as_bytes(&self) -> &[u8; DATE_LEN] {
        &self.0
    }
}

impl fmt::Debug for BirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BirthDate({})", self.as_str())
    }
}

impl fmt::Display for BirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a bet cannot be built from a client's data. Its `Display` names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BetError {
    EmptyName { field: &'static str },
    NameTooLong { field: &'static str, bytes: usize },
    NameHasNul { field: &'static str },
    InvalidBirthdate(String),
}

impl fmt::Display for BetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BetError::EmptyName { field } => write!(f, "{field} is empty"),
            BetError::NameTooLong { field, bytes } => {
                write!(f, "{field} is {bytes} bytes long, the limit is {NAME_LEN}")
            }
            BetError::NameHasNul { field } => write!(f, "{field} contains a NUL byte"),
            BetError::InvalidBirthdate(value) => {
                write!(
                    f,
                    "birthdate \"{value}\" is not a real day from 0001-01-01 to 9999-12-31 written as YYYY-MM-DD"
                )
            }
        }
    }
}

impl std::error::Error for BetError {}

/// A bet as a client holds it: validated, so that it always encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bet {
    pub agency: u16,
    pub first_name: String,
    pub last_name: String,
    pub document: u32,
    pub birthdate: BirthDate,
    pub number: u32,
}

impl Bet {
    /// Validates every field against what a frame can carry.
    pub fn new(
        agency: u16,
        first_name: &str,
        last_name: &str,
        document: u32,
        birthdate: &str,
        number: u32,
    ) -> Result<Bet, BetError> {
        check_name("first name", first_name)?;
        check_name("last name", last_name)?;
        let birthdate = BirthDate::parse(birthdate.as_bytes())
            .ok_or_else(|| BetError::InvalidBirthdate(birthdate.to_owned()))?;
        Ok(Bet {
            agency,
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            document,
            birthdate,
            number,
        })
    }

    pub fn view(&self) -> BetView<'_> {
        BetView {
            agency: self.agency,
            first_name: &self.first_name,
            last_name: &self.last_name,
            document: self.document,
            birthdate: self.birthdate,
            number: self.number,
        }
    }
}

fn check_name(field: &'static str, name: &str) -> Result<(), BetError> {
    if name.is_empty() {
        return Err(BetError::EmptyName { field });
    }
    if name.len() > NAME_LEN {
        return Err(BetError::NameTooLong {
            field,
            bytes: name.len(),
        });
    }
    if name.contains('\0') {
        return Err(BetError::NameHasNul { field });
    }
    Ok(())
}

/// A bet borrowed from a frame or from an owned [`Bet`]; what the server stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BetView<'a> {
    /// The agency from the batch header (the frame carries only its low byte).
    pub agency: u16,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub document: u32,
    pub birthdate: BirthDate,
    pub number: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birthdates() {
        let table: &[(&str, bool)] = &[
            ("1999-03-17", true),
            ("2000-02-29", true),
            ("2001-02-29", false),
            ("1999-13-01", false),
            ("1999-00-10", false),
            ("1999-01-32", false),
            ("1999/03/17", false),
            ("99-03-17", false),
            ("1999-3-17 ", false),
            ("+999-03-17", false),
            ("1999-03-1x", false),
            ("", false),
            ("1999-03-170", false),
            ("0000-01-01", false),
            ("0000-02-29", false),
            ("0001-01-01", true),
            ("9999-12-31", true),
        ];
        for &(input, ok) in table {
            assert_eq!(
                BirthDate::parse(input.as_bytes()).is_some(),
                ok,
                "{input:?}"
            );
        }
        assert_eq!(
            BirthDate::parse(b"0999-01-01").unwrap().as_str(),
            "0999-01-01"
        );
    }

    #[test]
    fn bet_fields_are_validated() {
        let ok = Bet::new(1, "Ana", "Pérez", 30904465, "1999-03-17", 7574).unwrap();
        assert_eq!(ok.last_name, "Pérez");
        let thirty = "a".repeat(30);
        assert!(Bet::new(1, &thirty, &thirty, 1, "1999-03-17", 1).is_ok());
        // 29 ASCII bytes + one 2-byte character = 31 bytes although 30 characters.
        let long = format!("{}é", "a".repeat(29));
        let table: Vec<(Result<Bet, BetError>, BetError)> = vec![
            (
                Bet::new(1, "", "B", 1, "1999-03-17", 1),
                BetError::EmptyName {
                    field: "first name",
                },
            ),
            (
                Bet::new(1, "A", &long, 1, "1999-03-17", 1),
                BetError::NameTooLong {
                    field: "last name",
                    bytes: 31,
                },
            ),
            (
                Bet::new(1, "A\0", "B", 1, "1999-03-17", 1),
                BetError::NameHasNul {
                    field: "first name",
                },
            ),
            (
                Bet::new(1, "A", "B", 1, "17-03-1999", 1),
                BetError::InvalidBirthdate("17-03-1999".into()),
            ),
        ];
        for (got, want) in table {
            assert_eq!(got.unwrap_err(), want);
        }
        assert_eq!(
            BetError::NameTooLong {
                field: "last name",
                bytes: 31
            }
            .to_string(),
            "last name is 31 bytes long, the limit is 30"
        );
    }
}
