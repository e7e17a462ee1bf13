//! The poll loop: one thread, one `mio::Poll`, a `Slab` of connections.
//!
//! Each turn: wait for events; accept, read and write until `WouldBlock`
//! (registration is edge-triggered); then the end-of-turn phase, in this order,
//! as Redis' `beforeSleep` does with `AE_BARRIER`: sync storage, release the acks
//! that the sync made true, run the draw if due, release winners whose delay
//! has passed, write pending output, time out stalled peers, and only then free
//! the connections marked closing.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{error, info, log, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::app::{App, Sessions};
use crate::config::{Config, max_connections_for};
use crate::session::Session;
use crate::storage::{StateLog, Store, lock_existing, open_round};
use tp0_log::field;

// Reserved tokens, far outside any slab key.
const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);

/// One read's worth of bytes; shared by every connection (per-connection state
/// holds only a partial batch).
const READ_CHUNK: usize = 64 * 1024;
/// Bytes one connection may write per turn, so one peer cannot hog the loop.
const WRITE_BUDGET: usize = 256 * 1024;
/// Events taken per `poll`.
const EVENTS: usize = 1024;
/// Connections accepted per loop turn (Redis' `MAX_ACCEPTS_PER_CALL` idea):
/// the rest wait for the next turn, so the ones just accepted are read (and
/// an agency names itself) before a flood of new peers could push them out
/// at `MAX_CONNECTIONS`, and a flood cannot starve the established peers.
const ACCEPTS_PER_TURN: usize = 64;
/// How often the round's progress is logged while something happens.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Pending agencies named in a progress line; more are counted.
const PROGRESS_PENDING_SHOWN: usize = 20;

struct Conn {
    stream: TcpStream,
    session: Session,
    /// WRITABLE interest is registered (only while output is pending).
    writable: bool,
    /// Input was left unread for backpressure; read again once output drains.
    paused: bool,
    /// Marked for removal at the end of the turn; no more I/O.
    closing: bool,
    /// Already in the `to_commit` / `to_flush` list this turn.
    in_commit: bool,
    in_flush: bool,
    /// Accept order, to tell a reused slab key from the connection queued
    /// under it in `Server::unidentified`.
    seq: u64,
}

impl Sessions for Slab<Conn> {
    fn session(&mut self, key: usize) -> Option<&mut Session> {
        self.get_mut(key).map(|conn| &mut conn.session)
    }
}

/// Sorts an I/O result into what the loop does next (sozu's `SocketResult`).
enum Io {
    Done(usize),
    /// The peer closed its side (a read of 0 bytes).
    Eof,
    WouldBlock,
    Error(io::Error),
}

fn sort(result: io::Result<usize>) -> Option<Io> {
    match result {
        // A read of 0 bytes into a non-empty buffer: orderly shutdown by the peer.
        Ok(0) => Some(Io::Eof),
        Ok(n) => Some(Io::Done(n)),
        // Edge-triggered: the socket is drained; the next event says when to go on.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Io::WouldBlock),
        // A signal interrupted the call: retry it.
        Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
        // Anything else (ECONNRESET, EPIPE, ...) ends this connection only.
        Err(e) => Some(Io::Error(e)),
    }
}

pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: Signals,
    conns: Slab<Conn>,
    app: App<File>,
    config: Config,
    scratch: Box<[u8]>,
    /// Connections whose held acks wait for this turn's commit.
    to_commit: Vec<usize>,
    /// Connections with output to write this turn.
    to_flush: Vec<usize>,
    /// Connections to free at the end of this turn.
    to_close: Vec<usize>,
    /// The last accept failed (out of descriptors) with peers still waiting in
    /// the backlog; the edge-triggered listener will not say so again, so
    /// accepting is retried whenever a connection is freed.
    accept_backlogged: bool,
    /// The turn's accept budget ran out with peers perhaps still waiting;
    /// the edge-triggered listener will not say so again: accept next turn.
    accept_more: bool,
    next_sweep: Instant,
    /// Sessions waiting for a time (their winners' delay), earliest first. A
    /// key freed and reused meanwhile only costs its new session a no-op.
    timers: BTreeSet<(Instant, usize)>,
    progress: Progress,
    /// When the draw runs without the agencies that have not finished.
    deadline: Option<Instant>,
    /// Connections held at once (`MAX_CONNECTIONS`).
    max_connections: usize,
    /// Connections that have not named an agency yet, oldest first, with
    /// their accept order (entries of closed or identified ones are skipped
    /// when met): who is closed to admit a new peer at the cap.
    unidentified: VecDeque<(usize, u64)>,
    accepted: u64,
    evictions: Evictions,
}

