//! Client-to-server framing: the 4-byte batch header and the 79-byte frames.

use std::fmt;

use crate::bet::{BetView, BirthDate, DATE_LEN, NAME_LEN};

/// Bytes of the stream header: `u16` batch size in bytes, `u16` agency.
pub const HEADER_LEN: usize = 4;
/// Bytes of every frame, bet or end.
pub const FRAME_LEN: usize = 79;
/// At most this many frames ride in one batch (103 × 79 = 8137 < 8 kB).
pub const MAX_BETS_PER_BATCH: usize = 103;
/// The largest batch size a header may announce, in bytes.
pub const MAX_BATCH_LEN: usize = MAX_BETS_PER_BATCH * FRAME_LEN;

const END_MARKER: &[u8] = b"END_MESSAGE";

/// The frame that ends an agency's stream: `END_MESSAGE` and 68 NUL bytes.
pub const END_FRAME: [u8; FRAME_LEN] = {
    let mut frame = [0u8; FRAME_LEN];
    let mut i = 0;
    while i < END_MARKER.len() {
        frame[i] = END_MARKER[i];
        i += 1;
    }
    frame
};

// Offsets inside a bet frame.
const AGENCY_AT: usize = 0;
const FIRST_NAME_AT: usize = 1;
const LAST_NAME_AT: usize = FIRST_NAME_AT + NAME_LEN;
const DOCUMENT_AT: usize = LAST_NAME_AT + NAME_LEN;
const BIRTHDATE_AT: usize = DOCUMENT_AT + 4;
const NUMBER_AT: usize = BIRTHDATE_AT + DATE_LEN;
const _: () = assert!(NUMBER_AT + 4 == FRAME_LEN);

/// The 4 bytes a client sends once, right after connecting (`00 9e 00 01` in
/// `shared/wire/agency-1.client-to-server.bin`: batches of 158 bytes = 2 bets,
/// agency 1). `batch_len` is validated on decode; the agency's range is the
/// server's configuration, so it is checked there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes per batch: bets per batch × 79, from 79 to 8137.
    pub batch_len: u16,
    /// The agency number; every bet frame repeats its low 8 bits.
    pub agency: u16,
}

/// A header that no correct client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    EmptyBatch,
    NotWholeFrames { batch_len: u16 },
    TooLarge { batch_len: u16 },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::EmptyBatch => write!(f, "batch size is 0"),
            HeaderError::NotWholeFrames { batch_len } => {
                write!(f, "batch size {batch_len} is not a multiple of {FRAME_LEN}")
            }
            HeaderError::TooLarge { batch_len } => {
                write!(
                    f,
                    "batch size {batch_len} is above the limit of {MAX_BATCH_LEN}"
                )
            }
        }
    }
}

impl std::error::Error for HeaderError {}

impl Header {
    /// The header of a stream cut into batches of `bets_per_batch` frames (1 to
    /// [`MAX_BETS_PER_BATCH`]; panics otherwise: clamp first).
    pub fn new(bets_per_batch: usize, agency: u16) -> Header {
        assert!(
            (1..=MAX_BETS_PER_BATCH).contains(&bets_per_batch),
            "a batch holds 1 to {MAX_BETS_PER_BATCH} frames, not {bets_per_batch}"
        );
        Header {
            batch_len: (bets_per_batch * FRAME_LEN) as u16,
            agency,
        }
    }

    /// Frames in a full batch.
    pub fn frames_per_batch(&self) -> usize {
        usize::from(self.batch_len) / FRAME_LEN
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [a, b] = self.batch_len.to_be_bytes();
        let [c, d] = self.agency.to_be_bytes();
        [a, b, c, d]
    }

    /// Decodes and validates a header; the batch size must announce 1 to 103
    /// whole frames.
    pub fn decode(bytes: [u8; HEADER_LEN]) -> Result<Header, HeaderError> {
        let batch_len = u16::from_be_bytes([bytes[0], bytes[1]]);
        let agency = u16::from_be_bytes([bytes[2], bytes[3]]);
        match batch_len as usize {
            0 => Err(HeaderError::EmptyBatch),
            n if n > MAX_BATCH_LEN => Err(HeaderError::TooLarge { batch_len }),
            n if n % FRAME_LEN != 0 => Err(HeaderError::NotWholeFrames { batch_len }),
            _ => Ok(Header { batch_len, agency }),
        }
    }
}

