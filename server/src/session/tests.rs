//! Whole scenarios in memory (quinn's `Pair` idea): fake agencies and the
//! server's sessions exchange bytes with no sockets; storage is a `Vec<u8>`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lottery_protocol::{
    ACK_LEN, Ack, Bet, END_ACK, END_FRAME, FRAME_LEN, HEADER_LEN, Header, MAX_BATCH_LEN, Reply,
    Status, WINNING_NUMBER, decode_reply, decode_winners, encode_stream,
};

use super::*;
use crate::storage::{StateLog, Store};

/// The winners delay of the harness's sessions.
const DELAY: Duration = Duration::from_millis(100);

/// The server side of a few connections, driven turn by turn as the loop does,
/// with a clock that moves only when a test moves it.
struct Harness {
    app: App<Vec<u8>>,
    sessions: HashMap<usize, Session>,
    committed: Vec<usize>,
    now: Instant,
}

impl Sessions for HashMap<usize, Session> {
    fn session(&mut self, key: usize) -> Option<&mut Session> {
        self.get_mut(&key)
    }
}

impl Harness {
    fn new(agencies: u16) -> Harness {
        Harness {
            app: App::new(
                agencies,
                Store::new(Vec::new()),
                StateLog::new(Vec::new(), 0),
            ),
            sessions: HashMap::new(),
            committed: Vec::new(),
            now: Instant::now(),
        }
    }

    fn connect(&mut self, key: usize) {
        let peer = format!("127.0.0.1:{}", 40000 + key).parse().unwrap();
        self.sessions
            .insert(key, Session::new(key, peer, self.now, DELAY));
    }

    /// Moves the clock and fires the sessions' timers, as the loop does.
    fn sleep(&mut self, d: Duration) {
        self.now += d;
        for session in self.sessions.values_mut() {
            session.handle_timeout(self.now);
        }
    }

    fn feed(&mut self, key: usize, bytes: &[u8]) -> Result<(), SessionError> {
        let session = self.sessions.get_mut(&key).unwrap();
        let result = session.on_input(bytes, self.now, &mut self.app);
        if session.has_held() && !self.committed.contains(&key) {
            self.committed.push(key);
        }
        result
    }

    fn end_turn(&mut self) {
        let mut ready = Vec::new();
        self.app
            .end_turn(
                &mut self.committed,
                &mut self.sessions,
                &mut ready,
                self.now,
            )
            .unwrap();
    }

    /// Everything the session has to write, as the socket would take it now.
    fn take_output(&mut self, key: usize) -> Vec<u8> {
        let session = self.sessions.get_mut(&key).unwrap();
        let out = session.pending_output().to_vec();
        session.advance(out.len(), self.now);
        out
    }

    fn stored(&self) -> String {
        String::from_utf8(self.app.store.sink().clone()).unwrap()
    }
}

fn bets(agency: u16, count: u32, winners: &[u32]) -> Vec<Bet> {
    (0..count)
        .map(|i| {
            let number = if winners.contains(&i) {
                WINNING_NUMBER
            } else {
                i
            };
            Bet::new(
                agency,
                "Ana",
                "Pérez",
                agency as u32 * 1000 + i,
                "1990-01-31",
                number,
            )
            .unwrap()
        })
        .collect()
}

/// The client's stream: the header, every bet then the end frame, in batches
/// of `per_batch`.
fn stream(agency: u16, bets: &[Bet], per_batch: usize) -> Vec<u8> {
    let frames: Vec<[u8; FRAME_LEN]> = bets.iter().map(|b| b.view().encode()).collect();
    let mut out = Vec::new();
    encode_stream(Header::new(per_batch, agency), &frames, &mut out);
    out
}

/// The header and `frames` as they are, no end frame added.
fn raw(agency: u16, per_batch: usize, frames: &[[u8; FRAME_LEN]]) -> Vec<u8> {
    [
        &Header::new(per_batch, agency).encode()[..],
        frames.as_flattened(),
    ]
    .concat()
}

fn replies(bytes: &[u8]) -> Vec<Reply> {
    let (records, rest) = bytes.as_chunks::<ACK_LEN>();
    assert!(rest.is_empty(), "acks come in whole 9-byte records");
    records.iter().map(decode_reply).collect()
}

