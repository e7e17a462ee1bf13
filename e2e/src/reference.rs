//! Peers that behave as the exercise's reference implementations do.
//!
//! - [`GoLikeAgency`] reads as the reference Go client does, including its
//!   flaw: it reads a batch's acks until its buffer is full or ends with the
//!   end ack, so winners that arrive in the same read as the end ack make it
//!   fail. Pointed at our server, it shows the server never sends them so.
//! - [`ScriptedServer`] answers as the reference Python server did in a
//!   capture of `shared/wire`, batch by batch, and records what it received,
//!   so our client's bytes can be compared with the reference client's.
//!
//! Both are blocking `std::net` code with read timeouts: a test that goes
//! wrong fails within seconds instead of hanging.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lottery_protocol::{
    ACK_LEN, Ack, Bet, END_ACK, FRAME_LEN, HEADER_LEN, Header, Reply, Status, StreamDecoder, Unit,
    WINNING_NUMBER, decode_reply, decode_winners, encode_stream, encode_winners,
};

use crate::root;

/// How long a reference peer waits for one read before giving up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The reference captures beside the repository (`../shared/wire`), when this
/// machine has them.
pub fn wire() -> Option<PathBuf> {
    let dir = root().join("../shared/wire");
    ["agency-1", "agency-2"]
        .iter()
        .all(|a| dir.join(format!("{a}.client-to-server.bin")).is_file())
        .then_some(dir)
}

/// One agency's conversation in `shared/wire`: its bets file and both
/// directions of the TCP stream between the reference client and server.
#[derive(Debug, Clone)]
pub struct Capture {
    pub agency: u16,
    /// The agency file the reference client sent (`agency-N.csv`).
    pub csv: PathBuf,
    /// The header the reference client opened with.
    pub header: Header,
    pub client_to_server: Vec<u8>,
    pub server_to_client: Vec<u8>,
}

impl Capture {
    /// Loads `agency-<agency>.*` from `dir`; panics if a file is missing or
    /// the client-to-server stream does not open with a valid header.
    pub fn load(dir: &Path, agency: u16) -> Capture {
        let read = |suffix: &str| {
            let path = dir.join(format!("agency-{agency}.{suffix}"));
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let client_to_server = read("client-to-server.bin");
        let header = client_to_server
            .first_chunk::<HEADER_LEN>()
            .and_then(|h| Header::decode(*h).ok())
            .expect("a capture opens with a valid header");
        Capture {
            agency,
            csv: dir.join(format!("agency-{agency}.csv")),
            header,
            client_to_server,
            server_to_client: read("server-to-client.bin"),
        }
    }

    /// Bets per batch (`batch.maxAmount`) of the reference client that sent it.
    pub fn bets_per_batch(&self) -> usize {
        self.header.frames_per_batch()
    }

    /// Its bets, parsed as our client parses an agency file.
    pub fn bets(&self) -> Vec<Bet> {
        client::data::load_bets(&self.csv, self.agency).expect("the capture's agency file")
    }

    /// What the reference server answered after the end ack: the winners message.
    pub fn winners(&self) -> Vec<u32> {
        let spans = split_stream(&self.client_to_server).expect("a whole stream");
        let acks: usize = spans.iter().map(Span::reply_len).sum();
        match decode_winners(&self.server_to_client[acks..]) {
            Ok(Some((documents, _))) => documents,
            other => panic!("agency {}: no winners message: {other:?}", self.agency),
        }
    }
}

/// One batch of a client-to-server stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Where the batch lies in the stream (the header is `0..4`, before the first).
    pub bytes: Range<usize>,
    /// Bet frames in it, the end frame excluded.
    pub bets: usize,
    /// The end frame closes it.
    pub ends: bool,
}

impl Span {
    /// Bytes of the server's answer to this batch: an ack per bet, and the end
    /// ack if the batch held the end frame.
    pub fn reply_len(&self) -> usize {
        (self.bets + usize::from(self.ends)) * ACK_LEN
    }
}

