//! The real server and client binaries on loopback.

use std::collections::HashMap;
use std::time::Duration;

use client::generate::agency_bets;
use e2e::*;
use lottery_protocol::{
    ACK_LEN, Ack, Bet, END_ACK, END_FRAME, FRAME_LEN, Reply, Status, decode_reply, decode_winners,
};

const MINUTE: Duration = Duration::from_secs(60);

fn row(bet: &Bet) -> Vec<String> {
    vec![
        bet.agency.to_string(),
        bet.first_name.clone(),
        bet.last_name.clone(),
        bet.document.to_string(),
        bet.birthdate.to_string(),
        bet.number.to_string(),
    ]
}

fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

fn winners_of(bets: &[Bet]) -> Vec<u32> {
    bets.iter()
        .filter(|b| b.number == lottery_protocol::WINNING_NUMBER)
        .map(|b| b.document)
        .collect()
}

/// Runs one agency client per file, all at once; returns each one's log.
fn run_agencies(
    server: &Server,
    files: &[(u16, std::path::PathBuf)],
    env: &[(&str, &str)],
) -> HashMap<u16, String> {
    let children: Vec<_> = files
        .iter()
        .map(|(id, file)| {
            let mut cmd = client(&server.address(), *id, env);
            cmd.env("CLI_AGENCY_DATA_FILE", file)
                .env("CLI_MODE", "agency");
            (*id, cmd)
        })
        .map(|(id, cmd)| (id, std::thread::spawn(move || run(cmd, MINUTE))))
        .collect();
    children
        .into_iter()
        .map(|(id, handle)| {
            let output = handle.join().expect("client thread");
            let log = text(&output);
            assert!(output.status.success(), "client {id} failed:\n{log}");
            (id, log)
        })
        .collect()
}

#[test]
fn five_agencies_store_every_bet_once_and_get_their_winners() {
    let dir = scratch("five");
    let mut server = Server::start(&dir, 5, &[]);
    let plan = [
        (1u16, 250usize, 2usize),
        (2, 103, 1),
        (3, 1, 0),
        (4, 400, 5),
        (5, 37, 3),
    ];
    let bets: HashMap<u16, Vec<Bet>> = plan
        .iter()
        .map(|&(a, n, w)| (a, agency_bets(a, n, w, 42)))
        .collect();
    let files: Vec<_> = plan
        .iter()
        .map(|&(a, ..)| (a, write_agency_file(&dir, a, &bets[&a])))
        .collect();
    let logs = run_agencies(
        &server,
        &files,
        &[("CLI_LOG_LEVEL", "DEBUG"), ("CLI_BATCH_MAXAMOUNT", "50")],
    );

    for (agency, log) in &logs {
        let want = winners_of(&bets[agency]);
        assert_eq!(
            field(log, "action: consulta_ganadores", "cant_ganadores"),
            Some(want.len().to_string()),
            "{log}"
        );
        assert_eq!(
            field(log, "dni_ganadores", "dni_ganadores"),
            Some(format!("{want:?}"))
        );
    }
    server.wait_for("action: sorteo | result: success", MINUTE);
    let expected: Vec<Vec<String>> = bets.values().flatten().map(row).collect();
    assert_eq!(
        sorted(server.stored_rows()),
        sorted(expected),
        "every bet stored exactly once"
    );
    assert_eq!(
        server.count("result: fail"),
        0,
        "{}",
        server.logs().join("\n")
    );
    // The draw comes after every batch was received.
    let logs = server.logs();
    let sorteo = logs
        .iter()
        .position(|l| l.contains("action: sorteo"))
        .unwrap();
    let last_batch = logs
        .iter()
        .rposition(|l| l.contains("action: apuesta_recibida"))
        .unwrap();
    assert!(last_batch < sorteo);
    server.signal("TERM");
    assert!(server.wait_exit(MINUTE).success());
}