fn stored_acks(bets: &[Bet]) -> Vec<Reply> {
    bets.iter()
        .map(|b| Reply::Ack(Ack::new(b.document, b.number, Status::Stored)))
        .collect()
}

#[test]
fn acks_wait_for_the_commit_then_the_draw_releases_winners() {
    let mut h = Harness::new(2);
    let (b1, b2) = (bets(1, 5, &[1, 3]), bets(2, 3, &[]));
    h.connect(10);
    h.connect(11);

    h.feed(10, &stream(1, &b1, 3)).unwrap();
    assert!(h.take_output(10).is_empty(), "no ack before the commit");
    h.end_turn();
    let mut want = stored_acks(&b1);
    want.push(Reply::End);
    assert_eq!(replies(&h.take_output(10)), want);
    assert_eq!(h.stored().lines().count(), 5);
    assert!(h.sessions[&10].is_waiting_for_draw());
    assert!(!h.app.lottery.drawn());

    h.sleep(DELAY); // agency 1 finished long before the draw
    h.feed(11, &stream(2, &b2, 103)).unwrap();
    h.end_turn();
    assert!(h.app.lottery.drawn());
    let winners = h.take_output(10);
    assert_eq!(decode_winners(&winners), Ok(Some((vec![1001, 1003], 10))));
    let mut want = stored_acks(&b2);
    want.push(Reply::End);
    assert_eq!(replies(&h.take_output(11)), want, "the end ack alone");
    h.sleep(DELAY);
    assert_eq!(decode_winners(&h.take_output(11)), Ok(Some((vec![], 2))));
    assert!(h.sessions[&10].is_done() && h.sessions[&11].is_done());
}

/// The reference client reads its last acks until its buffer ends with the
/// end ack: winners in the same read break it. So they never share a write
/// with the end ack, and leave only `DELAY` after the end ack was written.
#[test]
fn winners_leave_only_a_delay_after_the_end_ack_was_written() {
    for delay in [Duration::ZERO, DELAY] {
        let mut h = Harness::new(1);
        let peer = "127.0.0.1:40001".parse().unwrap();
        h.sessions.insert(1, Session::new(1, peer, h.now, delay));
        let b = bets(1, 2, &[0]);
        h.feed(1, &stream(1, &b, 103)).unwrap();
        h.end_turn(); // commit, end ack released, the draw runs
        assert!(h.app.lottery.drawn());
        let s = &h.sessions[&1];
        assert_eq!(
            s.pending_output().len(),
            3 * ACK_LEN,
            "acks and end ack only"
        );
        assert_eq!(
            s.poll_timeout(),
            None,
            "the clock starts when the end ack is out"
        );
        let session = h.sessions.get_mut(&1).unwrap();
        session.advance(ACK_LEN, h.now); // a short write: the end ack is not out yet
        assert_eq!(session.poll_timeout(), None);
        h.sleep(Duration::from_millis(7));
        h.take_output(1);
        let written = h.now;
        assert_eq!(h.sessions[&1].poll_timeout(), Some(written + delay));
        assert!(
            h.take_output(1).is_empty(),
            "not in the same write, even with no delay"
        );
        if !delay.is_zero() {
            h.sleep(delay - Duration::from_nanos(1));
            assert!(h.take_output(1).is_empty(), "{delay:?}");
            assert!(h.sessions[&1].is_waiting_for_draw(), "not a stall");
        }
        h.sleep(Duration::from_nanos(1));
        let out = h.take_output(1);
        assert_eq!(decode_winners(&out), Ok(Some((vec![1000], 6))), "{delay:?}");
        assert!(h.sessions[&1].is_done());
    }
}

/// However TCP splits the stream, the same rows are stored and the same acks go
/// out: one byte at a time, and cut in two at every offset.
#[test]
fn any_split_of_the_stream_gives_the_same_result() {
    let b = bets(1, 4, &[2]);
    let bytes = stream(1, &b, 2); // batches: [b0 b1] [b2 b3] [end]
    let run = |cuts: &[usize]| {
        let mut h = Harness::new(1);
        h.connect(1);
        let mut from = 0;
        for &cut in cuts.iter().chain([bytes.len()].iter()) {
            h.feed(1, &bytes[from..cut]).unwrap();
            from = cut;
        }
        h.end_turn();
        (h.stored(), h.take_output(1))
    };
    let whole = run(&[]);
    assert_eq!(whole.0.lines().count(), 4);
    let one_by_one: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(run(&one_by_one), whole);
    for cut in 1..bytes.len() {
        assert_eq!(run(&[cut]), whole, "cut at {cut}");
    }
}

