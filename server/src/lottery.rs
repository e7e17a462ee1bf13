//! The lottery's state: which agency is connected where, what each has stored,
//! which have finished, and the draw. Sans-IO; connections are named by their
//! slab key.

use std::fmt;

use lottery_protocol::{BetView, WINNING_NUMBER};

#[derive(Debug, Default)]
struct Agency {
    /// The live connection speaking for this agency, if any.
    conn: Option<usize>,
    finished: bool,
    stored: u64,
    /// Documents of the winning bets, in stored order.
    winners: Vec<u32>,
}

/// Why a connection may not speak for an agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    OutOfRange { agency: u16, agencies: u16 },
    AlreadyConnected { agency: u16 },
    AlreadyFinished { agency: u16 },
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::OutOfRange { agency, agencies } => {
                write!(f, "agency {agency} is not between 1 and {agencies}")
            }
            ClaimError::AlreadyConnected { agency } => {
                write!(f, "agency {agency} already has a live connection")
            }
            ClaimError::AlreadyFinished { agency } => {
                write!(f, "agency {agency} already sent its end frame")
            }
        }
    }
}

#[derive(Debug)]
pub struct Lottery {
    /// Indexed by agency number; index 0 is unused.
    agencies: Vec<Agency>,
    finished: usize,
    drawn: bool,
}

impl Lottery {
    /// A lottery for agencies `1..=agencies`.
    pub fn new(agencies: u16) -> Lottery {
        Lottery {
            agencies: (0..=agencies).map(|_| Agency::default()).collect(),
            finished: 0,
            drawn: false,
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

    /// The agencies that have not finished, in number order.
    pub fn pending(&self) -> impl Iterator<Item = u16> + '_ {
        (1..=self.agencies()).filter(|&a| !self.agencies[usize::from(a)].finished)
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

    /// Binds `conn` to `agency` on its header. Fails if the agency does not
    /// exist, is already bound to a live connection, or has finished.
    pub fn claim(&mut self, agency: u16, conn: usize) -> Result<(), ClaimError> {
        let agencies = self.agencies();
        let slot = self
            .agencies
            .get_mut(usize::from(agency))
            .filter(|_| agency != 0)
            .ok_or(ClaimError::OutOfRange { agency, agencies })?;
        if slot.finished {
            return Err(ClaimError::AlreadyFinished { agency });
        }
        if slot.conn.is_some() {
            return Err(ClaimError::AlreadyConnected { agency });
        }
        slot.conn = Some(conn);
        Ok(())
    }

    /// `conn` is closing: it no longer speaks for `agency`.
    pub fn release(&mut self, agency: u16, conn: usize) {
        if let Some(slot) = self.agencies.get_mut(usize::from(agency))
            && slot.conn == Some(conn)
        {
            slot.conn = None;
        }
    }

    /// Counts a stored bet of its agency (the agency was claimed, so it exists).
    pub fn record(&mut self, bet: &BetView<'_>) {
        let slot = &mut self.agencies[usize::from(bet.agency)];
        slot.stored += 1;
        if bet.number == WINNING_NUMBER {
            slot.winners.push(bet.document);
        }
    }

    /// The agency's end batch is durable. Call once per agency. Returns true
    /// when this was the last agency: the draw is due.
    ///
    /// Agencies are `1..=agencies` and finish once each, so every agency has
    /// finished when the draw runs: none can finish after it.
    pub fn finish(&mut self, agency: u16) -> bool {
        let slot = &mut self.agencies[usize::from(agency)];
        debug_assert!(!slot.finished, "agency {agency} finished twice");
        slot.finished = true;
        self.finished += 1;
        self.finished == usize::from(self.agencies())
    }

    /// Runs the draw once every agency has finished; returns the agencies whose
    /// connection is still there to receive its winners, with that connection.
    pub fn draw(&mut self) -> Vec<(u16, usize)> {
        assert!(
            !self.drawn && self.finished == usize::from(self.agencies()),
            "the draw runs once, after every agency finished"
        );
        self.drawn = true;
        (1..=self.agencies())
            .filter_map(|agency| Some((agency, self.agencies[usize::from(agency)].conn?)))
            .collect()
    }

    pub fn drawn(&self) -> bool {
        self.drawn
    }

    /// The agency's winning documents, in stored order.
    pub fn winners(&self, agency: u16) -> &[u32] {
        &self.agencies[usize::from(agency)].winners
    }

    /// Bets stored for the agency.
    pub fn stored(&self, agency: u16) -> u64 {
        self.agencies[usize::from(agency)].stored
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
    fn claims() {
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
        assert_eq!(lottery.claim(2, 10), Ok(()));
        assert_eq!(
            lottery.claim(2, 11),
            Err(ClaimError::AlreadyConnected { agency: 2 })
        );
        lottery.release(2, 11); // not the owner: no effect
        assert_eq!(
            lottery.claim(2, 12),
            Err(ClaimError::AlreadyConnected { agency: 2 })
        );
        lottery.release(2, 10);
        assert_eq!(
            lottery.claim(2, 12),
            Ok(()),
            "an unfinished agency may reconnect"
        );
        assert!(!lottery.finish(2));
        lottery.release(2, 12);
        assert_eq!(
            lottery.claim(2, 13),
            Err(ClaimError::AlreadyFinished { agency: 2 })
        );
        assert_eq!(
            Lottery::new(0).claim(1, 1),
            Err(ClaimError::OutOfRange {
                agency: 1,
                agencies: 0
            })
        );
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
        assert!(!lottery.finish(1));
        assert!(!lottery.finish(3));
        lottery.release(3, 300); // agency 3 finished, then its connection dropped
        assert!(!lottery.drawn());
        assert!(lottery.finish(2));
        assert_eq!(lottery.draw(), vec![(1, 100), (2, 200)]);
        assert!(lottery.drawn());
        assert_eq!(lottery.winners(1), [11, 13]);
        assert_eq!(lottery.winners(2), [] as [u32; 0]);
        assert_eq!(lottery.winners(3), [31]);
        assert_eq!(
            (lottery.stored(1), lottery.stored(2), lottery.stored(3)),
            (3, 1, 1)
        );
    }
}
