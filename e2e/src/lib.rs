//! Test harness: the real `server` and `client` binaries on loopback, and mock
//! peers that speak raw bytes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lottery_protocol::{Bet, FRAME_LEN, Header};

pub mod docker;
pub mod hostile;
pub mod reference;
pub mod swarm;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e sits in the workspace")
        .to_path_buf()
}

/// The course dataset beside the repository, when this machine has it.
pub fn dataset() -> Option<PathBuf> {
    let dir = root().join("../shared/datasets/tp0");
    dir.join("agency-1.csv").is_file().then_some(dir)
}

/// Path of a workspace binary, built once per test process (same profile).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = !cfg!(debug_assertions);
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .args(["build", "--quiet", "-p", "server", "-p", "client"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from);
        target.join(if release { "release" } else { "debug" })
    });
    dir.join(name)
}

/// A fresh directory under the target dir for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root()
        .join("target/e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes `bets` as an agency file and returns its path.
pub fn write_agency_file(dir: &Path, agency: u16, bets: &[Bet]) -> PathBuf {
    let path = dir.join(format!("agency-{agency}.csv"));
    let file = std::fs::File::create(&path).expect("create agency file");
    client::generate::write_csv(bets, file).expect("write agency file");
    path
}

/// A running server with its log lines collected.
pub struct Server {
    child: Child,
    pub port: u16,
    pub bets_file: PathBuf,
    log: Log,
}

/// Where the server's log goes: collected from a pipe, or into a file (as a
/// deployment would, and with no reader thread beside a benchmark).
enum Log {
    Pipe(Arc<Mutex<Vec<String>>>),
    File(PathBuf),
}

impl Server {
    /// Starts the server on an ephemeral loopback port with `env` on top of a
    /// config that waits for `agencies`; returns once it listens.
    pub fn start(dir: &Path, agencies: u16, env: &[(&str, &str)]) -> Server {
        Server::spawn(dir, agencies, env, None)
    }

    /// Like [`Server::start`], with the log written to `dir/server.log`.
    pub fn start_logging_to_file(dir: &Path, agencies: u16, env: &[(&str, &str)]) -> Server {
        Server::spawn(dir, agencies, env, Some(dir.join("server.log")))
    }

    fn spawn(dir: &Path, agencies: u16, env: &[(&str, &str)], log_file: Option<PathBuf>) -> Server {
        let bets_file = dir.join("bets.csv");
        let mut cmd = Command::new(binary("server"));
        cmd.current_dir(dir)
            .env("SERVER_IP", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("SERVER_LISTEN_BACKLOG", "128")
            .env("LOGGING_LEVEL", "INFO")
            .env("AGENCIES", agencies.to_string())
            .env("BETS_FILE", &bets_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = match log_file {
            Some(path) => {
                let file = std::fs::File::create(&path).expect("log file");
                cmd.stdout(file.try_clone().expect("log file")).stderr(file);
                Log::File(path)
            }
            None => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                Log::Pipe(Arc::new(Mutex::new(Vec::new())))
            }
        };
        let mut child = cmd.spawn().expect("server starts");
        if let Log::Pipe(lines) = &log {
            for pipe in [
                Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
                Box::new(child.stderr.take().expect("piped")),
            ] {
                let lines = Arc::clone(lines);
                std::thread::spawn(move || {
                    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                        lines.lock().expect("lock").push(line);
                    }
                });
            }
        }
        let mut server = Server {
            child,
            port: 0,
            bets_file,
            log,
        };
        let listen = server.wait_for("action: listen | result: success", Duration::from_secs(10));
        server.port = listen
            .rsplit_once("address: ")
            .and_then(|(_, a)| a.split(' ').next())
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .expect("listen line names the port");
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> Vec<String> {
        match &self.log {
            Log::Pipe(lines) => lines.lock().expect("lock").clone(),
            Log::File(path) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.logs().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for_count(needle, 1, timeout)
    }

    /// Waits until `n` log lines contain `needle`; returns the last of them.
    pub fn wait_for_count(&mut self, needle: &str, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<String> = self
                .logs()
                .into_iter()
                .filter(|l| l.contains(needle))
                .collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "no {n} server log lines with {needle:?} within {timeout:?}; log:\n{}",
                    self.logs().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the server to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_child(&mut self.child, timeout).unwrap_or_else(|| {
            panic!(
                "server still running after {timeout:?}; log:\n{}",
                self.logs().join("\n")
            )
        })
    }

    /// The stored rows, each split in its 6 columns; panics on a malformed row.
    pub fn stored_rows(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.bets_file).expect("bets file");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "the last row is complete"
        );
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        csv.records()
            .map(|r| {
                let r = r.expect("well-formed CSV row");
                assert_eq!(
                    r.len(),
                    6,
                    "agency,first_name,last_name,document,birthdate,number: {r:?}"
                );
                r.iter().map(str::to_owned).collect()
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls a child until it exits or `timeout` passes.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion with its stdout and stderr captured, as
/// [`Command::output`] does, but gives up after `timeout`: the command and
/// everything it started (its own process group) are killed and `None` comes
/// back. For the Docker CLI, whose calls block forever on an engine that
/// accepts connections and never answers.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Option<Output> {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let Some(status) = wait_child(&mut child, timeout) else {
        // The whole group: `docker compose` and `make` leave children behind.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
        // The readers are left to end when the pipes close.
        return None;
    };
    Some(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// A client process with its own environment (no config file).
pub fn client(server: &str, id: u16, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary("client"));
    cmd.current_dir(std::env::temp_dir())
        // An empty config file: every key comes from the environment.
        .args(["--config", "/dev/null"])
        .env("CLI_ID", id.to_string())
        .env("CLI_SERVER_ADDRESS", server)
        .env("CLI_LOG_LEVEL", "INFO")
        .env("CLI_SERVER_CONNECTTIMEOUT", "5s")
        // Full speed, whatever the mode's default period.
        .env("CLI_LOOP_PERIOD", "0s")
        // A lost server is given up on quickly unless a test says otherwise.
        .env("CLI_SERVER_RECONNECTTIMEOUT", "2s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a client to completion (at most `timeout`), returning its output.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd.spawn().expect("client starts");
    let status = wait_child(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("client output");
    assert!(
        status.is_some(),
        "client still running after {timeout:?}:\n{}",
        text(&output)
    );
    output
}

/// A process's stdout and stderr as one text.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The value of `key: value` in the first line containing `action`.
pub fn field(log: &str, action: &str, key: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(action))?;
    line.split(" | ").find_map(|part| {
        part.trim()
            .strip_prefix(&format!("{key}: "))
            .map(str::to_owned)
    })
}

/// The start of a connection's stream as sent on the wire: the header for
/// batches of `per_batch` bets, then `frames` as they are (no end frame added).
pub fn raw_stream(agency: u16, per_batch: usize, frames: &[[u8; FRAME_LEN]]) -> Vec<u8> {
    [
        &Header::new(per_batch, agency).encode()[..],
        frames.as_flattened(),
    ]
    .concat()
}

/// A raw TCP peer for the cases no well-behaved client produces.
pub struct Mock {
    pub stream: TcpStream,
}

impl Mock {
    pub fn connect(address: &str) -> Mock {
        let stream = TcpStream::connect(address).expect("mock connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Mock { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("mock sends");
    }

    /// Reads exactly `n` bytes.
    pub fn recv(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf).expect("mock receives");
        buf
    }

    /// True when the server closed the connection (EOF or reset) within the timeout.
    pub fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A server start that ended without listening: how it exited and what it logged.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    pub logs: Vec<String>,
}

impl Server {
    /// Starts a server on `bets_file` and `port` (0: an ephemeral one), run in
    /// `dir`, with its log collected; returns once it listens. A restart on
    /// the same files and port is another call with the old server's
    /// `bets_file` and `port` (after [`Server::kill9`] or a `TERM` exit).
    pub fn start_in(
        dir: &Path,
        bets_file: &Path,
        port: u16,
        agencies: u16,
        env: &[(&str, &str)],
    ) -> Server {
        Server::try_start_in(dir, bets_file, port, agencies, env).unwrap_or_else(|failed| {
            panic!(
                "the server exited ({}) before listening; log:\n{}",
                failed.status,
                failed.logs.join("\n")
            )
        })
    }

    /// Like [`Server::start_in`], but a server that exits before it listens
    /// (a locked bets file, a port in use, unreadable files) is returned as
    /// its exit status and its whole log.
    pub fn try_start_in(
        dir: &Path,
        bets_file: &Path,
        port: u16,
        agencies: u16,
        env: &[(&str, &str)],
    ) -> Result<Server, StartFailure> {
        Server::try_start_wrapped(&[], dir, bets_file, port, agencies, env)
    }

    /// Like [`Server::try_start_in`], with the server run by a wrapper
    /// command: `wrapper` then the server's path (e.g. `prlimit --fsize=…
    /// --`, or `sh -c '…; exec "$@"' sh`); empty runs the server itself.
    pub fn try_start_wrapped(
        wrapper: &[&str],
        dir: &Path,
        bets_file: &Path,
        port: u16,
        agencies: u16,
        env: &[(&str, &str)],
    ) -> Result<Server, StartFailure> {
        let server = binary("server");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&server);
                cmd
            }
            None => Command::new(&server),
        };
        cmd.current_dir(dir)
            .env("SERVER_IP", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("SERVER_LISTEN_BACKLOG", "128")
            .env("LOGGING_LEVEL", "INFO")
            .env("AGENCIES", agencies.to_string())
            .env("BETS_FILE", bets_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("server starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers: Vec<_> = [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ]
        .into_iter()
        .map(|pipe| {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().expect("lock").push(line);
                }
            })
        })
        .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listen = lines
                .lock()
                .expect("lock")
                .iter()
                .find(|l| l.contains("action: listen | result: success"))
                .cloned();
            if let Some(listen) = listen {
                let port = listen
                    .rsplit_once("address: ")
                    .and_then(|(_, a)| a.split(' ').next())
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, p)| p.parse().ok())
                    .expect("listen line names the port");
                return Ok(Server {
                    child,
                    port,
                    bets_file: bets_file.to_path_buf(),
                    log: Log::Pipe(lines),
                });
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                // The pipes end with the process: every line is in.
                for reader in readers {
                    let _ = reader.join();
                }
                let logs = lines.lock().expect("lock").clone();
                return Err(StartFailure { status, logs });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server neither listened nor exited within 10 s; log:\n{}",
                    lines.lock().expect("lock").join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the server with SIGKILL (no shutdown of any kind, as a crash)
    /// and waits until the process is gone.
    pub fn kill9(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("the killed server is reaped")
    }
}

/// Bets as the server stores them: agency, first name, last name,
/// document, birthdate, number.
pub fn rows(bets: &[Bet]) -> Vec<Vec<String>> {
    bets.iter()
        .map(|b| {
            vec![
                b.agency.to_string(),
                b.first_name.clone(),
                b.last_name.clone(),
                b.document.to_string(),
                b.birthdate.as_str().to_owned(),
                b.number.to_string(),
            ]
        })
        .collect()
}

/// Every row of `expected` is in the bets file exactly once, and nothing else.
pub fn check_stored_once(bets_file: &Path, expected: &[Vec<String>]) {
    let stored: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(bets_file)
        .unwrap_or_else(|e| panic!("{}: {e}", bets_file.display()))
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let mut count: BTreeMap<&Vec<String>, i64> = BTreeMap::new();
    for row in &stored {
        *count.entry(row).or_default() += 1;
    }
    for row in expected {
        *count.entry(row).or_default() -= 1;
    }
    let wrong: Vec<_> = count.iter().filter(|&(_, &n)| n != 0).take(5).collect();
    assert!(
        wrong.is_empty(),
        "{} rows stored for {} bets; rows stored more (+) or fewer (-) times \
         than once, first 5: {wrong:?}",
        stored.len(),
        expected.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_within_captures_a_command_that_ends() {
        let output = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(30),
        )
        .expect("ends");
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
    }

    #[test]
    fn output_within_kills_a_stuck_command_and_what_it_started() {
        let dir = scratch("output-within");
        let pid_file = dir.join("pid");
        let started = Instant::now();
        let output = output_within(
            Command::new("sh")
                .args(["-c", "sleep 60 & echo $! >\"$1\"; wait", "sh"])
                .arg(&pid_file),
            Duration::from_millis(500),
        );
        assert!(output.is_none());
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pid_file).expect("the child wrote its pid");
        // Killed, then reaped by init: gone, or a zombie for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
            match stat {
                Err(_) => break,
                Ok(stat) if stat.contains(") Z ") => break,
                Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(stat) => panic!("the command's own child still runs: {stat}"),
            }
        }
    }
}