#[test]
fn end_frame_alone_in_the_last_batch_is_acked() {
    let mut h = Harness::new(1);
    h.connect(1);
    let b = bets(1, 4, &[]);
    let bytes = stream(1, &b, 2); // header [b0 b1] [b2 b3] [end]
    assert_eq!(bytes.len(), HEADER_LEN + 5 * FRAME_LEN);
    let bets_end = HEADER_LEN + 4 * FRAME_LEN;
    h.feed(1, &bytes[..bets_end]).unwrap();
    h.end_turn();
    assert_eq!(replies(&h.take_output(1)), stored_acks(&b));
    h.feed(1, &bytes[bets_end..]).unwrap();
    h.end_turn();
    assert_eq!(
        replies(&h.take_output(1)),
        [Reply::End],
        "the end frame alone gets the end ack alone"
    );
    h.sleep(DELAY);
    assert_eq!(decode_winners(&h.take_output(1)), Ok(Some((vec![], 2))));
}

#[test]
fn rejected_bets_are_acked_with_their_status_and_not_stored() {
    let mut h = Harness::new(300);
    h.connect(1);
    let good = Bet::new(300, "Ana", "Pérez", 7, "1990-01-31", 5).unwrap();
    let mut wrong_agency = good.view().encode();
    wrong_agency[0] = 45; // 300 & 0xff is 44
    let mut bad_name = good.view().encode();
    bad_name[1] = 0xff;
    let mut bad_date = good.view().encode();
    bad_date[65..75].copy_from_slice(b"1990-02-30");
    let bytes = raw(
        300,
        103,
        &[
            good.view().encode(),
            wrong_agency,
            bad_name,
            bad_date,
            END_FRAME,
        ],
    );
    h.feed(1, &bytes).unwrap();
    h.end_turn();
    let statuses: Vec<Option<Status>> = replies(&h.take_output(1)[..5 * ACK_LEN])
        .into_iter()
        .map(|r| match r {
            Reply::Ack(a) => Status::from_byte(a.status),
            Reply::End => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            Some(Status::Stored),
            Some(Status::AgencyMismatch),
            Some(Status::InvalidName),
            Some(Status::InvalidBirthdate),
            None
        ]
    );
    assert_eq!(h.stored(), "300,Ana,Pérez,7,1990-01-31,5\n");
}

#[test]
fn protocol_errors_close_the_connection_and_store_nothing_of_the_batch() {
    let table: Vec<(Vec<u8>, &str, usize)> = vec![
        (vec![0, 0, 0, 1], "bad header: batch size is 0", 0),
        (
            vec![0, 80, 0, 1],
            "bad header: batch size 80 is not a multiple of 79",
            0,
        ),
        (
            vec![0x1f, 0xca, 0, 1],
            "bad header: batch size 8138 is above the limit of 8137",
            0,
        ),
        (
            vec![0, 79, 0, 0],
            "agency refused: agency 0 is not between 1 and 2",
            0,
        ),
        (
            vec![0, 79, 0, 3],
            "agency refused: agency 3 is not between 1 and 2",
            0,
        ),
    ];
    for (bytes, want, rows) in table {
        let mut h = Harness::new(2);
        h.connect(1);
        let err = h.feed(1, &bytes).unwrap_err();
        assert_eq!(err.to_string(), want);
        assert!(!err.is_fatal());
        h.end_turn();
        assert_eq!(h.stored().lines().count(), rows, "{want}");
    }
}

/// The header comes once: 4 bytes that look like a header later in the
/// stream are frame bytes, and the batch size of the first header holds.
#[test]
fn only_the_first_four_bytes_are_a_header() {
    let mut h = Harness::new(2);
    h.connect(1);
    let b = bets(1, 3, &[]);
    // A per-batch-header client's stream: header, 1 bet, header, ... The
    // second "header" shifts every frame after it by 4 bytes.
    let mut bytes = raw(1, 1, &[b[0].view().encode()]);
    bytes.extend(raw(1, 1, &[b[1].view().encode()]));
    h.feed(1, &bytes).unwrap();
    h.end_turn();
    let replies = replies(&h.take_output(1));
    assert_eq!(replies[0], stored_acks(&b[..1])[0]);
    assert_eq!(
        h.stored().lines().count(),
        1,
        "the shifted frame is not a bet"
    );
    assert_eq!(h.sessions[&1].input.len(), 4 + FRAME_LEN - FRAME_LEN);
}

