//! Harness for the compose scenarios: generate a compose file with the
//! project's own generator, bring it up on the real engine, read what a
//! black-box checker reads (container logs and exit codes), tear it down.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::{root, wait_child};

/// Runs a command, panicking with its output if it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not run: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The engine, or why there is none. With `CI=true` a missing engine is a
/// failure; elsewhere the caller skips, saying why. Returns a guard: the
/// scenarios use fixed container names, so they run one at a time.
pub fn engine() -> Option<MutexGuard<'static, ()>> {
    static LOCK: Mutex<()> = Mutex::new(());
    static IMAGES: OnceLock<Result<(), String>> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ready = IMAGES.get_or_init(|| {
        let answers = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
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
        Ok(()) => Some(guard),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true and {why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
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
        let _ = self
            .compose()
            .args(["down", "-t", "2", "--remove-orphans"])
            .output();
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
    let output = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.compose.project=tp0",
        ])
        .output()
        .expect("docker ps");
    let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .output();
    }
}

/// A container's whole log (stdout and stderr).
pub fn logs(container: &str) -> String {
    let output = Command::new("docker")
        .args(["logs", container])
        .output()
        .expect("docker logs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn exit_code(container: &str) -> i32 {
    let output =
        sh(Command::new("docker").args(["inspect", "-f", "{{.State.ExitCode}}", container]));
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("an exit code")
}

pub fn running(container: &str) -> bool {
    let output =
        sh(Command::new("docker").args(["inspect", "-f", "{{.State.Running}}", container]));
    String::from_utf8_lossy(&output.stdout).trim() == "true"
}

pub fn image_id(image: &str) -> String {
    let output = sh(Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", image]));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A parsed log line, as the exercise's checker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub action: String,
    pub result: String,
    pub details: Vec<(String, String)>,
}

impl Line {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every `action:` line of a log like the checker: split on `|`;
/// `action:` from the first field, `result:` from the second (one of success,
/// fail, in_progress); every later field `key: value`. Anything else panics.
pub fn parse_log(log: &str) -> Vec<Line> {
    log.lines()
        .filter(|l| l.contains("action: "))
        .map(|l| {
            let fields: Vec<&str> = l.split('|').collect();
            let action = fields[0]
                .split_once("action: ")
                .map(|(_, a)| a.trim().to_owned());
            let result = fields
                .get(1)
                .and_then(|f| f.trim().strip_prefix("result: "))
                .map(str::to_owned);
            let (Some(action), Some(result)) = (action, result) else {
                panic!("unparseable line: {l}");
            };
            assert!(
                ["success", "fail", "in_progress"].contains(&result.as_str()),
                "unknown result in: {l}"
            );
            let details = fields[2..]
                .iter()
                .map(|f| {
                    let (k, v) = f
                        .trim()
                        .split_once(':')
                        .unwrap_or_else(|| panic!("detail without a colon in: {l}"));
                    (k.trim().to_owned(), v.trim().to_owned())
                })
                .collect();
            Line {
                action,
                result,
                details,
            }
        })
        .collect()
}

/// The lines of one action.
pub fn lines<'a>(parsed: &'a [Line], action: &str) -> Vec<&'a Line> {
    parsed.iter().filter(|l| l.action == action).collect()
}
