//! The binaries' command lines and configuration, as run: host names in
//! `SERVER_IP`, a named config file that is missing, unknown client keys,
//! `--help`, `--version`, and the client's subcommands.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use e2e::*;

const MINUTE: Duration = Duration::from_secs(60);

/// The server with every required key in its environment, in `dir`.
fn server_command(dir: &Path, ip: &str) -> Command {
    let mut cmd = Command::new(binary("server"));
    cmd.current_dir(dir)
        .env("SERVER_IP", ip)
        .env("SERVER_PORT", "0")
        .env("SERVER_LISTEN_BACKLOG", "5")
        .env("LOGGING_LEVEL", "INFO")
        .env("AGENCIES", "1")
        .env("BETS_FILE", dir.join("bets.csv"));
    cmd
}

/// Runs a binary that must exit by itself, soon (a server that should have
/// refused to start would otherwise run on).
fn output(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    run(cmd, Duration::from_secs(20))
}

/// The address a server's `action: listen` line names.
fn listening_on(server: &mut Server) -> String {
    let line = server.wait_for("action: listen | result: success", MINUTE);
    field(&line, "action: listen", "address").expect("the listen line names its address")
}

#[test]
fn server_ip_takes_a_host_name_an_address_or_nothing() {
    let table = [
        ("localhost", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("", "0.0.0.0"),
    ];
    for (ip, bound) in table {
        let dir = scratch(&format!(
            "server-ip-{}",
            if ip.is_empty() { "empty" } else { ip }
        ));
        let mut server = Server::start(&dir, 1, &[("SERVER_IP", ip)]);
        let address = listening_on(&mut server);
        assert_eq!(address, format!("{bound}:{}", server.port), "{ip:?}");
        // Every one of them is reachable on loopback: one agency, one bet.
        let echo = run(
            client(
                &server.address(),
                1,
                &[("CLI_MODE", "echo"), ("CLI_LOOP_AMOUNT", "1")],
            ),
            MINUTE,
        );
        assert!(echo.status.success(), "{ip:?}: {}", text(&echo));
    }
}

#[test]
fn a_server_ip_that_does_not_resolve_is_a_config_error() {
    let dir = scratch("server-ip-nosuch");
    let out = output(server_command(&dir, "nosuch.invalid"));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(
            "action: config | result: fail | file: config.ini | error: SERVER_IP = \"nosuch.invalid\" (from the environment) is not an IP address or a host name that resolves ("
        ),
        "{log}"
    );
    assert!(!dir.join("bets.csv").exists(), "nothing was started");
}

#[test]
fn a_named_config_file_must_exist() {
    let dir = scratch("missing-config");
    let missing = dir.join("missing.ini");
    let mut cmd = server_command(&dir, "127.0.0.1");
    cmd.arg("--config").arg(&missing);
    let out = output(cmd);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "action: config | result: fail | file: {} | error: No such file or directory",
            missing.display()
        )),
        "{log}"
    );

    let missing = dir.join("missing.yaml");
    let mut cmd = client("127.0.0.1:1", 1, &[]);
    cmd.arg("--config").arg(&missing);
    let out = run(cmd, MINUTE);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "action: config | result: fail | file: {} | error: No such file or directory",
            missing.display()
        )),
        "{log}"
    );
}

#[test]
fn the_default_config_file_may_be_absent() {
    // The harness starts the server in an empty folder: no ./config.ini.
    let dir = scratch("no-config-file");
    let mut server = Server::start(&dir, 1, &[]);
    listening_on(&mut server);
    // The client in an empty folder with no --config: no ./config.yaml.
    let empty = scratch("no-config-file-client");
    let mut cmd = Command::new(binary("client"));
    cmd.current_dir(&empty)
        .env("CLI_ID", "1")
        .env("CLI_SERVER_ADDRESS", server.address())
        .env("CLI_MODE", "echo")
        .env("CLI_LOOP_AMOUNT", "1");
    let out = output(cmd);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_client_warns_about_unknown_keys() {
    let dir = scratch("client-unknown-keys");
    let mut server = Server::start(&dir, 1, &[]);
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "id: 1\nserver:\n  address: \"{}\"\n  adress: \"typo:1\"\nloop:\n  amount: 1\nmode: echo\nbatch:\n  maxamount: 7\n",
            server.address()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(binary("client"));
    cmd.arg("--config").arg(&config);
    let out = output(cmd);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for key in ["batch.maxamount", "server.adress"] {
        assert!(
            log.contains(&format!(
                "action: config | result: success | client_id: 1 | file: {} | warning: unknown key {key} ignored",
                config.display()
            )),
            "{key}: {log}"
        );
    }
    assert_eq!(log.matches("warning: unknown key").count(), 2, "{log}");
    server.wait_for("action: receive_message | result: success", MINUTE);
}

#[test]
fn help_and_version_go_to_stdout_and_usage_errors_exit_2() {
    for (name, usage) in [
        ("server", "usage: server [--check] [--config PATH]\n"),
        ("client", "usage: client [--config PATH]\n"),
    ] {
        for flag in ["--help", "-h"] {
            let out = output({
                let mut cmd = Command::new(binary(name));
                cmd.arg(flag);
                cmd
            });
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{name} {flag}");
            assert!(stdout.starts_with(usage), "{name} {flag}: {stdout}");
            assert!(out.stderr.is_empty(), "{name} {flag}");
        }
        let out = output({
            let mut cmd = Command::new(binary(name));
            cmd.arg("--version");
            cmd
        });
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{name} {}\n", env!("CARGO_PKG_VERSION")),
            "the workspace's crates share one version"
        );
        for args in [&["--verbose"][..], &["--config"], &["extra"]] {
            let out = output({
                let mut cmd = Command::new(binary(name));
                cmd.args(args);
                cmd
            });
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
            assert!(stderr.contains("usage:"), "{name} {args:?}: {stderr}");
            assert!(out.stdout.is_empty(), "{name} {args:?}");
        }
    }
}

#[test]
fn the_client_subcommands_keep_their_arguments() {
    let dir = scratch("subcommands");
    let file = dir.join("agency-3.csv");
    let gen_data = |args: &[&str]| {
        let mut cmd = Command::new(binary("client"));
        cmd.arg("gen-data").args(args);
        output(cmd)
    };
    let out = gen_data(&["3", "20", "2", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let bets = client::data::load_bets(&file, 3).expect("a valid agency file");
    assert_eq!(bets.len(), 20);
    for bad in [
        &["3", "20", "2"][..],
        &["3", "x", "2", "out.csv"],
        &["3", "2", "20", "o.csv"],
    ] {
        let out = gen_data(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
    }

    let server = Server::start(&dir, 2, &[]);
    let load = |args: &[&str]| {
        let mut cmd = Command::new(binary("client"));
        cmd.arg("load").args(args);
        output(cmd)
    };
    let address = server.address();
    let out = load(&[&address, "2", "30", "2", "7"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        field(&log, "action: load", "bets").as_deref(),
        Some("60"),
        "{log}"
    );
    for bad in [
        &[address.as_str(), "2"][..],
        &[&address, "two", "30"],
        &["nowhere", "2", "30"],
    ] {
        let out = load(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
    }
}