/// Does a connection whose first byte is `first` speak the lottery protocol?
/// A header's first byte is the batch size's high byte, at most
/// `8137 >> 8 = 31`; anything printable (`>= 0x20`) starts an echo line.
pub fn is_lottery_stream(first: u8) -> bool {
    first < 0x20
}

/// Is this frame exactly the end frame?
pub fn is_end_frame(frame: &[u8; FRAME_LEN]) -> bool {
    // A bet's first byte is its agency's low byte: rarely 'E', so this is
    // usually decided without comparing 79 bytes.
    frame[0] == END_FRAME[0] && *frame == END_FRAME
}

/// Why a well-framed bet cannot be stored. It still carries the document and
/// number so that the rejection can be acked with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub document: u32,
    pub number: u32,
    pub reason: RejectReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The frame's agency byte is not the low byte of the header's agency.
    AgencyMismatch {
        frame: u8,
        header: u16,
    },
    /// A name is empty, is not UTF-8, or has bytes after its NUL padding.
    InvalidName {
        field: &'static str,
    },
    InvalidBirthdate,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::AgencyMismatch { frame, header } => write!(
                f,
                "frame agency byte {frame} does not match header agency {header}"
            ),
            RejectReason::InvalidName { field } => {
                write!(f, "{field} is empty, not UTF-8 or not NUL-padded")
            }
            RejectReason::InvalidBirthdate => write!(f, "birthdate is not a valid YYYY-MM-DD"),
        }
    }
}

/// Decodes a frame that [`is_end_frame`] rejected as a bet of the batch whose
/// header named `agency`; a bet that cannot be stored is a [`Rejection`].
pub fn decode_bet(frame: &[u8; FRAME_LEN], agency: u16) -> Result<BetView<'_>, Rejection> {
    let u32_at = |at: usize| u32::from_be_bytes(frame[at..at + 4].try_into().expect("4 bytes"));
    let document = u32_at(DOCUMENT_AT);
    let number = u32_at(NUMBER_AT);
    let reject = |reason| Rejection {
        document,
        number,
        reason,
    };
    let agency_byte = frame[AGENCY_AT];
    if agency_byte != agency as u8 {
        return Err(reject(RejectReason::AgencyMismatch {
            frame: agency_byte,
            header: agency,
        }));
    }
    let (first_name, last_name) =
        decode_names(frame).map_err(|field| reject(RejectReason::InvalidName { field }))?;
    let birthdate = BirthDate::parse(&frame[BIRTHDATE_AT..NUMBER_AT])
        .ok_or(reject(RejectReason::InvalidBirthdate))?;
    Ok(BetView {
        agency,
        first_name,
        last_name,
        document,
        birthdate,
        number,
    })
}

/// Both name fields, each non-empty UTF-8 followed only by NUL padding; the
/// error names the bad field.
fn decode_names(frame: &[u8; FRAME_LEN]) -> Result<(&str, &str), &'static str> {
    let first = decode_name(&frame[FIRST_NAME_AT..LAST_NAME_AT]).ok_or("first name")?;
    let last = decode_name(&frame[LAST_NAME_AT..DOCUMENT_AT]).ok_or("last name")?;
    Ok((first, last))
}

/// A name field: non-empty UTF-8, then only NUL padding. This runs twice for
/// every bet (the profile put it at a quarter of the server's own work), so the
/// padding is measured a word at a time, and an ASCII name — the common case —
/// skips the general UTF-8 validator, as httparse does for header tokens.
fn decode_name(field: &[u8]) -> Option<&str> {
    let name = &field[..padded_len(field)];
    if name.is_empty() || name.contains(&0) {
        return None;
    }
    if name.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(name) });
    }
    std::str::from_utf8(name).ok()
}