#[test]
fn an_exact_multiple_of_the_batch_sends_the_end_frame_alone_and_it_is_acked() {
    let dir = scratch("multiple");
    let mut server = Server::start(&dir, 1, &[]);
    let bets = agency_bets(1, 128, 2, 1);
    let file = write_agency_file(&dir, 1, &bets);
    let logs = run_agencies(
        &server,
        &[(1, file)],
        &[("CLI_BATCH_MAXAMOUNT", "64"), ("CLI_BATCH_WINDOW", "1")],
    );
    assert_eq!(
        field(&logs[&1], "consulta_ganadores", "cant_ganadores").as_deref(),
        Some("2")
    );
    server.wait_for("action: sorteo", MINUTE);
    let cantidades: Vec<String> = server
        .logs()
        .iter()
        .filter(|l| l.contains("action: apuesta_recibida"))
        .filter_map(|l| field(l, "apuesta_recibida", "cantidad"))
        .collect();
    assert_eq!(cantidades, ["64", "64", "0"]);
    assert_eq!(server.stored_rows().len(), 128);
}

#[test]
fn rejected_bets_get_their_status_and_are_not_stored() {
    let dir = scratch("rejected");
    let mut server = Server::start(&dir, 2, &[]);
    let good = Bet::new(2, "Ana", "Núñez", 1234, "1990-05-01", 7574).unwrap();
    let mut bad_agency = good.view().encode();
    bad_agency[0] = 3;
    let mut bad_name = good.view().encode();
    bad_name[31..61].fill(0);
    let mut bad_date = good.view().encode();
    bad_date[65..75].copy_from_slice(b"1990-13-01");
    let bytes = raw_stream(
        2,
        4,
        &[good.view().encode(), bad_agency, bad_name, bad_date],
    );
    let mut mock = Mock::connect(&server.address());
    mock.send(&bytes);
    let acks = mock.recv(4 * ACK_LEN);
    let statuses: Vec<Option<Status>> = acks
        .chunks_exact(ACK_LEN)
        .map(|a| match decode_reply(a.try_into().unwrap()) {
            Reply::Ack(ack) => {
                assert_eq!((ack.document, ack.number), (1234, 7574));
                Status::from_byte(ack.status)
            }
            Reply::End => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            Some(Status::Stored),
            Some(Status::AgencyMismatch),
            Some(Status::InvalidName),
            Some(Status::InvalidBirthdate)
        ]
    );
    server.wait_for(
        "action: apuesta_recibida | result: fail | cantidad: 4",
        MINUTE,
    );
    assert_eq!(server.stored_rows(), vec![row(&good)]);
}

#[test]
fn a_peer_dying_mid_batch_stores_nothing_of_it_and_others_go_on() {
    let dir = scratch("midbatch");
    let mut server = Server::start(&dir, 2, &[]);
    // Agency 1, by hand: one complete batch, then half of the next, then gone.
    let first = agency_bets(1, 3, 1, 9);
    let frames: Vec<[u8; FRAME_LEN]> = first.iter().map(|b| b.view().encode()).collect();
    let mut mock = Mock::connect(&server.address());
    mock.send(&raw_stream(1, 2, &frames[..2]));
    let acks = mock.recv(2 * ACK_LEN);
    assert_eq!(
        decode_reply(acks[..ACK_LEN].try_into().unwrap()),
        Reply::Ack(Ack::new(first[0].document, first[0].number, Status::Stored))
    );
    mock.send(&frames[2][..40]);
    drop(mock);
    server.wait_for("partial batch of 40 bytes", MINUTE);

    // Agency 2 ingests while agency 1 is away; then agency 1 comes back with
    // its whole file, as a rerun client does: the two stored bets are acked
    // again, not stored again; the rest is stored.
    let second = agency_bets(2, 300, 2, 9);
    let rest = agency_bets(1, 10, 1, 10);
    let whole: Vec<_> = first.iter().chain(&rest).cloned().collect();
    let f2 = write_agency_file(&dir, 2, &second);
    let f1 = write_agency_file(&dir, 1, &whole);
    let address = server.address();
    let agency2 = std::thread::spawn(move || {
        run(
            client(
                &address,
                2,
                &[("CLI_AGENCY_DATA_FILE", f2.to_str().unwrap())],
            ),
            MINUTE,
        )
    });
    server.wait_for_count("agencia: 2", 3, MINUTE); // agency 2's batches are acked meanwhile
    let agency1 = run(
        client(
            &server.address(),
            1,
            &[("CLI_AGENCY_DATA_FILE", f1.to_str().unwrap())],
        ),
        MINUTE,
    );
    let agency2 = agency2.join().unwrap();
    assert!(agency1.status.success() && agency2.status.success());
    // Agency 1 wins with every winner of its file, each once.
    assert_eq!(
        field(&text(&agency1), "consulta_ganadores", "cant_ganadores"),
        Some(winners_of(&whole).len().to_string())
    );
    assert_eq!(
        field(&text(&agency2), "consulta_ganadores", "cant_ganadores").as_deref(),
        Some("2")
    );
    let expected: Vec<Vec<String>> = whole.iter().chain(&second).map(row).collect();
    assert_eq!(
        sorted(server.stored_rows()),
        sorted(expected),
        "every bet once: the partial batch was not stored, the resent ones not twice"
    );
}

