//! Connection lifecycles from the field, against the real server binary:
//! peers that half-close, send stray bytes, dribble, or go quiet.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use client::generate::agency_bets;
use e2e::*;
use lottery_protocol::{ACK_LEN, Bet, END_ACK, END_FRAME, FRAME_LEN, decode_winners};

const MINUTE: Duration = Duration::from_secs(60);

fn frames(bets: &[Bet]) -> Vec<[u8; FRAME_LEN]> {
    bets.iter().map(|b| b.view().encode()).collect()
}

/// Agency `agency`'s whole stream in batches of 2: header, bets, end frame.
fn whole_stream(agency: u16, bets: &[Bet]) -> Vec<u8> {
    let mut frames = frames(bets);
    frames.push(END_FRAME);
    raw_stream(agency, 2, &frames)
}

/// Runs agency 2 of a two-agency round to its end, so the draw happens.
fn finish_agency_2(server: &Server) -> Vec<u8> {
    let bets = agency_bets(2, 3, 0, 5);
    let mut mock = Mock::connect(&server.address());
    mock.send(&whole_stream(2, &bets));
    mock.recv(4 * ACK_LEN)
}

/// `busybox nc < file` shuts its write side down when the file ends: the
/// agency must still get its winners once the draw runs, not an EOF.
#[test]
fn an_agency_that_half_closes_after_its_end_frame_gets_its_winners() {
    let dir = scratch("halfclose");
    let mut server = Server::start(&dir, 2, &[]);
    let bets = agency_bets(1, 5, 2, 4);
    let mut mock = Mock::connect(&server.address());
    mock.send(&whole_stream(1, &bets));
    mock.stream.shutdown(Shutdown::Write).unwrap();
    let acks = mock.recv(6 * ACK_LEN);
    assert_eq!(&acks[5 * ACK_LEN..], END_ACK);
    server.wait_for("agency_finished | result: success | agencia: 1", MINUTE);
    finish_agency_2(&server);
    let winners = mock.recv(2 + 8);
    let want: Vec<u32> = bets
        .iter()
        .filter(|b| b.number == lottery_protocol::WINNING_NUMBER)
        .map(|b| b.document)
        .collect();
    assert_eq!(decode_winners(&winners), Ok(Some((want, 10))));
    assert!(mock.closed_by_server());
}

/// A stray byte after the end frame, in the same write: the batch is acked,
/// the agency finishes and gets its winners; one warning says what was dropped.
#[test]
fn a_stray_byte_after_the_end_frame_costs_the_agency_nothing() {
    let dir = scratch("stray");
    let mut server = Server::start(&dir, 1, &[]);
    let bets = agency_bets(1, 3, 1, 6);
    let mut mock = Mock::connect(&server.address());
    mock.send(&[whole_stream(1, &bets), vec![0]].concat());
    let acks = mock.recv(4 * ACK_LEN);
    assert_eq!(&acks[3 * ACK_LEN..], END_ACK);
    let winners = mock.recv(6);
    assert!(matches!(decode_winners(&winners), Ok(Some((w, 6))) if w.len() == 1));
    server.wait_for("1 byte after the end frame; ignored", MINUTE);
    assert_eq!(server.stored_rows().len(), 3);
}

/// A peer that dribbles a byte now and then keeps its connection busy but
/// never completes a batch: it is closed `STALL_TIMEOUT` after the batch's
/// first byte, and the real agency then gets in.
#[test]
fn a_dribbling_peer_cannot_hold_an_agency_hostage() {
    let dir = scratch("dribble");
    let mut server = Server::start(&dir, 1, &[("STALL_TIMEOUT", "1s")]);
    let bets = agency_bets(1, 4, 1, 7);
    let stream = whole_stream(1, &bets);
    let mut dribbler = Mock::connect(&server.address());
    dribbler.send(&stream[..5]);
    let started = Instant::now();
    let mut sent = 5;
    // A byte every 200 ms: far more often than the timeout.
    while !server.logs().iter().any(|l| l.contains("action: timeout")) {
        assert!(started.elapsed() < Duration::from_secs(20), "never closed");
        std::thread::sleep(Duration::from_millis(200));
        // Once the server has closed, the write fails: that is the point.
        if std::io::Write::write_all(&mut dribbler.stream, &stream[sent..sent + 1]).is_ok() {
            sent += 1;
        }
    }
    let line = server.wait_for("action: timeout", MINUTE);
    assert!(line.contains("a batch begun"), "{line}");
    assert!(line.contains("nothing of it is stored"), "{line}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the timeout"
    );
    assert!(dribbler.closed_by_server());
    let mut agency = Mock::connect(&server.address());
    agency.send(&stream);
    assert_eq!(&agency.recv(5 * ACK_LEN)[4 * ACK_LEN..], END_ACK);
    assert_eq!(server.stored_rows().len(), 4);
}

/// While agencies ingest, a progress line every few seconds names what is
/// pending; an idle server says nothing.
#[test]
fn progress_is_logged_while_the_round_moves() {
    let dir = scratch("progress");
    let mut server = Server::start(&dir, 2, &[]);
    let bets = agency_bets(1, 4, 0, 8);
    let stream = whole_stream(1, &bets);
    let mut mock = Mock::connect(&server.address());
    mock.send(&stream[..4 + 2 * FRAME_LEN]);
    mock.recv(2 * ACK_LEN);
    let line = server.wait_for("action: progress", Duration::from_secs(15));
    assert!(
        line.contains(
            "action: progress | result: in_progress | agencies_finished: 0/2 | pending: 1,2 | bets: 2 | bets_per_s: "
        ),
        "{line}"
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(server.count("action: progress"), 1, "quiet while idle");
    mock.send(&stream[4 + 2 * FRAME_LEN..]);
    mock.recv(3 * ACK_LEN);
    let line = server.wait_for_count("action: progress", 2, Duration::from_secs(15));
    assert!(
        line.contains("agencies_finished: 1/2 | pending: 2 | bets: 4"),
        "{line}"
    );
    finish_agency_2(&server);
    let draw = server.wait_for("action: sorteo", MINUTE);
    assert!(draw.contains("cant_apuestas: 7"), "{draw}");
}
