//! Seed inputs for both targets, generated (none is committed): valid streams
//! and conversations in the targets' input layouts, the course's captures
//! (`../shared/wire`, when given) wrapped in them, and round files written by
//! the server itself through the in-memory loop. `examples/seeds.rs` writes
//! them where `cargo fuzz run` reads them; the unit tests run them all.

use lottery_protocol::{
    Bet, FRAME_LEN, HEADER_LEN, Header, MAX_BETS_PER_BATCH, WINNING_NUMBER, decode_bet,
    encode_stream,
};

use crate::net::Net;
use crate::reader::Writer;
use crate::session::{MAX_OPS, Op, WINNERS_DELAY, kind};

/// A named seed.
pub type Seed = (String, Vec<u8>);

/// Writes a bet as the record `session::read_bet` reads back, for a round
/// of `agencies` (1 to 3, the bet's agency among them).
pub fn bet_record(w: &mut Writer, bet: &Bet) {
    let winner = if bet.number == WINNING_NUMBER {
        0x80
    } else {
        0
    };
    let date = bet.birthdate.as_str();
    let part = |range: std::ops::Range<usize>| date[range].parse::<u16>().expect("digits");
    w.u8(winner | (bet.agency - 1) as u8)
        .u32(bet.document)
        .u32(bet.number)
        .u16(part(0..4) - 1)
        .u8(part(5..7) as u8 - 1)
        .u8(part(8..10) as u8 - 1);
    for name in [&bet.first_name, &bet.last_name] {
        w.u8(name.len() as u8 - 1).bytes(name.as_bytes());
    }
}

/// Synthetic bets of one agency: accents, CSV quoting, a winner every 4th.
pub fn bets(agency: u16, count: u32) -> Vec<Bet> {
    let names = [
        ("Ana", "Gómez"),
        ("Pérez, Jr.", "O'Brien"),
        ("\"Quoted\"", "Ñandú"),
        ("Line\nBreak", "Spaces  "),
        ("abcdefghijklmnopqrstuvwxyzabcd", "é"),
    ];
    let dates = ["1990-01-31", "2000-02-29", "0001-01-01", "9999-12-31"];
    (0..count)
        .map(|i| {
            let (first, last) = names[i as usize % names.len()];
            let number = if i % 4 == 3 { WINNING_NUMBER } else { i };
            let date = dates[i as usize % dates.len()];
            Bet::new(
                agency,
                first,
                last,
                u32::from(agency) * 1000 + i,
                date,
                number,
            )
            .expect("a valid bet")
        })
        .collect()
}

/// An agency's whole stream, `per_batch` bets per batch.
pub fn stream(agency: u16, bets: &[Bet], per_batch: usize) -> Vec<u8> {
    let frames: Vec<[u8; FRAME_LEN]> = bets.iter().map(|b| b.view().encode()).collect();
    let mut out = Vec::new();
    encode_stream(Header::new(per_batch, agency), &frames, &mut out);
    out
}

/// A session input: config byte, ops, then what follows them.
pub fn session_input(config: u8, ops: &[Op], rest: &[u8]) -> Vec<u8> {
    assert!(ops.len() <= usize::from(MAX_OPS));
    let mut w = Writer::default();
    w.u8(config).u8(ops.len() as u8);
    for op in ops {
        w.bytes(&op.encode());
    }
    w.bytes(rest);
    w.0
}

/// Raw mode for `agencies`.
fn raw_config(agencies: u8) -> u8 {
    agencies << 1
}

/// Valid mode for `agencies` (1 to 3).
fn valid_config(agencies: u8) -> u8 {
    1 | (agencies - 1) << 1
}

fn op(kind: u8, slot: u8, arg: usize) -> Op {
    Op {
        kind,
        slot,
        arg: u16::try_from(arg).expect("an argument that fits"),
    }
}