/// Connections closed at `MAX_CONNECTIONS` and not yet logged.
struct Evictions {
    since_line: u64,
    logged_at: Instant,
}

/// What the last progress line said, to log the next only when something
/// changed (quiet when idle).
struct Progress {
    at: Instant,
    bets: u64,
    finished: usize,
}

impl Server {
    /// Locks the bets file, binds the listener, and only then opens the
    /// round (resuming one in progress, archiving a complete one) and
    /// registers the signals. Errors here are the operator's to fix (another
    /// server on the file, port in use, unreadable files); until the lock is
    /// held and the port bound, no file is changed.
    pub fn new(config: Config) -> io::Result<Server> {
        let limit = descriptor_limit();
        let max_connections = connection_cap(&config, limit).map_err(io::Error::other)?;
        // Echo only (AGENCIES=0): no round, and no round file is touched.
        let locked = if config.agencies > 0 {
            lock_existing(&config.bets_file).map_err(io::Error::other)?
        } else {
            None
        };
        let poll = Poll::new()?;
        let address = SocketAddr::new(config.ip, config.port);
        let mut listener = bind(address, config.listen_backlog)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {address}: {e}")))?;
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let app = if config.agencies > 0 {
            open_app(&config, locked, now_unix)?
        } else {
            info!(
                "action: open_storage | result: success | round: none | reason: AGENCIES is 0, echo only"
            );
            let null = || std::fs::OpenOptions::new().write(true).open("/dev/null");
            App::new(0, Store::new(null()?), StateLog::new(null()?, 0))
        };
        let started = app.started;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let deadline = config.draw_deadline.map(|d| {
            let at = started.saturating_add(d.as_secs());
            Instant::now() + Duration::from_secs(at.saturating_sub(now_unix))
        });
        info!(
            "action: listen | result: success | address: {} | agencies: {} | max_connections: {max_connections} | draw_deadline: {}",
            listener.local_addr()?,
            config.agencies,
            config
                .draw_deadline
                .map_or("off".to_owned(), |d| humantime::format_duration(d)
                    .to_string())
        );
        Ok(Server {
            poll,
            listener: Some(listener),
            signals,
            conns: Slab::new(),
            app,
            next_sweep: Instant::now() + sweep_interval(config.stall_timeout),
            config,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            to_commit: Vec::new(),
            to_flush: Vec::new(),
            to_close: Vec::new(),
            accept_backlogged: false,
            accept_more: false,
            timers: BTreeSet::new(),
            progress: Progress {
                at: Instant::now(),
                bets: 0,
                finished: 0,
            },
            deadline,
            max_connections,
            unidentified: VecDeque::new(),
            accepted: 0,
            evictions: Evictions {
                since_line: 0,
                logged_at: Instant::now() - PROGRESS_EVERY,
            },
        })
    }

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly and returns `Ok`.
    /// An `Err` is a failure of the server itself (poll, storage), never a peer's.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout =
                if self.to_commit.is_empty() && self.to_flush.is_empty() && !self.accept_more {
                    let mut wake = match self.timers.first() {
                        Some(&(at, _)) => at.min(self.next_sweep),
                        None => self.next_sweep,
                    };
                    if let Some(deadline) = self.deadline.filter(|_| !self.app.lottery.drawn()) {
                        wake = wake.min(deadline);
                    }
                    wake.saturating_duration_since(Instant::now())
                } else {
                    Duration::ZERO // work carried over from the last turn
                };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                // A signal arrived during the wait: the signal source reports it.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    SIGNALS => {
                        if let Some(signal) = self.signals.pending().next() {
                            return self.shutdown(signal);
                        }
                    }
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key, now)?;
                        }
                        if event.is_writable() {
                            self.queue_flush(key);
                        }
                    }
                }
            }
            self.end_turn(now)?;
        }
    }

    /// Accepts until `WouldBlock`. A failed accept (out of descriptors) is
    /// logged; the pending peers stay in the backlog for the next event.
    fn accept(&mut self, now: Instant) {
        self.accept_more = false;
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= self.max_connections && !self.make_room(peer) {
                        continue; // dropped: every connection is a live agency
                    }
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, Token(key), Interest::READABLE)
                    {
                        error!(
                            "action: accept_connections | result: fail | ip: {} | error: {}",
                            peer.ip(),
                            field(&e)
                        );
                        continue;
                    }
                    // Acks are small and latency-bound: never wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    info!(
                        "action: accept_connections | result: success | ip: {}",
                        peer.ip()
                    );
                    self.accepted += 1;
                    self.unidentified.push_back((key, self.accepted));
                    entry.insert(Conn {
                        stream,
                        session: Session::new(key, peer, now, self.config.winners_delay),
                        writable: false,
                        paused: false,
                        closing: false,
                        in_commit: false,
                        in_flush: false,
                        seq: self.accepted,
                    });
                }
                // The backlog is empty until the next event.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_backlogged = false;
                    return;
                }
                // Interrupted by a signal: try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // That one peer's connection failed before we took it: the
                // next one may be fine, so accept again at once.
                Err(e) if is_retry_now(&e) => {
                    warn!(
                        "action: accept_connections | result: fail | error: {}; accepting the next",
                        field(&e)
                    );
                    continue;
                }
                // EMFILE and friends: the peer waits in the backlog until a
                // connection is freed; say why.
                Err(e) => {
                    error!(
                        "action: accept_connections | result: fail | error: {}",
                        field(&e)
                    );
                    self.accept_backlogged = true;
                    return;
                }
            }
        }
        // The budget ran out: go on next turn.
        self.accept_more = true;
    }

    /// At `MAX_CONNECTIONS`: frees a place for a new peer by closing the
    /// oldest connection that has not named an agency (silent and slow peers
    /// can never lock real agencies out). Returns false when every connection
    /// is an agency's: the new peer is dropped.
    fn make_room(&mut self, peer: SocketAddr) -> bool {
        while let Some((key, seq)) = self.unidentified.pop_front() {
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.seq == seq) else {
                continue; // closed, and maybe its key reused
            };
            if conn.closing || conn.session.agency().is_some() {
                continue;
            }
            // Under attack this happens thousands of times a second: the
            // first is logged at once, the rest counted and summed up every
            // few seconds (a log line costs more than the close).
            if self.evictions.since_line == 0
                && self.evictions.logged_at.elapsed() >= PROGRESS_EVERY
            {
                warn!(
                    "action: close_connection | result: success | ip: {} | closed: 1 | reason: at MAX_CONNECTIONS ({}), the oldest connection that named no agency makes room for {}",
                    conn.session.peer().ip(),
                    self.max_connections,
                    peer.ip()
                );
                self.evictions.logged_at = Instant::now();
            } else {
                self.evictions.since_line += 1;
            }
            // Freed now, not at the end of the turn: the place is needed now.
            self.close(key, log::Level::Debug);
            self.to_commit.retain(|&k| k != key);
            self.to_flush.retain(|&k| k != key);
            return true;
        }
        warn!(
            "action: accept_connections | result: fail | ip: {} | error: at MAX_CONNECTIONS ({}) and every connection is an agency's; this peer is closed",
            peer.ip(),
            self.max_connections
        );
        false
    }

    /// Reads until `WouldBlock`, EOF, an error, or backpressure, feeding the
    /// session. Only a storage failure is returned; peer errors close the peer.
    fn read(&mut self, key: usize, now: Instant) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(()); // a key no longer in use: nothing to do
        };
        if conn.closing {
            return Ok(());
        }
        let outcome = loop {
            if !conn.session.wants_input() {
                conn.paused = true;
                break Ok(());
            }
            let Some(io) = sort(conn.stream.read(&mut self.scratch)) else {
                continue;
            };
            match io {
                Io::Done(n) => {
                    if let Err(e) = conn
                        .session
                        .on_input(&self.scratch[..n], now, &mut self.app)
                    {
                        break Err(e);
                    }
                }
                Io::Eof => break conn.session.on_eof(),
                Io::WouldBlock => break Ok(()),
                Io::Error(e) => {
                    let agency = conn
                        .session
                        .agency()
                        .map_or(String::new(), |a| format!(" | agencia: {a}"));
                    warn!(
                        "action: receive_batch | result: fail | ip: {}{agency} | error: {}",
                        conn.session.peer().ip(),
                        field(&e)
                    );
                    mark_closing(conn, key, &mut self.to_close);
                    break Ok(());
                }
            }
        };
        // A newer connection took over agencies from older ones: close those.
        for (old, agency) in std::mem::take(&mut self.app.evicted) {
            if let Some(conn) = self.conns.get_mut(old) {
                info!(
                    "action: close_connection | result: success | ip: {} | agencia: {agency} | reason: a newer connection for the agency took over",
                    conn.session.peer().ip()
                );
                mark_closing(conn, old, &mut self.to_close);
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        if let Err(e) = outcome {
            // The session stopped reading; what it committed is still acked
            // before the close (it is done once its output is written).
            error!(
                "action: {} | result: fail | ip: {} | error: {}",
                e.action(),
                conn.session.peer().ip(),
                field(&e)
            );
            if e.is_fatal() {
                mark_closing(conn, key, &mut self.to_close);
                return Err(io::Error::other(e.to_string()));
            }
        }
        if conn.session.has_held() && !conn.in_commit {
            conn.in_commit = true;
            self.to_commit.push(key);
        }
        if !conn.session.pending_output().is_empty() || conn.session.is_done() {
            self.queue_flush(key);
        }
        Ok(())
    }

    fn queue_flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.in_flush
        {
            conn.in_flush = true;
            self.to_flush.push(key);
        }
    }

    /// The end-of-turn phase; see the module comment for its order.
    fn end_turn(&mut self, now: Instant) -> io::Result<()> {
        for &key in &self.to_commit {
            self.conns[key].in_commit = false;
        }
        let mut ready = Vec::new();
        self.app
            .end_turn(&mut self.to_commit, &mut self.conns, &mut ready, now)?;
        if self.deadline.is_some_and(|at| now >= at) && !self.app.lottery.drawn() {
            let cut = self.app.deadline_draw(&mut self.conns, &mut ready, now)?;
            for (key, agency) in cut {
                if let Some(conn) = self.conns.get_mut(key) {
                    error!(
                        "action: receive_batch | result: fail | ip: {} | agencia: {agency} | error: the draw ran at its deadline without this agency; nothing more is stored for it",
                        conn.session.peer().ip()
                    );
                    mark_closing(conn, key, &mut self.to_close);
                }
            }
        }
        self.fire_timers(now, &mut ready);
        for key in ready {
            self.queue_flush(key);
        }
        for key in std::mem::take(&mut self.to_flush) {
            self.flush(key, now)?;
        }
        // With a zero winners delay, the writes just done set timers that are
        // already due: fire them now, in writes of their own, rather than a
        // turn later behind this turn's closes.
        let mut due = Vec::new();
        self.fire_timers(now, &mut due);
        for key in due {
            self.flush(key, now)?;
        }
        // Winners written this turn are recorded now, not at the next turn
        // (which may be a second away when idle): a crash right after the
        // last agency got its winners still leaves a complete round.
        self.app.state.sync()?;
        if now >= self.progress.at + PROGRESS_EVERY {
            self.log_progress(now);
        }
        if self.evictions.since_line > 0 && now >= self.evictions.logged_at + PROGRESS_EVERY {
            warn!(
                "action: close_connection | result: success | closed: {} | reason: at MAX_CONNECTIONS ({}), the oldest connections that named no agency made room for new ones",
                self.evictions.since_line, self.max_connections
            );
            self.evictions = Evictions {
                since_line: 0,
                logged_at: now,
            };
        }
        if now >= self.next_sweep {
            self.sweep_stalled(now);
            self.next_sweep = now + sweep_interval(self.config.stall_timeout);
        }
        let freed = self.close_marked();
        if (freed && self.accept_backlogged) || self.accept_more {
            self.accept(now);
        }
        Ok(())
    }

    /// Logs the round's progress if bets were stored or agencies finished
    /// since the last line; says nothing while idle, in echo-only mode, or
    /// once the draw has run (its own line ends the round).
    fn log_progress(&mut self, now: Instant) {
        let lottery = &self.app.lottery;
        let bets = self.app.store.committed();
        let finished = lottery.finished();
        let last = &self.progress;
        if lottery.agencies() > 0
            && !lottery.drawn()
            && (bets != last.bets || finished != last.finished)
        {
            let seconds = now.saturating_duration_since(last.at).as_secs_f64();
            info!(
                "action: progress | result: in_progress | agencies_finished: {finished}/{} | pending: {} | bets: {bets} | bets_per_s: {:.0}",
                lottery.agencies(),
                lottery.pending_summary(PROGRESS_PENDING_SHOWN),
                (bets - last.bets) as f64 / seconds.max(1e-3)
            );
        }
        self.progress = Progress {
            at: now,
            bets,
            finished,
        };
    }

    /// Tells every session whose timer is due that time has come; pushes their
    /// keys to `ready`.
    fn fire_timers(&mut self, now: Instant, ready: &mut Vec<usize>) {
        while let Some(&(at, key)) = self.timers.first()
            && at <= now
        {
            self.timers.pop_first();
            if let Some(conn) = self.conns.get_mut(key) {
                conn.session.handle_timeout(now);
                ready.push(key);
            }
        }
    }

    /// Writes pending output within the turn's budget, holds WRITABLE interest
    /// only while bytes remain, and resumes reading a paused connection whose
    /// output drained.
    fn flush(&mut self, key: usize, now: Instant) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        conn.in_flush = false;
        if conn.closing {
            return Ok(());
        }
        let mut budget = WRITE_BUDGET;
        let mut blocked = false;
        while !conn.session.pending_output().is_empty() {
            if budget == 0 {
                // Over budget: continue next turn (poll will not wait).
                conn.in_flush = true;
                self.to_flush.push(key);
                break;
            }
            let pending = conn.session.pending_output();
            let chunk = &pending[..pending.len().min(budget)];
            let Some(io) = sort(conn.stream.write(chunk)) else {
                continue;
            };
            match io {
                Io::Done(n) => {
                    conn.session.advance(n, now);
                    budget -= n;
                }
                Io::WouldBlock => {
                    blocked = true;
                    break;
                }
                // write() returning 0 for a non-empty buffer: the peer cannot take more.
                Io::Eof => {
                    warn!(
                        "action: send_reply | result: fail | ip: {} | error: peer stopped reading",
                        conn.session.peer().ip()
                    );
                    mark_closing(conn, key, &mut self.to_close);
                    break;
                }
                // EPIPE, ECONNRESET, ...: this peer is gone; say how.
                Io::Error(e) => {
                    warn!(
                        "action: send_reply | result: fail | ip: {} | error: {}",
                        conn.session.peer().ip(),
                        field(&e)
                    );
                    mark_closing(conn, key, &mut self.to_close);
                    break;
                }
            }
        }
        if conn.closing {
            return Ok(());
        }
        if blocked != conn.writable {
            let interest = if blocked {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            self.poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)?;
            conn.writable = blocked;
        }
        if let Some(agency) = conn.session.take_delivered() {
            self.app.delivered(agency);
        }
        if conn.session.is_done() {
            mark_closing(conn, key, &mut self.to_close);
            return Ok(());
        }
        if let Some(at) = conn.session.poll_timeout() {
            self.timers.insert((at, key));
        }
        if conn.paused && conn.session.wants_input() {
            conn.paused = false;
            self.read(key, now)?;
        }
        Ok(())
    }

    /// Closes connections that made no progress for the stall timeout (the
    /// session says which kind of stall it is). Runs a few times per timeout,
    /// not per event, so it costs O(connections) per second at most.
    fn sweep_stalled(&mut self, now: Instant) {
        let limit = self.config.stall_timeout;
        for (key, conn) in self.conns.iter_mut() {
            if conn.closing {
                continue;
            }
            if let Some(stall) = conn.session.stalled(now, limit) {
                let agency = conn
                    .session
                    .agency()
                    .map_or(String::new(), |a| format!(" | agencia: {a}"));
                warn!(
                    "action: timeout | result: fail | ip: {}{agency} | error: {stall}",
                    conn.session.peer().ip(),
                );
                mark_closing(conn, key, &mut self.to_close);
            }
        }
    }

    /// Frees every connection marked closing (deferred so that nothing frees a
    /// connection still being handled this turn); returns whether any was.
    fn close_marked(&mut self) -> bool {
        let conns = &self.conns;
        self.to_commit.retain(|&key| !conns[key].closing);
        self.to_flush.retain(|&key| !conns[key].closing);
        let closing = std::mem::take(&mut self.to_close);
        for &key in &closing {
            self.close(key, log::Level::Debug);
        }
        !closing.is_empty()
    }

    /// Frees a connection. Logged at `level`: debug for the routine end of a
    /// conversation (a log line costs more than a whole batch of bets, see the
    /// README), info when shutdown closes it.
    fn close(&mut self, key: usize, level: log::Level) {
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some(agency) = conn.session.agency() {
            self.app.lottery.release(agency, key);
        }
        log!(
            level,
            "action: close_connection | result: success | ip: {}",
            conn.session.peer().ip()
        );
    }

    /// SIGTERM/SIGINT: stop accepting, make stored bets durable, tell peers what
    /// is durable, close everything, each closed resource logged.
    fn shutdown(mut self, signal: i32) -> io::Result<()> {
        let name = if signal == SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        info!("action: shutdown | result: in_progress | signal: {name}");
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
            info!("action: close_listener | result: success");
        }
        // Commit what was received this turn and release its acks (best effort).
        let now = Instant::now();
        let mut ready = Vec::new();
        self.app
            .end_turn(&mut self.to_commit, &mut self.conns, &mut ready, now)?;
        // Winners still inside their delay leave now, as if it had passed: their
        // end ack is out, so they still get a write of their own.
        for (key, conn) in self.conns.iter_mut() {
            if conn.session.poll_timeout().is_some() {
                conn.session.handle_timeout(now + self.config.winners_delay);
                ready.push(key);
            }
        }
        for key in ready {
            self.queue_flush(key);
        }
        for key in std::mem::take(&mut self.to_flush) {
            let _ = self.flush(key, now);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, log::Level::Info);
        }
        self.app.store.commit()?;
        self.app.state.sync()?;
        info!(
            "action: close_storage | result: success | file: {} | bets: {} | syncs: {}",
            field(self.config.bets_file.display()),
            self.app.store.committed(),
            self.app.store.commits()
        );
        let _ = self.poll.registry().deregister(&mut self.signals);
        info!("action: shutdown | result: success | signal: {name}");
        Ok(())
    }
}

