//! One connection's state machine, sans-IO: bytes in, output bytes and a
//! verdict out. The poll loop owns the socket; this owns the progress.
//!
//! ```text
//! Fresh --first byte < 0x20--> Agency --batch with end frame--> Ended --winners--> (close)
//!   \--first byte >= 0x20--> Echo --line--> (close)
//! ```
//!
//! Input is kept only while the header, a batch or an echo line is partial, so
//! what a connection holds is bounded by one batch whatever the peer sends.
//! Acks of a complete batch are *held* until the loop's next commit made them
//! true, then *released* into the output. The winners wait until the end ack
//! has been written for at least the winners delay (see [`Session::poll_timeout`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use lottery_protocol::{
    ACK_LEN, Ack, Batch, END_ACK, MAX_BATCH_LEN, MAX_BETS_PER_BATCH, Status, StreamDecoder,
    StreamError, Unit, decode_bet, encode_winners, is_lottery_stream,
};

use tp0_log::field;

pub use crate::app::{App, Sessions};
use crate::lottery::{ClaimError, bet_key};
use crate::storage::{Durable, StorageError};

/// The longest echo line accepted, newline included.
pub const MAX_ECHO_LINE: usize = 1024;
/// A session stops taking input while this much output waits for its peer.
pub const OUTPUT_HIGH_WATER: usize = 64 * 1024;
/// Capacity an emptied output or held-acks buffer may keep: one full batch's
/// acks and the end ack. A buffer that grew past it (a pipelining peer, a
/// reader that fell behind) is freed once drained, so an idle connection's
/// memory stays small whatever it once had to hold (Redis'
/// `clientsCronResizeQueryBuffer` idea).
pub const KEEP_CAPACITY: usize = (MAX_BETS_PER_BATCH + 1) * ACK_LEN;

/// Why a session must close. Only `Storage` concerns more than its peer.
#[derive(Debug)]
pub enum SessionError {
    Stream(StreamError),
    Claim(ClaimError),
    EchoLineTooLong,
    /// The peer closed with part of a unit (`"header"` or `"batch"`) unread.
    ClosedMidUnit {
        unit: &'static str,
        pending: usize,
    },
    /// The peer closed between batches, before its end frame.
    ClosedBeforeEnd {
        agency: u16,
        bets: u64,
    },
    /// A reconnecting agency resent a bet that is not the one stored at its
    /// place in the stream; nothing of the batch is stored.
    ResentMismatch {
        agency: u16,
        /// 1-based position among the agency's stored bets.
        position: usize,
        stored: (u32, u32),
        sent: (u32, u32),
    },
    /// An agency that had finished sent more bets than it finished with.
    AfterFinish {
        agency: u16,
        finished_with: u64,
        sent: usize,
    },
    /// A connection ended its stream after resending fewer bets than its
    /// agency has stored: its end would cover bets it never sent.
    EndedShort {
        agency: u16,
        stored: usize,
        sent: usize,
    },
    Storage(StorageError),
}

impl SessionError {
    /// The `action:` of the log line reporting it.
    pub fn action(&self) -> &'static str {
        match self {
            SessionError::EchoLineTooLong => "receive_message",
            SessionError::Storage(_) => "store_bets",
            _ => "receive_batch",
        }
    }

    /// A storage failure stops the server; anything else closes one connection.
    pub fn is_fatal(&self) -> bool {
        matches!(self, SessionError::Storage(_))
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Stream(e) => write!(f, "{e}"),
            SessionError::Claim(e) => write!(f, "agency refused: {e}"),
            SessionError::EchoLineTooLong => {
                write!(f, "echo line longer than {MAX_ECHO_LINE} bytes")
            }
            SessionError::ClosedMidUnit { unit, pending } => write!(
                f,
                "peer closed with a partial {unit} of {pending} bytes; nothing of it is stored"
            ),
            SessionError::ClosedBeforeEnd { agency, bets } => write!(
                f,
                "agency {agency} closed before its end frame, after {bets} bets on this connection; every complete batch is stored"
            ),
            SessionError::ResentMismatch {
                agency,
                position,
                stored,
                sent,
            } => write!(
                f,
                "agency {agency} sent bet {position} as document {} number {}, but the stored bet {position} is document {} number {}; nothing of this batch is stored",
                sent.0, sent.1, stored.0, stored.1
            ),
            SessionError::AfterFinish {
                agency,
                finished_with,
                sent,
            } => write!(
                f,
                "agency {agency} finished with {finished_with} bets, and this connection sent bet {sent}; nothing of this batch is stored"
            ),
            SessionError::EndedShort {
                agency,
                stored,
                sent,
            } => write!(
                f,
                "agency {agency} has {stored} bets stored, and this connection ended after {sent}; its end is not taken"
            ),
            SessionError::Storage(e) => write!(f, "storage failed: {e}"),
        }
    }
}

