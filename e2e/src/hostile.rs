//! Hostile peers: many connections that dribble bytes and never name an
//! agency, kept up for as long as a test or the benchmark needs them.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `count` peers that each send one printable byte every `every` and never a
/// newline (an echo line that never ends, so never an agency); a peer the
/// server closes is replaced by a new one, as an attacker would. Runs on one
/// thread until dropped or `deadline` passes.
pub struct SlowPeers {
    stop: Arc<AtomicBool>,
    /// Connections made, replacements included.
    pub connects: Arc<AtomicU64>,
    /// Connections found closed by the server.
    pub closed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SlowPeers {
    pub fn start(
        address: SocketAddr,
        count: usize,
        every: Duration,
        deadline: Duration,
    ) -> SlowPeers {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let (s, c, x) = (stop.clone(), connects.clone(), closed.clone());
        let thread = std::thread::spawn(move || {
            let give_up = Instant::now() + deadline;
            let connect = || {
                let peer = TcpStream::connect(address).ok()?;
                peer.set_nonblocking(true).ok()?;
                c.fetch_add(1, Ordering::Relaxed);
                Some(peer)
            };
            let mut peers: Vec<Option<TcpStream>> = (0..count).map(|_| connect()).collect();
            while !s.load(Ordering::Relaxed) && Instant::now() < give_up {
                let round = Instant::now();
                for peer in &mut peers {
                    let alive = match peer {
                        // A write error or a full buffer both mean: this one is
                        // gone or stuck; replace it.
                        Some(p) => matches!(p.write(b"x"), Ok(1)),
                        None => false,
                    };
                    if !alive {
                        if peer.is_some() {
                            x.fetch_add(1, Ordering::Relaxed);
                        }
                        *peer = connect();
                    }
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                }
                if let Some(rest) = every.checked_sub(round.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        });
        SlowPeers {
            stop,
            connects,
            closed,
            thread: Some(thread),
        }
    }
}

impl Drop for SlowPeers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