/// Opens the round at the configured bets file (lock already held, or none
/// found) and logs what the start found: a new round, one resumed, one
/// archived, bytes cut, a missing state file, winners still owed.
fn open_app(config: &Config, locked: Option<File>, now_unix: u64) -> io::Result<App<File>> {
    let files = open_round(&config.bets_file, locked, config.agencies, now_unix)
        .map_err(io::Error::other)?;
    let opened = &files.opened;
    let round = &files.round;
    let mut notes = String::new();
    if let Some(archived) = &opened.archived {
        notes += &format!(
            " | previous_round_archived_as: {}",
            field(archived.display())
        );
    }
    if opened.bets_cut > 0 {
        notes += &format!(" | torn_row_bytes_cut: {}", opened.bets_cut);
    }
    if opened.state_cut > 0 {
        notes += &format!(" | torn_state_bytes_cut: {}", opened.state_cut);
    }
    if let Some(excluded) = &round.drawn {
        let owed: Vec<String> = (1..=round.agencies)
            .filter(|a| !excluded.contains(a))
            .filter(|&a| !round.agency[usize::from(a)].delivered)
            .map(|a| a.to_string())
            .collect();
        notes += &format!(" | winners_owed_to: {}", owed.join(","));
    }
    info!(
        "action: open_storage | result: success | file: {} | round: {} | bets: {} | agencies_finished: {} | drawn: {}{notes}",
        field(config.bets_file.display()),
        if opened.resumed { "resumed" } else { "new" },
        round.rows,
        crate::round::finished(round).len(),
        round.drawn.is_some(),
    );
    if opened.state_missing {
        warn!(
            "action: open_storage | result: success | file: {} | warning: no state file beside the rows: they are resumed as a round for AGENCIES={} started now; which agencies had finished is not known until they end again",
            field(config.bets_file.display()),
            config.agencies
        );
    }
    let started = round.started;
    let store =
        Store::resume(files.bets, files.round.rows, files.bets_len).named(&config.bets_file);
    let state = StateLog::new(files.state, files.state_len)
        .named(&crate::storage::state_path(&config.bets_file));
    let mut app = App::resume(files.round, store, state).map_err(io::Error::other)?;
    app.started = started;
    Ok(app)
}

