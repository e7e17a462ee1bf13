//! When to reconnect after a lost connection, sans-IO: the backoff schedule
//! and the budget of time without a connection, on a clock the caller passes
//! in (as [`crate::agency`] does for `loop.period`). The caller does the
//! waiting and the connecting ([`crate::link`]) and tells the policy what
//! happened.
//!
//! - **Schedule.** The first attempt after a loss waits [`FIRST_DELAY`]
//!   (50 ms); each further attempt waits twice the previous delay, up to
//!   [`MAX_DELAY`] (1 s): 50 ms, 100 ms, 200 ms, 400 ms, 800 ms, 1 s, 1 s, …
//! - **Budget.** `server.reconnectTimeout` bounds the time spent *without a
//!   connection* since the conversation last made progress (a batch, or the
//!   end, acknowledged for the first time). Time connected does not count
//!   (re-sending a long stream, waiting for the draw), and progress gives the
//!   whole budget and the first delay back. A connection that comes back
//!   but makes no progress does not: a server that closes right after the end
//!   ack again and again spends the budget, and the delays keep growing.
//! - **The last wait** is cut to what is left of the budget, so the client
//!   gives up at the budget's end, not one delay before it; each attempt is
//!   bounded by `server.connectTimeout` and by what is left of the budget
//!   ([`Reconnect::attempt_bound`]).
//!
//! A zero budget disables reconnecting ([`Reconnect::enabled`]).

use std::time::{Duration, Instant};

/// The wait before the first attempt after a loss or after progress.
pub const FIRST_DELAY: Duration = Duration::from_millis(50);
/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// Connections the server closes at the same place in the stream, with no
/// progress between, before the client takes it for a refusal (a resent bet
/// the server holds otherwise, an agency the draw's deadline left out, a
/// server full of agencies) and gives up at once.
pub const REFUSALS: u32 = 5;

/// What to do after a loss or a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait `delay`, then make attempt number `attempt` (counted from 1 since
    /// the conversation last made progress).
    Attempt { attempt: u32, delay: Duration },
    /// The budget is spent: give up after `attempts` attempts.
    GiveUp { attempts: u32 },
}

/// The reconnect policy of one conversation.
#[derive(Debug, Clone)]
pub struct Reconnect {
    budget: Duration,
    /// Time without a connection in earlier outages since the last progress.
    used: Duration,
    /// When the current outage began; `None` while connected.
    down_since: Option<Instant>,
    /// Attempts since the last progress.
    attempts: u32,
    /// The wait before the next attempt.
    delay: Duration,
    /// Where the server last closed an established connection, and how many
    /// times in a row it closed there.
    closed_at: Option<((usize, bool), u32)>,
}

impl Reconnect {
    /// A policy that allows `budget` without a connection (zero: never reconnect).
    pub fn new(budget: Duration) -> Reconnect {
        Reconnect {
            budget,
            used: Duration::ZERO,
            down_since: None,
            attempts: 0,
            delay: FIRST_DELAY,
            closed_at: None,
        }
    }

    /// An established connection was closed by the server at `position` (the
    /// replies it had sent on it, see [`crate::agency::Agency::position`]).
    /// True when that is the [`REFUSALS`]th close in a row at the same place
    /// with no progress: a refusal, not a lost connection, and retrying
    /// will not change it. A close while waiting for the draw (after the end
    /// ack) is never a refusal: a server restarted again and again closes
    /// there too, and the budget decides.
    pub fn closed_at(&mut self, position: (usize, bool)) -> bool {
        if position.1 {
            self.closed_at = None;
            return false;
        }
        let times = match self.closed_at {
            Some((at, n)) if at == position => n + 1,
            _ => 1,
        };
        self.closed_at = Some((position, times));
        times >= REFUSALS
    }

    /// Whether a lost connection is worth a new one at all.
    pub fn enabled(&self) -> bool {
        !self.budget.is_zero()
    }

    /// The connection was lost at `now`: the outage's clock starts (it keeps
    /// running if it already was).
    pub fn lost(&mut self, now: Instant) {
        self.down_since.get_or_insert(now);
    }