impl From<StreamError> for SessionError {
    fn from(e: StreamError) -> SessionError {
        SessionError::Stream(e)
    }
}

impl From<ClaimError> for SessionError {
    fn from(e: ClaimError) -> SessionError {
        SessionError::Claim(e)
    }
}

/// Why a connection that made no progress for the stall timeout is closed.
/// The loop asks [`Session::stalled`] a few times per timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// A unit (the header, a batch, an echo line) began this long ago and is
    /// still incomplete; nothing of it is stored.
    Partial {
        unit: &'static str,
        bytes: usize,
        since: Duration,
    },
    /// An agency idle between complete batches, before its end frame.
    Idle { bets: u64, since: Duration },
    /// Connected and never sent a byte.
    Silent { since: Duration },
    /// Replies wait and the peer has read none of them.
    NotReading { bytes: usize, since: Duration },
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ago =
            |d: &Duration| humantime::format_duration(Duration::from_millis(d.as_millis() as u64));
        match self {
            Stall::Partial { unit, bytes, since } => write!(
                f,
                "{} {unit} begun {} ago is still incomplete at {bytes} bytes; nothing of it is stored",
                if unit.starts_with('e') { "an" } else { "a" },
                ago(since)
            ),
            Stall::Idle { bets, since } => write!(
                f,
                "idle between batches for {} after {bets} bets on this connection; every complete batch is stored",
                ago(since)
            ),
            Stall::Silent { since } => write!(f, "sent nothing for {}", ago(since)),
            Stall::NotReading { bytes, since } => write!(
                f,
                "read none of {bytes} bytes of replies for {}",
                ago(since)
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing read yet: the first byte decides between a lottery stream and echo.
    Fresh,
    Echo,
    /// Receiving the header, then batches; the header binds the connection to
    /// its agency.
    Agency,
    /// The end batch is in: waiting for the draw, then for the winners to
    /// leave. The peer may have shut down its write side meanwhile.
    Ended,
    /// Done: output drains, input is ignored, then the loop closes.
    Closing,
}

/// Where the end ack is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndAck {
    NotYet,
    /// Held or in the output, not yet all written.
    Queued,
    /// Its last byte went to the socket at this time.
    Written(Instant),
}

pub struct Session {
    key: usize,
    peer: SocketAddr,
    mode: Mode,
    /// Splits the lottery stream into its header and batches.
    stream: StreamDecoder,
    /// Bound by the header; kept until the connection is gone.
    agency: Option<u16>,
    /// The partial header, batch or echo line, never a complete one.
    input: Vec<u8>,
    /// Acks of complete batches waiting for the commit that makes them true.
    held: Vec<u8>,
    /// The held acks end with the end ack.
    held_end: bool,
    output: Vec<u8>,
    written: usize,
    end_ack: EndAck,
    /// The winners message and its count, waiting for `winners_delay` after
    /// the end ack.
    winners: Option<(Vec<u8>, usize)>,
    winners_delay: Duration,
    /// When the first byte of the unit now partial in `input` arrived.
    unit_started: Option<Instant>,
    /// When bytes last moved either way.
    last_activity: Instant,
    /// Bets stored from this connection.
    bets: u64,
    /// How far into its agency's stored bets this connection's stream is:
    /// below the stored count while a reconnection resends what is stored.
    matched: usize,
    /// The winners message is in the output, not yet all written.
    winners_pending: bool,
    /// The winners message went out in full (reported once).
    winners_written: bool,
    /// Bytes after the end frame were reported; later ones are dropped quietly.
    warned_after_end: bool,
}