/// `MAX_CONNECTIONS` as it will hold: the configured value, at most what the
/// descriptor limit allows (with a warning), or derived from it. Every
/// agency holds a connection while it waits for the draw, so a cap that
/// leaves no room beyond `AGENCIES` would deadlock the round: an error.
/// `limit` is `RLIMIT_NOFILE`'s soft value (`u64::MAX`: checks only an
/// explicit `MAX_CONNECTIONS`, as `server --check` does).
pub fn connection_cap(config: &Config, limit: u64) -> Result<usize, String> {
    let room = max_connections_for(limit);
    let cap = match config.max_connections {
        Some(asked) if asked > room => {
            warn!(
                "action: config | result: success | warning: MAX_CONNECTIONS {asked} is above what the descriptor limit ({limit}) allows; using {room}"
            );
            room
        }
        Some(asked) => asked,
        None => room,
    };
    if config.agencies > 0 && cap <= usize::from(config.agencies) {
        return Err(match config.max_connections {
            Some(_) => format!(
                "MAX_CONNECTIONS ({cap}) must be above AGENCIES ({}): every agency holds a connection while it waits for the draw",
                config.agencies
            ),
            None => format!(
                "the descriptor limit ({limit}) allows {cap} connections, not more than AGENCIES ({}): every agency holds one while it waits for the draw; raise it (ulimit -n)",
                config.agencies
            ),
        });
    }
    Ok(cap)
}

