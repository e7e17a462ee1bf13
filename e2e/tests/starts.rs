//! How a start treats what it finds, beyond crashes (`recovery.rs`): files it
//! did not write, a missing state file, echo-only servers, connection caps,
//! file-size limits. A start that refuses leaves every file as it was.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use client::generate::agency_bets;
use e2e::*;
use lottery_protocol::{END_FRAME, FRAME_LEN};

const MINUTE: Duration = Duration::from_secs(60);

/// Every file of `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// A file that was never a bets file, one line without a newline: refused
/// and left alone, not taken for a torn row and emptied.
#[test]
fn a_file_that_is_not_a_bets_file_is_refused_and_left_alone() {
    let dir = scratch("foreign");
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "important notes, do not delete").unwrap();
    let before = files(&dir);
    let failed = Server::try_start_in(&dir, &notes, 0, 2, &[])
        .err()
        .expect("refused");
    assert!(!failed.status.success());
    assert!(
        failed
            .logs
            .iter()
            .any(|l| l.contains("are not the start of a row")),
        "{}",
        failed.logs.join("\n")
    );
    assert_eq!(files(&dir), before, "nothing changed, nothing created");
}

/// A state file whose bets file is gone: refused without creating one.
#[test]
fn a_refused_start_creates_no_bets_file() {
    let dir = scratch("nobets");
    let bets = dir.join("bets.csv");
    std::fs::write(
        dir.join("bets.csv.state"),
        "round 1 agencies 2 started 1\nfinished 1 3\n",
    )
    .unwrap();
    let before = files(&dir);
    let failed = Server::try_start_in(&dir, &bets, 0, 2, &[])
        .err()
        .expect("refused");
    assert!(
        failed
            .logs
            .iter()
            .any(|l| l.contains("finished with 3 bets acknowledged"))
    );
    assert_eq!(files(&dir), before);
}

/// Rows with no state file beside them: resumed, with a warning that says
/// what is not known.
#[test]
fn rows_without_a_state_file_are_resumed_with_a_warning() {
    let dir = scratch("nostate");
    let bets = dir.join("bets.csv");
    std::fs::write(&bets, "1,Ana,B,1,1990-01-01,7574\n").unwrap();
    let server = Server::start_in(&dir, &bets, 0, 2, &[]);
    let logs = server.logs().join("\n");
    assert!(logs.contains("round: resumed | bets: 1"), "{logs}");
    assert!(
        logs.contains("warning: no state file beside the rows"),
        "{logs}"
    );
}

/// An echo-only server (`AGENCIES=0`, the course's echo check) takes no
/// bets and touches no round file, even with a round in progress beside it.
#[test]
fn an_echo_only_server_leaves_a_round_in_progress_alone() {
    let dir = scratch("echoonly");
    let bets = dir.join("bets.csv");
    std::fs::write(&bets, "1,Ana,B,1,1990-01-01,7574\n2,Bo,C,2,19").unwrap();
    std::fs::write(dir.join("bets.csv.state"), "round 1 agencies 5 started 1\n").unwrap();
    let before = files(&dir);
    let server = Server::start_in(&dir, &bets, 0, 0, &[]);
    let echo = run(
        client(
            &server.address(),
            1,
            &[("CLI_MODE", "echo"), ("CLI_LOOP_AMOUNT", "1")],
        ),
        MINUTE,
    );
    assert!(echo.status.success(), "{}", text(&echo));
    drop(server);
    assert_eq!(files(&dir), before);
}

/// More agencies than connections would deadlock the round (finished
/// agencies hold theirs while they wait): refused at start.
#[test]
fn a_connection_cap_at_or_below_the_agencies_is_refused() {
    let dir = scratch("cap");
    let failed = Server::try_start_in(
        &dir,
        &dir.join("bets.csv"),
        0,
        20,
        &[("MAX_CONNECTIONS", "16")],
    )
    .err()
    .expect("refused");
    assert!(
        failed
            .logs
            .iter()
            .any(|l| l.contains("MAX_CONNECTIONS (16) must be above AGENCIES (20)")),
        "{}",
        failed.logs.join("\n")
    );
    assert!(!dir.join("bets.csv").exists());
}

/// Under a file-size limit and nothing else (no shell trap), a write that
/// does not fit fails with EFBIG: the server names the file and the step,
/// and the file is cut back to its last commit, not killed mid-row.
#[test]
fn a_file_size_limit_is_a_write_error_not_a_kill() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no prlimit (util-linux)");
        return;
    }
    let dir = scratch("fsize");
    let bets = dir.join("bets.csv");
    let server = Server::try_start_wrapped(
        &["prlimit", "--fsize=20000:20000", "--"],
        &dir,
        &bets,
        0,
        1,
        &[],
    )
    .unwrap_or_else(|f| panic!("{}", f.logs.join("\n")));
    let all = agency_bets(1, 1000, 1, 3);
    let frames: Vec<[u8; FRAME_LEN]> = all.iter().map(|b| b.view().encode()).collect();
    let mut mock = Mock::connect(&server.address());
    mock.send(&raw_stream(1, 103, &frames));
    mock.send(&END_FRAME);
    let mut server = server;
    let status = server.wait_exit(MINUTE);
    assert_eq!(status.code(), Some(1), "exits with an error, not a signal");
    let line = server.wait_for("action: server | result: fail", MINUTE);
    assert!(line.contains("write failed: File too large"), "{line}");
    let stored = std::fs::read_to_string(&bets).unwrap();
    assert!(
        stored.is_empty() || stored.ends_with('\n'),
        "cut back at a row"
    );
    assert!(stored.len() <= 20_000);
}
