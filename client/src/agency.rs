//! One agency's conversation with the server, sans-IO: it says which bytes to
//! send next and checks every byte that comes back.
//!
//! The stream is the header, then every bet and the end frame, cut into
//! batches of `per_batch` frames (the header rides with the first batch). Up
//! to `window` batches are in flight; acks come back in order, one per bet,
//! then the end ack, then the winners message. With `window` 1 this is the
//! reference client's stop-and-wait.
//!
//! Time is an input, as in quinn-proto: with a `period` (see
//! [`Agency::with_period`]) a batch may not leave before `period` after the
//! previous one finished leaving. The caller passes `now` to
//! [`Agency::to_send`] and [`Agency::sent`], and asks [`Agency::poll_timeout`]
//! when to look again; the agency never reads a clock.
//!
//! A lost connection is followed by a new one (see [`crate::reconnect`]) on
//! which the conversation starts over: [`Agency::restart`] sends the header
//! and the whole stream again and expects every ack again, checked as before.
//! It remembers how many batches an earlier connection had seen acked, and
//! marks their acks [`Event::BatchAcked`]`{ again: true, .. }` so that they
//! are not reported twice.

use std::fmt;
use std::time::{Duration, Instant};

use lottery_protocol::{
    ACK_LEN, Bet, FRAME_LEN, HEADER_LEN, Header, MAX_BETS_PER_BATCH, MAX_WINNERS, Reply, Status,
    WinnersError, decode_reply, decode_winners, encode_stream,
};

// The error text below spells the limit out; keep it in step with the protocol.
const _: () = assert!(MAX_WINNERS == 16_383);

/// Something the server said or did that ends the conversation without its
/// winners.
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
    /// The server closed the connection after the end ack, with no byte of a
    /// winners message: what our server does for an agency with more winners
    /// than one message can tell, and on shutdown before the draw.
    NoWinnersAfterEndAck,
    /// The server closed the connection after `bytes` bytes of the winners message.
    ClosedInWinners {
        bytes: usize,
    },
    /// The server closed the connection before the end ack; `acked` of
    /// `batches` batches had all their acks.
    ClosedEarly {
        acked: usize,
        batches: usize,
    },
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
                "ack {} is for document {} number {}, but bet {} (counted from 1, as the server counts) was document {} number {}",
                index + 1,
                got.0,
                got.1,
                index + 1,
                expected.0,
                expected.1
            ),
            ProtocolError::UnexpectedEndAck { index } => {
                write!(f, "end ack where the ack of bet {} was due", index + 1)
            }
            ProtocolError::MissingEndAck { got } => write!(
                f,
                "ack for document {} number {} where the end ack was due",
                got.0, got.1
            ),
            ProtocolError::Winners(e) => write!(f, "bad winners message: {e}"),
            ProtocolError::TrailingBytes(n) => write!(f, "{n} bytes after the winners message"),
            ProtocolError::NoWinnersAfterEndAck => write!(
                f,
                "the server sent no winners after the end ack and closed the connection: \
                 an agency with more than 16,383 winners cannot be told (the winners \
                 message's length is a u16 of bytes), and a server that shuts down before \
                 the draw closes without them too (see the server's log)"
            ),
            ProtocolError::ClosedInWinners { bytes } => write!(
                f,
                "the server closed the connection {bytes} bytes into the winners message"
            ),
            ProtocolError::ClosedEarly { acked, batches } => write!(
                f,
                "the server closed the connection before the conversation ended \
                 ({acked} of {batches} batches acked)"
            ),
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
        /// An earlier connection had this batch acked already: its acks were
        /// checked again, and it was reported then.
        again: bool,
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