/// Cuts a whole client-to-server stream (header, batches, end frame) into its
/// batches, as the server does. An error says why it is not a whole stream.
pub fn split_stream(stream: &[u8]) -> Result<Vec<Span>, String> {
    let mut decoder = StreamDecoder::new();
    let mut at = 0;
    let mut spans = Vec::new();
    while !decoder.has_ended() {
        match decoder.decode(&stream[at..]) {
            Ok(Some((Unit::Header(_), used))) => at += used,
            Ok(Some((Unit::Batch(batch), used))) => {
                spans.push(Span {
                    bytes: at..at + used,
                    bets: batch.bets.len(),
                    ends: batch.ends,
                });
                at += used;
            }
            Ok(None) => return Err(format!("the stream stops at byte {at}, mid-unit")),
            Err(e) => return Err(format!("at byte {at}: {e}")),
        }
    }
    match stream.len() - at {
        0 => Ok(spans),
        extra => Err(format!("{extra} bytes after the end frame")),
    }
}

/// Everything a correct server answers to an agency sending `bets`, as the
/// reference server does when all are stored: an ack per bet, the end ack,
/// then the winners message (the documents of bets on the winning number).
pub fn reference_replies(bets: &[Bet]) -> Vec<u8> {
    let mut out = Vec::with_capacity((bets.len() + 1) * ACK_LEN);
    for bet in bets {
        out.extend_from_slice(&Ack::new(bet.document, bet.number, Status::Stored).encode());
    }
    out.extend_from_slice(&END_ACK);
    encode_winners(&winners_of(bets), &mut out).expect("few winners");
    out
}

/// The documents of the bets on the winning number, in file order.
pub fn winners_of(bets: &[Bet]) -> Vec<u32> {
    bets.iter()
        .filter(|b| b.number == WINNING_NUMBER)
        .map(|b| b.document)
        .collect()
}

/// Why a [`GoLikeAgency`] gave up, and on what.
#[derive(Debug)]
pub enum PeerError {
    /// A socket call failed; a read that timed out shows here (`WouldBlock`).
    Io {
        agency: u16,
        during: String,
        /// What the read buffer held when it failed.
        held: Vec<u8>,
        error: io::Error,
    },
    /// The server closed the connection while the peer still expected bytes.
    Closed {
        agency: u16,
        during: String,
        /// What the read buffer held at the close.
        held: Vec<u8>,
    },
    /// The server sent what the reference client does not accept.
    Unexpected {
        agency: u16,
        during: String,
        detail: String,
    },
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Io {
                agency,
                during,
                held,
                error,
            } => write!(
                f,
                "agency {agency}, {during}: {error} (holding {})",
                hex(held)
            ),
            PeerError::Closed {
                agency,
                during,
                held,
            } => write!(
                f,
                "agency {agency}, {during}: the server closed the connection (holding {})",
                hex(held)
            ),
            PeerError::Unexpected {
                agency,
                during,
                detail,
            } => write!(f, "agency {agency}, {during}: {detail}"),
        }
    }
}

impl std::error::Error for PeerError {}

/// Up to 64 bytes in hex, with the length: enough to see an ack or a winners
/// message without flooding a test failure.
pub fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 64 { " …" } else { "" };
    format!("{} bytes: {}{more}", bytes.len(), shown.join(" "))
}

/// An agency that talks and reads exactly as the reference Go client does,
/// with no sleeps of its own: stop-and-wait, one batch at a time, acks read
/// into a buffer the size of a full batch's acks until it is full or ends with
/// the end ack.
#[derive(Debug, Clone)]
pub struct GoLikeAgency {
    agency: u16,
    bets_per_batch: usize,
    /// (document, number) of each bet, in order: what each ack must echo.
    bets: Vec<(u32, u32)>,
    /// The whole stream: header, bet frames, end frame.
    stream: Vec<u8>,
    spans: Vec<Span>,
    read_timeout: Duration,
}

