//! Harness for the compose scenarios: generate a compose file with the
//! project's own generator, bring it up on the real engine, read what a
//! black-box checker reads (container logs and exit codes), tear it down.

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::{output_within, root, wait_child};

/// How long one Docker CLI call may take before the engine counts as stuck:
/// room for `make docker-image` on a cold cache and `compose up` of fifty
/// containers.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How long a read of the engine's state (`info`, `ps`, `inspect`, `logs`)
/// may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a command to completion within `timeout` (see [`output_within`]),
/// panicking if it is still running then: an engine that accepts calls and
/// never answers fails the test instead of hanging it.
pub fn output(cmd: &mut Command, timeout: Duration) -> Output {
    output_within(cmd, timeout).unwrap_or_else(|| {
        panic!(
            "{cmd:?} did not finish within {timeout:?}: the Docker engine may be stuck \
             (`make provision` restarts an engine that does not answer)"
        )
    })
}

/// Runs a command (at most [`CALL_TIMEOUT`]), panicking with its output if it
/// fails.
pub fn sh(cmd: &mut Command) -> Output {
    let output = output(cmd, CALL_TIMEOUT);
    assert!(
        output.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The docker CLI reading the engine's state (at most [`QUERY_TIMEOUT`]);
/// its output, whether or not it succeeded.
pub fn query(args: &[&str]) -> Output {
    output(Command::new("docker").args(args), QUERY_TIMEOUT)
}

/// [`query`] that must succeed; its stdout, trimmed.
pub fn query_ok(args: &[&str]) -> String {
    let output = query(args);
    assert!(
        output.status.success(),
        "docker {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Held while a scenario runs: the scenarios use project `tp0` and fixed
/// container names, so they run one at a time, across threads and across test
/// processes (two developers' `cargo test` on one engine).
pub struct EngineGuard {
    _thread: MutexGuard<'static, ()>,
    _machine: UnixListener,
}

/// The machine-wide half of [`EngineGuard`]: a Unix socket bound to an abstract
/// name, which one socket at a time can hold and the kernel frees when its
/// process dies (no file to clean up after a killed run).
fn machine_lock() -> UnixListener {
    const WAIT: Duration = Duration::from_secs(20 * 60);
    let name = SocketAddr::from_abstract_name(b"tp0-e2e-docker-scenarios").expect("name");
    let deadline = Instant::now() + WAIT;
    let mut said = false;
    loop {
        match UnixListener::bind_addr(&name) {
            Ok(listener) => return listener,
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                if !said {
                    eprintln!("waiting for another test process's Docker scenario to finish");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                panic!("the Docker scenarios' machine-wide lock: {e} (waited up to {WAIT:?})")
            }
        }
    }
}

/// The engine, or why there is none. With `CI=true` a missing engine is a
/// failure; elsewhere the caller skips, saying why. Returns a guard: the
/// scenarios use fixed container names, so they run one at a time.
pub fn engine() -> Option<EngineGuard> {
    static LOCK: Mutex<()> = Mutex::new(());
    static IMAGES: OnceLock<Result<(), String>> = OnceLock::new();
    let thread = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let guard = EngineGuard {
        _thread: thread,
        _machine: machine_lock(),
    };
    let ready = IMAGES.get_or_init(|| {
        let answers = |args: &[&str]| query(args).status.success();
        if !answers(&["info"]) {
            return Err("no Docker engine answers (`make provision` starts one)".into());
        }
        if !answers(&["compose", "version"]) {
            return Err("Docker Compose v2 is missing (`make provision` installs it)".into());
        }
        if !answers(&["image", "inspect", "busybox:latest"]) {
            return Err("the busybox:latest image is missing (`make provision` imports it)".into());
        }
        // Fresh images of this tree, so the scenarios never test stale binaries.
        sh(Command::new("make")
            .current_dir(root())
            .args(["-s", "docker-image"]));
        Ok(())
    });
    match ready {
        Ok(()) => {
            check_not_stuck();
            Some(guard)
        }
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true and {why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Panics, within a minute, if the engine is stuck: it answers, but a call on
/// one of its containers never returns. Seen here on engine 20.10 once:
/// containers whose process had exited stayed `Up`, and `docker inspect` of
/// them hung; every later scenario would hang with them.
fn check_not_stuck() {
    let ids = query(&["ps", "-aq"]);
    let ids = String::from_utf8_lossy(&ids.stdout);
    let mut inspect = vec!["inspect"];
    inspect.extend(ids.split_whitespace());
    if inspect.len() > 1 {
        query(&inspect);
    }
}

/// One compose deployment of project `tp0`, torn down when dropped.
pub struct Deployment {
    pub dir: PathBuf,
    pub file: PathBuf,
    pub clients: usize,
}

/// Paths the generator mounts; `None` keeps its default.
#[derive(Default)]
pub struct Mounts {
    pub server_config: Option<PathBuf>,
    pub client_config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

impl Mounts {
    /// Agency files from `dir` instead of `./.data`.
    pub fn data(dir: PathBuf) -> Mounts {
        Mounts {
            data_dir: Some(dir),
            ..Mounts::default()
        }
    }
}

impl Deployment {
    /// Writes `dir/compose.yaml` with `./generar-compose.sh` for `clients` in
    /// `scenario`; the bets folder is `dir/bets`.
    pub fn generate(dir: &Path, clients: usize, scenario: &str, mounts: Mounts) -> Deployment {
        remove_project_containers();
        let file = dir.join("compose.yaml");
        let bets = dir.join("bets");
        std::fs::create_dir_all(&bets).expect("bets dir");
        let mut cmd = Command::new("bash");
        cmd.current_dir(root())
            .arg("./generar-compose.sh")
            .arg(&file)
            .arg(clients.to_string())
            .arg(scenario)
            .env("BETS_DIR", &bets);
        for (var, path) in [
            ("SERVER_CONFIG", &mounts.server_config),
            ("CLIENT_CONFIG", &mounts.client_config),
            ("DATA_DIR", &mounts.data_dir),
        ] {
            if let Some(path) = path {
                cmd.env(var, path);
            }
        }
        sh(&mut cmd);
        Deployment {
            dir: dir.to_path_buf(),
            file,
            clients,
        }
    }

    pub fn compose(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.current_dir(root())
            .arg("compose")
            .arg("-f")
            .arg(&self.file)
            .arg("--project-directory")
            .arg(root());
        cmd
    }

    /// `docker compose up -d`, optionally for some services only.
    pub fn up(&self, services: &[&str]) {
        sh(self
            .compose()
            .args(["up", "-d", "--quiet-pull"])
            .args(services));
    }

    /// Waits for every client container to exit; returns their exit codes.
    pub fn wait_clients(&self, timeout: Duration) -> Vec<i32> {
        let names: Vec<String> = (1..=self.clients).map(|i| format!("client{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        wait_exit(&names, timeout)
    }

    /// Waits (a minute at most) for the named containers; returns their exit codes.
    pub fn wait_clients_named(&self, names: &[&str]) -> Vec<i32> {
        wait_exit(names, Duration::from_secs(60))
    }

    /// The stored rows, from the bets folder mounted into the server.
    pub fn stored_rows(&self) -> usize {
        std::fs::read_to_string(self.dir.join("bets/bets.csv")).map_or(0, |t| t.lines().count())
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // No panic here (a drop may run while a test unwinds), and a shorter
        // limit than a call's (fifty containers go in under a minute): a
        // stuck engine fails the next scenario's check instead.
        let _ = output_within(
            self.compose().args(["down", "-t", "2", "--remove-orphans"]),
            Duration::from_secs(180),
        );
    }
}

/// Waits for containers to exit; returns their exit codes.
pub fn wait_exit(names: &[&str], timeout: Duration) -> Vec<i32> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut child = Command::new("docker")
        .arg("wait")
        .args(names)
        .stdout(Stdio::null())
        .spawn()
        .expect("docker wait");
    if wait_child(&mut child, timeout).is_none() {
        let _ = child.kill();
        let all: String = names
            .iter()
            .map(|n| format!("--- {n}\n{}", logs(n)))
            .collect();
        panic!(
            "still running after {timeout:?}\n--- server\n{}\n{all}",
            logs("server")
        );
    }
    names.iter().map(|n| exit_code(n)).collect()
}

/// Removes whatever an earlier, interrupted run of project tp0 left behind.
pub fn remove_project_containers() {
    let ids = query_ok(&[
        "ps",
        "-aq",
        "--filter",
        "label=com.docker.compose.project=tp0",
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        output(
            Command::new("docker").args(["rm", "-f"]).args(&ids),
            CALL_TIMEOUT,
        );
    }
}

/// A container's whole log (stdout and stderr).
pub fn logs(container: &str) -> String {
    let output = query(&["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn exit_code(container: &str) -> i32 {
    query_ok(&["inspect", "-f", "{{.State.ExitCode}}", container])
        .parse()
        .expect("an exit code")
}

pub fn running(container: &str) -> bool {
    query_ok(&["inspect", "-f", "{{.State.Running}}", container]) == "true"
}

/// How many times Docker has restarted a container under its restart policy
/// (a manual start resets it).
pub fn restart_count(container: &str) -> u32 {
    query_ok(&["inspect", "-f", "{{.RestartCount}}", container])
        .parse()
        .expect("a restart count")
}

/// Crashes a running container's process as a crash looks to Docker: SIGKILL
/// sent to its host PID from outside Docker. Through Docker's API (`docker
/// kill`, any signal, or `docker stop`) the container counts as stopped by
/// hand and no restart policy restarts it (engine 20.10); a process that dies
/// otherwise exits 137 and its policy applies. From a shell on the host when
/// it may signal that PID (root), else from a throwaway busybox container in
/// the host's PID namespace (what Docker access alone allows). Returns the
/// PID killed.
pub fn crash(container: &str) -> u32 {
    let pid: u32 = query_ok(&["inspect", "-f", "{{.State.Pid}}", container])
        .parse()
        .expect("a PID");
    assert_ne!(pid, 0, "{container} is not running");
    let pid_arg = pid.to_string();
    let from_host = Command::new("sh")
        .args(["-c", "kill -KILL \"$1\" 2>/dev/null", "sh", &pid_arg])
        .status()
        .is_ok_and(|s| s.success());
    if !from_host {
        sh(Command::new("docker").args([
            "run",
            "--rm",
            "--pid",
            "host",
            "busybox:latest",
            "kill",
            "-KILL",
            &pid_arg,
        ]));
    }
    pid
}

pub fn image_id(image: &str) -> String {
    query_ok(&["image", "inspect", "-f", "{{.Id}}", image])
}

/// A parsed log line, as the exercise's checker reads it.
pub use tp0_log::Line;

/// Parses every `action:` line of a container's log with the strict reading
/// users apply ([`tp0_log::parse_line`]); a line that does not parse panics
/// with its text.
pub fn parse_log(log: &str) -> Vec<Line> {
    log.lines()
        .filter(|l| l.contains("action: "))
        .map(|l| tp0_log::parse_line(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The lines of one action.
pub fn lines<'a>(parsed: &'a [Line], action: &str) -> Vec<&'a Line> {
    parsed.iter().filter(|l| l.action == action).collect()
}

/// A compose log line, `<container><padding> | <the container's line>`, as
/// (container, line); `None` for anything else.
pub fn compose_line(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once('|')?;
    let container = name.trim_end_matches(' ');
    let own = rest.strip_prefix(' ')?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    (name.ends_with(' ') && !container.is_empty() && container.chars().all(plain))
        .then_some((container, own))
}

/// Compose's status line for a container that exited while `logs -f` (or `up`)
/// was attached, `<container> exited with code <n>`, as (container, n). Compose
/// writes it after a carriage return and `ESC[K` (goterm's RESET_LINE) even
/// into a pipe; that prefix is accepted and nothing else.
pub fn compose_exit(line: &str) -> Option<(&str, i32)> {
    let line = line.strip_prefix("\r\x1b[K").unwrap_or(line);
    let (container, code) = line.split_once(" exited with code ")?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if container.is_empty() || !container.chars().all(plain) {
        return None;
    }
    Some((container, code.parse().ok()?))
}

/// A command whose output is read line by line as it comes (`docker compose
/// logs -f`): each line of stdout and stderr, bytes intact up to the newline.
/// Killed when dropped, so no test leaves it running.
pub struct Follow {
    child: Child,
    lines: Receiver<(Stream, String)>,
    /// Every line read so far, in the order read.
    pub seen: Vec<(Stream, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Follow {
    pub fn spawn(cmd: &mut Command) -> Follow {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
        let (tx, lines) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for (stream, pipe) in [(Stream::Stdout, out), (Stream::Stderr, err)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut pipe = BufReader::new(pipe);
                loop {
                    let mut line = Vec::new();
                    match pipe.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if line.last() == Some(&b'\n') {
                                line.pop();
                            }
                            let line = String::from_utf8_lossy(&line).into_owned();
                            if tx.send((stream, line)).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        Follow {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line of either stream; `Timeout` at the deadline,
    /// `Disconnected` once both streams have closed.
    pub fn next_line(&mut self, deadline: Instant) -> Result<(Stream, String), RecvTimeoutError> {
        let line = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        self.seen.push(line.clone());
        Ok(line)
    }

    /// Reads until both streams close and the command exits, by the deadline;
    /// `None` if it is still running then.
    pub fn wait_end(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            match self.next_line(deadline) {
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        wait_child(
            &mut self.child,
            deadline.saturating_duration_since(Instant::now()),
        )
    }

    /// Everything read so far, one line each, for a failure message.
    pub fn transcript(&self) -> String {
        self.seen
            .iter()
            .map(|(stream, line)| format!("{stream:?}: {line:?}\n"))
            .collect()
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
