//! Issue 10, one node: the lottery as a Docker Swarm stack on this machine's
//! own engine, checked as a user checks it: `docker service ps` and `docker
//! inspect` of the tasks (every agency's task Complete, exit 0, never
//! restarted), `docker service logs` read with the strict log parser (each
//! agency's `consulta_ganadores` with its winners, one draw over every bet),
//! and the bets file in the server's bind-mounted folder (every bet of every
//! agency file stored exactly once).
//!
//! Each scenario holds the Docker scenarios' machine-wide lock
//! ([`e2e::docker::engine`]). An engine in no swarm becomes a single-node
//! swarm's manager for the scenario and leaves it at the end, failed or not
//! ([`SingleNode`]); one that already manages a swarm is used and stays in
//! it. A stack `tp0` found there (a `make swarm-up` of the user's, an
//! interrupted run) is removed first, as the compose scenarios remove what
//! project `tp0` left. Where the engine is a worker or refuses `docker swarm
//! init`, the scenarios print `skipped: …` and pass; with `CI=true` that is
//! a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use client::generate::agency_bets;
use e2e::docker::{CALL_TIMEOUT, engine, output, sh};
use e2e::swarm::{
    Membership, SingleNode, Swarm, agency_file_rows, check_agency_log, check_draw, generate_stack,
    skip,
};
use e2e::{binary, check_stored_once, root, rows, scratch, text, write_agency_file};

/// The stack name users deploy (`make swarm-up`'s default).
const STACK: &str = "tp0";
const SERVER: &str = "tp0_server";
const CLIENT: &str = "tp0_client";
/// `docker stack rm` until its containers and network are gone.
const REMOVE_LIMIT: Duration = Duration::from_secs(60);

fn say(what: impl std::fmt::Display) {
    eprintln!("swarm: {what}");
}

/// The stack on the engine; removed (`docker stack rm`, waiting until it is
/// gone) when dropped, so a failing scenario leaves nothing behind.
struct Deployed<'a> {
    swarm: &'a Swarm,
}

impl<'a> Deployed<'a> {
    /// Removes a stack `tp0` that is already there, then hands the engine
    /// over to a deployment.
    fn clear(swarm: &'a Swarm) -> Deployed<'a> {
        if !swarm.leftovers(STACK).is_empty() {
            say(format_args!(
                "removing the stack {STACK} found on this engine: {}",
                swarm.leftovers(STACK)
            ));
            swarm
                .remove(STACK, REMOVE_LIMIT)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        Deployed { swarm }
    }
}

impl Drop for Deployed<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.swarm.remove(STACK, REMOVE_LIMIT) {
            if std::thread::panicking() {
                eprintln!("{e}");
            } else {
                panic!("{e}");
            }
        }
    }
}

/// What one round should end with: each agency's bets and winners, every row
/// the bets file should hold, and where it is.
struct Expected {
    /// (bets, winners) of agency i at index i - 1.
    agencies: Vec<(usize, usize)>,
    rows: Vec<Vec<String>>,
    bets_dir: PathBuf,
}

/// Waits (up to `limit` after `started`) for the round to complete and
/// checks it as a user would; returns when everything holds.
fn check_round(swarm: &Swarm, expected: &Expected, started: Instant, limit: Duration) {
    let deadline = started + limit;
    let agencies = u16::try_from(expected.agencies.len()).unwrap();
    let done = swarm.wait_round(STACK, agencies, deadline);
    say(format_args!(
        "every agency's task Complete {:.1?} after the start",
        started.elapsed()
    ));

    // Every agency one task, never restarted, Complete with exit 0.
    let tasks = swarm.tasks(CLIENT);
    assert_eq!(
        tasks.len(),
        usize::from(agencies),
        "one task per agency, none restarted\n{}",
        swarm.report(STACK)
    );
    let codes = swarm.exit_codes(&tasks);
    for task in &tasks {
        assert_eq!(task.state, "Complete", "{task:?}");
        assert_eq!(
            codes.get(&task.id),
            Some(&Some(0)),
            "agency {}'s task {} exit code",
            task.slot,
            task.id
        );
    }

    // Each agency's log, `docker service logs` of its task (the log broker
    // may lag a task's exit a little; and see `Swarm::logs` on reading a
    // service of many tasks whole).
    for (&agency, task) in &done {
        let (bets, winners) = expected.agencies[usize::from(agency) - 1];
        let mut log = swarm.logs(&task.id);
        while !log.contains("action: consulta_ganadores") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            log = swarm.logs(&task.id);
        }
        check_agency_log(&log, &format!("agency {agency}"), bets, winners);
    }

    // One server task, still running: one draw over every bet, no failure.
    let servers = swarm.tasks(SERVER);
    assert_eq!(
        servers.len(),
        1,
        "one server task, never restarted: {servers:?}"
    );
    assert_eq!(servers[0].state, "Running", "{servers:?}");
    let mut log = swarm.logs(SERVER);
    while !log.contains("action: sorteo") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        log = swarm.logs(SERVER);
    }
    let server = check_draw(&log, expected.rows.len());
    assert!(
        server.iter().all(|l| l.result != "fail"),
        "the server failed: {:?}",
        server.iter().find(|l| l.result == "fail")
    );

    check_stored_once(&expected.bets_dir.join("bets.csv"), &expected.rows);
}