#[test]
fn bad_peers_are_closed_alone() {
    let dir = scratch("badpeers");
    let mut server = Server::start(&dir, 2, &[("STALL_TIMEOUT", "300ms")]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("batch size 80 is not a multiple of 79", vec![0, 80, 0, 1]),
        ("batch size is 0", vec![0, 0, 0, 1]),
        ("above the limit of 8137", vec![0x1f, 0xca, 0, 1]),
        ("agency 0 is not between 1 and 2", vec![0, 79, 0, 0]),
        ("agency 9 is not between 1 and 2", vec![0, 79, 0, 9]),
        ("echo line longer than 1024 bytes", vec![b'x'; 2000]),
    ];
    for (error, bytes) in &cases {
        let mut mock = Mock::connect(&server.address());
        mock.send(bytes);
        assert!(mock.closed_by_server(), "{error}");
        server.wait_for(error, MINUTE);
    }
    // Stalled mid-header and mid-batch: closed after the timeout.
    let mut half_header = Mock::connect(&server.address());
    half_header.send(&[0, 79]);
    let mut half_batch = Mock::connect(&server.address());
    half_batch.send(&[0, 79, 0, 2, 2, b'A']);
    assert!(half_header.closed_by_server() && half_batch.closed_by_server());
    server.wait_for_count("action: timeout | result: fail", 2, MINUTE);
    // A second connection for one agency takes over (a restarted agency is
    // never locked out by its own dead connection); the first is closed, and
    // the bet the second resends is acked without being stored again.
    let bet = agency_bets(1, 1, 0, 3);
    let one = raw_stream(1, 1, &[bet[0].view().encode()]);
    let mut first = Mock::connect(&server.address());
    first.send(&one);
    first.recv(ACK_LEN);
    let mut second = Mock::connect(&server.address());
    second.send(&one);
    assert_eq!(second.recv(ACK_LEN)[8], 1, "acked as stored");
    assert!(first.closed_by_server());
    server.wait_for(
        "agencia: 1 | reason: a newer connection for the agency took over",
        MINUTE,
    );
    second.send(&END_FRAME);
    assert_eq!(second.recv(ACK_LEN), END_ACK);
    // An agency that finished may come back (to wait for its winners), but
    // cannot add a bet.
    let mut again = Mock::connect(&server.address());
    again.send(&raw_stream(1, 1, &[bet[0].view().encode(), END_FRAME]));
    assert_eq!(&again.recv(2 * ACK_LEN)[ACK_LEN..], END_ACK);
    let more = agency_bets(1, 2, 0, 3);
    let mut more_conn = Mock::connect(&server.address());
    more_conn.send(&raw_stream(
        1,
        2,
        &[more[0].view().encode(), more[1].view().encode()],
    ));
    assert!(more_conn.closed_by_server());
    server.wait_for(
        "agency 1 finished with 1 bets, and this connection sent bet 2",
        MINUTE,
    );
    assert_eq!(server.stored_rows(), vec![row(&bet[0])]);
    // The server is still serving.
    let echo = run(
        client(
            &server.address(),
            1,
            &[("CLI_MODE", "echo"), ("CLI_LOOP_AMOUNT", "1")],
        ),
        MINUTE,
    );
    assert!(echo.status.success(), "{}", text(&echo));
}

