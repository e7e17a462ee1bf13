//! Issue 10, several nodes on one machine: three Docker engines, each in its
//! own network namespace with its own data root and socket, joined over veths
//! into one swarm (`scripts/swarm-lab/up.sh`: `tp0lab-n1` the manager,
//! `tp0lab-n2` and `tp0lab-n3` workers), the images loaded into each with
//! `docker save` / `docker load` (no registry), and the stack that
//! `./generar-stack.sh` writes deployed on it. Checked as a user checks it:
//! `docker service ps` and `docker service logs` through the manager, and the
//! bets file in the server's bind-mounted folder. The engines share this
//! machine's file system, so the data and bets folders under `target/` are at
//! the same absolute path on every node.
//!
//! Where this host refuses something the lab needs (not root, no network
//! namespaces, veths, VXLAN, iptables in a namespace, cgroups, too little
//! memory, no dockerd), up.sh exits 77 naming it and the tests print
//! `skipped: the multi-node lab cannot run here: <what>` and pass, also with
//! `CI=true` (a CI machine cannot provision a kernel feature);
//! `TP0_MULTINODE=require` makes that a failure, `TP0_MULTINODE=off` skips.
//! Each test holds the Docker scenarios' machine-wide lock
//! ([`e2e::docker::engine`]) from the `docker save` to the teardown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use client::generate::agency_bets;
use e2e::docker::{CALL_TIMEOUT, Line, engine, lines, sh};
use e2e::swarm::{
    Swarm, Task, check_agency_log, check_draw, generate_stack, lab_dir, lab_script, lab_up,
};
use e2e::{check_stored_once, output_within, rows, scratch, text, write_agency_file};

const MANAGER: &str = "tp0lab-n1";
const NODES: [&str; 3] = ["tp0lab-n1", "tp0lab-n2", "tp0lab-n3"];
/// The worker whose engine is lost mid-ingest.
const VICTIM: &str = "tp0lab-n3";
const STACK: &str = "tp0";
const SERVER: &str = "tp0_server";
const CLIENT: &str = "tp0_client";
/// Two client tasks per node.
const AGENCIES: u16 = 6;
/// From deploying the stack to the last agency's winners.
const ROUND_LIMIT: Duration = Duration::from_secs(150);

fn bets_of(agency: u16) -> usize {
    1400 + 100 * usize::from(agency)
}

fn winners_of(agency: u16) -> usize {
    usize::from(agency) % 4
}

fn say(what: impl std::fmt::Display) {
    eprintln!("multinode: {what}");
}

// ---- the lab --------------------------------------------------------------

/// The running lab; torn down (`scripts/swarm-lab/down.sh`) when dropped, so
/// a failing test leaves no namespace, engine or mount behind either.
struct Lab {
    run: PathBuf,
    /// The docker CLI against the manager's engine.
    swarm: Swarm,
    /// Where down.sh copies the engines' logs when the test fails.
    logs: PathBuf,
    down: bool,
}

impl Lab {
    /// Brings the lab up with the images of this tree, or says why it cannot
    /// run here and returns `None`.
    fn up(dir: &Path) -> Option<Lab> {
        let mode = std::env::var("TP0_MULTINODE").unwrap_or_default();
        let started = Instant::now();
        let swarm = match lab_up(&[]) {
            Ok(swarm) => swarm,
            Err(why) => {
                assert!(mode != "require", "TP0_MULTINODE=require, and {why}");
                eprintln!("skipped: {why}");
                return None;
            }
        };
        say(format_args!("lab up in {:.1?}", started.elapsed()));
        Some(Lab {
            swarm,
            run: lab_dir(),
            logs: dir.join("engine-logs"),
            down: false,
        })
    }

    /// What a failure message needs: the nodes, the tasks, the server's log.
    fn report(&self) -> String {
        self.swarm.report(STACK)
    }

    /// Waits (up to the deadline) for `done`, polling every 100 ms.
    fn wait(&self, what: &str, deadline: Instant, done: &mut dyn FnMut() -> bool) {
        self.swarm.wait(STACK, what, deadline, done);
    }