impl GoLikeAgency {
    /// An agency that will send `bets` in batches of `bets_per_batch` (1 to 103).
    pub fn new(agency: u16, bets: &[Bet], bets_per_batch: usize) -> GoLikeAgency {
        let frames: Vec<[u8; FRAME_LEN]> = bets.iter().map(|b| b.view().encode()).collect();
        let mut stream = Vec::new();
        encode_stream(Header::new(bets_per_batch, agency), &frames, &mut stream);
        let spans = split_stream(&stream).expect("encode_stream makes a whole stream");
        GoLikeAgency {
            agency,
            bets_per_batch,
            bets: bets.iter().map(|b| (b.document, b.number)).collect(),
            stream,
            spans,
            read_timeout: READ_TIMEOUT,
        }
    }

    /// The same agency, giving up on a read after `timeout` instead of [`READ_TIMEOUT`].
    pub fn with_read_timeout(mut self, timeout: Duration) -> GoLikeAgency {
        self.read_timeout = timeout;
        self
    }

    /// The bytes it sends: header, bet frames, end frame.
    pub fn stream(&self) -> &[u8] {
        &self.stream
    }

    /// Runs the whole conversation with the server at `address`: connect, the
    /// header, each batch and its acks, then the winners and the server's
    /// close. Returns the winners' documents, or what went wrong.
    pub fn run(&self, address: &str) -> Result<Vec<u32>, PeerError> {
        let io_error = |during: &str, error: io::Error| PeerError::Io {
            agency: self.agency,
            during: during.to_owned(),
            held: Vec::new(),
            error,
        };
        let mut socket = TcpStream::connect(address).map_err(|e| io_error("connecting", e))?;
        socket
            .set_read_timeout(Some(self.read_timeout))
            .map_err(|e| io_error("setting the read timeout", e))?;
        // Go's net package turns Nagle off on every TCP connection.
        socket
            .set_nodelay(true)
            .map_err(|e| io_error("setting TCP_NODELAY", e))?;
        // The header goes once, in its own write, before the first batch.
        socket
            .write_all(&self.stream[..HEADER_LEN])
            .map_err(|e| io_error("sending the header", e))?;
        let mut next_bet = 0;
        for (i, span) in self.spans.iter().enumerate() {
            let during = format!("batch {} of {}", i + 1, self.spans.len());
            socket
                .write_all(&self.stream[span.bytes.clone()])
                .map_err(|e| io_error(&format!("sending {during}"), e))?;
            let held = self.read_acks(&mut socket, &format!("reading the acks of {during}"))?;
            self.check_acks(&held, span, &mut next_bet, &during)?;
        }
        self.read_winners(&mut socket)
    }

    /// Reads one batch's acks as the Go client does: a buffer sized for a
    /// full batch's acks, filled by successive reads until it is full or the
    /// bytes so far end with the end ack. Returns the bytes held.
    fn read_acks(&self, socket: &mut TcpStream, during: &str) -> Result<Vec<u8>, PeerError> {
        let mut buf = vec![0u8; self.bets_per_batch * ACK_LEN];
        let mut held = 0;
        while held < buf.len() && !buf[..held].ends_with(&END_ACK) {
            match socket.read(&mut buf[held..]) {
                // EOF: the Go client's read fails with io.EOF here.
                Ok(0) => {
                    return Err(PeerError::Closed {
                        agency: self.agency,
                        during: during.to_owned(),
                        held: buf[..held].to_vec(),
                    });
                }
                Ok(n) => held += n,
                // A signal interrupted the read: nothing was read, read again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A timeout or a reset: the conversation is over.
                Err(error) => {
                    return Err(PeerError::Io {
                        agency: self.agency,
                        during: during.to_owned(),
                        held: buf[..held].to_vec(),
                        error,
                    });
                }
            }
        }
        buf.truncate(held);
        Ok(buf)
    }

