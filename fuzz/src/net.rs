//! The server's poll loop in memory, as `server/src/server.rs` drives its
//! sessions (the session tests' `Harness`, grown into the whole turn): peers
//! whose bytes wait in a socket queue until the session wants input, reads of
//! at most the loop's 64 KiB buffer, held acks released by `App::end_turn`,
//! output taken as far as each peer's socket has room, timers, stall sweeps,
//! evictions and deferred frees. Storage is two `Vec<u8>`s.
//!
//! Every step checks what the server promises (see the README's protocol and
//! durability sections), and panics, which is what the fuzzer reports, when it
//! does not hold:
//!
//! - a session keeps at most one partial unit of input: 3 bytes of a header,
//!   8,136 of a batch, 1,023 of an echo line;
//! - its output stays under the backpressure mark plus what one read can add;
//! - after every commit the two files read back (`read_round`) as exactly the
//!   lottery in memory: every row a bet, no torn tail, per agency the same
//!   bets in order, the same finished agencies and the same draw;
//! - every ack a peer gets is already durable: its `k`-th stored ack is its
//!   agency's `k`-th stored bet, an end ack follows only the record of the
//!   agency's end, with a stored ack for each of its bets, and the winners
//!   are its stored winners; nothing follows them;
//! - an echo comes back unchanged;
//! - every log line the server writes, at debug level, parses strictly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lottery_protocol::{
    ACK_LEN, FRAME_LEN, HEADER_LEN, MAX_BATCH_LEN, Reply, Status, decode_reply, decode_winners,
    is_lottery_stream,
};
use server::app::{App, Sessions};
use server::lottery::bet_key;
use server::round::{Entry, Round, read_round};
use server::session::{MAX_ECHO_LINE, OUTPUT_HIGH_WATER, Session, Stall};
use server::storage::{StateLog, Store};

/// The server's default `STALL_TIMEOUT`.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The most one read hands a session: the loop's shared read buffer.
pub const READ_MAX: usize = 64 * 1024;
/// The most input a session may keep between reads, per unit.
pub const MAX_KEPT_HEADER: usize = HEADER_LEN - 1;
pub const MAX_KEPT_BATCH: usize = MAX_BATCH_LEN - 1;
pub const MAX_KEPT_ECHO: usize = MAX_ECHO_LINE - 1;

/// One connection: the server's session and what its peer did and got.
pub struct Conn {
    pub session: Session,
    /// Sent by the peer, not yet read by the server (the socket's queue).
    inbound: Vec<u8>,
    /// The peer shut down its write side; the session hears it once
    /// `inbound` is read.
    eof: bool,
    eof_told: bool,
    /// How many more bytes the peer's socket takes (the peer's reads).
    pub window: usize,
    /// Marked closing by the loop; freed at the end of the turn.
    closing: bool,
    in_commit: bool,
    /// Everything the peer sent, and everything it got.
    pub sent: Vec<u8>,
    pub received: Vec<u8>,
    peer: PeerView,
}

/// How far a peer's received bytes have been checked.
#[derive(Default)]
struct PeerView {
    checked: usize,
    stored_acks: usize,
    ended: bool,
    winners: bool,
}

/// A peer that closed: what it sent and got, for the caller's checks.
pub struct Gone {
    pub key: usize,
    pub agency: Option<u16>,
    pub sent: Vec<u8>,
    pub received: Vec<u8>,
}

struct Conns(BTreeMap<usize, Conn>);

impl Sessions for Conns {
    fn session(&mut self, key: usize) -> Option<&mut Session> {
        self.0.get_mut(&key).map(|c| &mut c.session)
    }
}

pub struct Net {
    pub app: App<Vec<u8>>,
    conns: Conns,
    committed: Vec<usize>,
    pub now: Instant,
    winners_delay: Duration,
    next_key: usize,
    /// Peers that are gone, in the order they were freed.
    pub gone: Vec<Gone>,
    /// The round as the files read back at the last commit.
    durable: Round,
    /// The files' lengths and the lottery's counts then.
    checked: [usize; 5],
}

impl Net {
    /// A server for `agencies` (0: echo only), its state file's header
    /// written, as a fresh start leaves it.
    pub fn new(agencies: u16, winners_delay: Duration) -> Net {
        crate::logs::install();
        let mut state = Vec::new();
        Entry::Header {
            agencies,
            started: 0,
        }
        .encode(&mut state);
        let len = state.len() as u64;
        let app = App::new(agencies, Store::new(Vec::new()), StateLog::new(state, len));
        let durable = Round::new(agencies, 0);
        Net {
            app,
            conns: Conns(BTreeMap::new()),
            committed: Vec::new(),
            now: Instant::now(),
            winners_delay,
            next_key: 0,
            gone: Vec::new(),
            durable,
            checked: [usize::MAX; 5],
        }
    }

