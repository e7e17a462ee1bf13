//! `make bench`: how fast the server ingests durably, against the roofline of
//! this machine measured in the same run. Prints a table, writes
//! `target/bench/results.json` and `target/bench/ingest.svg`.
//!
//! 1. roofline: the server's own storage code, no network — the same rows,
//!    appended and synced in groups of the size the server achieved;
//! 2. durable ingest through the real server binary for 5 to 10,000 concurrent
//!    agencies driven by the load generator (one thread, many sockets), the
//!    median of three runs each;
//! 3. server memory per connection: idle, mid-batch, idle after two full
//!    batches, and waiting for the draw;
//! 4. the 5-agency course dataset end to end with the real client binaries;
//! 5. 20 agencies alone and beside 20,000 slow-byte peers (`bench slow-peers`
//!    is the child process that holds half of them);
//! 6. scale in containers: the Swarm stack that `./generar-stack.sh` writes
//!    for 200, 500 and 1,000 agencies (`BENCH_CONTAINERS`), one client
//!    container each, on this machine's engine as a single-node swarm and on
//!    the three-engine lab (`scripts/swarm-lab`): time until every task runs,
//!    to the draw and to the end of the round, host memory. It runs in a
//!    child process (`bench scale-child`; see its section for why);
//!    `bench scale` runs this step alone.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use client::generate::agency_bets;
use client::load::{LoadConfig, Report, run};
use e2e::{Server, binary, dataset, root, wait_child, write_agency_file};
use lottery_protocol::{ACK_LEN, Bet, END_FRAME, FRAME_LEN, Header};
use server::storage::Store;

mod scale;
use scale::{scale_child, scale_sizes, step6};

const AGENCIES: [u16; 4] = [5, 100, 1_000, 10_000];
/// Bets per run, spread over the agencies (at least 20 each).
const TOTAL_BETS: usize = 1_000_000;
/// Connections per memory measurement.
const CONNECTIONS: usize = 10_000;
/// Hostile peers beside 20 real agencies: each sends a byte a second and
/// never names an agency (two child processes of half each).
const HOSTILE_PEERS: usize = 20_000;
/// Runs per agency count; the median (by ratio to the roofline) is reported.
const REPEATS: usize = 3;

struct Ingest {
    agencies: u16,
    bets: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    syncs: u64,
    server_cpu_s: f64,
    server_peak_rss_kb: u64,
    roofline_rows_per_s: f64,
}

impl Ingest {
    fn bets_per_s(&self) -> f64 {
        self.bets as f64 / self.seconds
    }
    fn ratio(&self) -> f64 {
        self.bets_per_s() / self.roofline_rows_per_s
    }
}