    /// Tears the lab down and checks that nothing of it is left.
    fn down(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        let started = Instant::now();
        let mut cmd = lab_script("down.sh");
        if std::thread::panicking() {
            cmd.env("KEEP_LOGS", &self.logs);
        }
        // No second panic while unwinding: a timeout is only reported then.
        let Some(output) = output_within(&mut cmd, CALL_TIMEOUT) else {
            assert!(
                std::thread::panicking(),
                "scripts/swarm-lab/down.sh did not finish within {CALL_TIMEOUT:?}"
            );
            eprintln!("down.sh did not finish within {CALL_TIMEOUT:?}");
            return;
        };
        if std::thread::panicking() {
            eprintln!(
                "down.sh: {}; the engines' logs are in {}",
                output.status,
                self.logs.display()
            );
            return;
        }
        assert!(
            output.status.success(),
            "scripts/swarm-lab/down.sh: {}",
            text(&output)
        );
        say(format_args!("lab down in {:.1?}", started.elapsed()));
        let namespaces =
            String::from_utf8_lossy(&sh(Command::new("ip").args(["netns", "list"])).stdout)
                .lines()
                .filter(|l| l.starts_with("tp0lab-"))
                .map(str::to_owned)
                .collect::<Vec<_>>();
        assert!(namespaces.is_empty(), "namespaces left: {namespaces:?}");
        assert!(!self.run.exists(), "{} left", self.run.display());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(
            !mounts.contains("tp0lab"),
            "mounts left:\n{}",
            mounts
                .lines()
                .filter(|l| l.contains("tp0lab"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    fn memory(&self) -> String {
        text(&sh(lab_script("node.sh").arg("memory")))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.down();
    }
}

// ---- one round ------------------------------------------------------------

/// The agencies' files, configs and bets folder of one round, and the stack
/// file `./generar-stack.sh` writes for them.
struct Round {
    dir: PathBuf,
    stack: PathBuf,
    expected: Vec<Vec<String>>,
}

impl Round {
    fn prepare(dir: &Path) -> Round {
        let data = dir.join("data");
        let bets = dir.join("bets");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&bets).unwrap();
        let mut expected = Vec::new();
        for agency in 1..=AGENCIES {
            let bets = agency_bets(agency, bets_of(agency), winners_of(agency), 10);
            write_agency_file(&data, agency, &bets);
            expected.extend(rows(&bets));
        }
        // Paced, so a round lasts about 10 s: batches of 20 bets, 100 ms
        // apart, 2 in flight (75 to 100 batches an agency).
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            "server:\n  address: \"server:12345\"\nloop:\n  period: \"100ms\"\n\
             log:\n  level: \"INFO\"\nbatch:\n  maxAmount: 20\n  window: 2\n",
        )
        .unwrap();
        let stack = dir.join("stack.yml");
        generate_stack(&stack, AGENCIES, &config, &data, &bets);
        Round {
            dir: dir.to_path_buf(),
            stack,
            expected,
        }
    }

    fn deploy(&self, lab: &Lab) {
        // No registry: the images are the ones loaded into every engine.
        lab.swarm.deploy(&self.stack, STACK);
    }

    fn bets_file(&self) -> PathBuf {
        self.dir.join("bets/bets.csv")
    }

    /// Complete rows stored so far, per agency (read while the server writes).
    fn stored_per_agency(&self) -> BTreeMap<u16, usize> {
        let text = std::fs::read(self.bets_file()).unwrap_or_default();
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut count = BTreeMap::new();
        for row in text[..complete].split(|&b| b == b'\n') {
            let agency = row.split(|&b| b == b',').next().unwrap_or_default();
            if let Ok(agency) = std::str::from_utf8(agency).unwrap_or("").parse::<u16>() {
                *count.entry(agency).or_default() += 1;
            }
        }
        count
    }

    fn drawn(&self) -> bool {
        std::fs::read_to_string(self.dir.join("bets/bets.csv.state"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("drawn"))
    }

    /// Every row of every agency file is in the bets file exactly once.
    fn check_stored_once(&self) {
        check_stored_once(&self.bets_file(), &self.expected);
    }
}

/// Waits for every agency's task to complete; returns the completed task of
/// each slot. A failed task fails the test at once, with its log.
fn wait_round(lab: &Lab, deadline: Instant) -> BTreeMap<u16, Task> {
    lab.swarm.wait_round(STACK, AGENCIES, deadline)
}

/// Each agency's completed task: its winners, every bet sent, no failure;
/// the server's log: one round, one draw over every bet, on the manager.
/// `lost`: agencies whose first task was lost with its node (their old
/// connections' ends are the only failures the server may log).
fn check_round(lab: &Lab, round: &Round, done: &BTreeMap<u16, Task>, lost: &[u16]) -> Vec<Line> {
    for (&agency, task) in done {
        // The log broker may lag a task's exit a little.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut log = lab.swarm.logs(&task.id);
        while !log.contains("action: consulta_ganadores") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            log = lab.swarm.logs(&task.id);
        }
        check_agency_log(
            &log,
            &format!("agency {agency} on {}", task.node),
            bets_of(agency),
            winners_of(agency),
        );
    }

    let servers = lab.swarm.tasks(SERVER);
    assert_eq!(
        servers.len(),
        1,
        "one server task, never restarted: {servers:?}"
    );
    assert_eq!(servers[0].node, MANAGER, "the server runs on the manager");
    assert_eq!(servers[0].state, "Running", "{servers:?}");
    let server = check_draw(&lab.swarm.logs(SERVER), round.expected.len());
    for line in server.iter().filter(|l| l.result == "fail") {
        let error = line.get("error").unwrap_or("");
        assert!(
            lost.iter()
                .any(|a| error.starts_with(&format!("agency {a} closed before its end frame"))),
            "the server failed: {line:?}"
        );
    }
    round.check_stored_once();
    server
}

// ---- the tests ------------------------------------------------------------

/// Six agencies, two client tasks per node; the server on the manager; every
/// agency its winners, every bet stored once.
#[test]
fn a_round_over_three_engines_in_one_swarm() {
    let Some(_engine) = engine() else { return };
    let dir = scratch("multinode-round");
    let Some(mut lab) = Lab::up(&dir) else { return };
    let round = Round::prepare(&dir);

    let started = Instant::now();
    round.deploy(&lab);
    let deadline = started + ROUND_LIMIT;
    lab.wait("every task running", deadline, &mut || {
        let clients = lab.swarm.tasks(CLIENT);
        let servers = lab.swarm.tasks(SERVER);
        servers.iter().any(Task::live)
            && (1..=AGENCIES).all(|a| clients.iter().any(|t| t.slot == a && t.live()))
    });
    say(format_args!(
        "every task running {:.1?} after the deploy",
        started.elapsed()
    ));
    say(format_args!("memory:\n{}", lab.memory()));
    let done = wait_round(&lab, deadline);
    say(format_args!(
        "round complete {:.1?} after the deploy",
        started.elapsed()
    ));

    let nodes: BTreeSet<&str> = done.values().map(|t| t.node.as_str()).collect();
    assert_eq!(
        nodes,
        BTreeSet::from(NODES),
        "client tasks on every node: {done:?}"
    );
    check_round(&lab, &round, &done, &[]);
    let per_node: BTreeMap<&str, Vec<u16>> = done.values().fold(BTreeMap::new(), |mut m, t| {
        m.entry(t.node.as_str())
            .or_insert_with(Vec::new)
            .push(t.slot);
        m
    });
    say(format_args!("agencies per node: {per_node:?}"));
    lab.down();
}

/// How the worker's engine is lost.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// SIGKILL to its dockerd alone: its containerd dies with it, its
    /// containers go on as orphans the swarm no longer sees.
    Engine,
    /// SIGKILL to everything of the node: dockerd, containerd, shims and
    /// containers (a machine that dies).
    Node,
}

/// The round of the first test, and mid-ingest (some batches of every
/// agency on the victim stored, none of them finished, no draw) the victim
/// worker's engine is lost: the manager marks the node down and starts its
/// agencies' tasks on the other nodes; they resend from their first bet, the
/// server acks what it holds and stores the rest; the round completes with
/// the right winners and every bet stored once.
fn lose_a_worker_mid_ingest(name: &str, loss: Loss) {
    let Some(_engine) = engine() else { return };
    let dir = scratch(name);
    let Some(mut lab) = Lab::up(&dir) else { return };
    let round = Round::prepare(&dir);

    let started = Instant::now();
    round.deploy(&lab);
    let deadline = started + ROUND_LIMIT;
    let mut victims: Vec<u16> = Vec::new();
    lab.wait("every client task running", deadline, &mut || {
        let clients = lab.swarm.tasks(CLIENT);
        victims = clients
            .iter()
            .filter(|t| t.node == VICTIM && t.live())
            .map(|t| t.slot)
            .collect();
        (1..=AGENCIES).all(|a| clients.iter().any(|t| t.slot == a && t.live()))
    });
    assert!(
        !victims.is_empty(),
        "no client task on {VICTIM}\n{}",
        lab.report()
    );
    say(format_args!(
        "every task running {:.1?} after the deploy; agencies {victims:?} on {VICTIM}",
        started.elapsed()
    ));

    // Mid-ingest: at least 10 batches of each of the victim's agencies stored.
    lab.wait("the victim's agencies mid-stream", deadline, &mut || {
        let stored = round.stored_per_agency();
        victims
            .iter()
            .all(|a| stored.get(a).copied().unwrap_or(0) >= 200)
    });
    let node = VICTIM.trim_start_matches("tp0lab-");
    sh(lab_script("node.sh")
        .arg(match loss {
            Loss::Engine => "kill-dockerd",
            Loss::Node => "crash",
        })
        .arg(node));
    let killed = Instant::now();
    let stored = round.stored_per_agency();
    assert!(
        !round.drawn(),
        "the round ended before the kill: pace the agencies"
    );
    for a in &victims {
        let n = stored.get(a).copied().unwrap_or(0);
        assert!(
            n < bets_of(*a),
            "agency {a} had stored all its bets before the kill: pace the agencies"
        );
    }
    say(format_args!(
        "{VICTIM} lost ({loss:?}) {:.1?} after the deploy, with {} of {} bets stored ({:?} per agency)",
        killed.duration_since(started),
        stored.values().sum::<usize>(),
        round.expected.len(),
        stored
    ));

    lab.wait("the victim marked down", deadline, &mut || {
        let out = lab
            .swarm
            .docker(&["node", "inspect", "-f", "{{.Status.State}}", VICTIM]);
        String::from_utf8_lossy(&out.stdout).trim() == "down"
    });
    say(format_args!(
        "{VICTIM} marked down {:.1?} after the kill",
        killed.elapsed()
    ));
    lab.wait("the victim's agencies rescheduled", deadline, &mut || {
        let clients = lab.swarm.tasks(CLIENT);
        victims.iter().all(|&a| {
            clients
                .iter()
                .any(|t| t.slot == a && t.node != VICTIM && t.live())
        })
    });
    say(format_args!(
        "agencies {victims:?} running on other nodes {:.1?} after the kill",
        killed.elapsed()
    ));
    let done = wait_round(&lab, deadline);
    say(format_args!(
        "round complete {:.1?} after the kill, {:.1?} after the deploy",
        killed.elapsed(),
        started.elapsed()
    ));

    for a in &victims {
        assert_ne!(
            done[a].node, VICTIM,
            "agency {a} completed on the lost node"
        );
    }
    let server = check_round(&lab, &round, &done, &victims);
    // The victim's agencies resumed: their new tasks resent what was stored
    // (acked again, not stored again) and went on from there.
    for a in &victims {
        let resent: usize = lines(&server, "apuesta_recibida")
            .iter()
            .filter(|l| l.get("agencia") == Some(a.to_string().as_str()))
            .filter_map(|l| l.get("reenviadas"))
            .map(|n| n.parse::<usize>().unwrap())
            .sum();
        assert!(
            resent >= stored.get(a).copied().unwrap_or(0),
            "agency {a}: {resent} bets resent after the loss, {} stored before it",
            stored.get(a).copied().unwrap_or(0)
        );
        say(format_args!(
            "agency {a}: {} stored before the loss, {resent} resent and acked again, completed on {}",
            stored.get(a).copied().unwrap_or(0),
            done[a].node
        ));
    }
    lab.down();
}

#[test]
fn a_worker_engine_killed_mid_ingest_its_agencies_resume_elsewhere() {
    lose_a_worker_mid_ingest("multinode-engine-killed", Loss::Engine);
}

#[test]
fn a_worker_node_crashing_mid_ingest_its_agencies_resume_elsewhere() {
    lose_a_worker_mid_ingest("multinode-node-crash", Loss::Node);
}