/// Ops that send `stream` to `slot` as a stop-and-wait client does: the
/// header and each batch, each followed by the end of a turn.
fn stop_and_wait(stream: &[u8], slot: u8) -> Vec<Op> {
    let header = Header::decode(*stream.first_chunk::<HEADER_LEN>().expect("a header"))
        .expect("a valid header");
    let mut ops = vec![op(kind::SEND, slot, HEADER_LEN)];
    let mut left = stream.len() - HEADER_LEN;
    while left > 0 {
        let n = left.min(usize::from(header.batch_len));
        ops.push(op(kind::SEND, slot, n));
        ops.push(op(kind::END_TURN, slot, 0));
        left -= n;
    }
    ops
}

/// Valid-mode records for `bets` of `agencies`, with `per_batch` for each.
fn valid_body(per_batch: &[usize], bets: &[Bet]) -> Vec<u8> {
    let mut w = Writer::default();
    for &n in per_batch {
        w.u8((n - 1) as u8);
    }
    for bet in bets {
        bet_record(&mut w, bet);
    }
    w.0
}

/// Seeds of the `session` target. `captures` are client-to-server captures
/// (each a whole stream of agency 1 or 2), if the course's are there.
pub fn session_seeds(captures: &[Vec<u8>]) -> Vec<Seed> {
    let mut seeds: Vec<Seed> = Vec::new();
    let b1 = bets(1, 5);
    let s1 = stream(1, &b1, 2);
    let b2 = bets(2, 3);
    let s2 = stream(2, &b2, MAX_BETS_PER_BATCH);

    seeds.push((
        "raw-echo".into(),
        session_input(raw_config(0), &[], b"hola | result: fail\n"),
    ));
    seeds.push((
        "raw-one-agency-stop-and-wait".into(),
        session_input(raw_config(1), &stop_and_wait(&s1, 0), &s1),
    ));
    seeds.push((
        "raw-one-agency-one-write".into(),
        session_input(raw_config(1), &[], &s1),
    ));
    seeds.push((
        "raw-two-agencies".into(),
        session_input(
            raw_config(2),
            &[
                op(kind::SEND, 0, s1.len()),
                op(kind::SEND, 1, s2.len()),
                op(kind::END_TURN, 0, 0),
            ],
            &[&s1[..], &s2[..]].concat(),
        ),
    ));
    // Rejected bets (agency byte, name, date), then bytes after the end frame.
    let mut bad = s1.clone();
    bad[HEADER_LEN] = 9;
    bad[HEADER_LEN + FRAME_LEN + 1] = 0;
    bad[HEADER_LEN + 2 * FRAME_LEN + 66] = b'x';
    bad.extend_from_slice(b"trailing");
    seeds.push((
        "raw-rejected-and-trailing".into(),
        session_input(raw_config(1), &[], &bad),
    ));
    // A reconnection: half the stream on one connection, all of it on the next.
    let half = HEADER_LEN + 2 * FRAME_LEN + 10;
    seeds.push((
        "raw-reconnect".into(),
        session_input(
            raw_config(1),
            &[
                op(kind::SEND, 0, half),
                op(kind::END_TURN, 0, 0),
                op(kind::SHUTDOWN_OR_RECONNECT, 0, 0),
                op(kind::SEND, 1, s1.len()),
                op(kind::END_TURN, 0, 0),
            ],
            &[&s1[..half], &s1[..]].concat(),
        ),
    ));
    // Full batches of 103, a peer that reads late, a stall.
    let big = stream(1, &bets(1, 120), MAX_BETS_PER_BATCH);
    seeds.push((
        "raw-full-batches".into(),
        session_input(
            raw_config(1),
            &[
                op(kind::SEND, 0, HEADER_LEN),
                op(kind::READ, 0, 0),
                op(kind::SEND, 0, 5000),
                op(kind::END_TURN, 0, 0),
                op(kind::SLEEP, 0, 31_000),
                op(kind::SEND, 0, 0),
            ],
            &big,
        ),
    ));
    // The draw deadline cuts agency 2.
    seeds.push((
        "raw-deadline".into(),
        session_input(
            raw_config(2),
            &[
                op(kind::SEND, 0, s1.len()),
                op(kind::SEND, 1, 100),
                op(kind::END_TURN, 0, 0),
                op(kind::DEADLINE, 0, 0),
            ],
            &[&s1[..], &s2[..100]].concat(),
        ),
    ));

    // A finished agency comes back: it resends everything before the draw
    // and after it, then more bets than it finished with, then fewer.
    let more = stream(1, &bets(1, 6), 2);
    let fewer = stream(1, &bets(1, 3), 2);
    seeds.push((
        "raw-finished-agency-returns".into(),
        session_input(
            raw_config(2),
            &[
                op(kind::SEND, 0, s1.len()),
                op(kind::END_TURN, 0, 0),
                op(kind::RESET_OR_READ_ALL, 0, 0),
                op(kind::END_TURN, 0, 0),
                op(kind::SEND, 1, s1.len()),
                op(kind::END_TURN, 0, 0),
                op(kind::SEND, 2, s2.len()),
                op(kind::END_TURN, 0, 0),
                op(kind::SLEEP, 0, 200),
                op(kind::SEND, 3, s1.len()),
                op(kind::END_TURN, 0, 0),
                op(kind::SEND, 0, more.len()),
                op(kind::END_TURN, 0, 0),
                op(kind::SEND, 1, fewer.len()),
                op(kind::END_TURN, 0, 0),
            ],
            &[&s1[..], &s1, &s2, &s1, &more, &fewer].concat(),
        ),
    ));

    seeds.push((
        "valid-one-agency".into(),
        session_input(valid_config(1), &[], &valid_body(&[2], &b1)),
    ));
    let mut three: Vec<Bet> = Vec::new();
    for i in 0..10 {
        for a in 1..=3 {
            three.extend(bets(a, 10).into_iter().skip(i).take(1));
        }
    }
    seeds.push((
        "valid-three-agencies-cut".into(),
        session_input(
            valid_config(3),
            &[
                op(kind::SEND, 0, 7),
                op(kind::SEND, 1, 200),
                op(kind::END_TURN, 0, 0),
                op(kind::SEND, 0, 1),
                op(kind::SHUTDOWN_OR_RECONNECT, 1, 7),
                op(kind::SEND, 2, 83),
                op(kind::SLEEP, 0, 120),
                op(kind::END_TURN, 0, 0),
                op(kind::READ, 2, 0),
                op(kind::SEND, 1, 300),
                op(kind::END_TURN, 0, 0),
            ],
            &valid_body(&[1, 7, MAX_BETS_PER_BATCH], &three),
        ),
    ));

    // Agency 1 reconnects after its end, while it waits for the draw.
    seeds.push((
        "valid-reconnect-after-end".into(),
        session_input(
            valid_config(2),
            &[
                op(kind::SEND, 0, 0),
                op(kind::END_TURN, 0, 0),
                op(kind::SHUTDOWN_OR_RECONNECT, 0, 1),
                op(kind::SEND, 0, 100),
                op(kind::END_TURN, 0, 0),
            ],
            &valid_body(&[3, 2], &three[..12]),
        ),
    ));

    for (i, capture) in captures.iter().enumerate() {
        let name = format!("capture-{}", i + 1);
        seeds.push((
            format!("raw-{name}-one-write"),
            session_input(raw_config(2), &[], capture),
        ));
        seeds.push((
            format!("raw-{name}-stop-and-wait"),
            session_input(raw_config(2), &stop_and_wait(capture, 0), capture),
        ));
        // The capture's bets, as valid-mode records (agency 1 or 2 of 2).
        if let Some((header, bets)) = decode_capture(capture) {
            let per_batch = usize::from(header.batch_len) / FRAME_LEN;
            seeds.push((
                format!("valid-{name}"),
                session_input(valid_config(2), &[], &valid_body(&[per_batch; 2], &bets)),
            ));
        }
    }
    if captures.len() >= 2 {
        let both = [&captures[0][..], &captures[1][..]].concat();
        seeds.push((
            "raw-captures-together".into(),
            session_input(
                raw_config(2),
                &[
                    op(kind::SEND, 0, captures[0].len()),
                    op(kind::SEND, 1, captures[1].len()),
                ],
                &both,
            ),
        ));
    }
    seeds
}

