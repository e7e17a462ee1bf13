//! Runs inputs through a target and says how long each took:
//! `replay session|recovery FILE...` (for a crash outside libFuzzer, or to
//! find the slow inputs of a corpus).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: replay session|recovery FILE...");
    let mut times = Vec::new();
    for path in args {
        let data = std::fs::read(&path).expect("an input file");
        let start = Instant::now();
        match target.as_str() {
            "session" => server_fuzz::session::run(&data),
            "recovery" => server_fuzz::recovery::run(&data),
            other => panic!("no target {other:?}"),
        }
        times.push((start.elapsed(), data.len(), path));
    }
    times.sort();
    let total: std::time::Duration = times.iter().map(|t| t.0).sum();
    for (t, len, path) in times.iter().rev().take(5) {
        println!("{t:>10.2?} {len:>6} bytes  {path}");
    }
    println!("{} inputs in {total:.2?}", times.len());
}