/// Five agencies with known winners (none for one of them), their files
/// written by the tests' generator, the stack written by `./generar-stack.sh`
/// with the agency files, client configuration and bets folder in a scratch
/// folder, and deployed with `docker stack deploy`.
#[test]
fn five_agencies_in_a_single_node_stack_get_their_winners() {
    const AGENCIES: u16 = 5;
    let bets_of = |agency: u16| 400 * usize::from(agency) + 300;
    let winners_of = |agency: u16| usize::from(agency) * 2 % 5;

    let Some(_engine) = engine() else { return };
    let Some(node) = SingleNode::new(true) else {
        return;
    };
    let swarm = &node.swarm;
    let dir = scratch("swarm-five");
    let data = dir.join("data");
    let bets_dir = dir.join("bets");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&bets_dir).unwrap();
    let mut expected = Expected {
        agencies: Vec::new(),
        rows: Vec::new(),
        bets_dir: bets_dir.clone(),
    };
    for agency in 1..=AGENCIES {
        let bets = agency_bets(agency, bets_of(agency), winners_of(agency), 7);
        write_agency_file(&data, agency, &bets);
        expected.agencies.push((bets.len(), winners_of(agency)));
        expected.rows.extend(rows(&bets));
    }
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "server:\n  address: \"server:12345\"\nloop:\n  period: \"0s\"\n\
         log:\n  level: \"INFO\"\nbatch:\n  maxAmount: 50\n  window: 4\n",
    )
    .unwrap();
    let stack_file = dir.join("stack.yml");
    generate_stack(&stack_file, AGENCIES, &config, &data, &bets_dir);

    let deployed = Deployed::clear(swarm);
    let started = Instant::now();
    swarm.deploy(&stack_file, STACK);
    check_round(swarm, &expected, started, Duration::from_secs(90));
    say(format_args!(
        "{AGENCIES} agencies: round complete and checked {:.1?} after the deploy",
        started.elapsed()
    ));
    let removing = Instant::now();
    drop(deployed);
    say(format_args!("stack removed in {:.1?}", removing.elapsed()));
}

/// 200 agencies as users run them: `make swarm-up AGENCIES=200` (the swarm
/// initialised when there is none, the agency files generated, the stack
/// written and deployed) with the data and bets folders and the stack file
/// moved into a scratch folder, `make swarm-down` at the end. The files are
/// `scripts/gen-data.sh`'s: agency i has 500 + (i * 389 mod 1500) bets and
/// (i mod 4) + 1 winners.
#[test]
fn two_hundred_agencies_brought_up_by_make_swarm_up() {
    const AGENCIES: u16 = 200;

    let Some(_engine) = engine() else { return };
    let Some(node) = SingleNode::new(false) else {
        return;
    };
    let swarm = &node.swarm;
    let dir = scratch("swarm-200");
    let data = dir.join("data");
    let bets_dir = dir.join("bets");
    let deployed = Deployed::clear(swarm);

    let started = Instant::now();
    let make = |target: &str, vars: &[String]| {
        output(
            Command::new("make")
                .current_dir(root())
                .arg(target)
                .args(vars),
            CALL_TIMEOUT,
        )
    };
    let up = make(
        "swarm-up",
        &[
            format!("AGENCIES={AGENCIES}"),
            format!("DATA_DIR={}", data.display()),
            format!("BETS_DIR={}", bets_dir.display()),
            format!("STACK_FILE={}", dir.join("stack.yml").display()),
        ],
    );
    let out = text(&up);
    if !up.status.success() && out.contains("docker swarm init failed") {
        skip::<()>(&format!("`docker swarm init` is refused here:\n{out}"));
        return;
    }
    assert!(up.status.success(), "make swarm-up failed:\n{out}");
    let init = "swarm-up: this engine was in no swarm; initialised a single-node swarm \
                (docker swarm leave --force undoes it)";
    assert_eq!(
        out.contains(init),
        node.found_inactive(),
        "make swarm-up says it initialised a swarm exactly when there was none:\n{out}"
    );
    say(format_args!(
        "make swarm-up returned in {:.1?}",
        started.elapsed()
    ));

    let mut expected = Expected {
        agencies: Vec::new(),
        rows: Vec::new(),
        bets_dir: bets_dir.clone(),
    };
    for agency in 1..=AGENCIES {
        let i = usize::from(agency);
        let file = data.join(format!("agency-{agency}.csv"));
        let rows = agency_file_rows(&file, agency);
        assert_eq!(rows.len(), 500 + i * 389 % 1500, "{}", file.display());
        expected.agencies.push((rows.len(), i % 4 + 1));
        expected.rows.extend(rows);
    }
    check_round(swarm, &expected, started, Duration::from_secs(240));
    say(format_args!(
        "{AGENCIES} agencies, {} bets: round complete and checked {:.1?} after make swarm-up began",
        expected.rows.len(),
        started.elapsed()
    ));

    let removing = Instant::now();
    let down = make("swarm-down", &[]);
    assert!(down.status.success(), "make swarm-down:\n{}", text(&down));
    assert_eq!(swarm.leftovers(STACK), "", "left after make swarm-down");
    assert!(
        swarm.membership() != Membership::Inactive,
        "make swarm-down leaves the swarm alone"
    );
    say(format_args!(
        "make swarm-down in {:.1?}",
        removing.elapsed()
    ));
    drop(deployed);
}

