//! Step 6 of `make bench`: how many client containers one host, and three
//! nodes of the multi-node lab, run through a round (issue 10).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::docker::engine;
use e2e::swarm::{
    Membership, SingleNode, Swarm, check_draw, generate_stack, lab_dir, lab_script, lab_up,
};
use e2e::{root, wait_child};

use crate::{PANEL, machine};

// ---- 6. scale in containers -----------------------------------------------
//
// The release profile aborts on a panic (`panic = "abort"`): no destructor
// runs, so no guard of this process could remove a stack or tear a lab
// down after a failed check. Step 6 therefore runs in a child process
// (`bench scale-child`), which saves its table, figures and chart panel
// after every round; the parent waits for it (bounded), and when it did not
// end cleanly, removes what it left (the stack, the lab, a swarm it
// initialised) and reports the step as failed.

/// Client containers per round when `BENCH_CONTAINERS` is unset.
const CONTAINERS: [u16; 3] = [200, 500, 1_000];
/// The bench's own stack name: not `tp0`, so a user's `make swarm-up` is
/// never taken for a leftover and removed.
const SCALE_STACK: &str = "tp0bench";
const SCALE_SERVER: &str = "tp0bench_server";
const SCALE_CLIENT: &str = "tp0bench_client";
/// Host memory is sampled this often during a round.
const MEMORY_PERIOD: Duration = Duration::from_millis(250);
/// `docker stack rm` until the stack's containers and network are gone.
const SCALE_REMOVE_LIMIT: Duration = Duration::from_secs(300);
/// The lab's swarm dispatcher heartbeat for these rounds: Docker's default.
/// The lab's own 1 s (quick failover for the tests) marks nodes down under
/// the load of hundreds of container starts on two cores (measured at 1,000:
/// "heartbeat to manager failed: node not registered", and their tasks
/// rescheduled over and over).
const LAB_HEARTBEAT: &str = "5s";
/// Written by the child while the host engine is in a swarm it initialised
/// (its content: whether `docker_gwbridge` was there before); removed once
/// it has left that swarm.
const SWARM_MARKER: &str = "swarm-initialised-by-bench";

/// Where a round of step 6 runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// This machine's engine, a single-node swarm.
    OneHost,
    /// The lab: three engines in network namespaces, one swarm.
    ThreeNodes,
}

impl Place {
    fn label(self) -> &'static str {
        match self {
            Place::OneHost => "one host",
            Place::ThreeNodes => "three nodes",
        }
    }
}

/// One round of step 6 that ran to its end.
struct Round {
    bets: usize,
    /// `docker stack deploy` to every client task running (or done).
    all_running_s: f64,
    /// `docker stack deploy` to every client task Complete (each has its
    /// winners, so the draw is done).
    round_s: f64,
    /// Peak of MemTotal − MemAvailable during the round, less its value just
    /// before the deploy.
    memory_kb: u64,
    /// `docker stack deploy` to the draw, by the server's log: every agency
    /// had connected and sent all its bets, so all `n` client containers
    /// were up at once.
    draw_s: f64,
    /// Host memory at the draw (the last sample before it), less its value
    /// before the deploy: what `n` client containers up at once hold.
    at_draw_kb: u64,
    /// When every task was first seen running: the processes holding the
    /// most memory, by command name.
    pss: Pss,
    /// Client tasks beyond one per agency (failed or rejected ones the swarm
    /// replaced).
    replaced: usize,
    /// Completed client tasks per node.
    per_node: BTreeMap<String, usize>,
    /// `docker stack rm` until the stack is gone.
    removal_s: f64,
}

impl Round {
    fn memory_mb(&self) -> f64 {
        self.memory_kb as f64 / 1024.0
    }
}

/// One size at one place: measured, or why not.
struct ScaleRun {
    place: Place,
    containers: u16,
    outcome: Outcome,
}

enum Outcome {
    Done(Round),
    /// The round did not complete within its time, or a slot's task failed
    /// five times: what was seen. A limit of this machine, reported; not a
    /// failure of the bench.
    Limit(String),
    /// Not run, and why (a smaller size hit a limit).
    Skipped(String),
}

#[derive(Default)]
struct Scale {
    sizes: Vec<u16>,
    runs: Vec<ScaleRun>,
    /// Why step 6 or one of its halves did not run at all.
    skipped: Vec<String>,
    /// The lab's three engines, idle, once up (host memory growth).
    lab_engines_kb: Option<u64>,
    lab_engines_rss: Option<String>,
    lab_up_s: Option<f64>,
    lab_down_s: Option<f64>,
    data_s: f64,
    /// When the step began (the figures say how long it took so far).
    started: Option<Instant>,
}

impl Scale {
    fn seconds(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    fn done(&self, place: Place, containers: u16) -> Option<&Round> {
        self.runs.iter().find_map(|r| match &r.outcome {
            Outcome::Done(round) if r.place == place && r.containers == containers => Some(round),
            _ => None,
        })
    }
}

/// Step 6's sizes: `BENCH_CONTAINERS` (comma-separated; `0` or `none`: the
/// step is skipped), else [`CONTAINERS`]. A malformed value stops the bench
/// before anything runs.
pub(crate) fn scale_sizes() -> Vec<u16> {
    let Ok(value) = std::env::var("BENCH_CONTAINERS") else {
        return CONTAINERS.to_vec();
    };
    let value = value.trim();
    if value.is_empty() || value == "0" || value.eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    let mut sizes: Vec<u16> = value
        .split(',')
        .map(|n| match n.trim().parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => panic!(
                "BENCH_CONTAINERS={value:?}: client container counts, comma-separated \
                 (200,500,1000), each 1 to 65535; 0 or none skips step 6"
            ),
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// How long one round of `containers` client containers may take, deploy to
/// the last task Complete, before it counts as beyond this machine.
fn round_limit(containers: u16) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(500) * u32::from(containers)
}

/// MemTotal − MemAvailable, in kB: what the host's processes and kernel
/// hold that could not be given back at once.
fn host_used_kb() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |key: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field("MemTotal:").saturating_sub(field("MemAvailable:"))
}

/// The median of a few readings over a second: the host's memory just
/// before something starts.
fn host_used_settled_kb() -> u64 {
    let mut readings: Vec<u64> = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(200));
            host_used_kb()
        })
        .collect();
    readings.sort_unstable();
    readings[2]
}