/// The header and bets of a captured stream, if it is one of agency 1 or 2.
fn decode_capture(capture: &[u8]) -> Option<(Header, Vec<Bet>)> {
    let header = Header::decode(*capture.first_chunk::<HEADER_LEN>()?).ok()?;
    if !(1..=2).contains(&header.agency) {
        return None;
    }
    let (frames, _) = capture[HEADER_LEN..].as_chunks::<FRAME_LEN>();
    let bets = frames
        .iter()
        .map_while(|f| decode_bet(f, header.agency).ok())
        .map(|v| {
            Bet::new(
                v.agency,
                v.first_name,
                v.last_name,
                v.document,
                v.birthdate.as_str(),
                v.number,
            )
            .ok()
        })
        .collect::<Option<Vec<Bet>>>()?;
    Some((header, bets))
}

/// A recovery input: the configuration's agencies, the bets file, the state file.
pub fn recovery_input(agencies: u8, bets: &[u8], state: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(agencies)
        .u16(u16::try_from(bets.len()).expect("a small bets file"))
        .bytes(bets)
        .bytes(state);
    w.0
}

/// The server's two files after `agencies` agencies sent `count` bets each,
/// the first `finishing` of them in full (the others half their stream),
/// then `deadline` (the draw without the unfinished) and the winners read.
fn round_files(agencies: u16, count: u32, finishing: u16, deadline: bool) -> (Vec<u8>, Vec<u8>) {
    let mut net = Net::new(agencies, WINNERS_DELAY);
    for a in 1..=agencies {
        let s = stream(a, &bets(a, count), 3);
        let key = net.connect();
        let n = if a <= finishing { s.len() } else { s.len() / 2 };
        net.send(key, &s[..n]);
        net.end_turn();
    }
    if deadline {
        net.deadline_draw();
    }
    net.sleep(WINNERS_DELAY);
    net.end_turn();
    net.end_turn(); // syncs the deliveries
    let bets = net.app.store.sink().clone();
    let state = net.app.state.sink().clone();
    (bets, state)
}