/// The accept(2) errors that concern one pending connection, not the
/// listener: Linux passes the new socket's pending network errors up through
/// accept, and the man page says to treat them like `EAGAIN` and retry. Every
/// other error (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) leaves the peer in
/// the backlog until a connection is freed.
fn is_retry_now(e: &io::Error) -> bool {
    use libc::*;
    matches!(
        e.raw_os_error(),
        Some(
            ECONNABORTED
                | EPROTO
                | ENETDOWN
                | ENOPROTOOPT
                | EHOSTDOWN
                | ENONET
                | EHOSTUNREACH
                | EOPNOTSUPP
                | ENETUNREACH
                | EPERM
        )
    )
}

fn mark_closing(conn: &mut Conn, key: usize, to_close: &mut Vec<usize>) {
    if !conn.closing {
        conn.closing = true;
        to_close.push(key);
    }
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`).
fn descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    }
}

/// How often stalled connections are looked for.
fn sweep_interval(stall_timeout: Duration) -> Duration {
    (stall_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// A non-blocking listener with `SO_REUSEADDR` and the configured backlog
/// (std and mio fix the backlog themselves, so socket2 builds it).
fn bind(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_room_beyond_the_agencies() {
        let config = |agencies: u16, max: Option<usize>| {
            let env = |k: &str| match k {
                "AGENCIES" => Some(agencies.to_string()),
                "MAX_CONNECTIONS" => max.map(|m| m.to_string()),
                _ => None,
            };
            let ini = "[DEFAULT]\nSERVER_PORT=1\nSERVER_IP=\nSERVER_LISTEN_BACKLOG=1\nLOGGING_LEVEL=INFO\n";
            Config::parse(ini, env, |_| Ok(vec![])).unwrap().0
        };
        assert_eq!(connection_cap(&config(5, None), 20_000), Ok(15_000));
        assert_eq!(connection_cap(&config(5, Some(100)), 20_000), Ok(100));
        assert_eq!(
            connection_cap(&config(5, Some(50_000)), 20_000),
            Ok(15_000),
            "clamped"
        );
        assert_eq!(
            connection_cap(&config(20, Some(16)), 20_000),
            Err("MAX_CONNECTIONS (16) must be above AGENCIES (20): every agency holds a connection while it waits for the draw".into())
        );
        assert!(
            connection_cap(&config(2000, None), 1024)
                .unwrap_err()
                .contains("raise it (ulimit -n)")
        );
        assert_eq!(
            connection_cap(&config(0, Some(16)), 20_000),
            Ok(16),
            "echo only"
        );
    }

    #[test]
    fn accept_errors_about_one_peer_are_retried_at_once() {
        use libc::*;
        let table = [
            (ECONNABORTED, true), // the peer reset before we took it
            (EPROTO, true),
            (ENETDOWN, true),
            (ENETUNREACH, true),
            (EHOSTUNREACH, true),
            (EPERM, true),   // a firewall rule refused it
            (EMFILE, false), // wait for a descriptor
            (ENFILE, false),
            (ENOBUFS, false),
            (ENOMEM, false),
        ];
        for (errno, retry) in table {
            assert_eq!(
                is_retry_now(&io::Error::from_raw_os_error(errno)),
                retry,
                "{}",
                io::Error::from_raw_os_error(errno)
            );
        }
    }
}