/// Memory of processes by command name: (name, processes, kB).
type Pss = Vec<(String, usize, u64)>;

/// Proportional set size (each shared page split among the processes that
/// map it, so the sizes add up) of every process on the host, summed by
/// command name: the six largest.
fn pss_by_command() -> Pss {
    let mut by: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let (Ok(comm), Ok(rollup)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("smaps_rollup")),
        ) else {
            continue;
        };
        let pss: u64 = rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let e = by.entry(comm.trim().to_owned()).or_default();
        e.0 += 1;
        e.1 += pss;
    }
    let mut all: Pss = by.into_iter().map(|(c, (n, kb))| (c, n, kb)).collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.2));
    all.truncate(6);
    all
}

/// [`host_used_kb`], sampled every [`MEMORY_PERIOD`] by a thread, until
/// [`Memory::finish`] or dropped, and at most `limit`: (seconds since the
/// start, kB) each.
struct Memory {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(f64, u64)>>>,
}

impl Memory {
    fn start(limit: Duration) -> Memory {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = vec![(0.0, host_used_kb())];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && start.elapsed() < limit {
                std::thread::sleep(MEMORY_PERIOD);
                samples.push((start.elapsed().as_secs_f64(), host_used_kb()));
            }
            samples
        });
        Memory {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<(f64, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .expect("finished once")
            .join()
            .expect("the memory sampler")
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// [`Swarm::remove`] of the bench's stack, again while `docker stack rm`
/// fails only because the network is still in use by a task: it removes the
/// services and then at once the network, which fails while their
/// containers are still being removed (seen with 200 tasks).
fn remove_stack(swarm: &Swarm) -> Result<(), String> {
    let deadline = Instant::now() + SCALE_REMOVE_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match swarm.remove(SCALE_STACK, left) {
            Ok(()) => return Ok(()),
            Err(e) if e.contains("in use by task") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The bench's stack on an engine; removed when dropped (a round that hit a
/// limit returns early; a failed check aborts the process, and the parent
/// removes the stack).
struct Stack<'a> {
    swarm: &'a Swarm,
    removed: bool,
}

impl<'a> Stack<'a> {
    /// Removes what an interrupted bench left of its stack, then deploys.
    fn deploy(swarm: &'a Swarm, file: &Path) -> Stack<'a> {
        let left = swarm.leftovers(SCALE_STACK);
        if !left.is_empty() {
            eprintln!("scale: removing what an earlier bench left of stack {SCALE_STACK}: {left}");
            remove_stack(swarm).unwrap_or_else(|e| panic!("{e}"));
        }
        let stack = Stack {
            swarm,
            removed: false,
        };
        swarm.deploy(file, SCALE_STACK);
        stack
    }

    /// `docker stack rm` until it is gone; seconds it took.
    fn remove(mut self) -> f64 {
        self.removed = true;
        let started = Instant::now();
        remove_stack(self.swarm).unwrap_or_else(|e| panic!("{e}"));
        started.elapsed().as_secs_f64()
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        if !self.removed
            && let Err(e) = remove_stack(self.swarm)
        {
            eprintln!("scale: {e}");
        }
    }
}

/// The multi-node lab (`scripts/swarm-lab/up.sh`, driven as
/// `e2e/tests/multinode.rs` drives it), torn down by [`Lab::down`] (or, if
/// the child aborts, by the parent).
struct Lab {
    swarm: Swarm,
}

impl Lab {
    /// The lab, up with this tree's images; `Err`: why it cannot run here
    /// (up.sh's exit 77, or `TP0_MULTINODE=off`). Any other failure of
    /// up.sh is a failure of the bench.
    fn up() -> Result<Lab, String> {
        lab_up(&[("HEARTBEAT", LAB_HEARTBEAT)]).map(|swarm| Lab { swarm })
    }

    /// `down.sh`; seconds it took.
    fn down(self) -> f64 {
        lab_down()
    }
}

fn lab_down() -> f64 {
    let started = Instant::now();
    let output = lab_script("down.sh").output().expect("down.sh runs");
    assert!(
        output.status.success(),
        "scripts/swarm-lab/down.sh: {}",
        e2e::text(&output)
    );
    started.elapsed().as_secs_f64()
}

/// What step 6 hands to the bench's results: its table, its figures (a
/// JSON object), its chart panel, and whether it failed.
pub(crate) struct StepSix {
    pub(crate) table: String,
    pub(crate) json: String,
    pub(crate) panel: Option<String>,
    failed: Option<String>,
}

impl StepSix {
    /// The step failed: the results are written; now the bench fails.
    pub(crate) fn exit_on_failure(&self) {
        if let Some(why) = &self.failed {
            eprintln!("\nstep 6 FAILED: {why}");
            std::process::exit(1);
        }
    }
}

/// Step 6, in a child process (see the section's comment); its saved
/// results, and a failure when it did not end cleanly.
pub(crate) fn step6(out: &Path, sizes: &[u16]) -> StepSix {
    let dir = out.join("scale");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("target/bench/scale");
    if sizes.is_empty() {
        let why = "BENCH_CONTAINERS=0: step 6 (client containers) skipped";
        eprintln!("{why}");
        return StepSix {
            table: format!("{why}\n"),
            json: format!("{{\"skipped\": [{}]}}", json_str(why)),
            panel: None,
            failed: None,
        };
    }
    // Waiting for the Docker scenarios' lock, then every round and removal
    // at both places, the lab's bring-up and teardown: past that, it hangs.
    let limit = Duration::from_secs(20 * 60 + 10 * 60)
        + sizes
            .iter()
            .map(|&n| (round_limit(n) + SCALE_REMOVE_LIMIT) * 2)
            .sum::<Duration>();
    let me = std::env::current_exe().expect("the bench binary");
    let mut child = Command::new(me)
        .arg("scale-child")
        .spawn()
        .expect("bench scale-child");
    let failed = match wait_child(&mut child, limit) {
        Some(status) if status.success() => None,
        Some(status) => Some(format!(
            "its process ended with {status} (its output is above)"
        )),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Some(format!("it did not end within {limit:?} and was killed"))
        }
    };
    if failed.is_some() {
        clean_up_after_child(&dir);
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let mut table = read("table.md").unwrap_or_default();
    let mut json = read("scale.json").unwrap_or_else(|| "{}".into());
    if let Some(why) = &failed {
        writeln!(table, "step 6 FAILED: {why}").unwrap();
        let rest = json.trim_start().trim_start_matches('{').trim_start();
        json = format!(
            "{{\"failed\": {}{}{rest}",
            json_str(why),
            if rest.starts_with('}') { "" } else { ", " }
        );
    }
    StepSix {
        table,
        json,
        panel: read("panel.svg"),
        failed,
    }
}

/// After a child that did not end cleanly: removes the bench's stack from
/// the host engine, tears the lab down, and leaves the swarm the child
/// initialised; under the Docker scenarios' lock, so no test's lab or stack
/// is taken for the child's.
fn clean_up_after_child(dir: &Path) {
    let Some(_engine) = engine() else { return };
    eprintln!("scale: cleaning up after step 6's process");
    let host = Swarm::default_engine();
    if host.membership() == Membership::Manager
        && !host.leftovers(SCALE_STACK).is_empty()
        && let Err(e) = remove_stack(&host)
    {
        eprintln!("scale: {e}");
    }
    if lab_dir().exists() {
        let output = lab_script("down.sh").output();
        eprintln!(
            "scale: the lab torn down: {:?}",
            output.map(|o| o.status.to_string())
        );
    }
    if let Ok(marker) = std::fs::read_to_string(dir.join(SWARM_MARKER)) {
        let output = host.docker(&["swarm", "leave", "--force"]);
        eprintln!(
            "scale: the host engine left the swarm the bench initialised: {}",
            e2e::text(&output).trim()
        );
        if marker.trim() == "gwbridge absent" && host.has_network("docker_gwbridge") {
            let _ = host.docker(&["network", "rm", "docker_gwbridge"]);
        }
        let _ = std::fs::remove_file(dir.join(SWARM_MARKER));
    }
}

/// `bench scale-child`: step 6 itself. For each size, a round on this
/// machine's engine as a single-node swarm, then the same on the
/// three-engine lab; the results saved in `dir` after each. Holds the Docker
/// scenarios' machine-wide lock throughout (no test deploys beside it);
/// leaves the host engine as found and the lab torn down.
pub(crate) fn scale_child(dir: &Path, sizes: &[u16]) {
    let mut scale = Scale {
        sizes: sizes.to_vec(),
        ..Scale::default()
    };
    // Builds fresh images of this tree, as for the tests.
    let Some(_engine) = engine() else {
        scale
            .skipped
            .push("step 6 skipped: no usable Docker engine (printed above)".into());
        save(dir, &scale);
        return;
    };
    scale.started = Some(Instant::now());
    let data = dir.join("data");
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let generating = Instant::now();
    let gen_data = Command::new("bash")
        .current_dir(root())
        .args(["scripts/gen-data.sh", &largest.to_string()])
        .env("DATA_DIR", &data)
        .output()
        .expect("gen-data.sh runs");
    assert!(
        gen_data.status.success(),
        "scripts/gen-data.sh {largest}: {}",
        e2e::text(&gen_data)
    );
    scale.data_s = generating.elapsed().as_secs_f64();
    // Bets of agencies 1..=i, read back from the files.
    let mut total = vec![0usize];
    for agency in 1..=largest {
        let file = data.join(format!("agency-{agency}.csv"));
        let text = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let rows = text.iter().filter(|&&b| b == b'\n').count();
        total.push(total.last().unwrap() + rows);
    }
    eprintln!(
        "scale: {largest} agency files ({} bets) in {:.1} s",
        total[usize::from(largest)],
        scale.data_s
    );

    // One host: this engine as a single-node swarm's manager.
    let host = Swarm::default_engine();
    let marker = dir.join(SWARM_MARKER);
    let gwbridge = if host.has_network("docker_gwbridge") {
        "gwbridge present"
    } else {
        "gwbridge absent"
    };
    let node = match SingleNode::new(true) {
        None => {
            scale.skipped.push(
                "one host: this engine cannot be a single-node swarm's manager here \
                 (printed above)"
                    .into(),
            );
            None
        }
        Some(node) => {
            if node.found_inactive() {
                std::fs::write(&marker, gwbridge).expect("the swarm marker");
            }
            let tp0 = node.swarm.leftovers("tp0");
            if tp0.is_empty() {
                Some(node)
            } else {
                scale.skipped.push(format!(
                    "one host: a stack tp0 is deployed on this engine ({}); its network's \
                     subnet (10.125.0.0/20) is the bench's: `make swarm-down` removes it",
                    tp0.trim_end()
                ));
                None
            }
        }
    };

    // Three nodes: the lab.
    let before_lab = host_used_settled_kb();
    let lab_started = Instant::now();
    let lab = match Lab::up() {
        Err(why) => {
            eprintln!("scale: three nodes skipped: {why}");
            scale.skipped.push(format!("three nodes: skipped: {why}"));
            None
        }
        Ok(lab) => {
            scale.lab_up_s = Some(lab_started.elapsed().as_secs_f64());
            scale.lab_engines_kb = Some(host_used_settled_kb().saturating_sub(before_lab));
            let memory = e2e::text(&lab_script("node.sh").arg("memory").output().unwrap());
            scale.lab_engines_rss = Some(memory.trim().replace('\n', "; "));
            eprintln!(
                "scale: lab up in {:.1} s; its engines idle: {:.0} MB of host memory ({})",
                scale.lab_up_s.unwrap(),
                scale.lab_engines_kb.unwrap() as f64 / 1024.0,
                scale.lab_engines_rss.as_deref().unwrap_or("")
            );
            Some(lab)
        }
    };
    save(dir, &scale);

    // Each size at one place, then at the other, so that each pair's ratio
    // is measured minutes apart, not half an hour.
    let mut places: Vec<(Place, Swarm)> = Vec::new();
    if let Some(node) = &node {
        places.push((Place::OneHost, node.swarm.clone()));
    }
    if let Some(lab) = &lab {
        places.push((Place::ThreeNodes, lab.swarm.clone()));
    }
    // Past a size that hit a limit at a place, larger ones are not tried there.
    let mut limits: Vec<(Place, u16)> = Vec::new();
    for n in scale.sizes.clone() {
        for (place, swarm) in &places {
            let limit = limits.iter().find(|(p, _)| p == place).map(|&(_, at)| at);
            let outcome = match limit {
                Some(at) => {
                    Outcome::Skipped(format!("{at} containers already did not complete here"))
                }
                None => match round(swarm, *place, n, dir, &data, total[usize::from(n)]) {
                    Ok(round) => Outcome::Done(round),
                    Err(why) => {
                        limits.push((*place, n));
                        Outcome::Limit(why)
                    }
                },
            };
            say_outcome(*place, n, &outcome);
            scale.runs.push(ScaleRun {
                place: *place,
                containers: n,
                outcome,
            });
            save(dir, &scale);
        }
    }
    if let Some(lab) = lab {
        scale.lab_down_s = Some(lab.down());
    }
    // Leaves the swarm when the bench initialised it.
    drop(node);
    let _ = std::fs::remove_file(&marker);
    eprintln!("scale: step 6 took {:.0} s", scale.seconds());
    save(dir, &scale);
}

/// Step 6's results so far, for the parent: table, figures, chart panel.
fn save(dir: &Path, scale: &Scale) {
    std::fs::write(dir.join("table.md"), scale_table(scale)).expect("table.md");
    std::fs::write(dir.join("scale.json"), scale_json(scale)).expect("scale.json");
    if scale
        .runs
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Done(_)))
    {
        std::fs::write(dir.join("panel.svg"), scale_panel(scale)).expect("panel.svg");
    }
}

fn say_outcome(place: Place, n: u16, outcome: &Outcome) {
    match outcome {
        Outcome::Done(r) => eprintln!(
            "scale: {} × {n}: all running {:.1} s, round {:.1} s, host memory +{:.0} MB \
             ({:.2} MB per container), removed in {:.1} s",
            place.label(),
            r.all_running_s,
            r.round_s,
            r.memory_mb(),
            r.memory_mb() / f64::from(n),
            r.removal_s
        ),
        Outcome::Limit(why) => {
            eprintln!("scale: {} × {n}: DID NOT COMPLETE: {why}", place.label())
        }
        Outcome::Skipped(why) => eprintln!("scale: {} × {n}: skipped: {why}", place.label()),
    }
}

/// One round: the stack for `n` agencies deployed, every client task
/// followed to Complete, the draw checked (a wrong one panics: the bench
/// fails), the stack removed. `Err`: the round did not complete within
/// [`round_limit`] (or a slot gave up), and what was seen then.
fn round(
    swarm: &Swarm,
    place: Place,
    n: u16,
    dir: &Path,
    data: &Path,
    bets: usize,
) -> Result<Round, String> {
    let name = format!("{}-{n}", place.label().replace(' ', "-"));
    let bets_dir = dir.join(format!("bets-{name}"));
    std::fs::create_dir_all(&bets_dir).unwrap();
    let file = dir.join(format!("stack-{name}.yml"));
    generate_stack(
        &file,
        n,
        &root().join("client/config.yaml"),
        data,
        &bets_dir,
    );
    let limit = round_limit(n);

    let before = host_used_settled_kb();
    let memory = Memory::start(limit + Duration::from_secs(60));
    let started = Instant::now();
    let deployed_at = std::time::SystemTime::now();
    let stack = Stack::deploy(swarm, &file);
    let deadline = started + limit;
    let mut all_running: Option<(f64, Pss)> = None;
    let mut said = Instant::now();
    let tasks = loop {
        let tasks = swarm.tasks(SCALE_CLIENT);
        // The current task of each slot: the completed one, else the one
        // meant to run, else any (a slot's failed tasks stay listed).
        let rank = |t: &e2e::swarm::Task| {
            (
                t.state == "Complete",
                t.desired == "Running" || t.desired == "Ready",
            )
        };
        let mut latest: BTreeMap<u16, &e2e::swarm::Task> = BTreeMap::new();
        for t in &tasks {
            let current = latest.entry(t.slot).or_insert(t);
            if rank(t) > rank(current) {
                *current = t;
            }
        }
        let live = latest
            .values()
            .filter(|t| t.state == "Running" || t.state == "Complete")
            .count();
        let complete = latest.values().filter(|t| t.state == "Complete").count();
        if all_running.is_none() && live == usize::from(n) {
            all_running = Some((started.elapsed().as_secs_f64(), pss_by_command()));
        }
        if complete == usize::from(n) {
            break tasks;
        }
        // A slot whose task failed (or was rejected) five times is at the end
        // of its restarts (max_attempts 5): the round cannot complete.
        let mut failures: BTreeMap<u16, usize> = BTreeMap::new();
        for t in tasks
            .iter()
            .filter(|t| t.state == "Failed" || t.state == "Rejected")
        {
            *failures.entry(t.slot).or_default() += 1;
        }
        let given_up = failures
            .iter()
            .find(|&(_, &f)| f >= 5)
            .and_then(|(slot, _)| latest.get(slot));
        if Instant::now() >= deadline || given_up.is_some() {
            let mut states: BTreeMap<&str, usize> = BTreeMap::new();
            for t in latest.values() {
                *states.entry(t.state.as_str()).or_default() += 1;
            }
            let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
            for t in tasks.iter().filter(|t| !t.error.is_empty()) {
                *errors.entry(t.error.as_str()).or_default() += 1;
            }
            let log = swarm.logs(SCALE_SERVER);
            let server_tail: Vec<&str> = log.lines().rev().take(3).collect();
            let why = format!(
                "{} after the deploy: {live} of {n} tasks running or done, {complete} complete; \
                 current task of each slot by state {states:?}; {} tasks in all; errors {:?}; \
                 host memory +{:.0} MB; the server's last lines {server_tail:?}",
                given_up.map_or_else(
                    || format!("not done {limit:?}"),
                    |t| format!("slot {} gave up ({})", t.slot, t.error)
                ),
                tasks.len(),
                errors.iter().take(5).collect::<Vec<_>>(),
                host_used_kb().saturating_sub(before) as f64 / 1024.0,
            );
            drop(memory);
            let removing = Instant::now();
            drop(stack);
            eprintln!(
                "scale: {} × {n}: stack removed in {:.1} s",
                place.label(),
                removing.elapsed().as_secs_f64()
            );
            return Err(why);
        }
        if said.elapsed() >= Duration::from_secs(15) {
            said = Instant::now();
            eprintln!(
                "scale: {} × {n}: {:.0} s: {live} running or done, {complete} complete, \
                 host memory +{:.0} MB",
                place.label(),
                started.elapsed().as_secs_f64(),
                host_used_kb().saturating_sub(before) as f64 / 1024.0
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let round_s = started.elapsed().as_secs_f64();
    let samples = memory.finish();

    // The draw, as the server logged it: one run, one draw over every bet of
    // the generated files (the log broker may lag a little).
    let log_deadline = Instant::now() + Duration::from_secs(30);
    let mut log = swarm.logs(SCALE_SERVER);
    while !log.contains("action: sorteo") && Instant::now() < log_deadline {
        std::thread::sleep(Duration::from_millis(250));
        log = swarm.logs(SCALE_SERVER);
    }
    check_draw(&log, bets);
    // The draw's time, from its log line's timestamp (the containers share
    // this machine's clock), from the deploy.
    let draw_s = log
        .lines()
        .find(|l| l.contains("action: sorteo"))
        .and_then(log_time)
        .and_then(|t| t.duration_since(deployed_at).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or_else(|| panic!("the time of the server's draw:\n{log}"));
    let memory_kb = samples
        .iter()
        .map(|&(_, kb)| kb)
        .max()
        .unwrap_or(0)
        .saturating_sub(before);
    let at_draw_kb = samples
        .iter()
        .take_while(|&&(t, _)| t <= draw_s)
        .last()
        .map_or(0, |&(_, kb)| kb.saturating_sub(before));
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.state == "Complete") {
        *per_node.entry(t.node.clone()).or_default() += 1;
    }
    let removal_s = stack.remove();
    // Checked: the bets file (up to 55 MB at 1,000 agencies) is not kept.
    let _ = std::fs::remove_dir_all(&bets_dir);
    let (all_running_s, pss) = all_running.unwrap_or((round_s, Vec::new()));
    Ok(Round {
        bets,
        all_running_s,
        round_s,
        memory_kb,
        draw_s,
        at_draw_kb,
        pss,
        replaced: tasks.len() - usize::from(n),
        per_node,
        removal_s,
    })
}

/// The time of a log line: its first word, `2026-11-30T05:05:25.321Z`
/// (UTC, as both binaries write it).
fn log_time(line: &str) -> Option<std::time::SystemTime> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|v| v.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let mut hms = time.splitn(3, ':');
    let (h, min) = (
        hms.next()?.parse::<i64>().ok()?,
        hms.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = hms.next()?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
    // days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = (days * 86_400 + h * 3_600 + min * 60) as f64 + sec;
    (secs >= 0.0).then(|| std::time::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// A value from outside (an error, a log line) in a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A JSON string.
fn json_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => write!(out, "\\u{:04x}", u32::from(c)).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Step 6's table, ratios and notes.
fn scale_table(scale: &Scale) -> String {
    let mut t = String::new();
    writeln!(
        t,
        "\n| where | client containers | bets | all running s | draw s | round s | s per 100 containers | host memory MB | MB per container | MB at the draw | tasks replaced | stack rm s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for r in &scale.runs {
        let (place, n) = (r.place.label(), r.containers);
        match &r.outcome {
            Outcome::Done(d) => writeln!(
                t,
                "| {place} | {n} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0} | {:.2} | {:.0} | {} | {:.1} |",
                d.bets,
                d.all_running_s,
                d.draw_s,
                d.round_s,
                d.round_s * 100.0 / f64::from(n),
                d.memory_mb(),
                d.memory_mb() / f64::from(n),
                d.at_draw_kb as f64 / 1024.0,
                d.replaced,
                d.removal_s
            ),
            Outcome::Limit(why) => writeln!(
                t,
                "| {place} | {n} | did not complete: {} | | | | | | | | | |",
                cell(why)
            ),
            Outcome::Skipped(why) => writeln!(
                t,
                "| {place} | {n} | not run: {} | | | | | | | | | |",
                cell(why)
            ),
        }
        .unwrap();
    }
    // Ratios within this run: the machine is shared and its timings drift.
    let both: Vec<(u16, &Round, &Round)> = scale
        .sizes
        .iter()
        .filter_map(|&n| {
            Some((
                n,
                scale.done(Place::OneHost, n)?,
                scale.done(Place::ThreeNodes, n)?,
            ))
        })
        .collect();
    if !both.is_empty() {
        writeln!(
            t,
            "\n| client containers | three nodes ÷ one host: all running | round | host memory |\n|---:|---:|---:|---:|"
        )
        .unwrap();
        for (n, one, three) in &both {
            writeln!(
                t,
                "| {n} | {:.2} | {:.2} | {:.2} |",
                three.all_running_s / one.all_running_s,
                three.round_s / one.round_s,
                three.memory_kb as f64 / one.memory_kb.max(1) as f64
            )
            .unwrap();
        }
    }
    for place in [Place::OneHost, Place::ThreeNodes] {
        let done: Vec<(u16, &Round)> = scale
            .sizes
            .iter()
            .filter_map(|&n| Some((n, scale.done(place, n)?)))
            .collect();
        if let (Some((n0, first)), Some((n1, last))) = (done.first(), done.last())
            && n1 > n0
        {
            writeln!(
                t,
                "{}: from {n0} to {n1} client containers, the round takes {:.2}× as long ({:+.1} s per 100 more containers) and {:.2}× the host memory",
                place.label(),
                last.round_s / first.round_s,
                (last.round_s - first.round_s) * 100.0 / f64::from(n1 - n0),
                last.memory_kb as f64 / first.memory_kb.max(1) as f64
            )
            .unwrap();
        }
    }
    for r in &scale.runs {
        if let Outcome::Done(d) = &r.outcome {
            writeln!(
                t,
                "{} × {}, when all were running: host processes by memory (PSS) {}",
                r.place.label(),
                r.containers,
                pss_text(&d.pss)
            )
            .unwrap();
        }
    }
    for r in &scale.runs {
        if let (Place::ThreeNodes, Outcome::Done(d)) = (r.place, &r.outcome) {
            writeln!(
                t,
                "three nodes × {}: client tasks per node: {}",
                r.containers,
                d.per_node
                    .iter()
                    .map(|(node, k)| format!("{node} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .unwrap();
        }
    }
    if let Some(kb) = scale.lab_engines_kb {
        writeln!(
            t,
            "three nodes: the lab's three engines, idle, hold {:.0} MB of host memory (measured before the rounds, not in their figures); up.sh {:.0} s, down.sh {} ({})",
            kb as f64 / 1024.0,
            scale.lab_up_s.unwrap_or(0.0),
            scale
                .lab_down_s
                .map_or("did not run".to_owned(), |s| format!("{s:.0} s")),
            scale.lab_engines_rss.as_deref().unwrap_or("")
        )
        .unwrap();
    }
    for why in &scale.skipped {
        writeln!(t, "{why}").unwrap();
    }
    writeln!(
        t,
        "step 6 took {:.0} s (agency files {:.1} s). All running, round: seconds from `docker stack deploy` to every client task running, to every one Complete (after the draw). Host memory: the peak of MemTotal − MemAvailable during the round (sampled every 250 ms) less its value just before the deploy; MB per container: that ÷ client containers.",
        scale.seconds(),
        scale.data_s
    )
    .unwrap();
    t
}

/// "containerd-shim 1000 × 4.1 MB (4100 MB), ...".
fn pss_text(pss: &[(String, usize, u64)]) -> String {
    pss.iter()
        .map(|(comm, n, kb)| {
            format!(
                "{comm} {n} × {:.2} MB ({:.0} MB)",
                *kb as f64 / 1024.0 / *n as f64,
                *kb as f64 / 1024.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Step 6's figures for results.json.
fn scale_json(scale: &Scale) -> String {
    let runs: Vec<String> = scale
        .runs
        .iter()
        .map(|r| {
            let head = format!(
                "{{\"where\": {}, \"containers\": {}",
                json_str(r.place.label()),
                r.containers
            );
            match &r.outcome {
                Outcome::Done(d) => format!(
                    "{head}, \"completed\": true, \"bets\": {}, \"all_running_s\": {:.2}, \"draw_s\": {:.2}, \"round_s\": {:.2}, \"host_memory_mb\": {:.1}, \"mb_per_container\": {:.3}, \"host_memory_at_draw_mb\": {:.1}, \"tasks_replaced\": {}, \"stack_rm_s\": {:.2}, \"tasks_per_node\": {{{}}}, \"pss_mb_when_all_running\": {{{}}}}}",
                    d.bets,
                    d.all_running_s,
                    d.draw_s,
                    d.round_s,
                    d.memory_mb(),
                    d.memory_mb() / f64::from(r.containers),
                    d.at_draw_kb as f64 / 1024.0,
                    d.replaced,
                    d.removal_s,
                    d.per_node
                        .iter()
                        .map(|(node, k)| format!("{}: {k}", json_str(node)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    d.pss
                        .iter()
                        .map(|(comm, n, kb)| format!(
                            "{}: {{\"processes\": {n}, \"mb\": {:.1}}}",
                            json_str(comm),
                            *kb as f64 / 1024.0
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Outcome::Limit(why) => format!(
                    "{head}, \"completed\": false, \"limit\": {}}}",
                    json_str(why)
                ),
                Outcome::Skipped(why) => format!(
                    "{head}, \"completed\": false, \"not_run\": {}}}",
                    json_str(why)
                ),
            }
        })
        .collect();
    let opt = |v: Option<f64>| v.map_or("null".to_owned(), |v| format!("{v:.1}"));
    format!(
        "{{\"containers\": {:?}, \"seconds\": {:.1}, \"data_seconds\": {:.1}, \"lab_engines_idle_mb\": {}, \"lab_up_s\": {}, \"lab_down_s\": {}, \"skipped\": [{}], \"runs\": [\n    {}\n  ]}}",
        scale.sizes,
        scale.seconds(),
        scale.data_s,
        opt(scale.lab_engines_kb.map(|kb| kb as f64 / 1024.0)),
        opt(scale.lab_up_s),
        opt(scale.lab_down_s),
        scale
            .skipped
            .iter()
            .map(|s| json_str(s))
            .collect::<Vec<_>>()
            .join(", "),
        runs.join(",\n    ")
    )
}

/// Round time and host memory against client containers, one host and
/// three nodes: the chart's second panel.
fn scale_panel(scale: &Scale) -> String {
    let (w, h) = PANEL;
    let (left, right, top, bottom) = (70.0, 70.0, 40.0, 50.0);
    let runs: Vec<(Place, u16, &Round)> = scale
        .runs
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Done(d) => Some((r.place, r.containers, d)),
            _ => None,
        })
        .collect();
    let max_n = scale.sizes.iter().copied().max().unwrap_or(1).max(1);
    // Four gridlines at a round step: 1, 2 or 5 times a power of ten.
    let nice = |max: f64| {
        let raw = max / 4.0;
        let power = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * power)
            .find(|&s| s >= raw)
            .unwrap_or(10.0 * power);
        step * 4.0
    };
    let max_s = nice(runs.iter().map(|r| r.2.round_s).fold(1.0, f64::max));
    let max_mb = nice(runs.iter().map(|r| r.2.memory_mb()).fold(1.0, f64::max));
    let x = |n: u16| left + f64::from(n) / (f64::from(max_n) * 1.05) * (w - left - right);
    let y_s = |s: f64| h - bottom - s / max_s * (h - top - bottom);
    let y_mb = |mb: f64| h - bottom - mb / max_mb * (h - top - bottom);
    let mut svg = String::new();
    writeln!(
        svg,
        "<text x='{}' y='20' text-anchor='middle' font-size='14'>One round of N client containers in Docker Swarm ({})</text>",
        w / 2.0,
        machine()
    )
    .unwrap();
    for (x1, y1, x2, y2) in [
        (left, h - bottom, w - right, h - bottom),
        (left, top, left, h - bottom),
        (w - right, top, w - right, h - bottom),
    ] {
        writeln!(
            svg,
            "<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='black'/>"
        )
        .unwrap();
    }
    for &n in &scale.sizes {
        writeln!(
            svg,
            "<text x='{:.1}' y='{}' text-anchor='middle'>{n}</text>",
            x(n),
            h - bottom + 18.0
        )
        .unwrap();
    }
    writeln!(
        svg,
        "<text x='{}' y='{}' text-anchor='middle'>client containers, one agency each (linear scale)</text>",
        w / 2.0,
        h - 10.0
    )
    .unwrap();
    for k in 0..=4 {
        let s = max_s * f64::from(k) / 4.0;
        writeln!(
            svg,
            "<text x='{}' y='{:.1}' text-anchor='end' fill='#1f77b4'>{s:.0} s</text>",
            left - 6.0,
            y_s(s) + 4.0
        )
        .unwrap();
        let mb = max_mb * f64::from(k) / 4.0;
        writeln!(
            svg,
            "<text x='{}' y='{:.1}' fill='#d62728'>{mb:.0} MB</text>",
            w - right + 6.0,
            y_mb(mb) + 4.0
        )
        .unwrap();
    }
    for place in [Place::OneHost, Place::ThreeNodes] {
        let dash = match place {
            Place::OneHost => "",
            Place::ThreeNodes => " stroke-dasharray='6,4'",
        };
        let mine: Vec<_> = runs.iter().filter(|r| r.0 == place).collect();
        for (color, points) in [
            (
                "#1f77b4",
                mine.iter()
                    .map(|r| (x(r.1), y_s(r.2.round_s)))
                    .collect::<Vec<_>>(),
            ),
            (
                "#d62728",
                mine.iter()
                    .map(|r| (x(r.1), y_mb(r.2.memory_mb())))
                    .collect(),
            ),
        ] {
            let d: String = points
                .iter()
                .enumerate()
                .map(|(i, (px, py))| format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { " L" }))
                .collect();
            if points.len() > 1 {
                writeln!(
                    svg,
                    "<path d='{d}' fill='none' stroke='{color}' stroke-width='2'{dash}/>"
                )
                .unwrap();
            }
            // One host: dots; three nodes: open squares (a point of one
            // may fall on a point of the other).
            for (px, py) in &points {
                match place {
                    Place::OneHost => writeln!(
                        svg,
                        "<circle cx='{px:.1}' cy='{py:.1}' r='3.5' fill='{color}'/>"
                    ),
                    Place::ThreeNodes => writeln!(
                        svg,
                        "<rect x='{:.1}' y='{:.1}' width='9' height='9' fill='none' stroke='{color}' stroke-width='1.5'/>",
                        px - 4.5,
                        py - 4.5
                    ),
                }
                .unwrap();
            }
        }
    }
    let legend = [
        (
            "#1f77b4",
            "none",
            "● round wall time (deploy to last task Complete), one host",
        ),
        ("#1f77b4", "6,4", "□ round wall time, three nodes"),
        ("#d62728", "none", "● host memory growth (peak), one host"),
        ("#d62728", "6,4", "□ host memory growth (peak), three nodes"),
    ];
    for (i, (color, dash, label)) in legend.iter().enumerate() {
        let y = top + 10.0 + 16.0 * i as f64;
        writeln!(
            svg,
            "<line x1='{}' y1='{y}' x2='{}' y2='{y}' stroke='{color}' stroke-width='2' stroke-dasharray='{dash}'/>",
            left + 10.0,
            left + 40.0
        )
        .unwrap();
        writeln!(
            svg,
            "<text x='{}' y='{}' fill='{color}'>{label}</text>",
            left + 46.0,
            y + 4.0
        )
        .unwrap();
    }
    // What did not complete, so a missing point is not read as a gap.
    let missing: Vec<String> = scale
        .runs
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Done(_)))
        .map(|r| format!("{} × {}", r.place.label(), r.containers))
        .collect();
    if !missing.is_empty() {
        writeln!(
            svg,
            "<text x='{}' y='{}' text-anchor='end'>did not complete: {}</text>",
            w - right - 6.0,
            h - bottom - 8.0,
            missing.join(", ")
        )
        .unwrap();
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart;

    #[test]
    fn log_time_reads_the_timestamp_both_binaries_write() {
        let at = |line: &str| {
            log_time(line).map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
            })
        };
        let t =
            at("2026-11-30T05:05:25.321Z INFO  [server::server] action: sorteo | result: success")
                .unwrap();
        assert!((t - 1_796_015_125.321).abs() < 1e-3, "{t}");
        assert_eq!(at("2000-02-29T23:59:59Z x"), Some(951_868_799.0));
        assert_eq!(at("action: sorteo | result: success"), None);
    }

    /// Three sizes at both places: four lines, a marker per point, the
    /// size that did not complete named. `BENCH_CHART_OUT=file.svg` writes
    /// the chart, to look at.
    #[test]
    fn the_scale_panel_draws_every_completed_round() {
        let round = |n: u16, k: f64| Round {
            bets: 1234 * usize::from(n),
            all_running_s: 0.4 * f64::from(n) * k,
            draw_s: 0.4 * f64::from(n) * k,
            round_s: 0.53 * f64::from(n) * k,
            memory_kb: 5_900 * u64::from(n),
            at_draw_kb: 5_500 * u64::from(n),
            pss: vec![(
                "containerd-shim".into(),
                usize::from(n),
                2_700 * u64::from(n),
            )],
            replaced: 0,
            per_node: BTreeMap::new(),
            removal_s: 10.0,
        };
        let mut scale = Scale {
            sizes: vec![200, 500, 1000],
            ..Scale::default()
        };
        for n in [200, 500, 1000] {
            for (place, k) in [(Place::OneHost, 1.0), (Place::ThreeNodes, 0.6)] {
                scale.runs.push(ScaleRun {
                    place,
                    containers: n,
                    outcome: if n == 1000 && place == Place::ThreeNodes {
                        Outcome::Limit("not done".into())
                    } else {
                        Outcome::Done(round(n, k))
                    },
                });
            }
        }
        let panel = scale_panel(&scale);
        assert_eq!(panel.matches("<path").count(), 4, "{panel}");
        assert_eq!(panel.matches("<circle").count(), 6, "{panel}");
        assert_eq!(panel.matches("<rect").count(), 4, "{panel}");
        assert!(panel.contains("did not complete: three nodes × 1000"));
        let table = scale_table(&scale);
        assert!(table.contains("| three nodes | 1000 | did not complete: not done |"));
        if let Ok(path) = std::env::var("BENCH_CHART_OUT") {
            std::fs::write(path, chart(&[], Some(&panel))).unwrap();
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            json_str("a \"b\" \\ c\n\u{1b}"),
            "\"a \\\"b\\\" \\\\ c\\n\\u001b\""
        );
    }
}