impl Session {
    /// A connection from `peer`, slab key `key`, accepted at `now`. Its
    /// winners leave no sooner than `winners_delay` after its end ack was
    /// written.
    pub fn new(key: usize, peer: SocketAddr, now: Instant, winners_delay: Duration) -> Session {
        Session {
            key,
            peer,
            mode: Mode::Fresh,
            stream: StreamDecoder::new(),
            agency: None,
            input: Vec::new(),
            held: Vec::new(),
            held_end: false,
            output: Vec::new(),
            written: 0,
            end_ack: EndAck::NotYet,
            winners: None,
            winners_delay,
            unit_started: None,
            last_activity: now,
            bets: 0,
            matched: 0,
            winners_pending: false,
            winners_written: false,
            warned_after_end: false,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The agency this connection speaks for, once its header named one.
    pub fn agency(&self) -> Option<u16> {
        self.agency
    }

    /// Consumes bytes read from the peer at `now`: the header binds the
    /// agency, every complete batch is stored (buffered, not yet synced) and
    /// its acks held; a partial tail is kept. An `Err` means: stop reading,
    /// write what is committed, then close (and stop the server if fatal).
    pub fn on_input<W: Durable>(
        &mut self,
        data: &[u8],
        now: Instant,
        app: &mut App<W>,
    ) -> Result<(), SessionError> {
        self.last_activity = now;
        let had_partial = !self.input.is_empty();
        let (used, result) = if had_partial {
            let mut input = std::mem::take(&mut self.input);
            let before = input.len();
            input.extend_from_slice(data);
            let (used, result) = self.consume(&input, app);
            input.drain(..used);
            self.input = input;
            (used.saturating_sub(before), result)
        } else {
            // The common case: parse straight from the read buffer, keep only the tail.
            let (used, result) = self.consume(data, app);
            self.input.extend_from_slice(&data[used..]);
            (used, result)
        };
        if result.is_err() {
            self.close_after_output();
        }
        // The unit clock runs from the first byte of the unit now partial: it
        // restarts only when a unit completed in between.
        let completed = used > 0 || !had_partial;
        self.unit_started = match (self.input.is_empty(), completed) {
            (true, _) => None,
            (false, true) => Some(now),
            (false, false) => self.unit_started.or(Some(now)),
        };
        bound_capacity(&mut self.input, MAX_BATCH_LEN);
        result
    }

    /// The peer shut down its write side. After the end frame that is normal:
    /// the connection stays for the winners. Before it, the peer is gone: a
    /// partial unit is an error (nothing of it was stored), and so is an
    /// agency leaving between batches; a partial echo line is echoed as it is.
    pub fn on_eof(&mut self) -> Result<(), SessionError> {
        match self.mode {
            Mode::Echo if !self.input.is_empty() => {
                let line = std::mem::take(&mut self.input);
                self.reply_echo(&line);
                Ok(())
            }
            Mode::Agency if !self.input.is_empty() => {
                let error = SessionError::ClosedMidUnit {
                    unit: self.unit(),
                    pending: self.input.len(),
                };
                self.close_after_output();
                Err(error)
            }
            Mode::Agency => {
                self.close_after_output();
                match self.agency {
                    Some(agency) => Err(SessionError::ClosedBeforeEnd {
                        agency,
                        bets: self.bets,
                    }),
                    None => Ok(()),
                }
            }
            Mode::Ended => Ok(()),
            Mode::Fresh | Mode::Echo | Mode::Closing => {
                self.close_after_output();
                Ok(())
            }
        }
    }

    /// Stops taking input: what is held or written is still delivered (acks of
    /// committed batches are never swallowed), then the loop closes.
    pub fn close_after_output(&mut self) {
        self.mode = Mode::Closing;
        self.input = Vec::new();
        self.unit_started = None;
        self.winners = None;
    }

    /// What the partial input is the start of.
    fn unit(&self) -> &'static str {
        match self.mode {
            Mode::Echo => "echo line",
            Mode::Agency if self.stream.header().is_none() => "header",
            _ => "batch",
        }
    }

    /// Has this connection made no progress for `limit` at `now`? A unit must
    /// complete within `limit` of its first byte however its bytes trickle
    /// in; an agency waiting for the draw (or for its winners' delay) is never
    /// stalled.
    pub fn stalled(&self, now: Instant, limit: Duration) -> Option<Stall> {
        let idle = now.saturating_duration_since(self.last_activity);
        if !self.pending_output().is_empty() {
            return (idle > limit).then_some(Stall::NotReading {
                bytes: self.pending_output().len(),
                since: idle,
            });
        }
        if let Some(started) = self.unit_started {
            let since = now.saturating_duration_since(started);
            return (since > limit).then_some(Stall::Partial {
                unit: self.unit(),
                bytes: self.input.len(),
                since,
            });
        }
        if idle <= limit || self.has_held() {
            return None;
        }
        match self.mode {
            Mode::Fresh => Some(Stall::Silent { since: idle }),
            Mode::Agency if self.agency.is_none() => Some(Stall::Silent { since: idle }),
            Mode::Agency => Some(Stall::Idle {
                bets: self.bets,
                since: idle,
            }),
            Mode::Echo => Some(Stall::Silent { since: idle }),
            Mode::Ended | Mode::Closing => None,
        }
    }

    /// Consumes complete units from the start of `buf`; returns the bytes
    /// used, and the error that stopped it if one did (what came before the
    /// error is stored and its acks held).
    fn consume<W: Durable>(
        &mut self,
        buf: &[u8],
        app: &mut App<W>,
    ) -> (usize, Result<(), SessionError>) {
        let mut used = 0;
        while let Some(&first) = buf.get(used) {
            let rest = &buf[used..];
            match self.mode {
                Mode::Fresh => {
                    self.mode = if is_lottery_stream(first) {
                        Mode::Agency
                    } else {
                        Mode::Echo
                    };
                }
                Mode::Echo => {
                    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() >= MAX_ECHO_LINE {
                            return (used, Err(SessionError::EchoLineTooLong));
                        }
                        break;
                    };
                    if newline >= MAX_ECHO_LINE {
                        return (used, Err(SessionError::EchoLineTooLong));
                    }
                    self.reply_echo(&rest[..=newline]);
                    used = buf.len(); // the check is one line; what follows is ignored
                }
                Mode::Agency => match self.stream.decode(rest) {
                    Ok(Some((unit, n))) => {
                        if let Err(e) = self.on_unit(unit, app) {
                            return (used, Err(e));
                        }
                        used += n;
                    }
                    Ok(None) => break,
                    Err(e) => return (used, Err(e.into())),
                },
                Mode::Ended => {
                    // Bytes after the end frame cannot be bets; they do not cost
                    // the agency its winners. Said once, then dropped.
                    if !self.warned_after_end {
                        self.warned_after_end = true;
                        warn!(
                            "action: receive_batch | result: fail | ip: {} | agencia: {} | error: {}; ignored",
                            self.peer.ip(),
                            self.agency.unwrap_or(0),
                            StreamError::DataAfterEnd { bytes: rest.len() }
                        );
                    }
                    used = buf.len();
                }
                Mode::Closing => used = buf.len(),
            }
        }
        (used, Ok(()))
    }