#[test]
fn echo_mode_and_a_raw_echo() {
    let dir = scratch("echo");
    let mut server = Server::start(&dir, 0, &[]);
    let output = run(
        client(
            &server.address(),
            7,
            &[
                ("CLI_MODE", "echo"),
                ("CLI_LOOP_AMOUNT", "3"),
                ("CLI_LOOP_PERIOD", "10ms"),
            ],
        ),
        MINUTE,
    );
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    for k in 1..=3 {
        assert!(log.contains(&format!("action: receive_message | result: success | client_id: 7 | msg: [CLIENT 7] Message N°{k}")), "{log}");
    }
    assert!(log.contains("action: loop_finished | result: success | client_id: 7"));
    assert_eq!(server.count("action: receive_message | result: success"), 3);
    let mut mock = Mock::connect(&server.address());
    mock.send(b"hola\n");
    assert_eq!(mock.recv(5), b"hola\n");
    assert!(mock.closed_by_server());
    server.wait_for("msg: hola", MINUTE);
}

#[test]
fn one_bet_mode() {
    let dir = scratch("bet");
    let server = Server::start(&dir, 1, &[]);
    let env = [
        ("CLI_MODE", "bet"),
        ("NOMBRE", "Santiago Lionel"),
        ("APELLIDO", "Lorca"),
        ("DOCUMENTO", "30904465"),
        ("NACIMIENTO", "1999-03-17"),
        ("NUMERO", "7574"),
    ];
    let output = run(client(&server.address(), 1, &env), MINUTE);
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("action: apuesta_enviada | result: success | client_id: 1 | dni: 30904465 | numero: 7574"), "{log}");
    assert_eq!(
        field(&log, "consulta_ganadores", "cant_ganadores").as_deref(),
        Some("1")
    );
    assert_eq!(
        server.stored_rows(),
        vec![
            [
                "1",
                "Santiago Lionel",
                "Lorca",
                "30904465",
                "1999-03-17",
                "7574"
            ]
            .map(String::from)
            .to_vec()
        ]
    );
}

#[test]
fn a_malformed_agency_file_is_reported_and_nothing_is_sent() {
    let dir = scratch("malformed");
    let server = Server::start(&dir, 1, &[]);
    let file = dir.join("agency-1.csv");
    std::fs::write(
        &file,
        "Ana,Pérez,1,1990-01-01,5\nJuan,Gómez,2,1990-02-30,6\n",
    )
    .unwrap();
    let output = run(
        client(
            &server.address(),
            1,
            &[("CLI_AGENCY_DATA_FILE", file.to_str().unwrap())],
        ),
        MINUTE,
    );
    let log = text(&output);
    assert!(!output.status.success());
    assert!(
        log.contains("action: load_bets | result: fail | client_id: 1 | error: ")
            && log.contains("agency-1.csv:2: birthdate \"1990-02-30\""),
        "{log}"
    );
    assert_eq!(server.count("accept_connections"), 0);
}

#[test]
fn sigterm_during_ingest_leaves_a_well_formed_csv_and_exit_code_0() {
    let dir = scratch("sigterm");
    let mut server = Server::start(&dir, 3, &[]);
    let files: Vec<_> = (1..=3u16)
        .map(|a| (a, write_agency_file(&dir, a, &agency_bets(a, 20_000, 1, 5))))
        .collect();
    let address = server.address();
    let clients: Vec<_> = files
        .iter()
        .map(|(a, f)| {
            let cmd = client(
                &address,
                *a,
                &[
                    ("CLI_AGENCY_DATA_FILE", f.to_str().unwrap()),
                    ("CLI_BATCH_WINDOW", "1"),
                ],
            );
            std::thread::spawn(move || run(cmd, MINUTE))
        })
        .collect();
    server.wait_for_count("action: apuesta_recibida", 20, MINUTE);
    server.signal("TERM");
    let status = server.wait_exit(MINUTE);
    assert!(status.success(), "exit status {status}");
    for client in clients {
        client.join().unwrap(); // each fails or finishes; none hangs
    }
    let rows = server.stored_rows();
    assert!(!rows.is_empty());
    for needle in [
        "action: shutdown | result: in_progress | signal: SIGTERM",
        "action: close_listener | result: success",
        "action: close_storage | result: success",
        "action: shutdown | result: success",
    ] {
        assert_eq!(server.count(needle), 1, "{needle}");
    }
    let closed = field(&server.logs().join("\n"), "action: close_storage", "bets").unwrap();
    assert_eq!(
        closed,
        rows.len().to_string(),
        "every row the server counted is in the file"
    );
}

