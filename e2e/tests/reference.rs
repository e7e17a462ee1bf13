//! Our binaries against the reference implementations' behaviour: the
//! captures of `shared/wire` replayed into our server and compared byte for
//! byte, our client against a server that answers as the reference one did,
//! and the reference client's read pattern against our server.
//!
//! Tests that need `../shared/wire` print `skipped: …` and pass without it;
//! the Go-like read test uses generated files when the course dataset is absent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use e2e::reference::{
    Capture, GoLikeAgency, PeerError, Script, ScriptedServer, WinnersWrite, hex, reference_replies,
    split_stream, winners_of, wire,
};
use e2e::{Server, client, dataset, field, run, scratch, text, write_agency_file};
use lottery_protocol::{ACK_LEN, Bet, END_ACK, FRAME_LEN, Header, encode_stream};

const MINUTE: Duration = Duration::from_secs(60);

/// Winners per agency in the captures: agency 1 has 2, agency 2 has 1.
const CAPTURE_WINNERS: [(u16, usize); 2] = [(1, 2), (2, 1)];

/// The captures, or `None` after saying the test is skipped.
fn captures() -> Option<[Capture; 2]> {
    let Some(dir) = wire() else {
        eprintln!(
            "skipped: no reference captures in {}",
            e2e::root().join("../shared/wire").display()
        );
        return None;
    };
    Some([Capture::load(&dir, 1), Capture::load(&dir, 2)])
}

/// Joins a thread, panicking if it is still running after `timeout` (the
/// threads here are bounded by read timeouts; this bounds the test itself).
fn join_within<T>(handle: JoinHandle<T>, timeout: Duration, what: &str) -> T {
    let deadline = Instant::now() + timeout;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} still running after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Panics unless `got` is `want`, showing where they first differ.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    let from = at.saturating_sub(8);
    panic!(
        "{what}: {} bytes where {} were due, first difference at byte {at}\n got from byte {from}: {}\nwant from byte {from}: {}",
        got.len(),
        want.len(),
        hex(&got[from..]),
        hex(&want[from..])
    );
}

#[test]
fn the_captures_are_what_a_correct_agency_sends_and_a_correct_server_answers() {
    let Some(captures) = captures() else { return };
    for capture in &captures {
        let bets = capture.bets();
        let frames: Vec<[u8; FRAME_LEN]> = bets.iter().map(|b| b.view().encode()).collect();
        let mut stream = Vec::new();
        encode_stream(
            Header::new(capture.bets_per_batch(), capture.agency),
            &frames,
            &mut stream,
        );
        let what = format!("agency {}", capture.agency);
        assert_same_bytes(&stream, &capture.client_to_server, &what);
        // The helpers the other tests build their synthetic scripts with.
        assert_same_bytes(&reference_replies(&bets), &capture.server_to_client, &what);
        let go = GoLikeAgency::new(capture.agency, &bets, capture.bets_per_batch());
        assert_eq!(go.stream(), capture.client_to_server);
    }
}

/// How a replay writes the reference client's bytes.
#[derive(Debug, Clone, Copy)]
enum Replay {
    /// The whole stream in one write.
    OneWrite,
    /// One byte per write, Nagle off, so the server gets tiny reads.
    BytePerWrite,
    /// As the reference client: header and first batch, that batch's acks,
    /// the next batch, and so on.
    StopAndWait,
}

/// Sends a capture's client-to-server bytes to `address` and returns every
/// byte that comes back until the server closes.
fn replay(address: &str, capture: &Capture, how: Replay) -> Vec<u8> {
    let what = format!("agency {} ({how:?})", capture.agency);
    let mut socket = TcpStream::connect(address).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.set_nodelay(true).unwrap();
    let bytes = &capture.client_to_server;
    let mut got = Vec::new();
    match how {
        Replay::OneWrite => socket.write_all(bytes).unwrap(),
        Replay::BytePerWrite => {
            for byte in bytes.chunks(1) {
                socket.write_all(byte).unwrap();
            }
        }
        Replay::StopAndWait => {
            let spans = split_stream(bytes).unwrap();
            for (i, span) in spans.iter().enumerate() {
                // The header rides with the first batch.
                let from = if i == 0 { 0 } else { span.bytes.start };
                socket.write_all(&bytes[from..span.bytes.end]).unwrap();
                let mut acks = vec![0; span.reply_len()];
                socket
                    .read_exact(&mut acks)
                    .unwrap_or_else(|e| panic!("{what}: acks of batch {}: {e}", i + 1));
                got.extend_from_slice(&acks);
            }
        }
    }
    socket
        .read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("{what}: after {}: {e}", hex(&got)));
    got
}