    /// Called after [`Reconnect::lost`] or a failed attempt: what to do at
    /// `now`. Counts the attempt it allows and doubles the next delay.
    pub fn next(&mut self, now: Instant) -> Next {
        let remaining = self.remaining(now);
        if remaining.is_zero() {
            return Next::GiveUp {
                attempts: self.attempts,
            };
        }
        let delay = self.delay.min(remaining);
        self.attempts += 1;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        Next::Attempt {
            attempt: self.attempts,
            delay,
        }
    }

    /// How long an attempt starting at `now` may take: `connect_timeout`, cut
    /// to what is left of the budget.
    pub fn attempt_bound(&self, now: Instant, connect_timeout: Duration) -> Duration {
        connect_timeout.min(self.remaining(now))
    }

    /// A connection is up again at `now`: the outage's time is spent from the
    /// budget; the attempt count and the delay go on (only progress resets them).
    pub fn connected(&mut self, now: Instant) {
        if let Some(since) = self.down_since.take() {
            self.used += now.saturating_duration_since(since);
        }
    }

    /// The conversation made progress (something acknowledged for the first
    /// time): the whole budget and the first delay are back.
    pub fn progress(&mut self) {
        self.used = Duration::ZERO;
        self.attempts = 0;
        self.delay = FIRST_DELAY;
        self.closed_at = None;
    }

