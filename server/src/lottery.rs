//! The lottery's state: which agency is connected where, what each has stored,
//! which have finished, and the draw. Sans-IO; connections are named by their
//! slab key. A round read back after a restart ([`crate::round::Round`])
//! becomes the same state ([`Lottery::resume`]).

use std::fmt;

use lottery_protocol::{BetView, WINNING_NUMBER};

use crate::round::Round;

#[derive(Debug, Default)]
struct Agency {
    /// The live connection speaking for this agency, if any.
    conn: Option<usize>,
    /// `(document << 32) | number` of every stored bet, in stored order: a
    /// reconnecting agency's resent bets are checked against it.
    bets: Vec<u64>,
    /// Documents of the winning bets, in stored order.
    winners: Vec<u32>,
    /// Bets acknowledged by its end ack, once its end batch is durable.
    finished: Option<u64>,
    /// Its winners were written to it.
    delivered: bool,
}

/// A stored bet as [`Lottery::stored_bets`] keeps it.
pub fn bet_key(document: u32, number: u32) -> u64 {
    u64::from(document) << 32 | u64::from(number)
}

/// Why a connection may not speak for an agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    OutOfRange {
        agency: u16,
        agencies: u16,
    },
    /// The draw ran at its deadline without this agency.
    Excluded {
        agency: u16,
    },
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::OutOfRange {
                agency,
                agencies: 0,
            } => write!(
                f,
                "agency {agency} cannot take part: this server takes no bets (AGENCIES is 0, echo only)"
            ),
            ClaimError::OutOfRange { agency, agencies } => {
                write!(f, "agency {agency} is not between 1 and {agencies}")
            }
            ClaimError::Excluded { agency } => write!(
                f,
                "the draw ran at its deadline without agency {agency}; nothing more is stored for it"
            ),
        }
    }
}

/// What an agency's end did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// It finished now; `draw_due` when it was the last one.
    Now { draw_due: bool },
    /// It had finished before (a reconnection resent its whole stream).
    Again,
}

#[derive(Debug)]
pub struct Lottery {
    /// Indexed by agency number; index 0 is unused.
    agencies: Vec<Agency>,
    finished: usize,
    /// The draw ran, without these agencies.
    drawn: Option<Vec<u16>>,
}

impl Lottery {
    /// A lottery for agencies `1..=agencies`.
    pub fn new(agencies: u16) -> Lottery {
        Lottery {
            agencies: (0..=agencies).map(|_| Agency::default()).collect(),
            finished: 0,
            drawn: None,
        }
    }

    /// The state of a round read back from its files.
    pub fn resume(round: Round) -> Lottery {
        let agencies: Vec<Agency> = round
            .agency
            .into_iter()
            .map(|a| Agency {
                conn: None,
                bets: a.bets,
                winners: a.winners,
                finished: a.finished,
                delivered: a.delivered,
            })
            .collect();
        Lottery {
            finished: agencies.iter().filter(|a| a.finished.is_some()).count(),
            agencies,
            drawn: round.drawn,
        }
    }

    /// The agencies the draw waits for, numbered `1..=agencies()`.
    pub fn agencies(&self) -> u16 {
        (self.agencies.len() - 1) as u16
    }

    /// Agencies whose end batch is durable.
    pub fn finished(&self) -> usize {
        self.finished
    }

    /// Has this agency's end batch been durable, in this run or before?
    pub fn is_finished(&self, agency: u16) -> bool {
        self.agencies[usize::from(agency)].finished.is_some()
    }

