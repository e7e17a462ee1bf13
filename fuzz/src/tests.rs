//! The targets without a fuzzer: the seeds, and inputs derived from them
//! with a fixed pseudo-random generator (the same every run).

use std::path::Path;
use std::time::Duration;

use lottery_protocol::{FRAME_LEN, HEADER_LEN};
use server::session::Stall;

use crate::net::Net;
use crate::reader::{Reader, Writer};
use crate::seeds::{self, bet_record, bets, stream};
use crate::session::{WINNERS_DELAY, read_bet};
use crate::{recovery, session};

/// The course's captures, when `../shared/wire` is beside the repository.
fn captures() -> Vec<Vec<u8>> {
    let wire = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/wire");
    ["agency-1", "agency-2"]
        .iter()
        .filter_map(|a| std::fs::read(wire.join(format!("{a}.client-to-server.bin"))).ok())
        .collect()
}

fn run(target: &str, data: &[u8]) {
    match target {
        "session" => session::run(data),
        _ => recovery::run(data),
    }
}

#[test]
fn every_seed_passes() {
    let seeds = seeds::all(&captures());
    assert!(seeds.len() >= 18);
    for (target, name, bytes) in &seeds {
        eprintln!("{target}/{name}: {} bytes", bytes.len());
        run(target, bytes);
    }
}

#[test]
fn bet_records_read_back_as_their_bets() {
    for agency in 1..=3 {
        for bet in bets(agency, 12) {
            let mut w = Writer::default();
            bet_record(&mut w, &bet);
            let mut r = Reader::new(&w.0);
            assert_eq!(read_bet(&mut r, 3), bet);
            assert!(r.is_empty());
        }
    }
}

/// The kept-input check reads a partial unit's size through `stalled`; it
/// must see what was kept.
#[test]
fn a_partial_batch_is_seen_by_its_size() {
    let mut net = Net::new(1, WINNERS_DELAY);
    let key = net.connect();
    let s = stream(1, &bets(1, 4), 4);
    net.send(key, &s[..HEADER_LEN + FRAME_LEN + 10]);
    let late = net.now + Duration::from_secs(60);
    let session = &net.conn(key).unwrap().session;
    assert!(matches!(
        session.stalled(late, Duration::ZERO),
        Some(Stall::Partial { unit: "batch", bytes, .. }) if bytes == FRAME_LEN + 10
    ));
}

/// xorshift64*: the same inputs every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few of libFuzzer's mutations: flip, set, insert, delete, cut, splice.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next() as u8,
            2 => data.insert(at, rng.next() as u8),
            3 if at < data.len() => {
                data.remove(at);
            }
            4 => data.truncate(at),
            _ => {
                let from = rng.below(other.len() + 1);
                let n = rng.below(other.len() - from + 1).min(64);
                data.splice(at..at, other[from..from + n].iter().copied());
            }
        }
    }
}

/// The fallback of `cargo fuzz run`: mutated seeds, 4,000 per target.
#[test]
fn mutated_seeds_pass() {
    let seeds = seeds::all(&captures());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for target in ["session", "recovery"] {
        let mine: Vec<&Vec<u8>> = seeds
            .iter()
            .filter(|(t, _, _)| *t == target)
            .map(|(_, _, b)| b)
            .collect();
        for i in 0..4000 {
            let mut data = mine[rng.below(mine.len())].clone();
            let other = mine[rng.below(mine.len())];
            mutate(&mut rng, &mut data, other);
            let result = std::panic::catch_unwind(|| run(target, &data));
            if result.is_err() {
                panic!("{target} input {i} fails: {data:?}");
            }
        }
    }
}

/// Valid mode takes any bytes: random ones are random bets cut at random
/// points, with random reconnections; every one must be stored exactly once.
#[test]
fn random_valid_streams_are_stored_exactly() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for i in 0..1500 {
        let len = 2 + rng.below(1500);
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        data[0] |= 1;
        let result = std::panic::catch_unwind(|| session::run(&data));
        if result.is_err() {
            panic!("valid input {i} fails: {data:?}");
        }
    }
}

/// The inputs that found server bugs, kept as regressions: each must now
/// pass every check of its target.
#[test]
fn the_inputs_that_found_bugs_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("known");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/known") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let target = name.split('-').next().unwrap_or_default().to_owned();
        run(&target, &std::fs::read(&path).expect("a reproducer"));
        seen += 1;
    }
    assert!(seen >= 3, "the reproducers are in {}", dir.display());
}