fn main() {
    // `bench slow-peers ADDRESS COUNT SECONDS`: a child that holds hostile
    // peers (a second process, so that 20,000 of them fit under the
    // descriptor limit beside the load generator).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, address, count, seconds] = args.as_slice()
        && cmd == "slow-peers"
    {
        let peers = e2e::hostile::SlowPeers::start(
            address.parse().expect("address"),
            count.parse().expect("count"),
            Duration::from_secs(1),
            Duration::from_secs(seconds.parse().expect("seconds")),
        );
        std::thread::sleep(Duration::from_secs(seconds.parse().expect("seconds")));
        drop(peers);
        return;
    }
    // Step 6's sizes, read first: a malformed BENCH_CONTAINERS stops the
    // bench before anything runs.
    let sizes = scale_sizes();
    // `bench scale-child`: step 6 itself, in a process of its own (see
    // `step6`).
    if let [cmd] = args.as_slice()
        && cmd == "scale-child"
    {
        scale_child(&root().join("target/bench/scale"), &sizes);
        return;
    }
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    println!("machine: {}", machine());
    println!("file-descriptor limit: {}", fd_limit());
    // `bench scale`: step 6 alone (its table, and its chart panel in
    // target/bench/scale/); the results of a whole run are left alone.
    if let [cmd] = args.as_slice()
        && cmd == "scale"
    {
        let step = step6(&out, &sizes);
        print!("{}", step.table);
        std::fs::write(
            out.join("scale/scale.svg"),
            chart(&[], step.panel.as_deref()),
        )
        .expect("scale.svg");
        println!("\nwrote target/bench/scale/table.md, scale.json and scale.svg");
        step.exit_on_failure();
        return;
    }

    let mut ingests = Vec::new();
    for agencies in AGENCIES {
        let per_agency = (TOTAL_BETS / usize::from(agencies)).max(20);
        // The machine is shared and noisy: keep the median run by ratio.
        let mut runs: Vec<Ingest> = (0..REPEATS)
            .map(|_| {
                let run = ingest(&out, agencies, per_agency);
                eprintln!(
                    "ingest {agencies:>6} agencies: {:>9.0} bets/s ({:.0}% of roofline)",
                    run.bets_per_s(),
                    100.0 * run.ratio()
                );
                run
            })
            .collect();
        runs.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        ingests.push(runs.swap_remove(REPEATS / 2));
    }
    let memory: Vec<(PeerState, f64)> = PeerState::ALL
        .iter()
        .map(|&state| (state, connection_memory(&out, state)))
        .collect();
    let (dataset_label, dataset_seconds, dataset_roofline) = dataset_end_to_end(&out);
    let (calm, under_attack) = (hostile(&out, 0), hostile(&out, HOSTILE_PEERS));
    let scale = step6(&out, &sizes);

    let mut table = String::new();
    writeln!(table, "\n| agencies | bets | bets/s | roofline rows/s | ratio | ack p50 ms | ack p99 ms | fsyncs/s | bets/fsync | server CPU s | CPU µs/bet | server peak RSS MB |").unwrap();
    writeln!(
        table,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for i in &ingests {
        writeln!(
            table,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {:.3} | {:.2} | {:.1} |",
            i.agencies,
            i.bets,
            i.bets_per_s(),
            i.roofline_rows_per_s,
            i.ratio(),
            i.p50_ms,
            i.p99_ms,
            i.syncs as f64 / i.seconds,
            i.bets as f64 / i.syncs as f64,
            i.server_cpu_s,
            i.server_cpu_s * 1e6 / i.bets as f64,
            i.server_peak_rss_kb as f64 / 1024.0,
        )
        .unwrap();
    }
    writeln!(
        table,
        "\n| {CONNECTIONS} connections, each | server RSS growth | bytes per connection |\n|---|---:|---:|"
    )
    .unwrap();
    for (state, bytes) in &memory {
        writeln!(
            table,
            "| {} | {:.1} MB | {bytes:.0} |",
            state.label(),
            bytes * CONNECTIONS as f64 / 1048576.0
        )
        .unwrap();
    }
    writeln!(
        table,
        "{dataset_label}: {dataset_seconds:.3} s from server start to the last client's exit (the roofline writes its rows in {:.3} s: ratio {:.1})",
        dataset_roofline,
        dataset_seconds / dataset_roofline
    )
    .unwrap();
    writeln!(
        table,
        "20 agencies × 250,000 bets: {calm:.0} bets/s alone, {under_attack:.0} bets/s beside {HOSTILE_PEERS} slow-byte peers (ratio {:.2})",
        under_attack / calm
    )
    .unwrap();
    table.push_str(&scale.table);
    print!("{table}");

    let json = format!(
        "{{\n  \"machine\": {:?},\n  \"ingest\": [\n{}\n  ],\n  \"bytes_per_connection\": {{{}}},\n  \"dataset\": {{\"label\": {dataset_label:?}, \"seconds\": {dataset_seconds:.4}, \"roofline_seconds\": {dataset_roofline:.4}}},\n  \"scale\": {}\n}}\n",
        machine(),
        ingests
            .iter()
            .map(|i| format!(
                "    {{\"agencies\": {}, \"bets\": {}, \"seconds\": {:.4}, \"bets_per_s\": {:.0}, \"roofline_rows_per_s\": {:.0}, \"ratio\": {:.3}, \"ack_p50_ms\": {:.3}, \"ack_p99_ms\": {:.3}, \"fsyncs\": {}, \"server_cpu_s\": {:.3}, \"server_peak_rss_kb\": {}}}",
                i.agencies, i.bets, i.seconds, i.bets_per_s(), i.roofline_rows_per_s, i.ratio(), i.p50_ms, i.p99_ms, i.syncs, i.server_cpu_s, i.server_peak_rss_kb
            ))
            .collect::<Vec<_>>()
            .join(",\n"),
        memory
            .iter()
            .map(|(state, bytes)| format!("{:?}: {bytes:.0}", state.key()))
            .collect::<Vec<_>>()
            .join(", "),
        scale.json
    );
    std::fs::write(out.join("results.json"), json).expect("results.json");
    std::fs::write(
        out.join("ingest.svg"),
        chart(&ingests, scale.panel.as_deref()),
    )
    .expect("ingest.svg");
    std::fs::write(out.join("results.md"), table).expect("results.md");
    println!("\nwrote target/bench/results.json, results.md and ingest.svg");
    scale.exit_on_failure();
}

/// Durable ingest of `agencies` × `per_agency` bets through the real server.
fn ingest(out: &Path, agencies: u16, per_agency: usize) -> Ingest {
    let dir = out.join(format!("ingest-{agencies}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The load generator reads exactly, so it needs no winners delay; with the
    // default one every run would end 100 ms later, a fixed latency the
    // reference client needs that says nothing about ingest throughput.
    let mut server = Server::start_logging_to_file(
        &dir,
        agencies,
        &[
            ("SERVER_LISTEN_BACKLOG", "4096"),
            ("STALL_TIMEOUT", "120s"),
            ("WINNERS_DELAY", "0s"),
        ],
    );
    let config = LoadConfig {
        address: server.address().parse().unwrap(),
        agencies,
        bets_per_agency: per_agency,
        winners_per_agency: 1,
        per_batch: 103,
        window: 8,
        connecting_at_once: 512,
        deadline: Duration::from_secs(600),
    };
    let report: Report = run(&config).expect("load generator");
    assert!(
        report.errors.is_empty(),
        "{agencies} agencies: {:?}",
        &report.errors[..report.errors.len().min(10)]
    );
    let pid = server.pid();
    let cpu = cpu_seconds(pid);
    let rss = peak_rss_kb(pid);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(60)).success());
    let close = server.wait_for("action: close_storage", Duration::from_secs(5));
    let syncs: u64 = e2e::field(&close, "close_storage", "syncs")
        .unwrap()
        .parse()
        .unwrap();
    let stored: usize = e2e::field(&close, "close_storage", "bets")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stored, report.bets, "every acked bet is stored");
    let group = (report.bets as f64 / syncs as f64).round().max(1.0) as usize;
    let roofline = roofline(&dir, agencies, per_agency, group);
    Ingest {
        agencies,
        bets: report.bets,
        seconds: report.elapsed.as_secs_f64(),
        p50_ms: report.latency(0.5).as_secs_f64() * 1e3,
        p99_ms: report.latency(0.99).as_secs_f64() * 1e3,
        syncs,
        server_cpu_s: cpu,
        server_peak_rss_kb: rss,
        roofline_rows_per_s: roofline,
    }
}

