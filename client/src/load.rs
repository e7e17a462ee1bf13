//! The load generator: many agencies from one thread and one `mio::Poll`, each
//! a real [`Agency`] conversation with up to `window` batches in flight. Every
//! ack is checked (by [`Agency`]) and every winners message is compared with
//! the winners the generator put in the data, so a fast wrong answer fails.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lottery_protocol::WINNING_NUMBER;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::agency::{Agency, Event};
use crate::generate::agency_bets;

/// One generated agency: its conversation and what its winners must be.
pub struct Checked {
    pub id: u16,
    agency: Agency,
    winners: Vec<u32>,
    bets: usize,
    /// When each sent-but-unacked batch finished leaving, oldest first.
    in_flight: VecDeque<Instant>,
    batches_sent: usize,
    batches_acked: usize,
}

impl Checked {
    /// Agency `id` with `bets` generated bets, `winners` of them winning.
    pub fn new(id: u16, bets: usize, winners: usize, per_batch: usize, window: usize) -> Checked {
        let data = agency_bets(id, bets, winners, u64::from(id));
        let winners = data
            .iter()
            .filter(|b| b.number == WINNING_NUMBER)
            .map(|b| b.document)
            .collect();
        Checked {
            id,
            agency: Agency::new(id, &data, per_batch, window),
            winners,
            bets,
            in_flight: VecDeque::new(),
            batches_sent: 0,
            batches_acked: 0,
        }
    }

    /// What may be written at `now`: the whole window at full speed (the load
    /// generator sets no period).
    pub fn to_send(&self, now: Instant) -> &[u8] {
        self.agency.to_send(now)
    }

    /// `n` bytes were written at `now`; batches that finished leaving start their clock.
    pub fn sent(&mut self, n: usize, now: Instant) {
        self.agency.sent(n, now);
        while self.batches_sent < self.agency.batches()
            && self.agency.sent_bytes() >= self.agency.batch_end(self.batches_sent)
        {
            self.batches_sent += 1;
            self.in_flight.push_back(now);
        }
    }

    /// Checks bytes from the server; pushes each acked batch's latency. An
    /// error names the agency and what was wrong.
    pub fn on_input(
        &mut self,
        data: &[u8],
        now: Instant,
        latencies: &mut Vec<Duration>,
    ) -> Result<(), String> {
        let events = self
            .agency
            .on_input(data)
            .map_err(|e| format!("agency {}: {e}", self.id))?;
        for event in events {
            match event {
                Event::BatchAcked {
                    rejected, index, ..
                } => {
                    if !rejected.is_empty() {
                        return Err(format!(
                            "agency {}: batch {index} had {} bets rejected",
                            self.id,
                            rejected.len()
                        ));
                    }
                    let sent = self.in_flight.pop_front().ok_or_else(|| {
                        format!(
                            "agency {}: ack of batch {index} before it was sent",
                            self.id
                        )
                    })?;
                    latencies.push(now.saturating_duration_since(sent));
                    self.batches_acked += 1;
                }
                Event::Winners(winners) if winners != self.winners => {
                    return Err(format!(
                        "agency {}: winners {winners:?}, expected {:?}",
                        self.id, self.winners
                    ));
                }
                Event::Winners(_) => {}
            }
        }
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.agency.is_done()
    }

    /// Why an agency that never finished did not: for the report.
    pub fn progress(&self) -> String {
        format!(
            "agency {}: {} of {} batches acked, winners not received",
            self.id,
            self.batches_acked,
            self.agency.batches()
        )
    }
}

/// What the load generator does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub address: SocketAddr,
    /// Agencies `1..=agencies`, all concurrent.
    pub agencies: u16,
    pub bets_per_agency: usize,
    pub winners_per_agency: usize,
    pub per_batch: usize,
    pub window: usize,
    /// Connections being opened at once (the rest wait their turn).
    pub connecting_at_once: usize,
    /// Give up after this long; unfinished agencies are reported as errors.
    pub deadline: Duration,
}

