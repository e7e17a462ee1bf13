//! Harness for the Docker Swarm scenarios (issue 10): the docker CLI against
//! one engine, the host's own (`e2e/tests/swarm.rs`) or a lab node's socket
//! (`e2e/tests/multinode.rs`), reading what a user reads: `docker service
//! ps`, `docker service logs`, `docker inspect` of a task, and the bets file
//! in the server's bind-mounted folder.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::docker::{CALL_TIMEOUT, Line, lines, output, parse_log, sh};
use crate::{root, text};

/// One engine's docker CLI, every call under a timeout: an engine that is
/// lost (a lab node killed) may accept a connection and never answer.
#[derive(Debug, Clone)]
pub struct Swarm {
    /// `-H` of the engine; `None`: the CLI's default (`DOCKER_HOST` or the
    /// local socket).
    host: Option<String>,
}

/// One task of a service, as `docker service ps` lists it.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    /// The replica's slot: the agency number of a client task.
    pub slot: u16,
    pub node: String,
    /// `Running`, `Shutdown`, ... (a completed client task's is `Shutdown`).
    pub desired: String,
    /// The first word of CURRENT STATE: `Running`, `Complete`, `Failed`, ...
    pub state: String,
    pub error: String,
}

impl Task {
    /// Running or done, and meant to be: not a task being replaced.
    pub fn live(&self) -> bool {
        self.desired == "Running" && matches!(self.state.as_str(), "Running" | "Complete")
    }
}

/// Where an engine stands in a swarm (`docker info`'s `Swarm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    Inactive,
    Manager,
    Worker,
    /// `pending`, `locked`, `error`: as docker reports it.
    Other(String),
}

impl Swarm {
    /// The engine the docker CLI talks to by default.
    pub fn default_engine() -> Swarm {
        Swarm { host: None }
    }

    /// The engine listening on a Unix socket (a lab node's).
    pub fn at(socket: &Path) -> Swarm {
        Swarm {
            host: Some(format!("unix://{}", socket.display())),
        }
    }