/// Rows per second of the server's storage code alone: the same rows, one
/// sync per `group` rows, into a file beside the server's.
fn roofline(dir: &Path, agencies: u16, per_agency: usize, group: usize) -> f64 {
    let bets: Vec<_> = (1..=agencies)
        .flat_map(|a| agency_bets(a, per_agency, 1, u64::from(a)))
        .collect();
    let path = dir.join("roofline.csv");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let mut store = Store::new(file);
    let start = Instant::now();
    for chunk in bets.chunks(group) {
        for bet in chunk {
            store.append(&bet.view()).unwrap();
        }
        store.commit().unwrap();
    }
    let rate = bets.len() as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    rate
}

/// Bets/s of 20 agencies × 250,000 bets through the real server, beside
/// `hostile` slow-byte peers (0: alone). The server runs with its default
/// `MAX_CONNECTIONS` (three quarters of the descriptor limit), so past it the
/// oldest silent peers are closed to admit the agencies.
fn hostile(out: &Path, hostile: usize) -> f64 {
    let dir = out.join(format!("hostile-{hostile}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Server::start_logging_to_file(
        &dir,
        20,
        &[("SERVER_LISTEN_BACKLOG", "4096"), ("WINNERS_DELAY", "0s")],
    );
    let me = std::env::current_exe().expect("the bench binary");
    let children: Vec<_> = (0..2)
        .filter(|_| hostile > 0)
        .map(|_| {
            Command::new(&me)
                .args([
                    "slow-peers",
                    &server.address(),
                    &(hostile / 2).to_string(),
                    "120",
                ])
                .spawn()
                .expect("slow peers")
        })
        .collect();
    if hostile > 0 {
        // Let them connect and fill the server up to its cap.
        std::thread::sleep(Duration::from_secs(10));
    }
    let report = run(&LoadConfig {
        address: server.address().parse().unwrap(),
        agencies: 20,
        bets_per_agency: 250_000,
        winners_per_agency: 1,
        per_batch: 103,
        window: 8,
        connecting_at_once: 20,
        deadline: Duration::from_secs(300),
    })
    .expect("load generator");
    assert!(
        report.errors.is_empty(),
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(60));
    let rate = report.bets_per_second();
    eprintln!("20 agencies beside {hostile} slow peers: {rate:.0} bets/s");
    rate
}

/// What each peer of a memory measurement has done when RSS is read.
#[derive(Debug, Clone, Copy)]
enum PeerState {
    /// Connected, nothing sent.
    Idle,
    /// The header and 102 frames of a 103-frame batch: one partial batch held.
    MidBatch,
    /// Two full batches sent and their acks read, then quiet: what a busy
    /// connection keeps between bursts.
    BetweenBatches,
    /// A whole stream with its end frame, acks read, waiting for the draw.
    WaitingForDraw,
}

impl PeerState {
    const ALL: [PeerState; 4] = [
        PeerState::Idle,
        PeerState::MidBatch,
        PeerState::BetweenBatches,
        PeerState::WaitingForDraw,
    ];

    fn label(self) -> &'static str {
        match self {
            PeerState::Idle => "idle: connected, nothing sent",
            PeerState::MidBatch => "mid-batch: 102 of 103 frames received",
            PeerState::BetweenBatches => "between batches: 2 × 103 bets stored and acked",
            PeerState::WaitingForDraw => "waiting for the draw: ended, acked",
        }
    }

    fn key(self) -> &'static str {
        match self {
            PeerState::Idle => "idle",
            PeerState::MidBatch => "mid_batch",
            PeerState::BetweenBatches => "between_batches",
            PeerState::WaitingForDraw => "waiting_for_draw",
        }
    }

    /// What agency `agency` sends, and how many reply bytes it reads back.
    fn stream(self, agency: u16, template: &[u8; FRAME_LEN]) -> (Vec<u8>, usize) {
        let mut frame = *template;
        frame[0] = agency as u8;
        let frames = |n: usize| -> Vec<u8> { frame.repeat(n) };
        let header = Header::new(103, agency).encode().to_vec();
        match self {
            PeerState::Idle => (Vec::new(), 0),
            PeerState::MidBatch => ([header, frames(102)].concat(), 0),
            PeerState::BetweenBatches => ([header, frames(206)].concat(), 206 * ACK_LEN),
            PeerState::WaitingForDraw => (
                [header, frames(3), END_FRAME.to_vec()].concat(),
                4 * ACK_LEN,
            ),
        }
    }
}

