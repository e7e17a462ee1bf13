//! The client binary against peers that misbehave in time: a server that paces
//! nothing, a peer that never answers a SYN, a server that closes after the end
//! ack without winners. Real time, so every bound is loose: a lower bound the
//! client must respect, and an upper bound with seconds of margin.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use client::generate::agency_bets;
use e2e::*;
use lottery_protocol::{Ack, END_ACK, END_FRAME, FRAME_LEN, HEADER_LEN, Status};

const MINUTE: Duration = Duration::from_secs(60);
/// What a shared, noisy machine may add to any real-time bound.
const MARGIN: Duration = Duration::from_secs(3);

/// `loop.period` is the least time between one batch leaving and the next:
/// 10 bets and the end frame in batches of 3 are 4 batches, so 3 pauses.
#[test]
fn loop_period_paces_the_batches() {
    let dir = scratch("client-period");
    let server = Server::start(&dir, 1, &[]);
    let bets = agency_bets(1, 10, 1, 5);
    let file = write_agency_file(&dir, 1, &bets);
    let period = Duration::from_millis(300);
    let started = Instant::now();
    let output = run(
        client(
            &server.address(),
            1,
            &[
                ("CLI_AGENCY_DATA_FILE", file.to_str().unwrap()),
                ("CLI_BATCH_MAXAMOUNT", "3"),
                ("CLI_LOOP_PERIOD", "300ms"),
            ],
        ),
        MINUTE,
    );
    let elapsed = started.elapsed();
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert_eq!(
        field(&log, "action: config", "loop_period").as_deref(),
        Some("300ms"),
        "{log}"
    );
    assert_eq!(log.matches("action: batch_enviado").count(), 4, "{log}");
    assert_eq!(
        field(&log, "action: consulta_ganadores", "cant_ganadores").as_deref(),
        Some("1"),
        "{log}"
    );
    // No batch can leave before the pauses in front of it: a lower bound that
    // noise only makes easier to meet.
    assert!(elapsed >= 3 * period, "{elapsed:?}:\n{log}");
    assert!(elapsed < 3 * period + MARGIN, "{elapsed:?}:\n{log}");
    assert_eq!(server.stored_rows().len(), 10);
}

/// A loopback address whose connects hang in SYN_SENT: a listener with backlog 0
/// whose accept queue is full (Linux drops SYNs to a full queue). The returned
/// streams hold the queue full. Checks the premise with a probe of its own.
fn unanswering_peer() -> (SocketAddr, socket2::Socket, Vec<TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    // Linux queues one connection at backlog 0; allow a few in case it queues more.
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => fillers.push(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (addr, listener, fillers),
            Err(e) => panic!("probing {addr}: {e}"),
        }
    }
    panic!("connects to a full backlog-0 listener do not hang on this machine: {addr} accepted 8");
}

/// The client's socket to `port` is in SYN_SENT (state 02 of `/proc/net/tcp`).
fn syn_sent_to(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() > 3
            && cols[3] == "02"
            && cols[2]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port)
    })
}

#[test]
fn the_connect_timeout_bounds_a_connect_in_progress() {
    let (addr, _listener, _fillers) = unanswering_peer();
    let started = Instant::now();
    let output = run(
        client(
            &addr.to_string(),
            1,
            &[
                ("CLI_MODE", "echo"),
                ("CLI_LOOP_AMOUNT", "1"),
                ("CLI_SERVER_CONNECTTIMEOUT", "1s"),
            ],
        ),
        // The kernel alone would give up after about two minutes.
        Duration::from_secs(30),
    );
    let elapsed = started.elapsed();
    let log = text(&output);
    assert!(!output.status.success(), "{log}");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}:\n{log}");
    assert!(
        elapsed < Duration::from_secs(1) + MARGIN,
        "{elapsed:?}:\n{log}"
    );
    let error = log
        .lines()
        .find(|l| l.contains("result: fail"))
        .unwrap_or_else(|| panic!("no failure line:\n{log}"));
    assert!(
        error.contains(&format!("error: could not connect to {addr} within 1s")),
        "{error}"
    );
}

#[test]
fn sigterm_during_a_connect_in_progress_exits_0_at_once() {
    let (addr, _listener, _fillers) = unanswering_peer();
    let mut child = client(
        &addr.to_string(),
        1,
        &[("CLI_MODE", "echo"), ("CLI_SERVER_CONNECTTIMEOUT", "60s")],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + MINUTE;
    while !syn_sent_to(addr.port()) {
        assert!(
            Instant::now() < deadline,
            "the client never started connecting"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = wait_child(&mut child, MINUTE).expect("the client exits");
    let took = signalled.elapsed();
    let output = child.wait_with_output().unwrap();
    let log = text(&output);
    assert!(exited.success(), "{log}");
    assert!(took < MARGIN, "{took:?}:\n{log}");
    assert!(
        log.contains("action: shutdown | result: success | client_id: 1 | signal: SIGTERM"),
        "{log}"
    );
}

/// What our server does for an agency with more than 16,383 winners (and on
/// shutdown before the draw): the end ack, then a close without winners. The
/// client must say so rather than report a generic early close.
#[test]
fn a_close_after_the_end_ack_without_winners_is_explained() {
    let dir = scratch("client-no-winners");
    let bets = agency_bets(1, 3, 1, 8);
    let file = write_agency_file(&dir, 1, &bets);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let expected = bets.clone();
    let script = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(MINUTE)).unwrap();
        let mut header = [0u8; HEADER_LEN];
        peer.read_exact(&mut header).unwrap();
        let mut reply = Vec::new();
        loop {
            let mut frame = [0u8; FRAME_LEN];
            peer.read_exact(&mut frame).unwrap();
            if frame == END_FRAME {
                break;
            }
            let bet = &expected[reply.len() / lottery_protocol::ACK_LEN];
            reply.extend(Ack::new(bet.document, bet.number, Status::Stored).encode());
        }
        reply.extend(END_ACK);
        peer.write_all(&reply).unwrap();
        // Every byte the client sent was read, so this is a FIN, not a reset.
    });
    let output = run(
        client(
            &address,
            1,
            &[("CLI_AGENCY_DATA_FILE", file.to_str().unwrap())],
        ),
        MINUTE,
    );
    script.join().unwrap();
    let log = text(&output);
    assert!(!output.status.success(), "{log}");
    assert_eq!(log.matches("action: batch_enviado").count(), 1, "{log}");
    let error = log
        .lines()
        .find(|l| l.contains("result: fail"))
        .unwrap_or_else(|| panic!("no failure line:\n{log}"));
    for needle in [
        "sent no winners after the end ack",
        "more than 16,383 winners",
        "the server's log",
    ] {
        assert!(error.contains(needle), "{needle:?} in {error}");
    }
}