    fn on_unit<W: Durable>(
        &mut self,
        unit: Unit<'_>,
        app: &mut App<W>,
    ) -> Result<(), SessionError> {
        match unit {
            // The agency is claimed as soon as the header is in, so a refused
            // peer is not waited for until its first batch.
            Unit::Header(header) => {
                if let Some(old) = app.lottery.claim(header.agency, self.key)? {
                    app.evicted.push((old, header.agency));
                }
                self.agency = Some(header.agency);
                Ok(())
            }
            Unit::Batch(batch) => self.on_batch(batch, app),
        }
    }

    /// Stores one complete batch and holds its acks. A bet that cannot be
    /// stored is acked with its status instead. A reconnected agency's bets
    /// that are already stored (its stream position below its stored count)
    /// are checked against them and acked without being stored again; the
    /// whole batch is checked before anything of it is stored.
    fn on_batch<W: Durable>(
        &mut self,
        batch: Batch<'_>,
        app: &mut App<W>,
    ) -> Result<(), SessionError> {
        let agency = self.agency.expect("the header came first");
        let stored = app.lottery.stored_bets(agency).len();
        let finished_with = app.lottery.finished_with(agency);
        if self.matched < stored || finished_with.is_some() {
            self.check_resent(agency, batch, app)?;
        }
        let bets = batch.bets;
        self.held.reserve(ACK_LEN * (bets.len() + 1));
        let mut rejected = 0;
        let mut resent = 0;
        let mut first_reason = None;
        for frame in bets {
            let ack = match decode_bet(frame, agency) {
                Ok(bet) if self.matched < stored => {
                    // Checked above: the stored bet at this place.
                    self.matched += 1;
                    resent += 1;
                    Ack::new(bet.document, bet.number, Status::Stored)
                }
                Ok(bet) => {
                    app.store.append(&bet).map_err(SessionError::Storage)?;
                    app.lottery.record(&bet);
                    self.matched += 1;
                    self.bets += 1;
                    debug!(
                        "action: apuesta_almacenada | result: success | dni: {} | numero: {}",
                        bet.document, bet.number
                    );
                    Ack::new(bet.document, bet.number, Status::Stored)
                }
                Err(rejection) => {
                    rejected += 1;
                    first_reason.get_or_insert(rejection.reason);
                    Ack::new(
                        rejection.document,
                        rejection.number,
                        rejection.reason.into(),
                    )
                }
            };
            self.held.extend_from_slice(&ack.encode());
        }
        let resent_note = if resent > 0 {
            format!(" | reenviadas: {resent}")
        } else {
            String::new()
        };
        match first_reason {
            None => info!(
                "action: apuesta_recibida | result: success | cantidad: {} | agencia: {agency}{resent_note}",
                bets.len()
            ),
            Some(reason) => warn!(
                "action: apuesta_recibida | result: fail | cantidad: {} | agencia: {agency}{resent_note} | rechazadas: {rejected} | error: {reason}",
                bets.len()
            ),
        }
        if batch.ends {
            self.held.extend_from_slice(&END_ACK);
            self.held_end = true;
            self.end_ack = EndAck::Queued;
            self.mode = Mode::Ended;
        }
        Ok(())
    }