/// Server RSS growth per connection, over [`CONNECTIONS`] peers in `state`.
fn connection_memory(out: &Path, state: PeerState) -> f64 {
    let dir = out.join(format!("memory-{}", state.key()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // One more agency than peers, so the draw never runs.
    let mut server = Server::start_logging_to_file(
        &dir,
        CONNECTIONS as u16 + 1,
        &[("SERVER_LISTEN_BACKLOG", "4096"), ("STALL_TIMEOUT", "1h")],
    );
    let pid = server.pid();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kb(pid);
    let template = Bet::new(1, "Ana", "Gómez", 30904465, "1990-06-15", 1234)
        .unwrap()
        .view()
        .encode();
    let peers: Vec<std::net::TcpStream> = (1..=CONNECTIONS as u16)
        .map(|agency| {
            let mut peer = std::net::TcpStream::connect(server.address()).expect("peer");
            let (bytes, reply) = state.stream(agency, &template);
            peer.write_all(&bytes).expect("peer sends");
            if reply > 0 {
                let mut buf = vec![0u8; reply];
                std::io::Read::read_exact(&mut peer, &mut buf).expect("peer reads its acks");
            }
            peer
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kb(pid);
    drop(peers);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    (after.saturating_sub(before) * 1024) as f64 / CONNECTIONS as f64
}

/// The 5-agency dataset (or generated files of its sizes) with the real client
/// binaries: seconds from server start to the last client's exit, and the
/// roofline's seconds for the same rows.
fn dataset_end_to_end(out: &Path) -> (String, f64, f64) {
    let dir = out.join("dataset");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sizes = [26_936, 25_518, 16_014, 9_238, 991];
    let (label, files): (String, Vec<PathBuf>) = match dataset() {
        Some(data) => (
            "course dataset (78,697 bets)".into(),
            (1..=5)
                .map(|a| data.join(format!("agency-{a}.csv")))
                .collect(),
        ),
        None => (
            "generated files of the dataset's sizes (78,697 bets)".into(),
            sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    write_agency_file(&dir, i as u16 + 1, &agency_bets(i as u16 + 1, n, 2, 1))
                })
                .collect(),
        ),
    };
    let client = binary("client");
    let start = Instant::now();
    let server = Server::start_logging_to_file(&dir, 5, &[]);
    let mut children: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            Command::new(&client)
                .args(["--config", "/dev/null"])
                .env("CLI_ID", (i + 1).to_string())
                .env("CLI_SERVER_ADDRESS", server.address())
                .env("CLI_AGENCY_DATA_FILE", file)
                // Full speed: unset, `loop.period` is 5 s between batches.
                .env("CLI_LOOP_PERIOD", "0s")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("client")
        })
        .collect();
    for child in &mut children {
        let status = wait_child(child, Duration::from_secs(120)).expect("client finishes");
        assert!(status.success());
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(server.stored_rows().len(), 78_697);
    let roofline_rate = roofline(&dir, 5, 78_697 / 5, 1000);
    (label, seconds, 78_697.0 / roofline_rate)
}

/// Width and height of one panel of the chart.
const PANEL: (f64, f64) = (720.0, 400.0);

/// The chart, as a small SVG: throughput and p99 against agencies (when
/// step 2 ran), and below it round time and host memory against client
/// containers (when step 6 completed a round).
fn chart(ingests: &[Ingest], scale_panel: Option<&str>) -> String {
    let mut panels = Vec::new();
    if !ingests.is_empty() {
        panels.push(ingest_panel(ingests));
    }
    if let Some(panel) = scale_panel {
        panels.push(panel.to_owned());
    }
    let (w, h) = PANEL;
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{}' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n",
        h * panels.len() as f64
    );
    for (i, panel) in panels.iter().enumerate() {
        writeln!(svg, "<g transform='translate(0,{})'>", h * i as f64).unwrap();
        svg.push_str(panel);
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    svg
}

/// Throughput and p99 against agencies (log scale): the chart's first panel.
fn ingest_panel(ingests: &[Ingest]) -> String {
    let (w, h) = PANEL;
    let (left, right, top, bottom) = (70.0, 70.0, 40.0, 50.0);
    let x = |a: u16| left + (f64::from(a).log10() - 0.5) / (4.0 - 0.5) * (w - left - right);
    let max_rate = ingests
        .iter()
        .map(|i| i.bets_per_s().max(i.roofline_rows_per_s))
        .fold(1.0, f64::max)
        * 1.1;
    let max_p99 = ingests.iter().map(|i| i.p99_ms).fold(1.0, f64::max) * 1.1;
    let y_rate = |r: f64| h - bottom - r / max_rate * (h - top - bottom);
    let y_p99 = |p: f64| h - bottom - p / max_p99 * (h - top - bottom);
    let path = |points: Vec<(f64, f64)>| {
        points
            .iter()
            .enumerate()
            .map(|(i, (px, py))| format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { " L" }))
            .collect::<String>()
    };
    let mut svg = String::new();
    writeln!(svg, "<text x='{}' y='20' text-anchor='middle' font-size='14'>Durable ingest vs concurrent agencies ({})</text>", w / 2.0, machine()).unwrap();
    writeln!(
        svg,
        "<line x1='{left}' y1='{}' x2='{}' y2='{}' stroke='black'/>",
        h - bottom,
        w - right,
        h - bottom
    )
    .unwrap();
    writeln!(
        svg,
        "<line x1='{left}' y1='{top}' x2='{left}' y2='{}' stroke='black'/>",
        h - bottom
    )
    .unwrap();
    writeln!(
        svg,
        "<line x1='{}' y1='{top}' x2='{}' y2='{}' stroke='black'/>",
        w - right,
        w - right,
        h - bottom
    )
    .unwrap();
    for i in ingests {
        writeln!(
            svg,
            "<text x='{:.1}' y='{}' text-anchor='middle'>{}</text>",
            x(i.agencies),
            h - bottom + 18.0,
            i.agencies
        )
        .unwrap();
    }
    writeln!(
        svg,
        "<text x='{}' y='{}' text-anchor='middle'>concurrent agencies (log scale)</text>",
        w / 2.0,
        h - 10.0
    )
    .unwrap();
    for k in 0..=4 {
        let r = max_rate * f64::from(k) / 4.0;
        writeln!(
            svg,
            "<text x='{}' y='{:.1}' text-anchor='end' fill='#1f77b4'>{:.0}k</text>",
            left - 6.0,
            y_rate(r) + 4.0,
            r / 1e3
        )
        .unwrap();
        let p = max_p99 * f64::from(k) / 4.0;
        writeln!(
            svg,
            "<text x='{}' y='{:.1}' fill='#d62728'>{p:.0} ms</text>",
            w - right + 6.0,
            y_p99(p) + 4.0
        )
        .unwrap();
    }
    let rate: Vec<_> = ingests
        .iter()
        .map(|i| (x(i.agencies), y_rate(i.bets_per_s())))
        .collect();
    let roof: Vec<_> = ingests
        .iter()
        .map(|i| (x(i.agencies), y_rate(i.roofline_rows_per_s)))
        .collect();
    let p99: Vec<_> = ingests
        .iter()
        .map(|i| (x(i.agencies), y_p99(i.p99_ms)))
        .collect();
    writeln!(
        svg,
        "<path d='{}' fill='none' stroke='#1f77b4' stroke-width='2'/>",
        path(rate.clone())
    )
    .unwrap();
    writeln!(
        svg,
        "<path d='{}' fill='none' stroke='#1f77b4' stroke-width='1' stroke-dasharray='5,4'/>",
        path(roof)
    )
    .unwrap();
    writeln!(
        svg,
        "<path d='{}' fill='none' stroke='#d62728' stroke-width='2'/>",
        path(p99.clone())
    )
    .unwrap();
    for (px, py) in rate.iter().chain(&p99) {
        writeln!(svg, "<circle cx='{px:.1}' cy='{py:.1}' r='3'/>").unwrap();
    }
    writeln!(
        svg,
        "<text x='{}' y='{}' fill='#1f77b4'>— bets/s (durable, acked)   - - roofline rows/s</text>",
        left + 10.0,
        top + 14.0
    )
    .unwrap();
    writeln!(
        svg,
        "<text x='{}' y='{}' fill='#d62728'>— ack latency p99</text>",
        left + 10.0,
        top + 30.0
    )
    .unwrap();
    svg
}

fn proc_file(pid: u32, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{name}")).unwrap_or_default()
}

fn status_kb(pid: u32, key: &str) -> u64 {
    proc_file(pid, "status")
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

fn peak_rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}

/// User + system CPU seconds of a live process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = proc_file(pid, "stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks as f64 / 100.0 // CLK_TCK is 100 on Linux
}

fn fd_limit() -> String {
    proc_file(std::process::id(), "limits")
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("unknown")
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>()
        .join(" soft / ")
        + " hard"
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = std::io::stdout().flush();
    format!("{cores} cores, {cpu}")
}
