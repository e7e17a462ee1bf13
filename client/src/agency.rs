//! One agency's conversation with the server, sans-IO: it says which bytes to
//! send next and checks every byte that comes back.
//!
//! The stream is the header, then every bet and the end frame, cut into
//! batches of `per_batch` frames (the header rides with the first batch). Up
//! to `window` batches are in flight; acks come back in order, one per bet,
//! then the end ack, then the winners message. With `window` 1 this is the
//! reference client's stop-and-wait.

use std::fmt;

use lottery_protocol::{
    ACK_LEN, Bet, FRAME_LEN, HEADER_LEN, Header, MAX_BETS_PER_BATCH, Reply, Status, WinnersError,
    decode_reply, decode_winners, encode_stream,
};

/// Something the server said that a correct server would not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    WrongAck {
        index: usize,
        expected: (u32, u32),
        got: (u32, u32),
    },
    UnexpectedEndAck {
        index: usize,
    },
    MissingEndAck {
        got: (u32, u32),
    },
    Winners(WinnersError),
    TrailingBytes(usize),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::WrongAck {
                index,
                expected,
                got,
            } => write!(
                f,
                "ack {index} is for document {} number {}, but bet {index} was document {} number {}",
                got.0, got.1, expected.0, expected.1
            ),
            ProtocolError::UnexpectedEndAck { index } => {
                write!(f, "end ack where the ack of bet {index} was due")
            }
            ProtocolError::MissingEndAck { got } => write!(
                f,
                "ack for document {} number {} where the end ack was due",
                got.0, got.1
            ),
            ProtocolError::Winners(e) => write!(f, "bad winners message: {e}"),
            ProtocolError::TrailingBytes(n) => write!(f, "{n} bytes after the winners message"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// What a chunk of input completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Every ack of batch `index` arrived; `rejected` lists the bets (index into
    /// the agency's bets) that the server refused, with the status byte it gave.
    BatchAcked {
        index: usize,
        /// The batch's bets are `first..first + bets` of the agency's bets.
        first: usize,
        bets: usize,
        rejected: Vec<(usize, u8)>,
    },
    /// The winners' documents; the conversation is over.
    Winners(Vec<u32>),
}

#[derive(Debug, Clone, Copy)]
struct BatchPlan {
    /// End of this batch in `wire`.
    wire_end: usize,
    /// Bets in this batch (the end frame excluded).
    bets: usize,
    ends: bool,
}

pub struct Agency {
    /// (document, number) of each bet, what its ack must repeat.
    expected: Vec<(u32, u32)>,
    /// The header and every batch, ready to send.
    wire: Vec<u8>,
    plan: Vec<BatchPlan>,
    window: usize,
    /// Bytes of `wire` handed to the socket.
    sent: usize,
    /// Batches fully acked.
    acked_batches: usize,
    /// Acks received in the current batch; rejected bets in it.
    acks_in_batch: usize,
    rejected: Vec<(usize, u8)>,
    next_bet: usize,
    input: Vec<u8>,
    /// The end ack is in: what follows is the winners message.
    awaiting_winners: bool,
    done: bool,
}

impl Agency {
    /// Plans the stream for `bets` of `agency`, in batches of `per_batch` frames
    /// (clamped to 1..=103), with up to `window` batches in flight.
    pub fn new(agency: u16, bets: &[Bet], per_batch: usize, window: usize) -> Agency {
        let per_batch = per_batch.clamp(1, MAX_BETS_PER_BATCH);
        let frames: Vec<[u8; FRAME_LEN]> = bets.iter().map(|b| b.view().encode()).collect();
        let mut wire = Vec::new();
        encode_stream(Header::new(per_batch, agency), &frames, &mut wire);
        // Batch i is frames [i * per_batch, (i + 1) * per_batch) of the bets
        // and the end frame; the last one is shorter and holds the end frame.
        let total = bets.len() + 1;
        let plan = (0..total.div_ceil(per_batch))
            .map(|i| {
                let end = ((i + 1) * per_batch).min(total);
                let ends = end == total;
                BatchPlan {
                    wire_end: HEADER_LEN + end * FRAME_LEN,
                    bets: end - i * per_batch - usize::from(ends),
                    ends,
                }
            })
            .collect();
        Agency {
            expected: bets.iter().map(|b| (b.document, b.number)).collect(),
            wire,
            plan,
            window: window.max(1),
            sent: 0,
            acked_batches: 0,
            acks_in_batch: 0,
            rejected: Vec::new(),
            next_bet: 0,
            input: Vec::new(),
            awaiting_winners: false,
            done: false,
        }
    }

    /// Bytes handed to the socket so far.
    pub fn sent_bytes(&self) -> usize {
        self.sent
    }