    /// Checks the bytes read for one batch: an ack per bet (document and number
    /// of the bet sent, in order, status stored), then the end ack if the
    /// batch held the end frame, and nothing else.
    fn check_acks(
        &self,
        held: &[u8],
        span: &Span,
        next_bet: &mut usize,
        during: &str,
    ) -> Result<(), PeerError> {
        let unexpected = |detail: String| PeerError::Unexpected {
            agency: self.agency,
            during: during.to_owned(),
            detail,
        };
        if held.len() != span.reply_len() {
            return Err(unexpected(format!(
                "read {} where {} bets{} were due",
                hex(held),
                span.bets,
                if span.ends { " and the end ack" } else { "" }
            )));
        }
        let (acks, _) = held.as_chunks::<ACK_LEN>();
        for (k, ack) in acks.iter().enumerate() {
            let due_end = k == span.bets;
            match (decode_reply(ack), due_end) {
                (Reply::End, true) => {}
                (Reply::Ack(ack), false) => {
                    let want = self.bets[*next_bet];
                    if (ack.document, ack.number, ack.status)
                        != (want.0, want.1, Status::Stored as u8)
                    {
                        return Err(unexpected(format!(
                            "bet {} (document {}, number {}) got {ack:?}",
                            *next_bet + 1,
                            want.0,
                            want.1
                        )));
                    }
                    *next_bet += 1;
                }
                (reply, _) => {
                    return Err(unexpected(format!("reply {} is {reply:?}", k + 1)));
                }
            }
        }
        Ok(())
    }

    /// After the end ack: the `u16` length, that many bytes of documents, then
    /// the server's close.
    fn read_winners(&self, socket: &mut TcpStream) -> Result<Vec<u32>, PeerError> {
        let mut message = vec![0u8; 2];
        self.read_full(socket, &mut message, "reading the winners' length")?;
        let byte_len = usize::from(u16::from_be_bytes([message[0], message[1]]));
        message.resize(2 + byte_len, 0);
        self.read_full(socket, &mut message[2..], "reading the winners")?;
        let winners = match decode_winners(&message) {
            Ok(Some((documents, _))) => documents,
            other => {
                return Err(PeerError::Unexpected {
                    agency: self.agency,
                    during: "reading the winners".into(),
                    detail: format!("{} is not a winners message: {other:?}", hex(&message)),
                });
            }
        };
        let mut rest = [0u8; 64];
        match socket.read(&mut rest) {
            Ok(0) => Ok(winners),
            Ok(n) => Err(PeerError::Unexpected {
                agency: self.agency,
                during: "waiting for the close after the winners".into(),
                detail: format!("{} more", hex(&rest[..n])),
            }),
            Err(error) => Err(PeerError::Io {
                agency: self.agency,
                during: "waiting for the close after the winners".into(),
                held: Vec::new(),
                error,
            }),
        }
    }

    /// Fills `buf` (Go's `io.ReadFull`).
    fn read_full(
        &self,
        socket: &mut TcpStream,
        buf: &mut [u8],
        during: &str,
    ) -> Result<(), PeerError> {
        let mut held = 0;
        while held < buf.len() {
            match socket.read(&mut buf[held..]) {
                // EOF before the message is whole.
                Ok(0) => {
                    return Err(PeerError::Closed {
                        agency: self.agency,
                        during: during.to_owned(),
                        held: buf[..held].to_vec(),
                    });
                }
                Ok(n) => held += n,
                // A signal interrupted the read: read again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A timeout or a reset.
                Err(error) => {
                    return Err(PeerError::Io {
                        agency: self.agency,
                        during: during.to_owned(),
                        held: buf[..held].to_vec(),
                        error,
                    });
                }
            }
        }
        Ok(())
    }
}

/// How the [`ScriptedServer`] sends an agency's winners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinnersWrite {
    /// As the reference server: the end batch's answer in one write; then,
    /// once every scripted agency has sent its end frame (the draw) and this
    /// pause has passed, the winners in a write of their own.
    Apart(Duration),
    /// The end batch's answer and the winners in one write, once every
    /// scripted agency has sent its end frame: what the reference client
    /// cannot read.
    WithEndAck,
}

/// What the scripted server answers one agency: the reference server's bytes.
#[derive(Debug, Clone)]
pub struct Script {
    pub agency: u16,
    /// Every byte the server sends that agency: acks, end ack, winners.
    pub server_to_client: Vec<u8>,
}

