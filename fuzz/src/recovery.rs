//! The `recovery` target: `server::round::read_round` fed arbitrary file
//! contents, as a crash, a full disk or another program may leave them.
//!
//! Input layout:
//!
//! ```text
//! byte 0     AGENCIES of the configuration (mod 8), used when the state file has no header
//! bytes 1-2  u16: how many of the following bytes are the bets file (the rest: the state file)
//! then       the bets file, then the state file
//! ```
//!
//! Checked: no panic (an error is fine, and its text formats); and when the
//! round reads back:
//!
//! - it has a slot per agency, `rows` is the sum of the agencies' bets, each
//!   agency's winners are its bets with the winning number in order, a
//!   finished agency holds exactly the bets it finished with, a delivered one
//!   finished and the draw ran, the torn tails are within their files and the
//!   state file's has no line break;
//! - idempotence: the files cut before their torn tails (what the server
//!   cuts at start-up) read back as the same round with nothing torn;
//! - the state file alone (`state_is_complete`, which never panics either)
//!   says the round is complete exactly when the round says so;
//! - the server resumes from it (`App::resume`) without panicking, and runs
//!   the draw when every agency had finished.

use lottery_protocol::WINNING_NUMBER;
use server::app::App;
use server::round::{Round, read_round, state_is_complete};
use server::storage::{StateLog, Store};

use crate::reader::Reader;

/// The start-up's clock (unix seconds) when the round has no state file.
pub const NOW: u64 = 1_764_460_800;

/// Splits an input into the configuration's agencies, the bets file and the state file.
pub fn split(data: &[u8]) -> (u16, &[u8], &[u8]) {
    let mut input = Reader::new(data);
    let agencies = u16::from(input.u8() % 8);
    let bets_len = usize::from(input.u16());
    let rest = input.rest();
    let (bets, state) = rest.split_at(bets_len.min(rest.len()));
    (agencies, bets, state)
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let (agencies, bets, state) = split(data);
    let complete = state_is_complete(state);
    let round = match read_round(bets, state, agencies, NOW) {
        Ok(round) => round,
        Err(e) => {
            crate::logs::check_line(&format!(
                "action: start | result: fail | error: {}",
                tp0_log::field(&e)
            ));
            return;
        }
    };
    check_round(&round, bets, state);
    assert_eq!(
        complete,
        round.is_complete(),
        "the state file alone and the whole round disagree on whether it is complete"
    );
    let bets = &bets[..bets.len() - round.bets_torn];
    let state = &state[..state.len() - round.state_torn];
    let again = read_round(bets, state, agencies, NOW)
        .unwrap_or_else(|e| panic!("the files cut at their torn tails do not read back: {e}"));
    assert_eq!(
        again,
        Round {
            bets_torn: 0,
            state_torn: 0,
            ..round.clone()
        },
        "the files cut at their torn tails read back as another round"
    );
    resume(round, bets, state);
}

fn check_round(round: &Round, bets: &[u8], state: &[u8]) {
    assert_eq!(round.agency.len(), usize::from(round.agencies) + 1);
    assert!(
        round.agency[0] == Default::default(),
        "agency 0 holds nothing"
    );
    assert!(round.bets_torn <= bets.len() && round.state_torn <= state.len());
    assert!(
        !state[state.len() - round.state_torn..].contains(&b'\n'),
        "the state file's torn tail holds a whole line"
    );
    let sum: u64 = round.agency.iter().map(|a| a.bets.len() as u64).sum();
    assert_eq!(round.rows, sum, "rows and the agencies' bets");
    for (i, a) in round.agency.iter().enumerate() {
        let winners: Vec<u32> = a
            .bets
            .iter()
            .filter(|&&key| key as u32 == WINNING_NUMBER)
            .map(|&key| (key >> 32) as u32)
            .collect();
        assert_eq!(a.winners, winners, "agency {i}'s winners");
        if let Some(n) = a.finished {
            assert_eq!(n, a.bets.len() as u64, "agency {i} finished with its bets");
        }
        if a.delivered {
            assert!(a.finished.is_some() && round.drawn.is_some());
        }
    }
    if let Some(excluded) = &round.drawn {
        assert!(
            excluded.iter().all(|&a| a >= 1 && a <= round.agencies),
            "excluded agencies exist"
        );
    }
}

/// The start-up after reading: the store and state log go on after what was read.
fn resume(round: Round, bets: &[u8], state: &[u8]) {
    let agencies = round.agencies;
    let rows = round.rows;
    let all_finished = round.agency.iter().skip(1).all(|a| a.finished.is_some());
    let store = Store::resume(bets.to_vec(), rows, bets.len() as u64);
    let log = StateLog::new(state.to_vec(), state.len() as u64);
    let app = App::resume(round, store, log).expect("in memory nothing fails");
    assert_eq!(app.lottery.agencies(), agencies);
    assert_eq!(app.store.committed(), rows);
    if agencies > 0 && all_finished {
        assert!(app.lottery.drawn(), "every agency finished: the draw ran");
    }
}