/// A reconnecting agency streams from its first bet, as every client does:
/// what is stored is acked again without being stored again, what is beyond
/// is stored; the newer connection takes over from the older one.
#[test]
fn a_reconnection_takes_over_and_nothing_is_stored_twice() {
    let mut h = Harness::new(1);
    let b = bets(1, 6, &[1, 5]);
    let whole = stream(1, &b, 2);
    h.connect(1);
    h.feed(1, &whole[..HEADER_LEN + 4 * FRAME_LEN + 30])
        .unwrap();
    h.end_turn();
    assert_eq!(replies(&h.take_output(1)), stored_acks(&b[..4]));
    assert!(h.app.evicted.is_empty());

    h.connect(2);
    h.feed(2, &whole).unwrap();
    assert_eq!(h.app.evicted, [(1, 1)], "the newer connection took over");
    h.end_turn();
    let mut want = stored_acks(&b);
    want.push(Reply::End);
    assert_eq!(
        replies(&h.take_output(2)),
        want,
        "every bet acked, resent or new"
    );
    assert_eq!(
        h.stored().lines().count(),
        6,
        "the 4 resent bets are not stored again"
    );
    h.sleep(DELAY);
    assert_eq!(
        decode_winners(&h.take_output(2)),
        Ok(Some((vec![1001, 1005], 10)))
    );

    // Rejected bets are rejected again, and resent ones matched around them.
    let mut h = Harness::new(1);
    let good = bets(1, 2, &[]);
    let mut bad = good[0].view().encode();
    bad[65..75].copy_from_slice(b"1990-02-30");
    let frames = [good[0].view().encode(), bad, good[1].view().encode()];
    for key in [1, 2] {
        h.connect(key);
        h.feed(key, &raw(1, 3, &frames)).unwrap();
        h.end_turn();
        let statuses: Vec<u8> = replies(&h.take_output(key))
            .into_iter()
            .map(|r| match r {
                Reply::Ack(a) => a.status,
                Reply::End => 0,
            })
            .collect();
        assert_eq!(
            statuses,
            [1, Status::InvalidBirthdate as u8, 1],
            "connection {key}"
        );
    }
    assert_eq!(h.stored().lines().count(), 2);
}

/// A resent bet that is not the stored one at its place closes the
/// connection, and nothing of its batch is stored (not even new bets after it).
#[test]
fn a_resent_bet_that_is_not_the_stored_one_is_refused_with_its_batch() {
    let mut h = Harness::new(1);
    let b = bets(1, 4, &[]);
    h.connect(1);
    h.feed(1, &raw(1, 2, &[b[0].view().encode(), b[1].view().encode()]))
        .unwrap();
    h.end_turn();
    h.take_output(1);
    h.connect(2);
    let other = bets(1, 9, &[]);
    let frames = [b[0].view().encode(), other[8].view().encode()];
    let err = h.feed(2, &raw(1, 2, &frames)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "agency 1 sent bet 2 as document 1008 number 8, but the stored bet 2 is document 1001 number 1; nothing of this batch is stored"
    );
    h.end_turn();
    assert_eq!(h.stored().lines().count(), 2);
    assert!(h.take_output(2).is_empty());

    // Nor may a connection end before it resent every stored bet: its end
    // ack would cover bets it never sent (found by the fuzzer).
    h.connect(3);
    let err = h.feed(3, &raw(1, 2, &[END_FRAME])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "agency 1 has 2 bets stored, and this connection ended after 0; its end is not taken"
    );
    h.end_turn();
    assert!(!h.app.lottery.is_finished(1));
}