    /// The exactly-once check of a batch from a reconnected or finished
    /// agency: every valid bet at a stored place must be the stored one
    /// (document and number, in order); a finished agency may not send more
    /// bets than it finished with; and no connection may end its stream
    /// before it has resent every stored bet.
    fn check_resent<W: Durable>(
        &self,
        agency: u16,
        batch: Batch<'_>,
        app: &App<W>,
    ) -> Result<(), SessionError> {
        let stored = app.lottery.stored_bets(agency);
        let finished_with = app.lottery.finished_with(agency);
        let mut at = self.matched;
        for frame in batch.bets {
            let Ok(bet) = decode_bet(frame, agency) else {
                continue; // rejected again, as the first time: not a stored bet
            };
            match stored.get(at) {
                Some(&key) if key == bet_key(bet.document, bet.number) => {}
                Some(&key) => {
                    return Err(SessionError::ResentMismatch {
                        agency,
                        position: at + 1,
                        stored: ((key >> 32) as u32, key as u32),
                        sent: (bet.document, bet.number),
                    });
                }
                None if finished_with.is_some() => {
                    return Err(SessionError::AfterFinish {
                        agency,
                        finished_with: finished_with.unwrap_or(0),
                        sent: at + 1,
                    });
                }
                None => {}
            }
            at += 1;
        }
        if batch.ends && at < stored.len() {
            return Err(SessionError::EndedShort {
                agency,
                stored: stored.len(),
                sent: at,
            });
        }
        Ok(())
    }

    fn reply_echo(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        info!(
            "action: receive_message | result: success | ip: {} | msg: {}",
            self.peer.ip(),
            field(text.trim_end_matches(['\n', '\r']))
        );
        self.output.extend_from_slice(line);
        self.mode = Mode::Closing;
    }

    /// Acks are held waiting for a commit.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// The agency whose end ack is among the held acks: it finishes with the
    /// commit that releases them.
    pub fn ending_agency(&self) -> Option<u16> {
        self.agency.filter(|_| self.held_end)
    }

    /// The commit covering the held acks is done: they become output. Returns
    /// the agency when they included its end ack (it has now finished).
    pub fn release_acks(&mut self) -> Option<u16> {
        if self.output.is_empty() {
            std::mem::swap(&mut self.output, &mut self.held);
        } else {
            self.output.append(&mut self.held);
        }
        self.held.clear();
        bound_capacity(&mut self.held, KEEP_CAPACITY);
        if std::mem::take(&mut self.held_end) {
            self.agency()
        } else {
            None
        }
    }