/// The names of a compose or stack file's top-level networks.
fn networks(file: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .skip_while(|l| *l != "networks:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|k| !k.starts_with(' '))
        .map(str::to_owned)
        .collect()
}

/// `make swarm-up` beside `make docker-compose-up` on one engine: stack
/// `tp0` and Compose project `tp0` both prefix their networks with `tp0_`,
/// and Compose refuses to start on a network of the same name that it did
/// not create ("network tp0_testing_net was found but has incorrect
/// label"). So the two files name their networks apart. No engine needed.
#[test]
fn the_stack_and_the_compose_project_name_their_networks_apart() {
    let dir = scratch("swarm-networks");
    let compose = dir.join("compose.yaml");
    sh(Command::new("bash")
        .current_dir(root())
        .arg(root().join("generar-compose.sh"))
        .arg(&compose)
        .arg("5"));
    let stack = dir.join("stack.yml");
    generate_stack(&stack, 5, &dir.join("c.yaml"), &dir, &dir.join("bets"));
    let (compose, stack) = (networks(&compose), networks(&stack));
    assert!(
        !compose.is_empty() && !stack.is_empty(),
        "{compose:?} {stack:?}"
    );
    let shared: Vec<&String> = stack.iter().filter(|n| compose.contains(n)).collect();
    assert!(
        shared.is_empty(),
        "stack tp0 and compose project tp0 would both create tp0_{shared:?}"
    );
}

/// `scripts/swarm.sh up` with this environment, against no engine at all
/// (`DOCKER_HOST` names a socket nobody listens on): whatever it refuses
/// before asking the engine is refused as it would be on a real one; what it
/// lets through ends with "no Docker engine answers".
fn swarm_up_offline(env: &[(&str, &Path)], agencies: &str) -> Output {
    output(
        Command::new("bash")
            .current_dir(root())
            .arg("scripts/swarm.sh")
            .arg("up")
            .env("AGENCIES", agencies)
            .env("SERVER_BIN", binary("server"))
            .env("DOCKER_HOST", "unix:///nonexistent/tp0-no-engine.sock")
            .envs(env.iter().copied()),
        CALL_TIMEOUT,
    )
}

/// `make swarm-up` refuses, before touching the engine, a bets folder the
/// server would refuse to start on (a task restarted over and over, with
/// every agency waiting): a round in progress for another number of
/// agencies, or a file the server did not write. It asks the server itself
/// (`server --check`), so a round with nothing stored starts afresh with
/// any number, as the server would.
#[test]
fn swarm_up_refuses_a_bets_folder_the_server_would_refuse() {
    const ROW: &str = "1,Ana,B,1,1990-01-01,7574\n";
    const NO_ENGINE: &str = "no Docker engine answers";
    // (bets file, state file, AGENCIES, the end of the refusal)
    let table: &[(&str, &str, &str, &str)] = &[
        (
            ROW,
            "round 1 agencies 5 started 0\nfinished 1 1\n",
            "6",
            "the round in progress waits for 5 agencies, but AGENCIES is 6; \
             start with AGENCIES=5 to finish it, or move its files away",
        ),
        (
            ROW,
            "round 1 agencies 5 started 0\nfinished 1 1\n",
            "5",
            NO_ENGINE,
        ),
        // Nothing stored, no agency finished (a round whose agencies only
        // echoed): a new round with any number.
        ("", "round 1 agencies 3 started 0\n", "5", NO_ENGINE),
        (
            "this is not,a bet\n",
            "",
            "3",
            "bets file line 1 is not a bet of this round: 2 columns, not 6; \
             the files are left as they are",
        ),
    ];
    for (i, (bets, state, agencies, refusal)) in table.iter().enumerate() {
        let dir = scratch(&format!("swarm-bets-folder-{i}"));
        std::fs::write(dir.join("bets.csv"), bets).unwrap();
        if !state.is_empty() {
            std::fs::write(dir.join("bets.csv.state"), state).unwrap();
        }
        let stack_file = dir.join("stack.yml");
        let out = swarm_up_offline(&[("BETS_DIR", &dir), ("STACK_FILE", &stack_file)], agencies);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "case {i}: {}", text(&out));
        if *refusal == NO_ENGINE {
            assert!(
                stderr.starts_with("swarm-up: no Docker engine answers"),
                "case {i}: {stderr}"
            );
        } else {
            let expected = format!(
                "swarm-up: the server would refuse to start: {}/bets.csv: {refusal}",
                dir.display()
            );
            assert_eq!(stderr.trim(), expected, "case {i}");
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("bets.csv")).unwrap(),
            *bets,
            "case {i}"
        );
        // Nothing else: no stack file (nothing was deployed), no draft of one.
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected = vec!["bets.csv"];
        if !state.is_empty() {
            expected.push("bets.csv.state");
        }
        assert_eq!(names, expected, "case {i}");
    }
}