/// An agency that finished may come back (a restarted client waiting for the
/// draw): it gets its end ack again and its winners once the draw runs, but
/// may neither add bets nor end with fewer.
#[test]
fn a_finished_agency_that_reconnects_gets_its_winners_and_adds_nothing() {
    let mut h = Harness::new(2);
    let b1 = bets(1, 3, &[2]);
    h.connect(1);
    h.feed(1, &stream(1, &b1, 2)).unwrap();
    h.end_turn();
    h.take_output(1);
    assert_eq!(
        String::from_utf8(h.app.state.sink().clone()).unwrap(),
        "finished 1 3\n",
        "recorded before its end ack left"
    );
    // The client restarts while waiting for the draw.
    h.connect(2);
    h.feed(2, &stream(1, &b1, 3)).unwrap();
    h.end_turn();
    let mut want = stored_acks(&b1);
    want.push(Reply::End);
    assert_eq!(replies(&h.take_output(2)), want);
    assert_eq!(h.app.lottery.finished(), 1, "finishing again counts once");
    h.connect(3);
    h.feed(3, &stream(2, &bets(2, 1, &[]), 2)).unwrap();
    h.end_turn();
    assert!(h.app.lottery.drawn());
    h.sleep(DELAY);
    assert_eq!(decode_winners(&h.take_output(2)), Ok(Some((vec![1002], 6))));
    assert!(
        String::from_utf8(h.app.state.sink().clone())
            .unwrap()
            .ends_with("finished 2 1\ndrawn\n")
    );

    // After the draw, whenever it comes back: its winners.
    h.connect(4);
    h.feed(4, &stream(1, &b1, 103)).unwrap();
    h.end_turn();
    assert_eq!(replies(&h.take_output(4)).len(), 4);
    h.sleep(DELAY);
    assert_eq!(decode_winners(&h.take_output(4)), Ok(Some((vec![1002], 6))));

    // More bets than it finished with, or an end after fewer: refused.
    let more = bets(1, 4, &[2]); // the same 3, and one more
    h.connect(5);
    let err = h.feed(5, &stream(1, &more, 103)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "agency 1 finished with 3 bets, and this connection sent bet 4; nothing of this batch is stored"
    );
    h.connect(6);
    let err = h.feed(6, &stream(1, &b1[..2], 103)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "agency 1 has 3 bets stored, and this connection ended after 2; its end is not taken"
    );
    assert_eq!(h.stored().lines().count(), 4);
}