    /// The budget left at `now`.
    fn remaining(&self, now: Instant) -> Duration {
        let outage = self
            .down_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        self.budget.saturating_sub(self.used + outage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Plays attempts that fail at once on a fake clock: each waits its delay
    /// and fails; returns the delays until the policy gives up, and when.
    fn fail_until_give_up(policy: &mut Reconnect, mut now: Instant) -> (Vec<Duration>, Instant) {
        let mut delays = Vec::new();
        loop {
            match policy.next(now) {
                Next::Attempt { attempt, delay } => {
                    assert_eq!(attempt as usize, delays.len() + 1);
                    delays.push(delay);
                    now += delay;
                }
                Next::GiveUp { attempts } => {
                    assert_eq!(attempts as usize, delays.len());
                    return (delays, now);
                }
            }
        }
    }

    #[test]
    fn the_schedule_doubles_to_a_second_and_the_last_wait_ends_at_the_budget() {
        let t0 = Instant::now();
        let mut policy = Reconnect::new(Duration::from_secs(5));
        assert!(policy.enabled());
        policy.lost(t0);
        let (delays, gave_up_at) = fail_until_give_up(&mut policy, t0);
        assert_eq!(
            delays,
            [50, 100, 200, 400, 800, 1000, 1000, 1000, 450].map(ms),
            "the last wait is cut to what is left"
        );
        assert_eq!(gave_up_at, t0 + Duration::from_secs(5));
    }

    #[test]
    fn a_zero_budget_disables_reconnecting() {
        let t0 = Instant::now();
        let mut policy = Reconnect::new(Duration::ZERO);
        assert!(!policy.enabled());
        policy.lost(t0);
        assert_eq!(policy.next(t0), Next::GiveUp { attempts: 0 });
    }

    /// An attempt is bounded by the connect timeout and by what is left; time
    /// spent in attempts counts like time spent waiting.
    #[test]
    fn attempts_are_bounded_by_the_connect_timeout_and_the_budget() {
        let t0 = Instant::now();
        let mut policy = Reconnect::new(Duration::from_secs(3));
        policy.lost(t0);
        assert_eq!(
            policy.next(t0),
            Next::Attempt {
                attempt: 1,
                delay: ms(50)
            }
        );
        let t1 = t0 + ms(50);
        assert_eq!(policy.attempt_bound(t1, Duration::from_secs(1)), ms(1000));
        assert_eq!(policy.attempt_bound(t1, Duration::from_secs(10)), ms(2950));
        // The attempt hangs for its whole second (a SYN nobody answers).
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            policy.next(t2),
            Next::Attempt {
                attempt: 2,
                delay: ms(100)
            }
        );
        assert_eq!(
            policy.attempt_bound(t2 + ms(100), Duration::from_secs(10)),
            ms(1850)
        );
    }

    /// Time connected does not count; time down adds up over outages until
    /// progress gives the budget back.
    #[test]
    fn only_time_without_a_connection_counts_until_progress() {
        let t0 = Instant::now();
        let mut policy = Reconnect::new(Duration::from_secs(2));
        // Outage 1: 1.5 s down (the attempts in it fail), then connected.
        policy.lost(t0);
        let mut now = t0;
        while now < t0 + ms(1500) {
            let Next::Attempt { delay, .. } = policy.next(now) else {
                panic!("gave up early");
            };
            now += delay;
        }
        assert_eq!(now, t0 + ms(1550), "50+100+200+400+800");
        policy.connected(now);
        // Connected for a minute without progress (a long resend, the draw).
        now += Duration::from_secs(60);
        // Outage 2: 0.45 s of budget left, and the delays go on from 1 s.
        policy.lost(now);
        assert_eq!(
            policy.next(now),
            Next::Attempt {
                attempt: 6,
                delay: ms(450)
            }
        );
        now += ms(450);
        assert_eq!(policy.next(now), Next::GiveUp { attempts: 6 });

        // With progress during the connection, outage 2 starts afresh.
        let mut policy = Reconnect::new(Duration::from_secs(2));
        policy.lost(t0);
        for _ in 0..5 {
            policy.next(t0);
        }
        policy.connected(t0 + ms(1550));
        policy.progress();
        let later = t0 + Duration::from_secs(60);
        policy.lost(later);
        let (delays, gave_up_at) = fail_until_give_up(&mut policy, later);
        assert_eq!(delays, [50, 100, 200, 400, 800, 450].map(ms));
        assert_eq!(gave_up_at, later + Duration::from_secs(2));
    }

    /// A server that accepts, re-acks everything and closes after the end ack,
    /// again and again: each round is quick, but the connections make no
    /// progress, so the downtime adds up and the client gives up.
    #[test]
    fn connections_without_progress_do_not_renew_the_budget() {
        let t0 = Instant::now();
        let budget = Duration::from_secs(3);
        let mut policy = Reconnect::new(budget);
        let mut now = t0;
        let mut down = Duration::ZERO;
        let mut rounds = 0;
        loop {
            policy.lost(now);
            match policy.next(now) {
                Next::Attempt { delay, .. } => {
                    now += delay;
                    down += delay;
                    policy.connected(now); // the connect succeeds...
                    now += ms(20); // ...and the server closes after the end ack
                    rounds += 1;
                    assert!(rounds < 100, "never gives up");
                }
                Next::GiveUp { attempts } => {
                    assert_eq!(attempts, rounds);
                    break;
                }
            }
        }
        assert_eq!(down, budget, "the downtime is the budget");
        assert_eq!(rounds, 7, "50+100+200+400+800+1000+450 ms of waits");
        assert_eq!(now, t0 + budget + rounds * ms(20));
    }

    #[test]
    fn the_same_close_three_times_is_a_refusal() {
        let mut policy = Reconnect::new(ms(30_000));
        for _ in 1..REFUSALS {
            assert!(!policy.closed_at((4, false)));
        }
        assert!(
            policy.closed_at((4, false)),
            "five in a row at the same place"
        );
        for _ in 0..10 {
            assert!(
                !policy.closed_at((7, true)),
                "waiting for the draw: the budget decides"
            );
        }
        let mut policy = Reconnect::new(ms(30_000));
        assert!(!policy.closed_at((4, false)));
        assert!(
            !policy.closed_at((9, false)),
            "a server crash lands elsewhere"
        );
        assert!(!policy.closed_at((4, false)));
        policy.progress();
        assert!(!policy.closed_at((4, false)));
        assert!(
            !policy.closed_at((4, false)),
            "progress starts the count again"
        );
    }
}