    /// The draw ran: queues the winners message, to leave once the winners
    /// delay after the end ack has passed (at once if it already has). The
    /// connection closes once it is written. Ignored unless this connection
    /// has ended its stream (a reconnection still resending gets them when
    /// its end batch is committed).
    pub fn send_winners(&mut self, documents: &[u32], now: Instant) {
        if self.mode != Mode::Ended || self.winners.is_some() {
            return;
        }
        let mut message = Vec::new();
        if let Err(e) = encode_winners(documents, &mut message) {
            // The length is a u16 of bytes: never send a truncated list; close
            // after the end ack without winners instead, and say why.
            error!(
                "action: send_winners | result: fail | ip: {} | agencia: {} | cant_ganadores: {} | error: {e}; the agency is closed without winners",
                self.peer.ip(),
                self.agency.unwrap_or(0),
                documents.len()
            );
            self.close_after_output();
            return;
        }
        self.winners = Some((message, documents.len()));
        self.handle_timeout(now);
    }

    /// When the winners may leave, if they are waiting for the delay after a
    /// written end ack. `None` while there is nothing to wait for, or while the
    /// end ack is not all written (the clock starts then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.end_ack, &self.winners) {
            (EndAck::Written(at), Some(_)) => Some(at + self.winners_delay),
            _ => None,
        }
    }

    /// Time has come to `now`: moves the winners to the output if their delay
    /// has passed. Never in the same write as the end ack: the end ack must
    /// have been written (by [`Session::advance`]) before this turn.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|due| now >= due)
            && let Some((message, count)) = self.winners.take()
        {
            self.output.extend_from_slice(&message);
            self.mode = Mode::Closing;
            self.winners_pending = true;
            debug!(
                "action: send_winners | result: success | ip: {} | agencia: {} | cant_ganadores: {count}",
                self.peer.ip(),
                self.agency().unwrap_or(0),
            );
        }
    }

    /// Bytes waiting to be written.
    pub fn pending_output(&self) -> &[u8] {
        &self.output[self.written..]
    }

    /// `n` bytes of [`Session::pending_output`] were written at `now`.
    pub fn advance(&mut self, n: usize, now: Instant) {
        self.written += n;
        self.last_activity = now;
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
            bound_capacity(&mut self.output, KEEP_CAPACITY);
            // The end ack is the last thing before the winners: all output
            // written and none held means it is out.
            if self.end_ack == EndAck::Queued && self.held.is_empty() {
                self.end_ack = EndAck::Written(now);
            }
            self.winners_written |= std::mem::take(&mut self.winners_pending);
        }
    }

    /// False while so much output waits that reading more would only grow it:
    /// the peer must read first (backpressure).
    pub fn wants_input(&self) -> bool {
        self.output.len() - self.written + self.held.len() < OUTPUT_HIGH_WATER
            && self.mode != Mode::Closing
    }

    /// The agency whose winners were just written in full; once.
    pub fn take_delivered(&mut self) -> Option<u16> {
        if std::mem::take(&mut self.winners_written) {
            self.agency
        } else {
            None
        }
    }

    /// Everything is said: close now.
    pub fn is_done(&self) -> bool {
        self.mode == Mode::Closing && self.pending_output().is_empty() && self.held.is_empty()
    }

    /// Waiting for the draw or the winners delay, with nothing to write: not a
    /// stall, however long.
    pub fn is_waiting_for_draw(&self) -> bool {
        self.mode == Mode::Ended && self.pending_output().is_empty() && !self.has_held()
    }
}

/// Frees what a buffer holds beyond `keep` bytes of capacity (or its length,
/// if longer), so that one large read or reply does not stay allocated for the
/// life of the connection.
fn bound_capacity(buf: &mut Vec<u8>, keep: usize) {
    if buf.is_empty() && buf.capacity() > keep {
        *buf = Vec::new();
    } else if buf.capacity() > keep.max(buf.len()) {
        buf.shrink_to(keep.max(buf.len()));
    }
}

#[cfg(test)]
mod tests;