/// With a deadline, the draw runs with the agencies that finished; the others
/// are left out, recorded, and refused from then on.
#[test]
fn a_deadline_draw_runs_without_the_unfinished() {
    let mut h = Harness::new(3);
    h.connect(1);
    h.feed(1, &stream(1, &bets(1, 2, &[0]), 2)).unwrap();
    h.connect(2);
    h.feed(2, &raw(2, 2, &[bets(2, 1, &[])[0].view().encode()]))
        .unwrap();
    h.end_turn();
    h.take_output(1);
    let mut ready = Vec::new();
    let cut = h
        .app
        .deadline_draw(&mut h.sessions, &mut ready, h.now)
        .unwrap();
    assert_eq!(cut, [(2, 2)], "agency 2's live connection is to be closed");
    assert!(h.app.lottery.drawn());
    assert!(
        String::from_utf8(h.app.state.sink().clone())
            .unwrap()
            .ends_with("drawn excluded 2 3\n")
    );
    h.sleep(DELAY);
    assert_eq!(decode_winners(&h.take_output(1)), Ok(Some((vec![1000], 6))));
    h.connect(3);
    let err = h.feed(3, &stream(3, &bets(3, 1, &[]), 2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "agency refused: the draw ran at its deadline without agency 3; nothing more is stored for it"
    );
}

#[test]
fn eof_mid_batch_stores_nothing_of_it() {
    let mut h = Harness::new(1);
    h.connect(1);
    let bytes = stream(1, &bets(1, 3, &[]), 2);
    let first_batch = HEADER_LEN + 2 * FRAME_LEN;
    h.feed(1, &bytes[..first_batch + 10]).unwrap();
    let err = h.sessions.get_mut(&1).unwrap().on_eof().unwrap_err();
    assert_eq!(
        err.to_string(),
        "peer closed with a partial batch of 10 bytes; nothing of it is stored"
    );
    h.end_turn();
    assert_eq!(h.stored().lines().count(), 2, "only the complete batch");
    assert!(!h.app.lottery.drawn());
    assert_eq!(
        replies(&h.take_output(1)),
        stored_acks(&bets(1, 2, &[])),
        "the stored batch is acked before the close"
    );
    assert!(h.sessions[&1].is_done());

    h.connect(2);
    h.feed(2, &[0, 79, 0]).unwrap();
    let err = h.sessions.get_mut(&2).unwrap().on_eof().unwrap_err();
    assert_eq!(
        err.to_string(),
        "peer closed with a partial header of 3 bytes; nothing of it is stored"
    );
}

#[test]
fn echo_lines() {
    let mut h = Harness::new(1);
    h.connect(1);
    h.feed(1, b"[CLIENT 1] Message N\xc2\xb01").unwrap();
    assert!(h.take_output(1).is_empty(), "waits for the newline");
    h.feed(1, b"\nignored").unwrap();
    assert_eq!(h.take_output(1), "[CLIENT 1] Message N°1\n".as_bytes());
    assert!(h.sessions[&1].is_done());

    h.connect(2);
    h.feed(2, b"no newline").unwrap();
    h.sessions.get_mut(&2).unwrap().on_eof().unwrap();
    assert_eq!(h.take_output(2), b"no newline");

    h.connect(3);
    let err = h.feed(3, &[b'x'; MAX_ECHO_LINE]).unwrap_err();
    assert_eq!(err.to_string(), "echo line longer than 1024 bytes");
    h.connect(4);
    assert!(
        h.feed(4, &[b'x'; MAX_ECHO_LINE - 1]).is_ok(),
        "1023 bytes and a newline fit"
    );
    h.feed(4, b"\n").unwrap();
    assert_eq!(h.take_output(4).len(), MAX_ECHO_LINE);
}

#[test]
fn input_stops_while_output_is_high_and_memory_stays_bounded() {
    let mut h = Harness::new(1);
    h.connect(1);
    let b = bets(1, 103 * 80, &[]);
    let frames: Vec<[u8; FRAME_LEN]> = b.iter().map(|b| b.view().encode()).collect();
    let bytes = raw(1, 103, &frames);
    let mut fed = 0;
    while h.sessions[&1].wants_input() {
        let take = (bytes.len() - fed).min(65536);
        assert!(take > 0, "the whole stream fits under the high-water mark?");
        h.feed(1, &bytes[fed..fed + take]).unwrap();
        fed += take;
        assert!(
            h.sessions[&1].input.len() < 8137,
            "at most one partial batch is kept"
        );
    }
    h.end_turn();
    assert!(
        !h.sessions[&1].wants_input(),
        "the peer must read its acks first"
    );
    let out = h.take_output(1);
    assert!(out.len() >= OUTPUT_HIGH_WATER);
    assert!(h.sessions[&1].wants_input());
}

/// A poor man's fuzzer, deterministic so that it runs in CI: random byte
/// streams, mostly well-framed, cut at random points. The session must never
/// panic and never hold more than one partial batch.
#[test]
fn random_input_never_panics_and_memory_stays_bounded() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let good = bets(1, 3, &[1]);
    for round in 0..2000 {
        let mut h = Harness::new(3);
        h.connect(1);
        let frames: Vec<[u8; FRAME_LEN]> = (0..rand(12))
            .map(|i| match rand(6) {
                0 => END_FRAME,
                1 => std::array::from_fn(|_| rand(256) as u8),
                2 => {
                    let mut f = good[i % 3].view().encode();
                    f[1 + rand(70)] ^= 1 << rand(8);
                    f
                }
                _ => good[i % 3].view().encode(),
            })
            .collect();
        let mut bytes = raw(1 + rand(3) as u16, 1 + rand(103), &frames);
        for _ in 0..rand(3) {
            let at = rand(bytes.len() + 1);
            bytes.insert(at, rand(256) as u8);
        }
        let mut at = 0;
        while at < bytes.len() {
            let n = 1 + rand(bytes.len() - at);
            let result = h.feed(1, &bytes[at..at + n]);
            at += n;
            assert!(h.sessions[&1].input.len() < 8137, "round {round}");
            if result.is_err() {
                break;
            }
        }
        let _ = h.sessions.get_mut(&1).unwrap().on_eof();
        h.end_turn();
    }
}