/// The length of `field` (at most 32 bytes) without its trailing NULs, from
/// two 128-bit words rather than a byte loop.
fn padded_len(field: &[u8]) -> usize {
    let mut words = [0u8; 32];
    words[..field.len()].copy_from_slice(field);
    let [lo, hi] =
        [0, 16].map(|at| u128::from_le_bytes(words[at..at + 16].try_into().expect("16 bytes")));
    if hi != 0 {
        32 - (hi.leading_zeros() / 8) as usize
    } else {
        16 - (lo.leading_zeros() / 8) as usize
    }
}

impl BetView<'_> {
    /// Writes this bet as a frame. The names must fit (as a validated [`crate::Bet`]'s do).
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut frame = [0u8; FRAME_LEN];
        frame[AGENCY_AT] = self.agency as u8;
        put_name(&mut frame[FIRST_NAME_AT..LAST_NAME_AT], self.first_name);
        put_name(&mut frame[LAST_NAME_AT..DOCUMENT_AT], self.last_name);
        frame[DOCUMENT_AT..BIRTHDATE_AT].copy_from_slice(&self.document.to_be_bytes());
        frame[BIRTHDATE_AT..NUMBER_AT].copy_from_slice(self.birthdate.as_bytes());
        frame[NUMBER_AT..].copy_from_slice(&self.number.to_be_bytes());
        frame
    }
}