impl From<&Capture> for Script {
    fn from(capture: &Capture) -> Script {
        Script {
            agency: capture.agency,
            server_to_client: capture.server_to_client.clone(),
        }
    }
}

/// One connection as the scripted server saw it.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The agency its header named.
    pub agency: Option<u16>,
    /// Every byte the client sent, until it closed.
    pub received: Vec<u8>,
    /// Why the conversation did not go as scripted, if it did not.
    pub error: Option<String>,
}

/// A stand-in for the reference Python server, replaying captured answers:
/// it reads each connection's header and batches as the reference server
/// does (a batch is complete at the header's batch size or at the end frame)
/// and answers each batch with the next slice of its agency's script. It
/// serves one connection per script, then stops accepting.
pub struct ScriptedServer {
    address: SocketAddr,
    conversations: mpsc::Receiver<Conversation>,
    expected: usize,
    stop: Arc<AtomicBool>,
}

impl ScriptedServer {
    /// Listens on a free loopback port and serves `scripts` in threads of its
    /// own; [`ScriptedServer::finish`] collects what each connection sent.
    pub fn start(scripts: Vec<Script>, winners: WinnersWrite) -> io::Result<ScriptedServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        // Non-blocking so the acceptor can notice it is no longer wanted.
        listener.set_nonblocking(true)?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let expected = scripts.len();
        let scripts = Arc::new(scripts);
        let draw = Arc::new(Draw::new(expected));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut accepted = 0;
            while accepted < scripts.len() && !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => {
                        accepted += 1;
                        let (scripts, draw, tx) =
                            (Arc::clone(&scripts), Arc::clone(&draw), tx.clone());
                        std::thread::spawn(move || {
                            let _ = tx.send(serve(socket, &scripts, &draw, winners));
                        });
                    }
                    // No one is connecting yet: look again shortly, unless it is too late.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() >= deadline {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    // A connection that failed before it was accepted: not ours to serve.
                    Err(_) => {}
                }
            }
        });
        Ok(ScriptedServer {
            address,
            conversations: rx,
            expected,
            stop,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Waits (at most `timeout` in all) for one conversation per script to end
    /// and returns them in the order they ended; an error if some did not.
    pub fn finish(self, timeout: Duration) -> Result<Vec<Conversation>, String> {
        let deadline = Instant::now() + timeout;
        let mut done = Vec::with_capacity(self.expected);
        while done.len() < self.expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conversations.recv_timeout(left) {
                Ok(conversation) => done.push(conversation),
                Err(_) => {
                    return Err(format!(
                        "{} of {} conversations ended within {timeout:?}: {done:?}",
                        done.len(),
                        self.expected
                    ));
                }
            }
        }
        Ok(done)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The draw barrier: agencies that sent their end frame wait for the others.
struct Draw {
    ended: Mutex<usize>,
    all_ended: Condvar,
    agencies: usize,
}

impl Draw {
    fn new(agencies: usize) -> Draw {
        Draw {
            ended: Mutex::new(0),
            all_ended: Condvar::new(),
            agencies,
        }
    }

    /// One more agency sent its end frame; waits (at most `timeout`) until all
    /// did. An error says how many had when the time ran out.
    fn arrive_and_wait(&self, timeout: Duration) -> Result<(), String> {
        let mut ended = self.ended.lock().expect("draw lock");
        *ended += 1;
        self.all_ended.notify_all();
        let (ended, wait) = self
            .all_ended
            .wait_timeout_while(ended, timeout, |n| *n < self.agencies)
            .expect("draw lock");
        if wait.timed_out() {
            return Err(format!(
                "no draw: {} of {} agencies sent their end frame within {timeout:?}",
                *ended, self.agencies
            ));
        }
        Ok(())
    }
}

/// Serves one connection to its end and says what happened.
fn serve(
    mut socket: TcpStream,
    scripts: &[Script],
    draw: &Draw,
    winners: WinnersWrite,
) -> Conversation {
    let mut conversation = Conversation {
        agency: None,
        received: Vec::new(),
        error: None,
    };
    if let Err(e) = converse(&mut socket, scripts, draw, winners, &mut conversation) {
        conversation.error = Some(e);
    }
    conversation
}

/// Reads one read's worth into `received`; `Ok(0)` when the client closed.
fn receive(socket: &mut TcpStream, received: &mut Vec<u8>) -> Result<usize, String> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match socket.read(&mut buf) {
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                return Ok(n);
            }
            // A signal interrupted the read: read again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A timeout or a reset ends the conversation.
            Err(e) => return Err(format!("reading after {} bytes: {e}", received.len())),
        }
    }
}