    /// Where batch `index` ends in the stream (compare with [`Agency::sent_bytes`]).
    pub fn batch_end(&self, index: usize) -> usize {
        self.plan[index].wire_end
    }

    /// Batches in the stream.
    pub fn batches(&self) -> usize {
        self.plan.len()
    }

    /// Bytes that may be written now: what is unsent of the batches within the
    /// window. Empty while the window is full or everything is sent.
    pub fn to_send(&self) -> &[u8] {
        let last = (self.acked_batches + self.window).min(self.plan.len());
        let limit = self.plan[..last].last().map_or(0, |p| p.wire_end);
        &self.wire[self.sent.min(limit)..limit]
    }

    /// `n` bytes of [`Agency::to_send`] were written.
    pub fn sent(&mut self, n: usize) {
        self.sent += n;
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Checks bytes from the server and reports what they completed.
    pub fn on_input(&mut self, data: &[u8]) -> Result<Vec<Event>, ProtocolError> {
        self.input.extend_from_slice(data);
        let mut events = Vec::new();
        let mut used = 0;
        while !self.awaiting_winners {
            let Some(record) = self.input[used..].first_chunk::<ACK_LEN>() else {
                break;
            };
            let reply = decode_reply(record);
            used += ACK_LEN;
            if let Some(event) = self.on_reply(reply)? {
                events.push(event);
            }
        }
        if self.awaiting_winners
            && !self.done
            && let Some((winners, len)) =
                decode_winners(&self.input[used..]).map_err(ProtocolError::Winners)?
        {
            used += len;
            self.done = true;
            events.push(Event::Winners(winners));
        }
        self.input.drain(..used);
        if self.done && !self.input.is_empty() {
            return Err(ProtocolError::TrailingBytes(self.input.len()));
        }
        Ok(events)
    }

    fn on_reply(&mut self, reply: Reply) -> Result<Option<Event>, ProtocolError> {
        let batch = self.plan[self.acked_batches];
        if self.acks_in_batch < batch.bets {
            let index = self.next_bet;
            let Reply::Ack(ack) = reply else {
                return Err(ProtocolError::UnexpectedEndAck { index });
            };
            let expected = self.expected[index];
            if (ack.document, ack.number) != expected {
                return Err(ProtocolError::WrongAck {
                    index,
                    expected,
                    got: (ack.document, ack.number),
                });
            }
            if ack.status != Status::Stored as u8 {
                self.rejected.push((index, ack.status));
            }
            self.next_bet += 1;
            self.acks_in_batch += 1;
            if self.acks_in_batch < batch.bets || batch.ends {
                return Ok(None);
            }
        } else {
            match reply {
                Reply::End => self.awaiting_winners = true,
                Reply::Ack(a) => {
                    return Err(ProtocolError::MissingEndAck {
                        got: (a.document, a.number),
                    });
                }
            }
        }
        let index = self.acked_batches;
        self.acked_batches += 1;
        self.acks_in_batch = 0;
        Ok(Some(Event::BatchAcked {
            index,
            first: self.next_bet - batch.bets,
            bets: batch.bets,
            rejected: std::mem::take(&mut self.rejected),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lottery_protocol::{Ack, END_ACK, encode_winners};

    fn bets(n: u32) -> Vec<Bet> {
        (0..n)
            .map(|i| Bet::new(1, "A", "B", 100 + i, "2000-01-01", i).unwrap())
            .collect()
    }

    fn acks(bets: &[Bet], range: std::ops::Range<usize>) -> Vec<u8> {
        bets[range]
            .iter()
            .flat_map(|b| Ack::new(b.document, b.number, Status::Stored).encode())
            .collect()
    }

    #[test]
    fn window_limits_what_is_sent() {
        let b = bets(5);
        let mut agency = Agency::new(1, &b, 2, 2); // batches [b0 b1] [b2 b3] [b4 end]
        assert_eq!(agency.batches(), 3);
        let two_batches = HEADER_LEN + 2 * 2 * FRAME_LEN;
        assert_eq!(agency.to_send().len(), two_batches);
        agency.sent(two_batches);
        assert!(agency.to_send().is_empty(), "window full");
        let events = agency.on_input(&acks(&b, 0..2)).unwrap();
        assert_eq!(
            events,
            [Event::BatchAcked {
                index: 0,
                first: 0,
                bets: 2,
                rejected: vec![]
            }]
        );
        assert_eq!(
            agency.to_send().len(),
            2 * FRAME_LEN,
            "one header per connection"
        );
    }

    #[test]
    fn a_whole_conversation_byte_by_byte() {
        let b = bets(4);
        let mut agency = Agency::new(1, &b, 2, 1); // [b0 b1] [b2 b3] [end]
        let mut reply = acks(&b, 0..4);
        reply.extend(END_ACK);
        encode_winners(&[102], &mut reply).unwrap();
        let mut events = Vec::new();
        for byte in &reply {
            events.extend(agency.on_input(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(
            events,
            [
                Event::BatchAcked {
                    index: 0,
                    first: 0,
                    bets: 2,
                    rejected: vec![]
                },
                Event::BatchAcked {
                    index: 1,
                    first: 2,
                    bets: 2,
                    rejected: vec![]
                },
                Event::BatchAcked {
                    index: 2,
                    first: 4,
                    bets: 0,
                    rejected: vec![]
                },
                Event::Winners(vec![102]),
            ]
        );
        assert!(agency.is_done());
    }

    #[test]
    fn wrong_missing_duplicated_acks_are_caught() {
        let b = bets(3);
        let stored = |i: usize| Ack::new(b[i].document, b[i].number, Status::Stored).encode();
        let table: Vec<(Vec<u8>, ProtocolError)> = vec![
            (
                [stored(0), stored(0)].concat(),
                ProtocolError::WrongAck {
                    index: 1,
                    expected: (101, 1),
                    got: (100, 0),
                },
            ),
            (
                [stored(0), END_ACK].concat(),
                ProtocolError::UnexpectedEndAck { index: 1 },
            ),
            (
                [stored(0), stored(1), stored(2), stored(2)].concat(),
                ProtocolError::MissingEndAck { got: (102, 2) },
            ),
            (
                [
                    &stored(0)[..],
                    &stored(1),
                    &stored(2),
                    &END_ACK,
                    &[0, 1, 0, 0, 0, 1],
                ]
                .concat(),
                ProtocolError::Winners(WinnersError::NotWholeDocuments { byte_len: 1 }),
            ),
            (
                [&stored(0)[..], &stored(1), &stored(2), &END_ACK, &[0, 0, 9]].concat(),
                ProtocolError::TrailingBytes(1),
            ),
        ];
        for (input, want) in table {
            let mut agency = Agency::new(1, &b, 103, 1);
            assert_eq!(agency.on_input(&input), Err(want));
        }
    }

    #[test]
    fn rejections_are_reported_per_batch() {
        let b = bets(2);
        let mut agency = Agency::new(1, &b, 103, 1);
        let mut reply = Ack::new(100, 0, Status::InvalidBirthdate).encode().to_vec();
        reply.extend(acks(&b, 1..2));
        reply.extend(END_ACK);
        assert_eq!(
            agency.on_input(&reply).unwrap(),
            [Event::BatchAcked {
                index: 0,
                first: 0,
                bets: 2,
                rejected: vec![(0, Status::InvalidBirthdate as u8)]
            }]
        );
    }

    /// The reference captures in `shared/wire`, when this machine has them: from
    /// the same agency file and batch size this conversation sends exactly the
    /// reference client's bytes, and reads the reference server's answer,
    /// whole or one byte at a time, to the agency's winners.
    #[test]
    fn the_reference_captures_byte_for_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/wire");
        if !dir.join("agency-1.csv").is_file() {
            eprintln!("skipped: no {}", dir.display());
            return;
        }
        let read = |name: String| std::fs::read(dir.join(name)).unwrap();
        for (id, per_batch, winners) in [(1u16, 2, vec![30904465, 7]), (2, 103, vec![20333444])] {
            let bets = crate::data::load_bets(&dir.join(format!("agency-{id}.csv")), id).unwrap();
            let mut agency = Agency::new(id, &bets, per_batch, 1);
            let mut sent = Vec::new();
            let reply = read(format!("agency-{id}.server-to-client.bin"));
            let mut fed = 0;
            // Stop-and-wait, as the reference: send what the window allows, then
            // feed the server's answer until it frees the window again.
            while !agency.is_done() {
                let out = agency.to_send().to_vec();
                agency.sent(out.len());
                sent.extend(out);
                loop {
                    let events = agency.on_input(&reply[fed..fed + 1]).unwrap();
                    fed += 1;
                    if let Some(Event::Winners(got)) = events.last() {
                        assert_eq!(*got, winners);
                    }
                    if !events.is_empty() {
                        break;
                    }
                }
            }
            assert_eq!(
                sent,
                read(format!("agency-{id}.client-to-server.bin")),
                "agency {id}"
            );
            assert_eq!(fed, reply.len());
            let mut whole = Agency::new(id, &bets, per_batch, 103);
            assert_eq!(
                whole.to_send().len(),
                sent.len(),
                "a wide window sends it all"
            );
            let n = whole.to_send().len();
            whole.sent(n);
            let events = whole.on_input(&reply).unwrap();
            assert_eq!(events.last(), Some(&Event::Winners(winners)));
        }
    }
}
