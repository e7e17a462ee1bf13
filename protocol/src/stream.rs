//! The client-to-server stream: one header, then the agency's bet frames and
//! the end frame, cut into batches of the header's batch size.
//!
//! ```text
//! [header: u16 batch_len | u16 agency]                       once per connection
//! [frame][frame]...[frame]                                   batch 1: batch_len bytes
//! [frame][frame]...[frame]                                   batch 2: batch_len bytes
//! ...
//! [frame]..[END frame]                                       last batch: up to batch_len bytes,
//!                                                            ends with the end frame
//! ```
//!
//! A batch is complete when it holds `batch_len` bytes, or as soon as one of
//! its frames is the end frame: the end frame always closes the last batch, so
//! the last batch is the only one that may be shorter (it is the end frame
//! alone when the bet count is a multiple of the batch size).

use std::fmt;

use crate::frame::{END_FRAME, FRAME_LEN, HEADER_LEN, Header, HeaderError, is_end_frame};

/// Appends a whole stream to `out`: the header, every bet frame, the end frame.
/// Its batches are `header.batch_len`-byte slices of what follows the header.
pub fn encode_stream(header: Header, bets: &[[u8; FRAME_LEN]], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + (bets.len() + 1) * FRAME_LEN);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(bets.as_flattened());
    out.extend_from_slice(&END_FRAME);
}

/// One complete unit of the stream, borrowed from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit<'a> {
    /// The first 4 bytes of the connection.
    Header(Header),
    /// A complete batch.
    Batch(Batch<'a>),
}

/// A complete batch: its bet frames, and whether the end frame closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The bet frames, the end frame excluded (empty when the end frame came alone).
    pub bets: &'a [[u8; FRAME_LEN]],
    /// The end frame closed this batch: it is the agency's last.
    pub ends: bool,
}

impl Batch<'_> {
    /// Bytes of the stream this batch took, end frame included.
    pub fn wire_len(&self) -> usize {
        (self.bets.len() + usize::from(self.ends)) * FRAME_LEN
    }
}

/// Input that no correct client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// The first 4 bytes are not a valid header.
    Header(HeaderError),
    /// Bytes arrived after the batch that held the end frame.
    DataAfterEnd { bytes: usize },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Header(e) => write!(f, "bad header: {e}"),
            StreamError::DataAfterEnd { bytes: 1 } => write!(f, "1 byte after the end frame"),
            StreamError::DataAfterEnd { bytes } => {
                write!(f, "{bytes} bytes after the end frame")
            }
        }
    }
}

impl std::error::Error for StreamError {}

impl From<HeaderError> for StreamError {
    fn from(e: HeaderError) -> StreamError {
        StreamError::Header(e)
    }
}

/// Where a stream is: before its header, inside its batches, or past its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Header,
    Batches(Header),
    Ended(Header),
}