/// The scripted conversation: header and batches answered one by one with
/// the next slices of the script, the draw, the winners, the close; then
/// whatever the client still sends until it closes.
fn converse(
    socket: &mut TcpStream,
    scripts: &[Script],
    draw: &Draw,
    winners: WinnersWrite,
    conversation: &mut Conversation,
) -> Result<(), String> {
    let write_error = |e: io::Error| format!("writing: {e}");
    // Accepted from a non-blocking listener: make sure this socket blocks
    // (some systems pass the flag on), so its read timeout applies.
    socket.set_nonblocking(false).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut decoder = StreamDecoder::new();
    let mut script: Option<&Script> = None;
    // Bytes of the script already answered, and the end batch's answer.
    let mut answered = 0;
    let mut end_answer: &[u8] = &[];
    // Received bytes not yet part of a complete unit.
    let mut pending_from = 0;
    while !decoder.has_ended() {
        if receive(socket, &mut conversation.received)? == 0 {
            return Err(format!(
                "the client closed after {} bytes, before its end frame",
                conversation.received.len()
            ));
        }
        loop {
            let pending = &conversation.received[pending_from..];
            let Some((unit, used)) = decoder.decode(pending).map_err(|e| e.to_string())? else {
                break;
            };
            pending_from += used;
            match unit {
                Unit::Header(header) => {
                    conversation.agency = Some(header.agency);
                    script = Some(
                        scripts
                            .iter()
                            .find(|s| s.agency == header.agency)
                            .ok_or_else(|| format!("no script for agency {}", header.agency))?,
                    );
                }
                Unit::Batch(batch) => {
                    let script = script.expect("the header comes first");
                    let len = (batch.bets.len() + usize::from(batch.ends)) * ACK_LEN;
                    let answer = script
                        .server_to_client
                        .get(answered..answered + len)
                        .ok_or_else(|| {
                            format!("the script has no answer for a batch of {} bets at byte {answered}", batch.bets.len())
                        })?;
                    answered += len;
                    if batch.ends {
                        end_answer = answer;
                        break; // what follows the end batch is only recorded
                    }
                    socket.write_all(answer).map_err(write_error)?;
                }
            }
        }
    }
    let script = script.expect("a stream that ended had a header");
    let message = &script.server_to_client[answered..];
    if !matches!(decode_winners(message), Ok(Some((_, used))) if used == message.len()) {
        return Err(format!(
            "the script's bytes after the end ack are not one winners message: {}",
            hex(message)
        ));
    }
    match winners {
        WinnersWrite::Apart(pause) => {
            socket.write_all(end_answer).map_err(write_error)?;
            draw.arrive_and_wait(READ_TIMEOUT)?;
            std::thread::sleep(pause);
            socket.write_all(message).map_err(write_error)?;
        }
        WinnersWrite::WithEndAck => {
            draw.arrive_and_wait(READ_TIMEOUT)?;
            socket
                .write_all(&[end_answer, message].concat())
                .map_err(write_error)?;
        }
    }
    // The reference server closes after the winners; keep reading to record
    // anything the client still sends.
    socket
        .shutdown(Shutdown::Write)
        .map_err(|e| e.to_string())?;
    while receive(socket, &mut conversation.received)? > 0 {}
    Ok(())
}