/// A server configuration the server would refuse with this many agencies
/// (`MAX_CONNECTIONS` not above `AGENCIES`: every agency holds a connection
/// until the draw) is refused before the deploy too.
#[test]
fn swarm_up_refuses_a_connection_cap_below_the_agencies() {
    let dir = scratch("swarm-cap");
    let config = dir.join("server.ini");
    let stock = std::fs::read_to_string(root().join("server/config.ini")).unwrap();
    std::fs::write(&config, format!("{stock}\nMAX_CONNECTIONS = 16\n")).unwrap();
    let bets = dir.join("bets");
    let env = [("SERVER_CONFIG", config.as_path()), ("BETS_DIR", &bets)];
    let out = swarm_up_offline(&env, "20");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "swarm-up: the server would refuse to start: MAX_CONNECTIONS (16) must be above \
         AGENCIES (20): every agency holds a connection while it waits for the draw"
    );
    let out = swarm_up_offline(&env, "15");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("swarm-up: no Docker engine answers"),
        "{stderr}"
    );
}

/// A count the stack cannot hold is refused before anything is written:
/// no agency file, no stack file (a typo of a few digits would otherwise
/// fill the disk with agency files first).
#[test]
fn swarm_up_refuses_too_many_agencies_before_writing_anything() {
    let dir = scratch("swarm-too-many");
    let data = dir.join("data");
    let stack_file = dir.join("stack.yml");
    for agencies in ["4001", "99999999999999999999"] {
        let out = swarm_up_offline(
            &[("DATA_DIR", &data), ("STACK_FILE", &stack_file)],
            agencies,
        );
        assert_eq!(out.status.code(), Some(2), "{agencies}: {}", text(&out));
        assert!(!data.exists(), "{agencies}: agency files were written");
        assert!(!stack_file.exists(), "{agencies}: a stack file was written");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{agencies}: {left:?}");
    }
}

/// The generator refuses counts the stack cannot hold, rather than wrap
/// them: more than the network's addresses, more digits than any count.
#[test]
fn the_stack_generator_refuses_counts_it_cannot_deploy() {
    let dir = scratch("swarm-counts");
    const TOO_MANY: &str = "generar-stack.sh: at most 4000 agencies (the stack's network, \
                            10.125.0.0/20, has 4,094 addresses)";
    // (agencies, scenario, the refusal; "" when written)
    for (count, scenario, refusal) in [
        ("0", "agency", ""),
        ("4000", "agency", ""),
        ("004000", "agency", ""),
        ("4001", "agency", TOO_MANY),
        ("18446744073709551616", "agency", TOO_MANY),
        ("-1", "agency", "usage: generar-stack.sh"),
        (
            "3",
            "bogus",
            "generar-stack.sh: unknown scenario 'bogus' (echo, bet or agency)",
        ),
    ] {
        let out = Command::new("bash")
            .current_dir(root())
            .arg("generar-stack.sh")
            .arg(dir.join("stack.yml"))
            .arg(count)
            .arg(scenario)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if refusal.is_empty() {
            assert!(out.status.success(), "{count}: {}", text(&out));
        } else {
            assert_eq!(out.status.code(), Some(2), "{count}: {}", text(&out));
            assert!(stderr.starts_with(refusal), "{count} {scenario}: {stderr}");
        }
    }
}