fn put_name(field: &mut [u8], name: &str) {
    assert!(name.len() <= field.len(), "name {name:?} does not fit");
    field[..name.len()].copy_from_slice(name.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bet;

    fn bet() -> Bet {
        Bet::new(300, "Ñandú", "O'Connor-Pérez", 30904465, "1999-03-17", 7574).unwrap()
    }

    #[test]
    fn bet_frame_layout_is_byte_exact() {
        let frame = bet().view().encode();
        assert_eq!(frame[0], 300u16 as u8, "agency low byte");
        assert_eq!(&frame[1..1 + "Ñandú".len()], "Ñandú".as_bytes());
        assert!(
            frame[1 + "Ñandú".len()..31].iter().all(|&b| b == 0),
            "NUL padding"
        );
        assert_eq!(&frame[31..31 + 15], b"O'Connor-P\xc3\xa9rez");
        assert_eq!(&frame[61..65], &30904465u32.to_be_bytes());
        assert_eq!(&frame[65..75], b"1999-03-17");
        assert_eq!(&frame[75..79], &[0, 0, 0x1d, 0x96], "7574 big-endian");
    }

    #[test]
    fn bet_frame_round_trips() {
        let bet = bet();
        let frame = bet.view().encode();
        assert_eq!(decode_bet(&frame, 300), Ok(bet.view()));
    }

    #[test]
    fn full_length_names_round_trip() {
        let name = "ü".repeat(15); // 30 bytes, no padding at all
        let bet = Bet::new(7, &name, &name, u32::MAX, "2000-02-29", 0).unwrap();
        let frame = bet.view().encode();
        assert_eq!(decode_bet(&frame, 7), Ok(bet.view()));
    }

    #[test]
    fn names_are_checked_field_by_field() {
        for len in 0..=30 {
            let mut field = [0u8; 30];
            field[..len].fill(b'a');
            assert_eq!(padded_len(&field), len);
        }
        let good = bet().view().encode();
        // A 2-byte character split across the two fields: each field alone is
        // invalid, although the 60 bytes together would be valid UTF-8.
        let mut straddle = good;
        straddle[1..31].fill(b'a');
        straddle[30] = 0xc3;
        straddle[31] = 0xa9;
        assert_eq!(
            decode_bet(&straddle, 300).unwrap_err().reason,
            RejectReason::InvalidName {
                field: "first name"
            }
        );
        let mut bad_last = good;
        bad_last[31] = 0xa9; // a lone continuation byte
        assert_eq!(
            decode_bet(&bad_last, 300).unwrap_err().reason,
            RejectReason::InvalidName { field: "last name" }
        );
        let mut nul_inside = good;
        nul_inside[2] = 0;
        assert_eq!(
            decode_bet(&nul_inside, 300).unwrap_err().reason,
            RejectReason::InvalidName {
                field: "first name"
            }
        );
    }

    #[test]
    fn end_frame() {
        assert_eq!(&END_FRAME[..11], b"END_MESSAGE");
        assert!(END_FRAME[11..].iter().all(|&b| b == 0));
        assert!(is_end_frame(&END_FRAME));
        // END_MESSAGE with trailing garbage is no end frame: it is a bet, and a bad one.
        let mut almost = END_FRAME;
        almost[78] = 1;
        assert!(!is_end_frame(&almost));
        assert!(decode_bet(&almost, u16::from(b'E')).is_err());
    }

    #[test]
    fn rejections_carry_document_and_number() {
        let good = bet().view().encode();
        let mutate = |f: &dyn Fn(&mut [u8; FRAME_LEN])| {
            let mut frame = good;
            f(&mut frame);
            frame
        };
        let table: Vec<([u8; FRAME_LEN], u16, RejectReason)> = vec![
            (
                good,
                44, // 300 & 0xff = 44, but header says 44 and frame byte is 44: fine below
                RejectReason::AgencyMismatch {
                    frame: 44,
                    header: 44,
                },
            ),
            (
                good,
                301,
                RejectReason::AgencyMismatch {
                    frame: 44,
                    header: 301,
                },
            ),
            (
                mutate(&|f| f[1] = 0xff),
                300,
                RejectReason::InvalidName {
                    field: "first name",
                },
            ),
            (
                mutate(&|f| f[31..61].fill(0)),
                300,
                RejectReason::InvalidName { field: "last name" },
            ),
            (
                mutate(&|f| f[29] = b'x'), // byte after the NUL padding began
                300,
                RejectReason::InvalidName {
                    field: "first name",
                },
            ),
            (
                mutate(&|f| f[65..75].copy_from_slice(b"1999-02-30")),
                300,
                RejectReason::InvalidBirthdate,
            ),
            (
                mutate(&|f| f[65..75].copy_from_slice(b"0000-01-01")),
                300,
                RejectReason::InvalidBirthdate,
            ),
        ];
        for (i, (frame, agency, reason)) in table.into_iter().enumerate() {
            let got = decode_bet(&frame, agency);
            if i == 0 {
                // Header 44 and frame byte 44 agree: the low byte is what is compared.
                assert!(matches!(got, Ok(b) if b.agency == 44));
                continue;
            }
            assert_eq!(
                got,
                Err(Rejection {
                    document: 30904465,
                    number: 7574,
                    reason
                }),
                "case {i}"
            );
        }
    }

    #[test]
    fn headers() {
        let table: &[([u8; 4], Result<Header, HeaderError>)] = &[
            (
                [0, 79, 0, 1],
                Ok(Header {
                    batch_len: 79,
                    agency: 1,
                }),
            ),
            (
                [0x1f, 0xc9, 0x01, 0x2c],
                Ok(Header {
                    batch_len: 8137,
                    agency: 300,
                }),
            ),
            ([0, 0, 0, 1], Err(HeaderError::EmptyBatch)),
            (
                [0, 80, 0, 1],
                Err(HeaderError::NotWholeFrames { batch_len: 80 }),
            ),
            (
                [0x1f, 0xca, 0, 1],
                Err(HeaderError::TooLarge { batch_len: 8138 }),
            ),
            (
                [0x20, 0x18, 0, 1],
                Err(HeaderError::TooLarge { batch_len: 8216 }),
            ),
        ];
        for (bytes, want) in table {
            assert_eq!(Header::decode(*bytes), *want, "{bytes:?}");
            if let Ok(h) = want {
                assert_eq!(h.encode(), *bytes);
            }
        }
        assert_eq!(Header::new(103, 5).batch_len, 8137);
        // The first byte of any valid header is below 0x20: what tells echo apart.
        const { assert!((MAX_BATCH_LEN >> 8) < 0x20) };
        assert!(is_lottery_stream(0x1f) && is_lottery_stream(0));
        assert!(!is_lottery_stream(b' ') && !is_lottery_stream(b'['));
    }
}