    /// A new connection whose peer reads everything; returns its key.
    pub fn connect(&mut self) -> usize {
        let key = self.next_key;
        self.next_key += 1;
        let peer = format!("127.0.0.1:{}", 40000 + key % 20000)
            .parse()
            .expect("an address");
        self.conns.0.insert(
            key,
            Conn {
                session: Session::new(key, peer, self.now, self.winners_delay),
                inbound: Vec::new(),
                eof: false,
                eof_told: false,
                window: usize::MAX,
                closing: false,
                in_commit: false,
                sent: Vec::new(),
                received: Vec::new(),
                peer: PeerView::default(),
            },
        );
        key
    }

    pub fn is_live(&self, key: usize) -> bool {
        self.conns.0.contains_key(&key)
    }

    pub fn conn(&self, key: usize) -> Option<&Conn> {
        self.conns.0.get(&key)
    }

    pub fn live(&self) -> impl Iterator<Item = (&usize, &Conn)> {
        self.conns.0.iter()
    }

    /// The peer sends `bytes`; the server reads them as far as the session
    /// wants input.
    pub fn send(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.0.get_mut(&key) else {
            return;
        };
        if conn.eof {
            return; // a shut-down write side sends nothing more
        }
        conn.sent.extend_from_slice(bytes);
        conn.inbound.extend_from_slice(bytes);
        self.read(key);
    }

    /// The peer shuts down its write side.
    pub fn shutdown_write(&mut self, key: usize) {
        if let Some(conn) = self.conns.0.get_mut(&key) {
            conn.eof = true;
            self.read(key);
        }
    }

    /// The peer is gone (a reset): the loop's read or write fails, and the
    /// connection is closed at the end of the turn.
    pub fn reset(&mut self, key: usize) {
        if let Some(conn) = self.conns.0.get_mut(&key) {
            conn.closing = true;
        }
    }

    /// The peer reads `n` more bytes (`usize::MAX`: from now on, everything).
    pub fn peer_reads(&mut self, key: usize, n: usize) {
        if let Some(conn) = self.conns.0.get_mut(&key) {
            conn.window = conn.window.saturating_add(n);
            self.flush(key);
        }
    }

    /// The peer stops reading: its socket takes nothing more.
    pub fn stop_reading(&mut self, key: usize) {
        if let Some(conn) = self.conns.0.get_mut(&key) {
            conn.window = 0;
        }
    }

    /// What the peer of `key` got, live or gone.
    pub fn received(&self, key: usize) -> &[u8] {
        match self.conns.0.get(&key) {
            Some(conn) => &conn.received,
            None => self
                .gone
                .iter()
                .find(|g| g.key == key)
                .map_or(&[], |g| &g.received),
        }
    }

    /// The loop's read step: reads until the queue is empty, the session
    /// stops wanting input (backpressure, an error, the end) or EOF.
    fn read(&mut self, key: usize) {
        let now = self.now;
        let Some(conn) = self.conns.0.get_mut(&key) else {
            return;
        };
        while !conn.closing && conn.session.wants_input() {
            if conn.inbound.is_empty() {
                if conn.eof && !conn.eof_told {
                    conn.eof_told = true;
                    if let Err(e) = conn.session.on_eof() {
                        assert!(!e.is_fatal(), "EOF is never fatal: {e}");
                        crate::logs::check_error(&e);
                    }
                }
                break;
            }
            let n = conn.inbound.len().min(READ_MAX);
            let chunk: Vec<u8> = conn.inbound.drain(..n).collect();
            let result = conn.session.on_input(&chunk, now, &mut self.app);
            check_kept_input(&conn.session, now);
            check_output_bound(&conn.session, &self.app);
            if let Err(e) = result {
                // In memory nothing can fail to be stored.
                assert!(!e.is_fatal(), "fatal error from a Vec: {e}");
                crate::logs::check_error(&e);
                break;
            }
        }
        for (old, agency) in std::mem::take(&mut self.app.evicted) {
            assert_ne!(old, key, "a connection evicts only older ones");
            if let Some(old) = self.conns.0.get_mut(&old) {
                assert_eq!(old.session.agency(), Some(agency));
                old.closing = true;
            }
        }
        let Some(conn) = self.conns.0.get_mut(&key) else {
            return;
        };
        if conn.session.has_held() && !conn.in_commit && !conn.closing {
            conn.in_commit = true;
            self.committed.push(key);
        }
        self.flush(key);
    }