#[test]
fn a_client_exits_0_on_sigterm_while_waiting_for_winners() {
    let dir = scratch("client-sigterm");
    let mut server = Server::start(&dir, 2, &[]);
    let file = write_agency_file(&dir, 1, &agency_bets(1, 10, 1, 1));
    let mut child = client(
        &server.address(),
        1,
        &[("CLI_AGENCY_DATA_FILE", file.to_str().unwrap())],
    )
    .spawn()
    .unwrap();
    server.wait_for("action: apuesta_recibida", MINUTE);
    std::thread::sleep(Duration::from_millis(100)); // it is now waiting for agency 2
    let started = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_child(&mut child, Duration::from_secs(5)).expect("the client exits promptly");
    let output = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", text(&output));
    assert!(started.elapsed() < Duration::from_secs(2));
    let log = text(&output);
    assert!(
        log.contains("action: close_socket | result: success | client_id: 1"),
        "{log}"
    );
    assert!(
        log.contains("action: shutdown | result: success | client_id: 1 | signal: SIGTERM"),
        "{log}"
    );
}

#[test]
fn a_client_retries_until_the_server_listens() {
    let dir = scratch("late-server");
    // Find a free port, then start the client before the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let cmd = client(
        &address,
        1,
        &[("CLI_MODE", "echo"), ("CLI_LOOP_AMOUNT", "1")],
    );
    let handle = std::thread::spawn(move || run(cmd, MINUTE));
    std::thread::sleep(Duration::from_millis(300));
    let _server = Server::start(&dir, 0, &[("SERVER_PORT", &port.to_string())]);
    let output = handle.join().unwrap();
    assert!(output.status.success(), "{}", text(&output));

    // The whole connect timeout is used: the last wait is cut to end at the
    // deadline and one more attempt made there (the backoff's next step would
    // have given up at 2.12 s of 2.5 s).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let cmd = client(
        &address,
        1,
        &[
            ("CLI_MODE", "echo"),
            ("CLI_LOOP_AMOUNT", "1"),
            ("CLI_SERVER_CONNECTTIMEOUT", "2500ms"),
        ],
    );
    let handle = std::thread::spawn(move || run(cmd, MINUTE));
    std::thread::sleep(Duration::from_millis(2200));
    std::fs::create_dir_all(dir.join("late")).unwrap();
    let _late = Server::start(&dir.join("late"), 0, &[("SERVER_PORT", &port.to_string())]);
    let output = handle.join().unwrap();
    assert!(output.status.success(), "{}", text(&output));

    let refused = run(
        client(
            "127.0.0.1:1",
            1,
            &[("CLI_MODE", "echo"), ("CLI_SERVER_CONNECTTIMEOUT", "200ms")],
        ),
        MINUTE,
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("could not connect to 127.0.0.1:1 within 200ms"),
        "{}",
        text(&refused)
    );
}

#[test]
fn a_bad_config_value_is_named() {
    let dir = scratch("badconfig");
    let output = std::process::Command::new(binary("server"))
        .current_dir(&dir)
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("SERVER_LISTEN_BACKLOG", "5")
        .env("LOGGING_LEVEL", "INFO")
        .env("AGENCIES", "many")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains("action: config | result: fail | file: config.ini | error: AGENCIES = \"many\" (from the environment) is not a whole number from 0 to 65535"), "{}", text(&output));
}

