//! Writes both targets' seeds: `seeds OUT [WIRE]` fills `OUT/session/` and
//! `OUT/recovery/`, with the course's captures from `WIRE` (its
//! `*.client-to-server.bin`) wrapped in as well when that folder exists.

use std::path::PathBuf;
use std::{env, fs};

fn main() -> std::io::Result<()> {
    let mut args = env::args_os().skip(1);
    let out = PathBuf::from(args.next().expect("usage: seeds OUT [WIRE]"));
    let captures = match args.next().map(PathBuf::from) {
        Some(wire) if wire.is_dir() => {
            let mut paths: Vec<PathBuf> = fs::read_dir(&wire)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            paths.retain(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".client-to-server.bin"))
            });
            paths.sort();
            paths.iter().map(fs::read).collect::<Result<Vec<_>, _>>()?
        }
        _ => Vec::new(),
    };
    let seeds = server_fuzz::seeds::all(&captures);
    for (target, name, bytes) in &seeds {
        let dir = out.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)?;
    }
    println!(
        "seeds: {} written to {} ({} captures)",
        seeds.len(),
        out.display(),
        captures.len()
    );
    Ok(())
}