/// One agency's conversation: what to send when, and the check of every reply.
pub struct Agency {
    /// (document, number) of each bet, what its ack must repeat.
    expected: Vec<(u32, u32)>,
    /// The header and every batch, ready to send.
    wire: Vec<u8>,
    plan: Vec<BatchPlan>,
    window: usize,
    /// Least time from one batch's last byte leaving to the next batch's first.
    period: Duration,
    /// Bytes of `wire` handed to the socket.
    sent: usize,
    /// Batches whose last byte was handed to the socket.
    batches_sent: usize,
    /// When the last of those finished leaving.
    last_batch_sent_at: Option<Instant>,
    /// Batches fully acked on this connection.
    acked_batches: usize,
    /// The most batches an earlier connection had fully acked.
    acked_before: usize,
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
    /// (clamped to 1..=103), with up to `window` batches in flight (at least 1)
    /// and no pause between batches.
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
            period: Duration::ZERO,
            sent: 0,
            batches_sent: 0,
            last_batch_sent_at: None,
            acked_batches: 0,
            acked_before: 0,
            acks_in_batch: 0,
            rejected: Vec::new(),
            next_bet: 0,
            input: Vec::new(),
            awaiting_winners: false,
            done: false,
        }
    }

    /// Paces the batches: batch k+1 leaves no sooner than `period` after batch
    /// k's last byte was handed to the socket (`loop.period`; zero: no pause).
    /// The window still applies on top of it.
    pub fn with_period(mut self, period: Duration) -> Agency {
        self.period = period;
        self
    }

    /// Starts the conversation over for a new connection, after the previous
    /// one was lost: the header and every batch are sent again (window and
    /// period as configured, the first batch at once) and every ack is
    /// expected again. What the lost connection had acked is remembered, so
    /// those batches' acks come back as [`Event::BatchAcked`] with `again`.
    pub fn restart(&mut self) {
        self.acked_before = self.acked_ever();
        self.sent = 0;
        self.batches_sent = 0;
        self.last_batch_sent_at = None;
        self.acked_batches = 0;
        self.acks_in_batch = 0;
        self.rejected.clear();
        self.next_bet = 0;
        self.input.clear();
        self.awaiting_winners = false;
        self.done = false;
    }

    /// Where this connection's stream of replies stands: bets acked, and
    /// whether the end ack came. Two connections the server closed at the
    /// same place, with no progress between, were refused there.
    pub fn position(&self) -> (usize, bool) {
        (self.next_bet, self.awaiting_winners)
    }

    /// The most batches any connection of this conversation had fully acked:
    /// it grows when something is acknowledged for the first time (progress).
    pub fn acked_ever(&self) -> usize {
        self.acked_batches.max(self.acked_before)
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

    /// Bytes that may be written at `now`: what is unsent of the batches within
    /// the window, and with a period only the batch whose turn has come. Empty
    /// while the window is full, the next batch's pause is not over (see
    /// [`Agency::poll_timeout`]), or everything is sent.
    pub fn to_send(&self, now: Instant) -> &[u8] {
        let in_window = (self.acked_batches + self.window).min(self.plan.len());
        if self.batches_sent >= in_window {
            return &[];
        }
        let limit = if self.period.is_zero() {
            self.plan[in_window - 1].wire_end
        } else {
            // A batch already begun is finished whatever the clock says: the
            // pause is between batches, not inside one.
            if !self.batch_begun() && self.next_batch_at().is_some_and(|at| now < at) {
                return &[];
            }
            self.plan[self.batches_sent].wire_end
        };
        &self.wire[self.sent..limit]
    }

    /// When [`Agency::to_send`] will offer the next batch, if only the pause
    /// stands in the way (an instant already past if it offers it now);
    /// `None` when the agency waits on the socket instead (a batch half
    /// written, a full window, acks, winners) or has no period.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let in_window = (self.acked_batches + self.window).min(self.plan.len());
        if self.period.is_zero() || self.batches_sent >= in_window || self.batch_begun() {
            return None;
        }
        self.next_batch_at()
    }

    /// `n` bytes of [`Agency::to_send`] were handed to the socket at `now`.
    pub fn sent(&mut self, n: usize, now: Instant) {
        self.sent += n;
        while self.batches_sent < self.plan.len()
            && self.sent >= self.plan[self.batches_sent].wire_end
        {
            self.batches_sent += 1;
            self.last_batch_sent_at = Some(now);
        }
    }

    /// Some bytes of the next batch are out already.
    fn batch_begun(&self) -> bool {
        let start = match self.batches_sent {
            0 => 0,
            k => self.plan[k - 1].wire_end,
        };
        self.sent > start
    }

    /// When the pause after the last batch sent is over (`None`: no batch yet).
    fn next_batch_at(&self) -> Option<Instant> {
        self.last_batch_sent_at.map(|at| at + self.period)
    }

    /// The winners arrived, all checked: the conversation is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The server closed the connection before [`Agency::is_done`]: what that
    /// means at this point of the conversation, for the error.
    pub fn closed_early(&self) -> ProtocolError {
        if !self.awaiting_winners {
            ProtocolError::ClosedEarly {
                acked: self.acked_batches,
                batches: self.plan.len(),
            }
        } else if self.input.is_empty() {
            ProtocolError::NoWinnersAfterEndAck
        } else {
            ProtocolError::ClosedInWinners {
                bytes: self.input.len(),
            }
        }
    }

    /// Checks bytes from the server and reports what they completed; an error
    /// says what was wrong (the conversation cannot go on after one).
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
            again: index < self.acked_before,
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
        let now = Instant::now();
        let mut agency = Agency::new(1, &b, 2, 2); // batches [b0 b1] [b2 b3] [b4 end]
        assert_eq!(agency.batches(), 3);
        let two_batches = HEADER_LEN + 2 * 2 * FRAME_LEN;
        assert_eq!(
            agency.to_send(now).len(),
            two_batches,
            "no period: no pause"
        );
        agency.sent(two_batches, now);
        assert!(agency.to_send(now).is_empty(), "window full");
        assert_eq!(agency.poll_timeout(), None, "waiting on acks, not on time");
        let events = agency.on_input(&acks(&b, 0..2)).unwrap();
        assert_eq!(
            events,
            [Event::BatchAcked {
                index: 0,
                first: 0,
                bets: 2,
                rejected: vec![],
                again: false
            }]
        );
        assert_eq!(
            agency.to_send(now).len(),
            2 * FRAME_LEN,
            "one header per connection"
        );
    }

    /// `loop.period` on a fake clock: each batch waits for the period after the
    /// previous one finished leaving, a batch begun is finished at once, and
    /// the window still holds batches back whatever the clock says.
    #[test]
    fn the_period_spaces_batches_and_the_window_still_applies() {
        let b = bets(4);
        let period = Duration::from_millis(150);
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        // [b0 b1] [b2 b3] [end], window 2.
        let mut agency = Agency::new(1, &b, 2, 2).with_period(period);
        let first = HEADER_LEN + 2 * FRAME_LEN;
        assert_eq!(agency.to_send(t0).len(), first, "one batch, not the window");
        assert_eq!(
            agency.poll_timeout(),
            None,
            "the first batch needs no pause"
        );
        agency.sent(first, t0);

        assert!(agency.to_send(t0).is_empty());
        assert_eq!(agency.poll_timeout(), Some(t0 + period));
        assert!(agency.to_send(t0 + ms(149)).is_empty());
        assert_eq!(agency.to_send(t0 + period).len(), 2 * FRAME_LEN);

        // Half of batch 2 leaves at t0 + 150 ms; the rest later, with no pause.
        agency.sent(FRAME_LEN, t0 + period);
        assert_eq!(
            agency.poll_timeout(),
            None,
            "mid-batch: waiting on the socket"
        );
        assert_eq!(agency.to_send(t0 + period).len(), FRAME_LEN);
        agency.sent(FRAME_LEN, t0 + ms(200));

        // The pause counts from batch 2's last byte, and the window (2 batches,
        // none acked) is full anyway: time alone frees nothing.
        assert!(agency.to_send(t0 + ms(1000)).is_empty(), "window full");
        assert_eq!(agency.poll_timeout(), None);

        // Batch 1's acks free the window before batch 3's pause is over.
        agency.on_input(&acks(&b, 0..2)).unwrap();
        assert_eq!(agency.poll_timeout(), Some(t0 + ms(350)));
        assert!(agency.to_send(t0 + ms(349)).is_empty());
        assert_eq!(
            agency.to_send(t0 + ms(350)).len(),
            FRAME_LEN,
            "the end frame"
        );
        agency.sent(FRAME_LEN, t0 + ms(350));
        assert!(agency.to_send(t0 + ms(10_000)).is_empty(), "all sent");
        assert_eq!(agency.poll_timeout(), None);
    }

    /// Stop-and-wait with a period: the next batch waits for both its
    /// predecessor's acks and the pause, whichever comes last.
    #[test]
    fn stop_and_wait_with_a_period_waits_for_the_ack_and_the_pause() {
        let b = bets(3);
        let period = Duration::from_secs(1);
        let t0 = Instant::now();
        // [b0] [b1] [b2] [end], stop-and-wait.
        let mut agency = Agency::new(1, &b, 1, 1).with_period(period);
        let n = agency.to_send(t0).len();
        agency.sent(n, t0);
        agency.on_input(&acks(&b, 0..1)).unwrap(); // acked at once
        assert!(
            agency.to_send(t0).is_empty(),
            "the ack does not skip the pause"
        );
        assert_eq!(agency.poll_timeout(), Some(t0 + period));
        let t1 = t0 + period;
        agency.sent(agency.to_send(t1).len(), t1);
        // Acked long after the period: the next batch may leave at once.
        let late = t1 + 3 * period;
        assert_eq!(agency.poll_timeout(), None, "waiting on the ack");
        agency.on_input(&acks(&b, 1..2)).unwrap();
        assert_eq!(agency.to_send(late).len(), FRAME_LEN);
    }

    /// What a close before the winners means depends on where it comes.
    #[test]
    fn an_early_close_says_where_it_came() {
        let b = bets(3);
        let mut agency = Agency::new(1, &b, 2, 2); // [b0 b1] [b2 end]
        assert_eq!(
            agency.closed_early(),
            ProtocolError::ClosedEarly {
                acked: 0,
                batches: 2
            }
        );
        let mut reply = acks(&b, 0..3);
        reply.extend(END_ACK);
        agency.on_input(&reply).unwrap();
        let error = agency.closed_early();
        assert_eq!(error, ProtocolError::NoWinnersAfterEndAck);
        let text = error.to_string();
        for needle in [
            "sent no winners after the end ack",
            "more than 16,383 winners cannot be told",
            "see the server's log",
        ] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        agency.on_input(&[0, 8, 0]).unwrap();
        assert_eq!(
            agency.closed_early(),
            ProtocolError::ClosedInWinners { bytes: 3 }
        );
    }

    /// After a lost connection the conversation starts over: the same bytes,
    /// header first, and every ack checked again; the batches an earlier
    /// connection saw acked come back marked `again`, the others not.
    #[test]
    fn a_restarted_conversation_resends_everything_and_checks_every_ack_again() {
        let b = bets(5);
        let t0 = Instant::now();
        // [b0 b1] [b2 b3] [b4 end], paced: a restart sends its first batch at once.
        let mut agency = Agency::new(1, &b, 2, 8).with_period(Duration::from_secs(1));
        let first = agency.to_send(t0).to_vec();
        agency.sent(first.len(), t0);
        let mut reply = acks(&b, 0..2);
        reply.extend(&acks(&b, 2..3)[..4]); // part of batch 2's first ack, then the loss
        let events = agency.on_input(&reply).unwrap();
        assert!(matches!(
            events[..],
            [Event::BatchAcked {
                index: 0,
                again: false,
                ..
            }]
        ));
        assert_eq!(agency.acked_ever(), 1);

        agency.restart();
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(
            agency.to_send(t1),
            first,
            "header and batch 1 again, at once"
        );
        assert_eq!(agency.acked_ever(), 1, "a restart loses nothing");
        let n = agency.to_send(t1).len();
        agency.sent(n, t1);
        for k in 1..3 {
            let at = t1 + k * Duration::from_secs(1);
            let n = agency.to_send(at).len();
            assert!(n > 0, "batch {k} after its period");
            agency.sent(n, at);
        }
        let mut reply = acks(&b, 0..5);
        reply.extend(END_ACK);
        encode_winners(&[102], &mut reply).unwrap();
        let events = agency.on_input(&reply).unwrap();
        let marks: Vec<(usize, bool)> = events
            .iter()
            .filter_map(|e| match e {
                Event::BatchAcked { index, again, .. } => Some((*index, *again)),
                Event::Winners(_) => None,
            })
            .collect();
        assert_eq!(marks, [(0, true), (1, false), (2, false)]);
        assert_eq!(events.last(), Some(&Event::Winners(vec![102])));
        assert_eq!(agency.acked_ever(), 3);
        assert!(agency.is_done());
    }

    /// A resent ack is checked as strictly as the first: a wrong one on the
    /// new connection is a protocol error, even for a batch acked before.
    #[test]
    fn a_wrong_ack_after_a_restart_is_caught() {
        let b = bets(3);
        let now = Instant::now();
        let mut agency = Agency::new(1, &b, 2, 2); // [b0 b1] [b2 end]
        let n = agency.to_send(now).len();
        agency.sent(n, now);
        let mut reply = acks(&b, 0..3);
        reply.extend(END_ACK);
        agency.on_input(&reply).unwrap();
        // The server closed after the end ack: the same explanation as ever.
        assert_eq!(agency.closed_early(), ProtocolError::NoWinnersAfterEndAck);

        agency.restart();
        assert_eq!(
            agency.closed_early(),
            ProtocolError::ClosedEarly {
                acked: 0,
                batches: 2
            },
            "a new connection is at its start again"
        );
        let n = agency.to_send(now).len();
        agency.sent(n, now);
        let wrong = [
            &Ack::new(b[0].document, b[0].number, Status::Stored).encode()[..],
            &Ack::new(b[0].document, b[0].number, Status::Stored).encode(),
        ]
        .concat();
        assert_eq!(
            agency.on_input(&wrong),
            Err(ProtocolError::WrongAck {
                index: 1,
                expected: (101, 1),
                got: (100, 0),
            })
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
                    rejected: vec![],
                    again: false
                },
                Event::BatchAcked {
                    index: 1,
                    first: 2,
                    bets: 2,
                    rejected: vec![],
                    again: false
                },
                Event::BatchAcked {
                    index: 2,
                    first: 4,
                    bets: 0,
                    rejected: vec![],
                    again: false
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
                rejected: vec![(0, Status::InvalidBirthdate as u8)],
                again: false
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
                let now = Instant::now();
                let out = agency.to_send(now).to_vec();
                agency.sent(out.len(), now);
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
                whole.to_send(Instant::now()).len(),
                sent.len(),
                "a wide window sends it all"
            );
            let n = whole.to_send(Instant::now()).len();
            whole.sent(n, Instant::now());
            let events = whole.on_input(&reply).unwrap();
            assert_eq!(events.last(), Some(&Event::Winners(winners)));
        }
    }
}
