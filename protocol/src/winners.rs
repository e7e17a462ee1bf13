//! The winners message: `u16` byte length, then that many bytes of `u32` documents.

use std::fmt;

/// The most documents one winners message can carry (its length is a `u16`).
pub const MAX_WINNERS: usize = u16::MAX as usize / 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyWinners(pub usize);

impl fmt::Display for TooManyWinners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} winners do not fit in one message (at most {MAX_WINNERS})",
            self.0
        )
    }
}

impl std::error::Error for TooManyWinners {}

/// Appends the winners message for `documents` to `out`.
pub fn encode_winners(documents: &[u32], out: &mut Vec<u8>) -> Result<(), TooManyWinners> {
    if documents.len() > MAX_WINNERS {
        return Err(TooManyWinners(documents.len()));
    }
    out.reserve(2 + 4 * documents.len());
    out.extend_from_slice(&((4 * documents.len()) as u16).to_be_bytes());
    for document in documents {
        out.extend_from_slice(&document.to_be_bytes());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinnersError {
    NotWholeDocuments { byte_len: u16 },
}

impl fmt::Display for WinnersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WinnersError::NotWholeDocuments { byte_len } => {
                write!(f, "winners length {byte_len} is not a multiple of 4")
            }
        }
    }
}

impl std::error::Error for WinnersError {}

/// Decodes a winners message at the start of `buf`: `Ok(None)` while partial,
/// else the documents and the bytes consumed.
pub fn decode_winners(buf: &[u8]) -> Result<Option<(Vec<u32>, usize)>, WinnersError> {
    let Some(len) = buf.first_chunk::<2>() else {
        return Ok(None);
    };
    let byte_len = u16::from_be_bytes(*len);
    if byte_len % 4 != 0 {
        return Err(WinnersError::NotWholeDocuments { byte_len });
    }
    let end = 2 + byte_len as usize;
    let Some(body) = buf.get(2..end) else {
        return Ok(None);
    };
    let documents = body
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes(d.try_into().expect("4 bytes")))
        .collect();
    Ok(Some((documents, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_every_cut() {
        let mut buf = Vec::new();
        encode_winners(&[1, 30904465, u32::MAX], &mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 12]);
        for cut in 0..buf.len() {
            assert_eq!(decode_winners(&buf[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(
            decode_winners(&buf),
            Ok(Some((vec![1, 30904465, u32::MAX], 14)))
        );
    }

    #[test]
    fn empty_and_limits() {
        let mut buf = Vec::new();
        encode_winners(&[], &mut buf).unwrap();
        assert_eq!(buf, [0, 0]);
        assert_eq!(decode_winners(&buf), Ok(Some((vec![], 2))));
        assert_eq!(
            decode_winners(&[0, 3, 0, 0, 0]),
            Err(WinnersError::NotWholeDocuments { byte_len: 3 })
        );
        let many = vec![7u32; MAX_WINNERS + 1];
        assert_eq!(
            encode_winners(&many, &mut Vec::new()),
            Err(TooManyWinners(MAX_WINNERS + 1))
        );
        assert!(encode_winners(&many[1..], &mut Vec::new()).is_ok());
    }
}