/// Both captures replayed `how` into a real server waiting for 2 agencies,
/// concurrently: each gets back the reference server's bytes, and the bets
/// file holds exactly the two agency files' rows.
fn replay_both_agencies(how: Replay) {
    let Some(captures) = captures() else { return };
    let dir = scratch(&format!("replay-{how:?}"));
    let server = Server::start(&dir, 2, &[]);
    let replays: Vec<_> = captures
        .iter()
        .cloned()
        .map(|capture| {
            let address = server.address();
            std::thread::spawn(move || {
                let got = replay(&address, &capture, how);
                (capture, got)
            })
        })
        .collect();
    for handle in replays {
        let (capture, got) = join_within(handle, MINUTE, "a replay");
        let what = format!("agency {} ({how:?})", capture.agency);
        assert_same_bytes(&got, &capture.server_to_client, &what);
    }
    // Each agency's rows in its file's order, `agency,` in front of the line.
    let stored = std::fs::read_to_string(&server.bets_file).unwrap();
    let lines: Vec<&str> = stored.lines().collect();
    let mut total = 0;
    for capture in &captures {
        let csv = std::fs::read_to_string(&capture.csv).unwrap();
        let want: Vec<String> = csv
            .lines()
            .map(|l| format!("{},{l}", capture.agency))
            .collect();
        let prefix = format!("{},", capture.agency);
        let got: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        assert_eq!(got, want, "agency {}'s rows in bets.csv", capture.agency);
        total += want.len();
    }
    assert_eq!(lines.len(), total, "no other rows:\n{stored}");
}

#[test]
fn replaying_the_reference_client_in_one_write_gets_the_reference_answers() {
    replay_both_agencies(Replay::OneWrite);
}

#[test]
fn replaying_the_reference_client_one_byte_per_write_gets_the_reference_answers() {
    replay_both_agencies(Replay::BytePerWrite);
}

#[test]
fn replaying_the_reference_client_stop_and_wait_gets_the_reference_answers() {
    replay_both_agencies(Replay::StopAndWait);
}

/// Both agencies of the captures from our client binary against a server
/// that answers as the reference one did: our client sends exactly the
/// reference client's bytes, exits 0 and logs the captured winner counts.
fn our_client_against_the_scripted_server(window: Option<&str>, winners: WinnersWrite) {
    let Some(captures) = captures() else { return };
    let server = ScriptedServer::start(captures.iter().map(Script::from).collect(), winners)
        .expect("scripted server listens");
    let clients: Vec<_> = captures
        .iter()
        .map(|capture| {
            let per_batch = capture.bets_per_batch().to_string();
            let mut env = vec![
                ("CLI_AGENCY_DATA_FILE", capture.csv.to_str().unwrap()),
                ("CLI_BATCH_MAXAMOUNT", per_batch.as_str()),
                ("CLI_MODE", "agency"),
            ];
            env.extend(window.map(|w| ("CLI_BATCH_WINDOW", w)));
            let cmd = client(&server.address(), capture.agency, &env);
            (capture.agency, std::thread::spawn(move || run(cmd, MINUTE)))
        })
        .collect();
    let outputs: Vec<_> = clients
        .into_iter()
        .map(|(agency, h)| (agency, join_within(h, 2 * MINUTE, "a client")))
        .collect();
    let conversations = server
        .finish(MINUTE)
        .expect("every agency's conversation ends");
    for (capture, (agency, output)) in captures.iter().zip(&outputs) {
        let log = text(output);
        let what = format!("agency {agency}, window {window:?}, {winners:?}");
        let seen = conversations
            .iter()
            .find(|c| c.agency == Some(*agency))
            .unwrap_or_else(|| panic!("{what}: no conversation: {conversations:?}\n{log}"));
        assert_eq!(seen.error, None, "{what}\n{log}");
        assert_same_bytes(&seen.received, &capture.client_to_server, &what);
        assert!(output.status.success(), "{what}:\n{log}");
        let want = CAPTURE_WINNERS.iter().find(|w| w.0 == *agency).unwrap().1;
        assert_eq!(capture.winners().len(), want, "{what}: the capture");
        assert_eq!(
            field(&log, "action: consulta_ganadores", "cant_ganadores"),
            Some(want.to_string()),
            "{what}:\n{log}"
        );
    }
}

#[test]
fn our_client_stop_and_wait_sends_the_reference_clients_bytes() {
    our_client_against_the_scripted_server(
        Some("1"),
        WinnersWrite::Apart(Duration::from_millis(20)),
    );
}

#[test]
fn our_client_with_its_default_window_sends_the_reference_clients_bytes() {
    our_client_against_the_scripted_server(None, WinnersWrite::Apart(Duration::from_millis(20)));
}

#[test]
fn our_client_reads_winners_that_share_the_end_acks_write() {
    // What the reference client cannot read, ours can: it parses acks and
    // winners from one sequential buffer.
    our_client_against_the_scripted_server(None, WinnersWrite::WithEndAck);
}

