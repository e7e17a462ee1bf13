//! Every line both binaries write parses as users read it (`tp0_log::parse_line`:
//! split on `|`, `action:` and `result:` first, every other part `key: value`,
//! no key named action, result or source), even when peers, files and
//! configuration values carry `|`, line breaks and terminal escapes.

use std::io::Read;
use std::time::Duration;

use client::generate::agency_bets;
use e2e::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Text that would add a field, a line or a terminal effect if written raw.
const HOSTILE: &str = "x | result: fail | action: pwn\r\u{1b}[2K";

fn assert_every_line_parses(who: &str, log: &str) {
    assert!(!log.trim().is_empty(), "{who} wrote nothing");
    if let Err(e) = tp0_log::parse_log(log) {
        panic!("{who}: {e}\nwhole log:\n{log}");
    }
}

#[test]
fn hostile_peers_files_and_values_cannot_break_the_log_format() {
    let dir = scratch("logs");
    let data = dir.join(format!("agency {HOSTILE}|.csv").replace(['\r', '\u{1b}'], "_"));
    let bets = agency_bets(1, 5, 1, 11);
    std::fs::copy(write_agency_file(&dir, 1, &bets), &data).unwrap();
    let mut server = Server::start(
        &dir,
        1,
        &[
            ("LOGGING_LEVEL", "DEBUG"),
            ("BETS_FILE", dir.join("bets|\n.csv").to_str().unwrap()),
            ("STALL_TIMEOUT", "300ms"),
        ],
    );
    let address = server.address();

    // An echo line full of separators and escapes; the client's echo of it.
    let mut echo = Mock::connect(&address);
    echo.send(format!("{HOSTILE} | key: value\n").as_bytes());
    let mut back = Vec::new();
    echo.stream.read_to_end(&mut back).unwrap();
    assert!(back.starts_with(HOSTILE.as_bytes()), "echoed unchanged");
    // Peers the server refuses or times out, and one that stalls.
    for bytes in [vec![0, 80, 0, 1], vec![0, 79, 0, 9], vec![b'x'; 2000]] {
        let mut bad = Mock::connect(&address);
        bad.send(&bytes);
        assert!(bad.closed_by_server());
    }
    let mut stall = Mock::connect(&address);
    stall.send(&[0, 79]);
    assert!(stall.closed_by_server());

    // Clients: an echo round, the agency from a file whose name is hostile, a
    // YAML file with a hostile unknown key, an unreachable hostile address.
    let yaml = dir.join("client.yaml");
    std::fs::write(
        &yaml,
        format!(
            "\"{}\": 1\nlog:\n  level: DEBUG\n",
            HOSTILE.replace('\u{1b}', "\\e")
        ),
    )
    .unwrap();
    let mut logs = Vec::new();
    for (what, env) in [
        (
            "echo client",
            vec![("CLI_MODE", "echo"), ("CLI_LOOP_AMOUNT", "2")],
        ),
        (
            "agency client",
            vec![("CLI_AGENCY_DATA_FILE", data.to_str().unwrap())],
        ),
        (
            "client without a server",
            vec![
                ("CLI_SERVER_ADDRESS", "no|such\nhost:1"),
                ("CLI_SERVER_CONNECTTIMEOUT", "100ms"),
            ],
        ),
        (
            "client with a bad value",
            vec![("CLI_BATCH_WINDOW", HOSTILE)],
        ),
    ] {
        let mut cmd = client(&address, 1, &env);
        cmd.env("CLI_LOG_LEVEL", "DEBUG");
        if what == "echo client" {
            cmd.args(["--config", yaml.to_str().unwrap()]);
        }
        logs.push((what, text(&run(cmd, MINUTE))));
    }
    // A malformed row that quotes the file's text.
    let bad_file = dir.join("bad.csv");
    std::fs::write(
        &bad_file,
        format!("A,B,1,2000-01-01,1\n{HOSTILE},B,1,2000-01-01,1\nC|D,E,12x,2000-01-01,1\n"),
    )
    .unwrap();
    logs.push((
        "client with a bad file",
        text(&run(
            client(
                &address,
                1,
                &[("CLI_AGENCY_DATA_FILE", bad_file.to_str().unwrap())],
            ),
            MINUTE,
        )),
    ));
    // gen-data into a hostile path.
    let out = dir.join("gen|\nerated.csv");
    let generated = std::process::Command::new(binary("client"))
        .args(["gen-data", "1", "3", "1", out.to_str().unwrap()])
        .output()
        .unwrap();
    logs.push(("gen-data", text(&generated)));

    server.wait_for("action: sorteo", MINUTE);
    let stored = std::fs::read_to_string(dir.join("bets|\n.csv")).unwrap();
    assert_eq!(stored.lines().count(), 5);
    server.signal("TERM");
    assert!(server.wait_exit(MINUTE).success());
    for (who, log) in &logs {
        assert_every_line_parses(who, log);
    }
    let server_log = server.logs().join("\n");
    assert_every_line_parses("server", &server_log);
    // Escaped once: a value quoted inside an error reads as the echo does.
    let (_, bad_value) = logs
        .iter()
        .find(|(who, _)| *who == "client with a bad value")
        .unwrap();
    assert!(
        bad_value.contains("batch.window = \"x \\x7c result: fail \\x7c action: pwn\\r\\x1b[2K\""),
        "{bad_value}"
    );
    // And the values are still there, escaped, for a reader to recover.
    let parsed = tp0_log::parse_log(&server_log).unwrap();
    let echoed = parsed
        .iter()
        .find(|l| l.action == "receive_message")
        .and_then(|l| l.get("msg"))
        .unwrap();
    assert_eq!(
        echoed,
        "x \\x7c result: fail \\x7c action: pwn\\r\\x1b[2K \\x7c key: value"
    );
}