#[test]
fn the_course_dataset() {
    let Some(data) = dataset() else {
        eprintln!("skipped: ../shared/datasets/tp0 is not on this machine");
        return;
    };
    let dir = scratch("dataset");
    let server = Server::start(&dir, 5, &[]);
    let files: Vec<_> = (1..=5u16)
        .map(|a| (a, data.join(format!("agency-{a}.csv"))))
        .collect();
    let logs = run_agencies(&server, &files, &[]);
    let winners: Vec<String> = (1..=5)
        .map(|a| field(&logs[&a], "consulta_ganadores", "cant_ganadores").unwrap())
        .collect();
    assert_eq!(winners, ["2", "3", "3", "2", "0"]);
    let rows = server.stored_rows();
    assert_eq!(rows.len(), 78_697);
    let per_agency = |a: &str| rows.iter().filter(|r| r[0] == a).count();
    assert_eq!(
        [
            per_agency("1"),
            per_agency("2"),
            per_agency("3"),
            per_agency("4"),
            per_agency("5")
        ],
        [26_936, 25_518, 16_014, 9_238, 991]
    );
    // Spot-check that the stored rows are the file's rows, accents and all.
    let first_line = std::fs::read_to_string(data.join("agency-1.csv"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        rows.iter()
            .any(|r| r[0] == "1" && r[1..].join(",") == first_line),
        "{first_line}"
    );
}

#[test]
fn the_winners_message_is_read_exactly() {
    // The end ack, then (after the winners delay) the winners, then the close.
    let dir = scratch("exact");
    let server = Server::start(&dir, 1, &[]);
    let bet = agency_bets(1, 1, 1, 77);
    let bytes = raw_stream(1, 2, &[bet[0].view().encode(), END_FRAME]);
    let mut mock = Mock::connect(&server.address());
    mock.send(&bytes);
    let reply = mock.recv(2 * ACK_LEN + 6);
    assert_eq!(&reply[ACK_LEN..2 * ACK_LEN], END_ACK);
    assert_eq!(
        decode_winners(&reply[2 * ACK_LEN..]),
        Ok(Some((vec![bet[0].document], 6)))
    );
    assert!(
        mock.closed_by_server(),
        "the server closes after the winners"
    );
}

#[test]
fn sigterm_inside_the_winners_delay_still_sends_the_winners() {
    let dir = scratch("delayterm");
    let mut server = Server::start(&dir, 1, &[("WINNERS_DELAY", "1h")]);
    let bet = agency_bets(1, 1, 1, 78);
    let mut mock = Mock::connect(&server.address());
    mock.send(&raw_stream(1, 2, &[bet[0].view().encode(), END_FRAME]));
    assert_eq!(&mock.recv(2 * ACK_LEN)[ACK_LEN..], END_ACK);
    server.wait_for("action: sorteo", MINUTE);
    server.signal("TERM");
    let winners = mock.recv(6);
    assert_eq!(
        decode_winners(&winners),
        Ok(Some((vec![bet[0].document], 6)))
    );
    assert!(mock.closed_by_server());
    assert!(server.wait_exit(MINUTE).success());
}

#[test]
fn two_hundred_agencies_from_the_load_generator() {
    let dir = scratch("load200");
    let mut server = Server::start(&dir, 200, &[("SERVER_LISTEN_BACKLOG", "512")]);
    let config = client::load::LoadConfig {
        address: server.address().parse().unwrap(),
        agencies: 200,
        bets_per_agency: 150,
        winners_per_agency: 2,
        per_batch: 50,
        window: 4,
        connecting_at_once: 64,
        deadline: MINUTE,
    };
    let report = client::load::run(&config).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.agencies_done, report.bets), (200, 200 * 150));
    assert_eq!(
        report.latencies.len(),
        200 * 4,
        "every batch (3 of bets, 1 with the end frame) acked"
    );
    server.wait_for("action: sorteo | result: success", MINUTE);
    assert_eq!(server.count("action: sorteo"), 1);
    assert_eq!(server.stored_rows().len(), 200 * 150);
}

#[test]
fn peers_waiting_in_the_backlog_are_accepted_once_descriptors_free_up() {
    let dir = scratch("emfile");
    let mut server = Server::start(&dir, 1, &[]);
    // Leave the server a handful of descriptors beyond the ones it holds.
    let open = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count();
    let limit = (open + 3).to_string();
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &server.pid().to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let mut peers: Vec<Mock> = (0..8).map(|_| Mock::connect(&server.address())).collect();
    server.wait_for("action: accept_connections | result: fail", MINUTE);
    for (i, peer) in peers.iter_mut().enumerate() {
        peer.send(format!("peer {i}\n").as_bytes());
    }
    for (i, peer) in peers.iter_mut().enumerate() {
        let want = format!("peer {i}\n");
        assert_eq!(peer.recv(want.len()), want.as_bytes(), "peer {i} is served");
    }
}