/// The course dataset's bets per agency, or generated bets of the same sizes
/// and winner counts (written to files and read back as the dataset would be).
fn course_bets() -> Vec<Vec<Bet>> {
    const PLAN: [(usize, usize); 5] = [(26_936, 2), (25_518, 3), (16_014, 3), (9_238, 2), (991, 0)];
    let (dir, files): (PathBuf, Vec<PathBuf>) = match dataset() {
        Some(dir) => {
            let files = (1..=5)
                .map(|a| dir.join(format!("agency-{a}.csv")))
                .collect();
            (dir, files)
        }
        None => {
            eprintln!("no course dataset: generated files of its sizes instead");
            let dir = scratch("golike-data");
            let files = (1..=5u16)
                .zip(PLAN)
                .map(|(a, (n, w))| {
                    write_agency_file(&dir, a, &client::generate::agency_bets(a, n, w, 7574))
                })
                .collect();
            (dir, files)
        }
    };
    let bets: Vec<Vec<Bet>> = (1..=5u16)
        .zip(&files)
        .map(|(a, f)| client::data::load_bets(f, a).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let sizes: Vec<(usize, usize)> = bets
        .iter()
        .map(|b| (b.len(), winners_of(b).len()))
        .collect();
    assert_eq!(sizes, PLAN, "{}", dir.display());
    bets
}

#[test]
fn go_like_agencies_get_their_winners_from_our_server_twenty_times_out_of_twenty() {
    const RUNS: usize = 20;
    let bets = course_bets();
    let peers: Vec<Arc<GoLikeAgency>> = (1..=5u16)
        .zip(&bets)
        .map(|(a, b)| Arc::new(GoLikeAgency::new(a, b, 103)))
        .collect();
    let want: Vec<Vec<u32>> = bets.iter().map(|b| winners_of(b)).collect();
    let total: usize = bets.iter().map(Vec::len).sum();
    let mut failures = Vec::new();
    for run in 1..=RUNS {
        let started = Instant::now();
        let dir = scratch(&format!("golike-{run}"));
        let server = Server::start(&dir, 5, &[]);
        let handles: Vec<_> = peers
            .iter()
            .map(|peer| {
                let (peer, address) = (Arc::clone(peer), server.address());
                std::thread::spawn(move || peer.run(&address))
            })
            .collect();
        let mut ok = true;
        for (i, handle) in handles.into_iter().enumerate() {
            match join_within(handle, 2 * MINUTE, "a Go-like agency") {
                Ok(winners) if winners == want[i] => {}
                Ok(winners) => {
                    ok = false;
                    let agency = i + 1;
                    failures.push(format!(
                        "run {run}, agency {agency}: winners {winners:?}, not {:?}",
                        want[i]
                    ));
                }
                Err(e) => {
                    ok = false;
                    failures.push(format!("run {run}: {e}"));
                }
            }
        }
        let rows = std::fs::read_to_string(&server.bets_file)
            .unwrap()
            .lines()
            .count();
        if rows != total {
            ok = false;
            failures.push(format!("run {run}: {rows} rows stored, not {total}"));
        }
        eprintln!(
            "run {run}: {:?}, {}",
            started.elapsed(),
            if ok { "ok" } else { "FAILED" }
        );
        drop(server);
        // A failed run's folder (bets, nothing else) stays for a look; a
        // good one goes, as each holds 4 MB of bets.
        if ok {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures in {RUNS} runs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_go_like_agency_fails_when_winners_share_the_end_acks_read() {
    // Three bets in batches of up to 103: the end batch's answer (4 x 9 bytes)
    // leaves room in the 927-byte buffer for the winners to land in it too.
    let bets = client::generate::agency_bets(1, 3, 1, 11);
    let replies = reference_replies(&bets);
    let script = || {
        vec![Script {
            agency: 1,
            server_to_client: replies.clone(),
        }]
    };
    let peer = GoLikeAgency::new(1, &bets, 103).with_read_timeout(Duration::from_secs(5));

    let together = ScriptedServer::start(script(), WinnersWrite::WithEndAck).unwrap();
    match peer.run(&together.address()) {
        // It kept reading past the end ack, holding the winners, until the close.
        Err(PeerError::Closed { held, .. }) => {
            assert_same_bytes(&held, &replies, "acks, end ack and winners in one buffer");
            assert_eq!(&held[3 * ACK_LEN..4 * ACK_LEN], END_ACK);
        }
        other => panic!("the Go-like agency must fail here, got {other:?}"),
    }
    let conversation = together.finish(MINUTE).unwrap().remove(0);
    assert_eq!(conversation.error, None);

    // The same peer and answers, the winners in a write of their own: it works.
    let apart =
        ScriptedServer::start(script(), WinnersWrite::Apart(Duration::from_millis(50))).unwrap();
    assert_eq!(peer.run(&apart.address()).unwrap(), winners_of(&bets));
    let conversation = apart.finish(MINUTE).unwrap().remove(0);
    assert_eq!(conversation.error, None);
    assert_eq!(conversation.received, peer.stream());
}