    /// The loop's write step for one connection: what the peer's socket takes.
    fn flush(&mut self, key: usize) {
        let now = self.now;
        let Some(conn) = self.conns.0.get_mut(&key) else {
            return;
        };
        if conn.closing {
            return;
        }
        let pending = conn.session.pending_output();
        let n = pending.len().min(conn.window);
        if n > 0 {
            conn.received.extend_from_slice(&pending[..n]);
            conn.window -= n;
            conn.session.advance(n, now);
            check_peer(conn, &self.durable);
        }
        check_output_bound(&conn.session, &self.app);
        if let Some(agency) = conn.session.take_delivered() {
            self.app.delivered(agency);
        }
        if conn.session.is_done() {
            conn.closing = true;
            return;
        }
        if conn.session.wants_input() && (!conn.inbound.is_empty() || conn.eof && !conn.eof_told) {
            self.read(key);
        }
    }

    /// The end of a loop turn: commit and release acks, the draw, writes,
    /// timers, the stall sweep, then frees. Checks the files against the
    /// lottery.
    pub fn end_turn(&mut self) {
        self.end_turn_at(false);
    }

    /// The end of a loop turn once the draw deadline has passed: after the
    /// commit, as the loop orders it, the draw runs without the unfinished
    /// agencies, whose connections close.
    pub fn deadline_draw(&mut self) {
        self.end_turn_at(true);
    }

    fn end_turn_at(&mut self, deadline: bool) {
        for key in &self.committed {
            if let Some(conn) = self.conns.0.get_mut(key) {
                conn.in_commit = false;
            }
        }
        let mut ready = Vec::new();
        self.app
            .end_turn(&mut self.committed, &mut self.conns, &mut ready, self.now)
            .expect("in memory nothing fails");
        if deadline {
            let cut = self
                .app
                .deadline_draw(&mut self.conns, &mut ready, self.now)
                .expect("in memory nothing fails");
            for (key, agency) in cut {
                let conn = self.conns.0.get_mut(&key).expect("a live connection");
                assert_eq!(conn.session.agency(), Some(agency));
                conn.closing = true;
            }
        }
        self.check_files();
        self.after_turn();
    }

    /// Moves the clock, and the turn that the poll's timeout wakes ends:
    /// timers fire, and peers stalled for `STALL_TIMEOUT` are closed.
    pub fn sleep(&mut self, d: Duration) {
        self.now += d;
        self.end_turn();
    }

    /// The rest of the turn, after the commit: writes, timers due now (the
    /// winners delay, in writes of their own), the stall sweep, frees.
    fn after_turn(&mut self) {
        let keys: Vec<usize> = self.conns.0.keys().copied().collect();
        for &key in &keys {
            self.flush(key);
        }
        for &key in &keys {
            if let Some(conn) = self.conns.0.get_mut(&key)
                && !conn.closing
                && conn.session.poll_timeout().is_some_and(|at| at <= self.now)
            {
                conn.session.handle_timeout(self.now);
                self.flush(key);
            }
        }
        let now = self.now;
        for conn in self.conns.0.values_mut() {
            if conn.closing {
                continue;
            }
            if let Some(stall) = conn.session.stalled(now, STALL_TIMEOUT) {
                crate::logs::check_line(&format!(
                    "action: timeout | result: fail | ip: 127.0.0.1 | agencia: {} | error: {stall}",
                    conn.session.agency().unwrap_or(0)
                ));
                conn.closing = true;
            }
        }
        self.free_closing();
    }

    /// Frees the connections marked closing, as the loop does last.
    fn free_closing(&mut self) {
        let closing: Vec<usize> = self
            .conns
            .0
            .iter()
            .filter(|(_, c)| c.closing)
            .map(|(&k, _)| k)
            .collect();
        for key in closing {
            let conn = self.conns.0.remove(&key).expect("listed");
            self.committed.retain(|&k| k != key);
            let agency = conn.session.agency();
            if let Some(agency) = agency {
                self.app.lottery.release(agency, key);
            }
            self.gone.push(Gone {
                key,
                agency,
                sent: conn.sent,
                received: conn.received,
            });
        }
    }

    /// After a commit the files hold exactly what the lottery holds.
    fn check_files(&mut self) {
        let lottery = &self.app.lottery;
        let seen = [
            self.app.store.sink().len(),
            self.app.state.sink().len(),
            (1..=lottery.agencies())
                .map(|a| lottery.stored_bets(a).len())
                .sum(),
            lottery.finished(),
            usize::from(lottery.drawn()),
        ];
        if seen == self.checked {
            return; // nothing changed since the last check
        }
        self.checked = seen;
        let round = read_round(&self.app.store.sink(), self.app.state.sink(), 0, 0)
            .unwrap_or_else(|e| panic!("the files the server wrote do not read back: {e}"));
        assert_eq!(
            (round.bets_torn, round.state_torn),
            (0, 0),
            "torn tails after a commit"
        );
        let lottery = &self.app.lottery;
        assert_eq!(round.agencies, lottery.agencies());
        assert_eq!(round.rows, self.app.store.committed(), "rows stored");
        for a in 1..=lottery.agencies() {
            let stored = &round.agency[usize::from(a)];
            assert_eq!(
                stored.bets,
                lottery.stored_bets(a),
                "agency {a}'s rows and its bets in memory"
            );
            assert_eq!(stored.winners, lottery.winners(a), "agency {a}'s winners");
            assert_eq!(
                stored.finished,
                lottery.finished_with(a),
                "agency {a}'s end in the state file and in memory"
            );
        }
        assert_eq!(round.drawn.is_some(), lottery.drawn(), "the draw recorded");
        self.durable = round;
    }