    /// The docker CLI against this engine, under a 30 s timeout.
    pub fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg("30").arg("docker");
        if let Some(host) = &self.host {
            cmd.arg("-H").arg(host);
        }
        cmd.args(args).output().expect("docker runs")
    }

    /// The docker CLI against this engine; its stdout, or a panic.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.docker(args);
        assert!(
            output.status.success(),
            "docker {args:?} failed: {}",
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn membership(&self) -> Membership {
        let info = self.run(&[
            "info",
            "-f",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ]);
        match info.trim() {
            "active true" => Membership::Manager,
            "active false" => Membership::Worker,
            s if s.starts_with("inactive") => Membership::Inactive,
            s => Membership::Other(s.split(' ').next().unwrap_or("").to_owned()),
        }
    }

    pub fn has_network(&self, name: &str) -> bool {
        self.run(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|l| l == name)
    }

    /// `docker service ps` of a service (`tp0_client`), every task, history
    /// included (a failed task stays listed beside its replacement).
    pub fn tasks(&self, service: &str) -> Vec<Task> {
        let format =
            "{{.ID}};;{{.Name}};;{{.Node}};;{{.DesiredState}};;{{.CurrentState}};;{{.Error}}";
        self.run(&["service", "ps", "--no-trunc", "--format", format, service])
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.splitn(6, ";;").collect();
                assert_eq!(f.len(), 6, "a `docker service ps` line: {line:?}");
                let slot = f[1].rsplit_once('.').map_or("", |(_, s)| s);
                Task {
                    id: f[0].to_owned(),
                    slot: slot
                        .parse()
                        .unwrap_or_else(|_| panic!("a task name: {line:?}")),
                    node: f[2].to_owned(),
                    desired: f[3].to_owned(),
                    state: f[4].split_whitespace().next().unwrap_or("").to_owned(),
                    error: f[5].to_owned(),
                }
            })
            .collect()
    }

    /// A task's or a service's whole log (`docker service logs --raw
    /// --no-trunc`: the lines as the containers wrote them, stdout then
    /// stderr). Read a service of many tasks task by task: Docker 20.10's
    /// `docker service logs` of a service of more than about 32 tasks (33 to
    /// 40 here) never ends and drops lines; a task's own log comes whole.
    pub fn logs(&self, what: &str) -> String {
        text(&self.docker(&["service", "logs", "--raw", "--no-trunc", what]))
    }

    /// The exit code of each task's container, as the manager knows it
    /// (`docker inspect` of the tasks; `None` while it has none).
    pub fn exit_codes(&self, tasks: &[Task]) -> BTreeMap<String, Option<i32>> {
        let mut codes = BTreeMap::new();
        // A few hundred ids per call keeps the command line short.
        for chunk in tasks.chunks(200) {
            let mut args = vec![
                "inspect",
                "-f",
                "{{.ID}} {{if .Status.ContainerStatus}}{{.Status.ContainerStatus.ExitCode}}{{end}}",
            ];
            args.extend(chunk.iter().map(|t| t.id.as_str()));
            for line in self.run(&args).lines() {
                let (id, code) = line.split_once(' ').unwrap_or((line, ""));
                codes.insert(id.to_owned(), code.trim().parse().ok());
            }
        }
        codes
    }

    /// `docker stack deploy` of a stack file; no registry, so the images are
    /// the engine's own (`--resolve-image never`).
    pub fn deploy(&self, stack_file: &Path, stack: &str) {
        let file = stack_file.to_str().expect("a UTF-8 path");
        self.run(&[
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            file,
            stack,
        ]);
    }

    /// What of a stack is still on this engine: its services (on a manager),
    /// containers and networks, by the label `docker stack deploy` puts on
    /// them. Empty: gone.
    pub fn leftovers(&self, stack: &str) -> String {
        let label = format!("label=com.docker.stack.namespace={stack}");
        let mut left = String::new();
        let mut what = vec![
            ("containers", ["ps", "-aq"].as_slice()),
            ("networks", ["network", "ls", "-q"].as_slice()),
        ];
        // Only a manager lists services.
        if self.membership() == Membership::Manager {
            what.insert(0, ("services", ["service", "ls", "-q"].as_slice()));
        }
        for (what, args) in what {
            let mut args = args.to_vec();
            args.extend(["--filter", &label]);
            let n = self.run(&args).lines().count();
            if n > 0 {
                left.push_str(&format!("{n} {what} "));
            }
        }
        left
    }

    /// `docker stack rm`, then waits (up to `timeout`) until the stack's
    /// services, containers and network are gone, so the next deploy does
    /// not meet them; `Err` says what is left then. `docker stack rm` cannot
    /// remove the network while the tasks' containers are being removed
    /// ("in use by task"), so it is run again once the network is all that
    /// is left. An engine in no swarm has no stack: nothing to do.
    pub fn remove(&self, stack: &str, timeout: Duration) -> Result<(), String> {
        if self.membership() == Membership::Inactive {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        let mut rm = self.docker(&["stack", "rm", stack]);
        loop {
            let left = self.leftovers(stack);
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "stack {stack}: {left}left {timeout:?} after `docker stack rm`; \
                     its last run: {}",
                    text(&rm)
                ));
            }
            if !left.contains("services") && !left.contains("containers") {
                rm = self.docker(&["stack", "rm", stack]);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// What a failure message needs: the nodes, every task of the stack, the
    /// log of its `server` service.
    pub fn report(&self, stack: &str) -> String {
        let ps = text(&self.docker(&[
            "stack",
            "ps",
            "--no-trunc",
            "--format",
            "{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}",
            stack,
        ]));
        format!(
            "--- docker node ls\n{}--- docker stack ps {stack}\n{ps}--- server log\n{}",
            text(&self.docker(&["node", "ls"])),
            self.logs(&format!("{stack}_server"))
        )
    }

    /// Waits (up to the deadline) for `done`, polling every 100 ms; past the
    /// deadline, panics naming `what`, with the stack's report.
    pub fn wait(&self, stack: &str, what: &str, deadline: Instant, done: &mut dyn FnMut() -> bool) {
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}: not by the deadline\n{}",
                self.report(stack)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for agencies 1..=`agencies` of the stack's `client` service to
    /// complete; returns the completed task of each slot. A failed or
    /// rejected task fails the test at once, with its log.
    pub fn wait_round(&self, stack: &str, agencies: u16, deadline: Instant) -> BTreeMap<u16, Task> {
        let service = format!("{stack}_client");
        loop {
            let tasks = self.tasks(&service);
            if let Some(failed) = tasks
                .iter()
                .find(|t| t.state == "Failed" || t.state == "Rejected")
            {
                panic!(
                    "client task {} (agency {}) on {}: {} {}\n--- its log\n{}\n{}",
                    failed.id,
                    failed.slot,
                    failed.node,
                    failed.state,
                    failed.error,
                    self.logs(&failed.id),
                    self.report(stack)
                );
            }
            let done: BTreeMap<u16, Task> = tasks
                .into_iter()
                .filter(|t| t.state == "Complete")
                .map(|t| (t.slot, t))
                .collect();
            if done.len() == usize::from(agencies) {
                return done;
            }
            assert!(
                Instant::now() < deadline,
                "only {} agencies completed by the deadline: {:?}\n{}",
                done.len(),
                done.keys().collect::<Vec<_>>(),
                self.report(stack)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The host engine as a single-node swarm's manager for a test, left as it
/// was found when dropped: an engine that was in no swarm leaves the one it
/// joined (whoever initialised it: the test or `make swarm-up`), and the
/// `docker_gwbridge` network its first task created is removed; an engine
/// that already managed a swarm stays in it.
pub struct SingleNode {
    pub swarm: Swarm,
    found: Membership,
    gwbridge_before: bool,
}

/// The address `scripts/swarm.sh` and the tests initialise a single-node
/// swarm with: loopback, as nothing else joins it.
const INIT: [&str; 6] = [
    "swarm",
    "init",
    "--advertise-addr",
    "127.0.0.1",
    "--listen-addr",
    "127.0.0.1:2377",
];

impl SingleNode {
    /// The host engine, once it manages a swarm: initialised here when it is
    /// in none and `init`; else left for the caller (`make swarm-up`). `None`
    /// (the caller skips; printed) where the engine is a worker, in another
    /// state, or refuses `docker swarm init`; with `CI=true` those fail.
    pub fn new(init: bool) -> Option<SingleNode> {
        let swarm = Swarm::default_engine();
        let found = swarm.membership();
        let gwbridge_before = swarm.has_network("docker_gwbridge");
        match &found {
            Membership::Manager | Membership::Inactive => {}
            Membership::Worker => {
                return skip(
                    "this engine is a worker of a swarm: stacks are deployed from a manager",
                );
            }
            Membership::Other(state) => {
                return skip(&format!("this engine's swarm state is {state:?}"));
            }
        }
        let node = SingleNode {
            swarm,
            found,
            gwbridge_before,
        };
        if init && node.found == Membership::Inactive {
            let output = node.swarm.docker(&INIT);
            if !output.status.success() {
                return skip(&format!(
                    "`docker swarm init` is refused here: {}",
                    text(&output).trim()
                ));
            }
        }
        Some(node)
    }

    /// The engine was in no swarm when the test began.
    pub fn found_inactive(&self) -> bool {
        self.found == Membership::Inactive
    }
}

impl Drop for SingleNode {
    fn drop(&mut self) {
        if self.found != Membership::Inactive {
            return;
        }
        if self.swarm.membership() != Membership::Inactive {
            let output = self.swarm.docker(&["swarm", "leave", "--force"]);
            if !output.status.success() && !std::thread::panicking() {
                panic!("docker swarm leave --force: {}", text(&output));
            }
        }
        if !self.gwbridge_before && self.swarm.has_network("docker_gwbridge") {
            let output = self.swarm.docker(&["network", "rm", "docker_gwbridge"]);
            if !output.status.success() {
                eprintln!(
                    "the docker_gwbridge network the swarm created stays: {}",
                    text(&output).trim()
                );
            }
        }
    }
}

/// Says why a scenario cannot run here and returns `None`; with `CI=true`,
/// a failure, as for a missing engine ([`crate::docker::engine`]).
pub fn skip<T>(why: &str) -> Option<T> {
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "CI=true and {why}"
    );
    eprintln!("skipped: {why}");
    None
}

/// Writes `stack_file` with `./generar-stack.sh` for `agencies` agencies in
/// the `agency` scenario, with the client configuration, the agency files'
/// folder and the server's bets folder moved to the paths given.
pub fn generate_stack(
    stack_file: &Path,
    agencies: u16,
    client_config: &Path,
    data_dir: &Path,
    bets_dir: &Path,
) {
    let generator = root().join("generar-stack.sh");
    assert!(
        generator.is_file(),
        "{} is missing: the swarm tests deploy what it writes",
        generator.display()
    );
    sh(Command::new("bash")
        .current_dir(root())
        .arg(&generator)
        .arg(stack_file)
        .arg(agencies.to_string())
        .arg("agency")
        .env("CLIENT_CONFIG", client_config)
        .env("DATA_DIR", data_dir)
        .env("BETS_DIR", bets_dir));
}

/// An agency's log as its completed task wrote it: one `consulta_ganadores`,
/// a success with `winners`; `batch_enviado` for `bets` bets in all; no
/// `fail` line. `who` names the agency in a failure ("agency 3 on node n2").
/// Returns the parsed lines.
pub fn check_agency_log(log: &str, who: &str, bets: usize, winners: usize) -> Vec<Line> {
    let parsed = parse_log(log);
    let got = lines(&parsed, "consulta_ganadores");
    assert_eq!(got.len(), 1, "{who}: one consulta_ganadores:\n{log}");
    assert_eq!(got[0].result, "success", "{who}: {:?}", got[0]);
    assert_eq!(
        got[0].get("cant_ganadores"),
        Some(winners.to_string().as_str()),
        "{who}'s winners"
    );
    let sent: usize = lines(&parsed, "batch_enviado")
        .iter()
        .map(|l| l.get("cantidad").unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(sent, bets, "{who}: every bet acked once");
    assert!(
        parsed.iter().all(|l| l.result != "fail"),
        "{who}: {:?}",
        parsed.iter().find(|l| l.result == "fail")
    );
    parsed
}

/// The server's log of a round that ran once: one start on a new round, one
/// draw over `bets` bets. Returns the parsed lines (the caller judges its
/// `fail` lines).
pub fn check_draw(log: &str, bets: usize) -> Vec<Line> {
    let server = parse_log(log);
    let opened: Vec<&str> = lines(&server, "open_storage")
        .iter()
        .map(|l| l.get("round").unwrap())
        .collect();
    assert_eq!(opened, ["new"], "one run of the server:\n{log}");
    let sorteo = lines(&server, "sorteo");
    assert_eq!(sorteo.len(), 1, "one draw:\n{log}");
    assert_eq!(
        sorteo[0].get("cant_apuestas"),
        Some(bets.to_string().as_str()),
        "the draw covers every bet"
    );
    server
}

/// An agency file's bets as the server stores them (the agency in front).
pub fn agency_file_rows(file: &Path, agency: u16) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            std::iter::once(agency.to_string())
                .chain(r.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

// ---- the multi-node lab (scripts/swarm-lab) ---------------------------------

/// Where the lab keeps its engines' state: `target/swarm-lab`.
pub fn lab_dir() -> std::path::PathBuf {
    root().join("target/swarm-lab")
}

/// `bash scripts/swarm-lab/<name>` (up.sh, down.sh, node.sh), run from the
/// repository root with the lab in [`lab_dir`].
pub fn lab_script(name: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.current_dir(root())
        .arg(root().join("scripts/swarm-lab").join(name))
        .env("SWARM_LAB_DIR", lab_dir());
    cmd
}

/// Brings the lab up (`up.sh`, with `env` added to its environment) and
/// returns its manager, `tp0lab-n1`. `Err` says why the lab cannot run here:
/// `TP0_MULTINODE=off`, or up.sh's exit 77 with the reason it printed
/// (`swarm-lab: cannot run here: …`). Any other failure of up.sh panics with
/// its output, which up.sh has also echoed to stderr.
pub fn lab_up(env: &[(&str, &str)]) -> Result<Swarm, String> {
    if std::env::var("TP0_MULTINODE").is_ok_and(|m| m == "off") {
        return Err("TP0_MULTINODE=off".into());
    }
    let output = output(lab_script("up.sh").envs(env.iter().copied()), CALL_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    match output.status.code() {
        Some(0) => Ok(Swarm::at(&lab_dir().join("n1/docker.sock"))),
        Some(77) => Err(format!(
            "the multi-node lab cannot run here: {}",
            stderr
                .lines()
                .find_map(|l| l.strip_prefix("swarm-lab: cannot run here: "))
                .unwrap_or("up.sh gave no reason")
        )),
        _ => panic!(
            "scripts/swarm-lab/up.sh failed ({}):\n{stderr}",
            output.status
        ),
    }
}