/// Splits a client-to-server stream into its header and batches. Sans-IO: the
/// caller owns the bytes and keeps what [`StreamDecoder::decode`] did not use
/// (a partial header or batch) for the next call.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    state: State,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// The header, once decoded.
    pub fn header(&self) -> Option<Header> {
        match self.state {
            State::Header => None,
            State::Batches(h) | State::Ended(h) => Some(h),
        }
    }

    /// The batch holding the end frame was decoded: the stream is over.
    pub fn has_ended(&self) -> bool {
        matches!(self.state, State::Ended(_))
    }

    /// Decodes the unit at the start of `buf`: `Ok(Some((unit, used)))` with
    /// the bytes it took, or `Ok(None)` when `buf` holds only part of one. An
    /// error means the stream cannot go on; the decoder's state is unchanged.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Unit<'a>, usize)>, StreamError> {
        match self.state {
            State::Header => {
                let Some(&bytes) = buf.first_chunk::<HEADER_LEN>() else {
                    return Ok(None);
                };
                let header = Header::decode(bytes)?;
                self.state = State::Batches(header);
                Ok(Some((Unit::Header(header), HEADER_LEN)))
            }
            State::Batches(header) => {
                let (frames, _) = buf.as_chunks::<FRAME_LEN>();
                let frames = &frames[..frames.len().min(header.frames_per_batch())];
                let batch = if let Some(end) = frames.iter().position(is_end_frame) {
                    self.state = State::Ended(header);
                    Batch {
                        bets: &frames[..end],
                        ends: true,
                    }
                } else if frames.len() == header.frames_per_batch() {
                    Batch {
                        bets: frames,
                        ends: false,
                    }
                } else {
                    return Ok(None);
                };
                Ok(Some((Unit::Batch(batch), batch.wire_len())))
            }
            State::Ended(_) if buf.is_empty() => Ok(None),
            State::Ended(_) => Err(StreamError::DataAfterEnd { bytes: buf.len() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bet;

    fn frames(n: u32) -> Vec<[u8; FRAME_LEN]> {
        (0..n)
            .map(|i| {
                Bet::new(1, "Ana", "Gómez", 100 + i, "1990-06-15", i)
                    .unwrap()
                    .view()
                    .encode()
            })
            .collect()
    }

    /// Every unit of `bytes` fed in pieces of `step` bytes, as a session does:
    /// the unused tail is kept and the next piece appended to it.
    fn decode_all(
        bytes: &[u8],
        step: usize,
    ) -> Result<Vec<(Option<Header>, usize, bool)>, StreamError> {
        let mut decoder = StreamDecoder::new();
        let mut pending = Vec::new();
        let mut units = Vec::new();
        for piece in bytes.chunks(step) {
            pending.extend_from_slice(piece);
            let mut used = 0;
            while let Some((unit, n)) = decoder.decode(&pending[used..])? {
                used += n;
                units.push(match unit {
                    Unit::Header(h) => (Some(h), 0, false),
                    Unit::Batch(b) => (None, b.bets.len(), b.ends),
                });
            }
            pending.drain(..used);
        }
        Ok(units)
    }

    #[test]
    fn batches_are_slices_of_the_stream_and_the_end_frame_closes_the_last() {
        let header = Header::new(2, 1);
        // (bets, batch sizes in bets of the batches the decoder must find)
        let table: &[(u32, &[(usize, bool)])] = &[
            (0, &[(0, true)]),
            (1, &[(1, true)]),
            (2, &[(2, false), (0, true)]), // a multiple: the end frame alone
            (3, &[(2, false), (1, true)]),
            (5, &[(2, false), (2, false), (1, true)]),
        ];
        for &(n, batches) in table {
            let mut bytes = Vec::new();
            encode_stream(header, &frames(n), &mut bytes);
            let mut want = vec![(Some(header), 0, false)];
            want.extend(batches.iter().map(|&(k, ends)| (None, k, ends)));
            for step in [1, 2, 3, 4, 5, 78, 79, 80, 158, bytes.len()] {
                assert_eq!(
                    decode_all(&bytes, step),
                    Ok(want.clone()),
                    "{n} bets, step {step}"
                );
            }
        }
    }

    #[test]
    fn a_short_last_batch_completes_at_its_end_frame() {
        let mut bytes = Vec::new();
        encode_stream(Header::new(103, 2), &frames(3), &mut bytes);
        let mut decoder = StreamDecoder::new();
        assert!(matches!(
            decoder.decode(&bytes),
            Ok(Some((Unit::Header(_), 4)))
        ));
        let body = &bytes[4..];
        assert_eq!(decoder.clone().decode(&body[..3 * FRAME_LEN]), Ok(None));
        let Ok(Some((Unit::Batch(batch), used))) = decoder.decode(body) else {
            panic!("the end frame completes the batch");
        };
        assert_eq!(
            (batch.bets.len(), batch.ends, used),
            (3, true, 4 * FRAME_LEN)
        );
        assert!(decoder.has_ended());
        assert_eq!(decoder.decode(&[]), Ok(None));
        assert_eq!(
            decoder.decode(&[0, 1]),
            Err(StreamError::DataAfterEnd { bytes: 2 })
        );
    }

    #[test]
    fn a_bad_header_is_an_error_and_only_the_first_four_bytes_are_a_header() {
        let mut decoder = StreamDecoder::new();
        assert_eq!(
            decoder.decode(&[0, 80, 0, 1]),
            Err(StreamError::Header(HeaderError::NotWholeFrames {
                batch_len: 80
            }))
        );
        assert_eq!(decoder.header(), None, "state unchanged by an error");
        // What looks like a second header is just the start of a frame.
        let mut decoder = StreamDecoder::new();
        decoder.decode(&Header::new(1, 1).encode()).unwrap();
        let mut frame = frames(1)[0];
        frame[..4].copy_from_slice(&[0, 80, 0, 1]);
        let Ok(Some((Unit::Batch(batch), 79))) = decoder.decode(&frame) else {
            panic!("a 79-byte batch");
        };
        assert_eq!(batch.bets, [frame]);
    }

    /// The reference captures in `shared/wire`, when this machine has them:
    /// their client-to-server bytes decode to the agency files' bets, in the
    /// batches the reference client cut.
    #[test]
    fn the_reference_captures_decode_to_their_agency_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/wire");
        if !dir.join("agency-1.client-to-server.bin").is_file() {
            eprintln!("skipped: no {}", dir.display());
            return;
        }
        for (agency, per_batch, rows) in [(1u16, 2usize, 5usize), (2, 103, 3)] {
            let bytes =
                std::fs::read(dir.join(format!("agency-{agency}.client-to-server.bin"))).unwrap();
            let csv = std::fs::read_to_string(dir.join(format!("agency-{agency}.csv"))).unwrap();
            let want: Vec<[u8; FRAME_LEN]> = csv
                .lines()
                .map(|line| {
                    let f: Vec<&str> = line.split(',').collect();
                    Bet::new(
                        agency,
                        f[0],
                        f[1],
                        f[2].parse().unwrap(),
                        f[3],
                        f[4].parse().unwrap(),
                    )
                    .unwrap()
                    .view()
                    .encode()
                })
                .collect();
            assert_eq!(want.len(), rows);
            let mut again = Vec::new();
            encode_stream(Header::new(per_batch, agency), &want, &mut again);
            assert_eq!(
                again, bytes,
                "agency {agency}: encode_stream gives the capture's bytes"
            );
            let units = decode_all(&bytes, 1).unwrap();
            let bets: usize = units.iter().map(|u| u.1).sum();
            assert_eq!(bets, rows);
            assert_eq!(units.last().map(|u| u.2), Some(true));
        }
    }
}