    /// The round as the files read back at the last commit.
    pub fn durable(&self) -> &Round {
        &self.durable
    }
}

/// A session keeps at most one partial unit. `stalled` with a zero limit and
/// a late clock names the partial unit and its size; it can only say so
/// while no output waits (otherwise it reports that first).
fn check_kept_input(session: &Session, now: Instant) {
    if !session.pending_output().is_empty() {
        return;
    }
    let late = now + Duration::from_secs(86_400);
    if let Some(Stall::Partial { unit, bytes, .. }) = session.stalled(late, Duration::ZERO) {
        let max = match unit {
            "header" => MAX_KEPT_HEADER,
            "batch" => MAX_KEPT_BATCH,
            "echo line" => MAX_KEPT_ECHO,
            other => panic!("a partial unit named {other:?}"),
        };
        assert!(bytes > 0, "a partial {unit} of 0 bytes");
        assert!(
            bytes <= max,
            "a session keeps {bytes} bytes of a partial {unit}; at most {max}"
        );
    }
}

/// Output waits only while under the backpressure mark, and one read adds at
/// most the acks of what it completed (an echo: the line), and the winners.
fn check_output_bound(session: &Session, app: &App<Vec<u8>>) {
    let winners = session
        .agency()
        .filter(|&a| a >= 1 && a <= app.lottery.agencies())
        .map_or(0, |a| 2 + 4 * app.lottery.winners(a).len());
    let one_read = ACK_LEN * ((READ_MAX + MAX_BATCH_LEN) / FRAME_LEN + 1);
    let max = OUTPUT_HIGH_WATER + one_read.max(MAX_ECHO_LINE) + winners;
    let pending = session.pending_output().len();
    assert!(
        pending <= max,
        "{pending} bytes of output wait; at most {max}"
    );
}

/// Checks what a peer got since the last check against the durable round.
fn check_peer(conn: &mut Conn, durable: &Round) {
    let Some(&first) = conn.sent.first() else {
        panic!("output to a peer that sent nothing");
    };
    if !is_lottery_stream(first) {
        assert!(
            conn.sent.starts_with(&conn.received),
            "an echo is not what was sent: sent {:?}, got {:?}",
            conn.sent,
            conn.received
        );
        return;
    }
    let view = &mut conn.peer;
    let agency = conn.session.agency();
    loop {
        let rest = &conn.received[view.checked..];
        if !view.ended {
            let Some(record) = rest.first_chunk::<ACK_LEN>() else {
                break;
            };
            let agency = agency.expect("acks only after a header");
            let stored = &durable.agency[usize::from(agency)];
            match decode_reply(record) {
                Reply::End => {
                    let finished = stored.finished.unwrap_or_else(|| {
                        panic!(
                            "an end ack for agency {agency} before the state file records its end"
                        )
                    });
                    let acked = view.stored_acks as u64;
                    assert!(
                        acked == finished,
                        "agency {agency} finished with {finished} bets, and the connection that ended it got {acked} stored acks"
                    );
                    view.ended = true;
                }
                Reply::Ack(ack) => match Status::from_byte(ack.status) {
                    Some(Status::Stored) => {
                        let k = view.stored_acks;
                        assert_eq!(
                            stored.bets.get(k).copied(),
                            Some(bet_key(ack.document, ack.number)),
                            "stored ack {} of agency {agency} (document {}, number {}) is not its durable bet {}",
                            k + 1,
                            ack.document,
                            ack.number,
                            k + 1
                        );
                        view.stored_acks += 1;
                    }
                    Some(_) => {}
                    None => panic!("an ack with status {}", ack.status),
                },
            }
            view.checked += ACK_LEN;
        } else if !view.winners {
            let Some(agency) = agency else { break };
            match decode_winners(rest) {
                Ok(Some((documents, n))) => {
                    assert!(durable.drawn.is_some(), "winners before the draw");
                    assert_eq!(
                        documents,
                        durable.agency[usize::from(agency)].winners,
                        "agency {agency}'s winners"
                    );
                    view.checked += n;
                    view.winners = true;
                }
                Ok(None) => break,
                Err(e) => panic!("a winners message that does not decode: {e}"),
            }
        } else {
            assert!(rest.is_empty(), "{} bytes after the winners", rest.len());
            break;
        }
    }
}