/// Seeds of the `recovery` target: files the server wrote in memory.
pub fn recovery_seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let (bets, state) = round_files(2, 6, 2, false);
    seeds.push(("complete".into(), recovery_input(2, &bets, &state)));
    // Torn tails: half a row and half a line, as a crash leaves them.
    let torn_bets = [&bets[..], &bets[..bets.len() / 3]].concat();
    let torn_state = [&state[..], b"finished 2"].concat();
    seeds.push(("torn".into(), recovery_input(2, &torn_bets, &torn_state)));
    let (bets, state) = round_files(3, 5, 1, false);
    seeds.push(("in-progress".into(), recovery_input(3, &bets, &state)));
    seeds.push(("no-state-file".into(), recovery_input(3, &bets, b"")));
    let (bets, state) = round_files(3, 4, 1, true);
    seeds.push(("deadline".into(), recovery_input(3, &bets, &state)));
    seeds.push(("empty".into(), recovery_input(1, b"", b"")));
    seeds
}

/// Both targets' seeds, for tests: `(target, name, bytes)`.
pub fn all(captures: &[Vec<u8>]) -> Vec<(&'static str, String, Vec<u8>)> {
    let session = session_seeds(captures)
        .into_iter()
        .map(|(n, b)| ("session", n, b));
    let recovery = recovery_seeds()
        .into_iter()
        .map(|(n, b)| ("recovery", n, b));
    session.chain(recovery).collect()
}