    /// The agencies that have not finished, in number order.
    pub fn pending(&self) -> impl Iterator<Item = u16> + '_ {
        (1..=self.agencies()).filter(|&a| self.agencies[usize::from(a)].finished.is_none())
    }

    /// The pending agencies for a log line: `2,5`, or the first `max` and how
    /// many more (`1,2,3 (+997 more)`), or `none`.
    pub fn pending_summary(&self, max: usize) -> String {
        let total = usize::from(self.agencies()) - self.finished;
        let shown: Vec<String> = self.pending().take(max).map(|a| a.to_string()).collect();
        match total {
            0 => "none".to_owned(),
            n if n > max => format!("{} (+{} more)", shown.join(","), n - max),
            _ => shown.join(","),
        }
    }

    /// Binds `conn` to `agency` on its header. A live older connection is taken
    /// over: its key is returned for the caller to close (a restarted agency is
    /// never locked out by its own dead connection). Fails if the agency does
    /// not exist, or the draw ran at its deadline without it.
    pub fn claim(&mut self, agency: u16, conn: usize) -> Result<Option<usize>, ClaimError> {
        let agencies = self.agencies();
        if self
            .drawn
            .as_ref()
            .is_some_and(|excluded| excluded.contains(&agency))
        {
            return Err(ClaimError::Excluded { agency });
        }
        let slot = self
            .agencies
            .get_mut(usize::from(agency))
            .filter(|_| agency != 0)
            .ok_or(ClaimError::OutOfRange { agency, agencies })?;
        Ok(slot.conn.replace(conn).filter(|&old| old != conn))
    }

    /// `conn` is closing: it no longer speaks for `agency`.
    pub fn release(&mut self, agency: u16, conn: usize) {
        if let Some(slot) = self.agencies.get_mut(usize::from(agency))
            && slot.conn == Some(conn)
        {
            slot.conn = None;
        }
    }

    /// The agency's stored bets, as [`bet_key`]s in stored order.
    pub fn stored_bets(&self, agency: u16) -> &[u64] {
        &self.agencies[usize::from(agency)].bets
    }

    /// Counts a stored bet of its agency (the agency was claimed, so it exists).
    pub fn record(&mut self, bet: &BetView<'_>) {
        let slot = &mut self.agencies[usize::from(bet.agency)];
        slot.bets.push(bet_key(bet.document, bet.number));
        if bet.number == WINNING_NUMBER {
            slot.winners.push(bet.document);
        }
    }

    /// The agency's end batch is durable. Finishing twice (a reconnection that
    /// resent its whole stream) changes nothing.
    pub fn finish(&mut self, agency: u16) -> Finish {
        let slot = &mut self.agencies[usize::from(agency)];
        if slot.finished.is_some() {
            return Finish::Again;
        }
        slot.finished = Some(slot.bets.len() as u64);
        self.finished += 1;
        Finish::Now {
            draw_due: self.drawn.is_none() && self.finished == usize::from(self.agencies()),
        }
    }

    /// Runs the draw, without the `excluded` agencies (those a deadline cut;
    /// empty when every agency finished). Returns the finished agencies whose
    /// connection is still there to receive its winners, with that connection.
    pub fn draw(&mut self, excluded: Vec<u16>) -> Vec<(u16, usize)> {
        assert!(self.drawn.is_none(), "the draw runs once");
        debug_assert!(excluded.iter().all(|&a| !self.is_finished(a)));
        self.drawn = Some(excluded);
        (1..=self.agencies())
            .filter(|&a| self.is_finished(a))
            .filter_map(|a| Some((a, self.agencies[usize::from(a)].conn?)))
            .collect()
    }

    pub fn drawn(&self) -> bool {
        self.drawn.is_some()
    }

    /// The agency's winning documents, in stored order.
    pub fn winners(&self, agency: u16) -> &[u32] {
        &self.agencies[usize::from(agency)].winners
    }

    /// Bets stored for the agency.
    pub fn stored(&self, agency: u16) -> u64 {
        self.agencies[usize::from(agency)].bets.len() as u64
    }

    /// Bets recorded when the agency finished.
    pub fn finished_with(&self, agency: u16) -> Option<u64> {
        self.agencies[usize::from(agency)].finished
    }

    /// The agency's winners were written to it; true the first time.
    pub fn deliver(&mut self, agency: u16) -> bool {
        !std::mem::replace(&mut self.agencies[usize::from(agency)].delivered, true)
    }

    /// The live connection of an agency, if any.
    pub fn connection(&self, agency: u16) -> Option<usize> {
        self.agencies.get(usize::from(agency))?.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lottery_protocol::Bet;

    fn store(lottery: &mut Lottery, agency: u16, document: u32, number: u32) {
        let bet = Bet::new(agency, "A", "B", document, "2000-01-01", number).unwrap();
        lottery.record(&bet.view());
    }

    #[test]
    fn claims_and_takeovers() {
        let mut lottery = Lottery::new(3);
        assert_eq!(
            lottery.claim(0, 1),
            Err(ClaimError::OutOfRange {
                agency: 0,
                agencies: 3
            })
        );
        assert_eq!(
            lottery.claim(4, 1),
            Err(ClaimError::OutOfRange {
                agency: 4,
                agencies: 3
            })
        );
        assert_eq!(lottery.claim(2, 10), Ok(None));
        assert_eq!(lottery.claim(2, 11), Ok(Some(10)), "the newer takes over");
        lottery.release(2, 10); // the old one closing: no effect
        assert_eq!(lottery.connection(2), Some(11));
        lottery.release(2, 11);
        assert_eq!(lottery.connection(2), None);
        assert_eq!(lottery.finish(2), Finish::Now { draw_due: false });
        assert_eq!(
            lottery.claim(2, 13),
            Ok(None),
            "a finished agency may come back"
        );
        assert_eq!(lottery.finish(2), Finish::Again);
        assert_eq!(lottery.finished(), 1);
        assert_eq!(
            Lottery::new(0).claim(1, 1).unwrap_err().to_string(),
            "agency 1 cannot take part: this server takes no bets (AGENCIES is 0, echo only)"
        );
    }

    #[test]
    fn the_draw_waits_for_every_agency_and_finds_each_ones_winners() {
        let mut lottery = Lottery::new(3);
        for agency in 1..=3 {
            lottery.claim(agency, usize::from(agency) * 100).unwrap();
        }
        store(&mut lottery, 1, 11, WINNING_NUMBER);
        store(&mut lottery, 1, 12, 1);
        store(&mut lottery, 1, 13, WINNING_NUMBER);
        store(&mut lottery, 2, 21, 7575);
        store(&mut lottery, 3, 31, WINNING_NUMBER);
        assert_eq!(lottery.finish(1), Finish::Now { draw_due: false });
        assert_eq!(lottery.finish(3), Finish::Now { draw_due: false });
        lottery.release(3, 300); // agency 3 finished, then its connection dropped
        assert!(!lottery.drawn());
        assert_eq!(lottery.finish(2), Finish::Now { draw_due: true });
        assert_eq!(lottery.draw(vec![]), vec![(1, 100), (2, 200)]);
        assert!(lottery.drawn());
        assert_eq!(lottery.winners(1), [11, 13]);
        assert_eq!(lottery.winners(2), [] as [u32; 0]);
        assert_eq!(lottery.winners(3), [31]);
        assert_eq!(
            lottery.stored_bets(1),
            [
                bet_key(11, WINNING_NUMBER),
                bet_key(12, 1),
                bet_key(13, WINNING_NUMBER)
            ]
        );
        assert_eq!(lottery.finished_with(1), Some(3));
        assert!(lottery.deliver(1) && !lottery.deliver(1));
    }

    #[test]
    fn a_deadline_draw_excludes_the_unfinished() {
        let mut lottery = Lottery::new(3);
        lottery.claim(1, 1).unwrap();
        lottery.claim(2, 2).unwrap();
        lottery.finish(1);
        assert_eq!(lottery.draw(vec![2, 3]), vec![(1, 1)]);
        assert_eq!(lottery.claim(2, 5), Err(ClaimError::Excluded { agency: 2 }));
        assert_eq!(
            lottery.claim(3, 5).unwrap_err().to_string(),
            "the draw ran at its deadline without agency 3; nothing more is stored for it"
        );
        assert_eq!(lottery.claim(1, 6), Ok(Some(1)));
    }

    #[test]
    fn pending_agencies_are_summarised_for_the_log() {
        let mut lottery = Lottery::new(14);
        for agency in [1, 3, 4] {
            lottery.finish(agency);
        }
        assert_eq!(lottery.pending_summary(20), "2,5,6,7,8,9,10,11,12,13,14");
        assert_eq!(lottery.pending_summary(3), "2,5,6 (+8 more)");
        let mut one = Lottery::new(1);
        assert_eq!(one.pending_summary(3), "1");
        one.finish(1);
        assert_eq!(one.pending_summary(3), "none");
    }

    #[test]
    fn a_resumed_round_is_the_same_lottery() {
        let bets = "1,A,B,11,2000-01-01,7574\n2,A,B,21,2000-01-01,1\n";
        let state = "round 1 agencies 2 started 5\nfinished 1 1\n";
        let round = crate::round::read_round(bets.as_bytes(), state.as_bytes(), 2, 0).unwrap();
        let mut lottery = Lottery::resume(round);
        assert_eq!(lottery.finished(), 1);
        assert!(lottery.is_finished(1) && !lottery.is_finished(2));
        assert_eq!(lottery.winners(1), [11]);
        assert_eq!(lottery.stored(2), 1);
        assert_eq!(lottery.finish(2), Finish::Now { draw_due: true });
    }
}
