//! Hostile peers against the real server: connections that dribble bytes and
//! never name an agency cannot lock real agencies out.

use std::time::Duration;

use e2e::hostile::SlowPeers;
use e2e::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Three times `MAX_CONNECTIONS` slow peers, replaced as fast as the server
/// closes them, then 20 real agencies: every agency gets in (the oldest
/// unidentified peer makes room for each) and completes with every ack and
/// winner checked.
#[test]
fn slow_peers_at_the_connection_cap_cannot_lock_agencies_out() {
    let dir = scratch("hostile");
    let mut server = Server::start(
        &dir,
        20,
        &[
            ("MAX_CONNECTIONS", "200"),
            ("SERVER_LISTEN_BACKLOG", "1024"),
            ("WINNERS_DELAY", "0s"),
        ],
    );
    let address: std::net::SocketAddr = server.address().parse().unwrap();
    let peers = SlowPeers::start(address, 600, Duration::from_millis(200), MINUTE);
    server.wait_for("reason: at MAX_CONNECTIONS (200)", MINUTE);
    let report = client::load::run(&client::load::LoadConfig {
        address,
        agencies: 20,
        bets_per_agency: 500,
        winners_per_agency: 2,
        per_batch: 103,
        window: 4,
        connecting_at_once: 20,
        deadline: MINUTE,
    })
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.agencies_done, report.bets), (20, 20 * 500));
    server.wait_for("action: sorteo", MINUTE);
    assert_eq!(server.stored_rows().len(), 20 * 500);
    // Closes at the cap are logged once, then summed up every 5 s.
    server.wait_for_count(
        "reason: at MAX_CONNECTIONS (200)",
        2,
        Duration::from_secs(15),
    );
    let evictions: u64 = server
        .logs()
        .iter()
        .filter(|l| l.contains("reason: at MAX_CONNECTIONS (200)"))
        .filter_map(|l| field(l, "close_connection", "closed")?.parse::<u64>().ok())
        .sum();
    assert!(
        evictions >= 400 + 20,
        "each agency took a slow peer's place: {evictions}"
    );
    drop(peers);
}