/// `shutdown(SHUT_WR)` after the end frame (what `nc < file` does) is normal:
/// the connection stays and gets its winners. Before the end frame, the peer
/// is gone, and the log says so even between batches.
#[test]
fn eof_after_the_end_frame_keeps_the_connection_for_the_winners() {
    let mut h = Harness::new(2);
    h.connect(1);
    let b1 = bets(1, 3, &[0]);
    h.feed(1, &stream(1, &b1, 2)).unwrap();
    h.sessions.get_mut(&1).unwrap().on_eof().unwrap();
    h.end_turn();
    assert_eq!(replies(&h.take_output(1)).len(), 4, "acks and end ack");
    assert!(!h.sessions[&1].is_done(), "kept for the winners");
    h.sleep(DELAY);
    h.connect(2);
    h.feed(2, &stream(2, &bets(2, 1, &[]), 2)).unwrap();
    h.end_turn();
    assert_eq!(decode_winners(&h.take_output(1)), Ok(Some((vec![1000], 6))));
    assert!(h.sessions[&1].is_done());

    // Between batches, before the end frame: gone, and said so.
    let mut h = Harness::new(1);
    h.connect(1);
    let bytes = stream(1, &bets(1, 4, &[]), 2);
    h.feed(1, &bytes[..HEADER_LEN + 2 * FRAME_LEN]).unwrap();
    let err = h.sessions.get_mut(&1).unwrap().on_eof().unwrap_err();
    assert_eq!(
        err.to_string(),
        "agency 1 closed before its end frame, after 2 bets on this connection; every complete batch is stored"
    );
    h.end_turn();
    assert_eq!(replies(&h.take_output(1)).len(), 2, "its acks still go out");
    assert!(h.sessions[&1].is_done());
}

/// Bytes after the end frame cannot be bets: they are dropped (with one
/// warning) and cost the agency nothing, however TCP splits them off.
#[test]
fn bytes_after_the_end_frame_are_dropped_and_the_agency_still_wins() {
    let b = bets(1, 3, &[2]);
    for stray in [vec![0u8], vec![7; 200], stream(1, &b, 2)] {
        for split in [false, true] {
            let mut h = Harness::new(1);
            h.connect(1);
            let bytes = [stream(1, &b, 2), stray.clone()].concat();
            let at = if split {
                bytes.len() - stray.len()
            } else {
                bytes.len()
            };
            h.feed(1, &bytes[..at]).unwrap();
            h.feed(1, &bytes[at..]).unwrap();
            h.end_turn();
            let mut want = stored_acks(&b);
            want.push(Reply::End);
            assert_eq!(replies(&h.take_output(1)), want, "split {split}");
            assert!(h.app.lottery.drawn());
            h.sleep(DELAY);
            assert_eq!(decode_winners(&h.take_output(1)), Ok(Some((vec![1002], 6))));
            assert_eq!(h.stored().lines().count(), 3, "nothing of the stray bytes");
        }
    }
}

