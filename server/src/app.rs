//! What every session shares, and the end-of-turn phase that commits it:
//! the lottery, the bets file and the round's state file. Sans-IO apart from
//! the storage it is given (a `Vec<u8>` in tests).

use std::time::Instant;

use log::{info, warn};

use crate::lottery::{Finish, Lottery};
use crate::round::{Entry, Round};
use crate::session::Session;
use crate::storage::{Durable, StateLog, StorageError, Store};

/// Access to sessions by key, for the end-of-turn release of acks and winners.
pub trait Sessions {
    fn session(&mut self, key: usize) -> Option<&mut Session>;
}

/// What a session needs from the rest of the server.
pub struct App<W: Durable> {
    pub lottery: Lottery,
    pub store: Store<W>,
    pub state: StateLog<W>,
    /// Older connections that a newer one for the same agency took over,
    /// with that agency, for the loop to close.
    pub evicted: Vec<(usize, u16)>,
    /// Unix seconds the round started (from its state file when resumed).
    pub started: u64,
}

impl<W: Durable> App<W> {
    /// A new round for `agencies` (its state file's header already written).
    pub fn new(agencies: u16, store: Store<W>, state: StateLog<W>) -> App<W> {
        App {
            lottery: Lottery::new(agencies),
            store,
            state,
            evicted: Vec::new(),
            started: 0,
        }
    }

    /// A round read back from its files, going on where it stopped. A draw
    /// that was due (every agency finished) but not recorded runs now.
    pub fn resume(
        round: Round,
        store: Store<W>,
        state: StateLog<W>,
    ) -> Result<App<W>, StorageError> {
        let started = round.started;
        let mut app = App {
            lottery: Lottery::resume(round),
            store,
            state,
            evicted: Vec::new(),
            started,
        };
        if !app.lottery.drawn()
            && app.lottery.agencies() > 0
            && app.lottery.finished() == usize::from(app.lottery.agencies())
        {
            app.state.append(&Entry::Drawn { excluded: vec![] });
            app.state.sync()?;
            app.lottery.draw(vec![]);
            info!(
                "action: sorteo | result: success | cant_apuestas: {} | resumed: true",
                app.store.committed()
            );
        }
        Ok(app)
    }

    /// Once per loop turn, after every readable socket was drained: syncs the
    /// bets, records the agencies whose end batch was among them (and the
    /// draw, when the last one finished) in the state file and syncs it, and
    /// only then releases the held acks of the sessions in `committed`
    /// (drained). Then runs the draw if due and queues winners: for every
    /// waiting agency at the draw, and for an agency that ends again after
    /// the draw (a reconnection). Winners leave once their delay allows (see
    /// [`Session::poll_timeout`]). Keys of sessions that got output or a
    /// timer are pushed to `ready`.
    ///
    /// An `Err` is a storage failure: nothing was acked, and the server stops.
    pub fn end_turn(
        &mut self,
        committed: &mut Vec<usize>,
        sessions: &mut impl Sessions,
        ready: &mut Vec<usize>,
        now: Instant,
    ) -> Result<(), StorageError> {
        if self.store.uncommitted() > 0 {
            self.store.commit()?;
        }
        let mut draw_due = false;
        for &key in committed.iter() {
            let Some(agency) = sessions.session(key).and_then(|s| s.ending_agency()) else {
                continue;
            };
            if let Finish::Now { draw_due: last } = self.lottery.finish(agency) {
                draw_due |= last;
                let bets = self.lottery.stored(agency);
                self.state.append(&Entry::Finished { agency, bets });
                info!(
                    "action: agency_finished | result: success | agencia: {agency} | cantidad: {bets} | agencies_finished: {}/{}",
                    self.lottery.finished(),
                    self.lottery.agencies()
                );
            }
        }
        if draw_due {
            self.state.append(&Entry::Drawn { excluded: vec![] });
        }
        // The record of what the acks below acknowledge is durable first.
        self.state.sync()?;
        let drawn_before = self.lottery.drawn();
        for key in committed.drain(..) {
            let Some(session) = sessions.session(key) else {
                continue;
            };
            if let Some(agency) = session.release_acks()
                && drawn_before
            {
                session.send_winners(self.lottery.winners(agency), now);
            }
            ready.push(key);
        }
        if draw_due {
            self.draw(vec![], sessions, ready, now);
        }
        Ok(())
    }

    /// Runs the draw without `excluded`, and queues the winners of every
    /// finished agency whose connection waits for them.
    fn draw(
        &mut self,
        excluded: Vec<u16>,
        sessions: &mut impl Sessions,
        ready: &mut Vec<usize>,
        now: Instant,
    ) {
        let list: Vec<String> = excluded.iter().map(u16::to_string).collect();
        let waiting = self.lottery.draw(excluded);
        if list.is_empty() {
            info!(
                "action: sorteo | result: success | cant_apuestas: {}",
                self.store.committed()
            );
        } else {
            warn!(
                "action: sorteo | result: success | cant_apuestas: {} | excluded: {} | reason: the draw deadline passed before they finished",
                self.store.committed(),
                list.join(",")
            );
        }
        for (agency, key) in waiting {
            if let Some(session) = sessions.session(key) {
                session.send_winners(self.lottery.winners(agency), now);
                ready.push(key);
            }
        }
    }

    /// The draw deadline passed: the draw runs with the agencies that
    /// finished, recorded first. Returns the live connections of the agencies
    /// it left out, for the loop to close with the reason. A no-op once drawn.
    pub fn deadline_draw(
        &mut self,
        sessions: &mut impl Sessions,
        ready: &mut Vec<usize>,
        now: Instant,
    ) -> Result<Vec<(usize, u16)>, StorageError> {
        if self.lottery.drawn() || self.lottery.agencies() == 0 {
            return Ok(Vec::new());
        }
        let excluded: Vec<u16> = self.lottery.pending().collect();
        let cut: Vec<(usize, u16)> = excluded
            .iter()
            .filter_map(|&a| Some((self.lottery.connection(a)?, a)))
            .collect();
        self.state.append(&Entry::Drawn {
            excluded: excluded.clone(),
        });
        self.state.sync()?;
        self.draw(excluded, sessions, ready, now);
        Ok(cut)
    }

    /// An agency's winners were all written: recorded (synced with the next
    /// turn's commit; no ack depends on it), so that the next start knows
    /// whether every agency got its winners.
    pub fn delivered(&mut self, agency: u16) {
        if self.lottery.deliver(agency) {
            self.state.append(&Entry::Delivered { agency });
        }
    }
}