/// What a run measured and found wrong.
#[derive(Debug, Default)]
pub struct Report {
    pub agencies_done: usize,
    pub bets: usize,
    pub elapsed: Duration,
    /// One per acked batch: from its last byte written to its last ack read.
    pub latencies: Vec<Duration>,
    pub errors: Vec<String>,
}

impl Report {
    pub fn bets_per_second(&self) -> f64 {
        self.bets as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0..=1) of the ack latencies.
    pub fn latency(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

struct Peer {
    stream: TcpStream,
    check: Checked,
    connected: bool,
}

/// Runs every agency to its winners (or the deadline) and reports.
pub fn run(config: &LoadConfig) -> io::Result<Report> {
    // Every agency's data is generated and encoded before the clock starts.
    let mut pending: VecDeque<Checked> = (1..=config.agencies)
        .map(|id| {
            Checked::new(
                id,
                config.bets_per_agency,
                config.winners_per_agency,
                config.per_batch,
                config.window,
            )
        })
        .collect();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut peers: Slab<Peer> = Slab::with_capacity(usize::from(config.agencies));
    let mut connecting = 0usize;
    let mut report = Report::default();
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let give_up = start + config.deadline;

    while report.agencies_done + report.errors.len() < usize::from(config.agencies) {
        while connecting < config.connecting_at_once
            && let Some(check) = pending.pop_front()
        {
            let mut stream = TcpStream::connect(config.address)?;
            let entry = peers.vacant_entry();
            poll.registry().register(
                &mut stream,
                Token(entry.key()),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            entry.insert(Peer {
                stream,
                check,
                connected: false,
            });
            connecting += 1;
        }
        let now = Instant::now();
        if now >= give_up {
            report
                .errors
                .extend(peers.iter().map(|(_, p)| p.check.progress()));
            break;
        }
        poll.poll(&mut events, Some(give_up - now))?;
        let now = Instant::now();
        for event in events.iter() {
            let key = event.token().0;
            let Some(peer) = peers.get_mut(key) else {
                continue;
            };
            if !peer.connected {
                match peer
                    .stream
                    .take_error()?
                    .map(Err)
                    .unwrap_or_else(|| peer.stream.peer_addr().map(|_| ()))
                {
                    Ok(()) => {
                        peer.connected = true;
                        connecting -= 1;
                    }
                    // Still connecting: its next event will tell.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => {
                        report
                            .errors
                            .push(format!("agency {}: connect: {e}", peer.check.id));
                        connecting -= 1;
                        let mut peer = peers.remove(key);
                        let _ = poll.registry().deregister(&mut peer.stream);
                        continue;
                    }
                }
            }
            match pump(peer, &mut buf, now, &mut report.latencies) {
                Ok(false) => {}
                Ok(true) => {
                    report.agencies_done += 1;
                    report.bets += peer.check.bets;
                    let mut peer = peers.remove(key);
                    let _ = poll.registry().deregister(&mut peer.stream);
                }
                Err(e) => {
                    report.errors.push(e);
                    let mut peer = peers.remove(key);
                    let _ = poll.registry().deregister(&mut peer.stream);
                }
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Writes and reads until neither can make progress; `Ok(true)` once the
/// agency has its (correct) winners.
fn pump(
    peer: &mut Peer,
    buf: &mut [u8],
    now: Instant,
    latencies: &mut Vec<Duration>,
) -> Result<bool, String> {
    let id = peer.check.id;
    let fail = |e: io::Error| format!("agency {id}: {e}");
    loop {
        let mut progress = false;
        while !peer.check.to_send(now).is_empty() {
            match peer.stream.write(peer.check.to_send(now)) {
                Ok(n) => {
                    peer.check.sent(n, now);
                    progress = true;
                }
                // The socket is full: WRITABLE will come.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A signal interrupted the call: retry.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(e)),
            }
        }
        loop {
            match peer.stream.read(buf) {
                Ok(0) if peer.check.is_done() => return Ok(true),
                Ok(0) => {
                    return Err(format!(
                        "{} (the server closed the connection)",
                        peer.check.progress()
                    ));
                }
                Ok(n) => {
                    peer.check.on_input(&buf[..n], now, latencies)?;
                    progress = true;
                }
                // Nothing more for now: READABLE will come.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A signal interrupted the call: retry.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(e)),
            }
        }
        if peer.check.is_done() {
            return Ok(true);
        }
        if !progress {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lottery_protocol::{ACK_LEN, Ack, END_ACK, Status, encode_winners};

    /// What a correct server answers to agency 1 with these bets.
    fn answer(bets: &[lottery_protocol::Bet], winners: &[u32]) -> Vec<u8> {
        let mut out: Vec<u8> = bets
            .iter()
            .flat_map(|b| Ack::new(b.document, b.number, Status::Stored).encode())
            .collect();
        out.extend(END_ACK);
        encode_winners(winners, &mut out).unwrap();
        out
    }

    fn fresh() -> (Checked, Vec<lottery_protocol::Bet>, Vec<u32>) {
        let bets = agency_bets(1, 5, 2, 1);
        let winners = bets
            .iter()
            .filter(|b| b.number == WINNING_NUMBER)
            .map(|b| b.document)
            .collect();
        let mut check = Checked::new(1, 5, 2, 103, 1);
        let n = check.to_send(Instant::now()).len();
        check.sent(n, Instant::now());
        (check, bets, winners)
    }

    #[test]
    fn a_correct_answer_passes_and_is_timed() {
        let (mut check, bets, winners) = fresh();
        let mut latencies = Vec::new();
        check
            .on_input(&answer(&bets, &winners), Instant::now(), &mut latencies)
            .unwrap();
        assert!(check.is_done());
        assert_eq!(latencies.len(), 1, "one batch: five bets and the end frame");
    }

    #[test]
    fn wrong_winners_fail() {
        let (mut check, bets, winners) = fresh();
        let wrong = &winners[..1];
        let err = check
            .on_input(&answer(&bets, wrong), Instant::now(), &mut Vec::new())
            .unwrap_err();
        assert!(err.contains("winners") && err.contains("expected"), "{err}");
        let (mut check, bets, mut winners) = fresh();
        winners.push(99);
        assert!(
            check
                .on_input(&answer(&bets, &winners), Instant::now(), &mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn wrong_duplicated_and_missing_acks_fail() {
        let (mut check, bets, winners) = fresh();
        let mut bytes = answer(&bets, &winners);
        bytes[0] ^= 1; // the first ack names another document
        assert!(
            check
                .on_input(&bytes, Instant::now(), &mut Vec::new())
                .unwrap_err()
                .contains("ack 1 ")
        );

        let (mut check, bets, winners) = fresh();
        let mut bytes = answer(&bets, &winners);
        bytes.splice(ACK_LEN..ACK_LEN, bytes[..ACK_LEN].to_vec()); // ack 0 twice
        assert!(
            check
                .on_input(&bytes, Instant::now(), &mut Vec::new())
                .is_err()
        );

        let (mut check, bets, winners) = fresh();
        let mut bytes = answer(&bets, &winners);
        bytes.drain(ACK_LEN..2 * ACK_LEN); // ack 1 missing
        assert!(
            check
                .on_input(&bytes, Instant::now(), &mut Vec::new())
                .is_err()
        );
        let (mut check, bets, _) = fresh();
        let acks_only: Vec<u8> = answer(&bets, &[])[..5 * ACK_LEN].to_vec(); // no end ack, no winners
        check
            .on_input(&acks_only, Instant::now(), &mut Vec::new())
            .unwrap();
        assert!(!check.is_done());
        assert_eq!(
            check.progress(),
            "agency 1: 0 of 1 batches acked, winners not received"
        );
    }

    #[test]
    fn latency_quantiles() {
        let report = Report {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..Report::default()
        };
        assert_eq!(report.latency(0.5), Duration::from_millis(51));
        assert_eq!(report.latency(0.99), Duration::from_millis(99));
    }
}