/// A unit must complete within the stall timeout of its first byte, however
/// its bytes trickle in; an agency idle between batches is told apart from
/// one stuck mid-batch, and one waiting for the draw never stalls.
#[test]
fn stalls_are_judged_on_a_clock_the_test_moves() {
    const LIMIT: Duration = Duration::from_secs(30);
    let mut h = Harness::new(2);
    let second = Duration::from_secs(1);

    // A dribbler: a byte every 10 s keeps it active, but the batch it
    // started is still partial 31 s after its first byte.
    h.connect(1);
    let bytes = stream(1, &bets(1, 2, &[]), 2);
    h.feed(1, &bytes[..HEADER_LEN + 1]).unwrap();
    for i in 1..4 {
        h.sleep(10 * second);
        h.feed(1, &bytes[HEADER_LEN + i..HEADER_LEN + i + 1])
            .unwrap();
        assert_eq!(h.sessions[&1].stalled(h.now, LIMIT), None);
    }
    h.sleep(second);
    let stall = h.sessions[&1].stalled(h.now, LIMIT).expect("stalled");
    assert_eq!(
        stall.to_string(),
        "a batch begun 31s ago is still incomplete at 4 bytes; nothing of it is stored"
    );

    // Idle between complete batches: a different story, and nothing lost.
    h.connect(2);
    let bytes = stream(2, &bets(2, 4, &[]), 2);
    h.feed(2, &bytes[..HEADER_LEN + 2 * FRAME_LEN]).unwrap();
    h.end_turn();
    h.take_output(2);
    h.sleep(LIMIT);
    assert_eq!(h.sessions[&2].stalled(h.now, LIMIT), None, "not yet");
    h.sleep(second);
    assert_eq!(
        h.sessions[&2].stalled(h.now, LIMIT).unwrap().to_string(),
        "idle between batches for 31s after 2 bets on this connection; every complete batch is stored"
    );

    // Silent since connecting; and a header begun but never finished.
    h.connect(3);
    h.connect(4);
    h.feed(4, &[0, 79]).unwrap();
    h.sleep(LIMIT + second);
    assert_eq!(
        h.sessions[&3].stalled(h.now, LIMIT).unwrap().to_string(),
        "sent nothing for 31s"
    );
    assert!(matches!(
        h.sessions[&4].stalled(h.now, LIMIT),
        Some(Stall::Partial {
            unit: "header",
            bytes: 2,
            ..
        })
    ));

    // Waiting for the draw: never a stall, however long.
    let mut h = Harness::new(2);
    h.connect(1);
    h.feed(1, &stream(1, &bets(1, 1, &[]), 2)).unwrap();
    h.end_turn();
    h.take_output(1);
    h.sleep(100 * LIMIT);
    assert_eq!(h.sessions[&1].stalled(h.now, LIMIT), None);

    // Replies the peer does not read.
    h.connect(2);
    h.feed(2, &stream(2, &bets(2, 1, &[]), 2)).unwrap();
    h.end_turn();
    h.sleep(LIMIT + second);
    assert_eq!(
        h.sessions[&2].stalled(h.now, LIMIT).unwrap().to_string(),
        "read none of 18 bytes of replies for 31s"
    );
}

/// What a connection keeps is bounded in capacity, not only in length: one
/// large read or a long backlog of acks is not kept for the connection's life.
#[test]
fn buffer_capacity_is_bounded_after_large_reads_and_writes() {
    let mut h = Harness::new(1);
    h.connect(1);
    let b = bets(1, 2000, &[]);
    let bytes = stream(1, &b, 103);
    // 64 KiB reads, each ending mid-batch, the first one after a partial tail.
    h.feed(1, &bytes[..100]).unwrap();
    let mut at = 100;
    while at + 65536 < bytes.len() {
        h.feed(1, &bytes[at..at + 65536]).unwrap();
        at += 65536;
        let s = &h.sessions[&1];
        assert!(
            s.input.capacity() <= MAX_BATCH_LEN,
            "input {}",
            s.input.capacity()
        );
    }
    h.end_turn();
    let out = h.take_output(1);
    assert!(
        out.len() > 10 * KEEP_CAPACITY,
        "a large backlog of acks was written"
    );
    let s = &h.sessions[&1];
    assert!(
        s.output.capacity() <= KEEP_CAPACITY,
        "output {}",
        s.output.capacity()
    );
    assert!(
        s.held.capacity() <= KEEP_CAPACITY,
        "held {}",
        s.held.capacity()
    );
    h.feed(1, &bytes[at..]).unwrap();
    h.end_turn();
    h.take_output(1);
    let s = &h.sessions[&1];
    assert_eq!(s.input.capacity(), 0, "nothing partial: nothing kept");
}

/// The winners length is a u16 of bytes: 16,383 documents at most. An agency
/// with more gets its acks and end ack, then the close, never a truncated list.
#[test]
fn more_winners_than_a_message_can_carry_close_the_agency_without_a_list() {
    let n = lottery_protocol::MAX_WINNERS as u32 + 1;
    let mut h = Harness::new(1);
    h.connect(1);
    let b: Vec<Bet> = (0..n)
        .map(|i| Bet::new(1, "A", "B", i, "2000-01-01", WINNING_NUMBER).unwrap())
        .collect();
    h.feed(1, &stream(1, &b, 103)).unwrap();
    h.end_turn();
    let out = h.take_output(1);
    assert_eq!(out.len(), (b.len() + 1) * ACK_LEN);
    assert_eq!(&out[out.len() - ACK_LEN..], END_ACK);
    h.sleep(DELAY);
    assert!(h.take_output(1).is_empty(), "no winners message");
    assert!(h.sessions[&1].is_done());
}
