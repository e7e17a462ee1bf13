//! The client's one connection, with SIGTERM/SIGINT in the same `mio::Poll`:
//! every wait (sleeping, connecting, sending, waiting for winners) returns
//! [`Stop::Signal`] as soon as a signal arrives, so the client exits promptly.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

const SOCKET: Token = Token(0);
const SIGNALS: Token = Token(1);

/// One exchange over the link, sans-IO: bytes to send, bytes received.
pub trait Conversation {
    /// What may be written now (empty: nothing for the moment).
    fn to_send(&self) -> &[u8];
    /// `n` bytes of [`Conversation::to_send`] were written.
    fn sent(&mut self, n: usize);
    /// Bytes from the peer; `Ok(true)` when the conversation is complete.
    fn on_input(&mut self, data: &[u8]) -> Result<bool, Stop>;
}

/// Why a conversation stopped early.
#[derive(Debug)]
pub enum Stop {
    /// SIGTERM or SIGINT; the name is for the log.
    Signal(&'static str),
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

pub struct Link {
    poll: Poll,
    events: Events,
    signals: Signals,
    stream: Option<TcpStream>,
}

impl Link {
    pub fn new() -> io::Result<Link> {
        let poll = Poll::new()?;
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        Ok(Link {
            poll,
            events: Events::with_capacity(16),
            signals,
            stream: None,
        })
    }

    /// Waits until the socket may be ready or `deadline` passes; a signal stops it.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<(), Stop> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            // Interrupted by a signal: the signal source reports it below or next time.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Stop::Io(e)),
        }
        if self.events.iter().any(|e| e.token() == SIGNALS)
            && let Some(signal) = self.signals.pending().next()
        {
            return Err(Stop::Signal(if signal == SIGTERM {
                "SIGTERM"
            } else {
                "SIGINT"
            }));
        }
        Ok(())
    }

    /// Sleeps for `duration` unless a signal arrives first.
    pub fn sleep(&mut self, duration: Duration) -> Result<(), Stop> {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.wait(Some(deadline))?;
        }
        Ok(())
    }

    /// Connects to `address`, retrying with a short backoff while the server is
    /// not there yet (not resolvable, refusing), for at most `patience`.
    pub fn connect(&mut self, address: &str, patience: Duration) -> Result<SocketAddr, Stop> {
        let give_up = Instant::now() + patience;
        let mut backoff = Duration::from_millis(20);
        loop {
            let error = match self.try_connect(address) {
                Ok(addr) => return Ok(addr),
                Err(Stop::Io(e)) => e,
                Err(stop) => return Err(stop),
            };
            if Instant::now() + backoff > give_up {
                return Err(Stop::Io(io::Error::new(
                    error.kind(),
                    format!(
                        "could not connect to {address} within {}: {error}",
                        humantime::format_duration(patience)
                    ),
                )));
            }
            self.sleep(backoff)?;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    fn try_connect(&mut self, address: &str) -> Result<SocketAddr, Stop> {
        self.close();
        let addr = address.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{address} resolves to no address"),
            )
        })?;
        let mut stream = TcpStream::connect(addr)?;
        self.poll.registry().register(
            &mut stream,
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.stream = Some(stream);
        // A non-blocking connect is done when the socket turns writable; then
        // either an error is pending or the peer address is known.
        loop {
            let stream = self.stream.as_ref().expect("just set");
            if let Some(e) = stream.take_error()? {
                self.close();
                return Err(Stop::Io(e));
            }
            match stream.peer_addr() {
                Ok(_) => break,
                // Not connected yet: wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => {
                    self.close();
                    return Err(Stop::Io(e));
                }
            }
            self.wait(None)?;
        }
        let _ = self.stream.as_ref().expect("connected").set_nodelay(true);
        Ok(addr)
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    /// Writes what it can without blocking; 0 when the socket is full.
    pub fn try_send(&mut self, buf: &[u8]) -> Result<usize, Stop> {
        loop {
            match self.stream()?.write(buf) {
                Ok(n) => return Ok(n),
                // The kernel buffer is full: wait for WRITABLE.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                // A signal interrupted the call: retry.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Stop::Io(e)),
            }
        }
    }

    /// Reads what is there without blocking: `Some(0)` at EOF, `None` if nothing yet.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Stop> {
        loop {
            match self.stream()?.read(buf) {
                Ok(n) => return Ok(Some(n)),
                // Nothing buffered: wait for READABLE.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                // A signal interrupted the call: retry.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Stop::Io(e)),
            }
        }
    }

    /// Drives a conversation until it says it is done: writes what it offers,
    /// feeds it what arrives, and waits only when neither made progress.
    pub fn converse(&mut self, talk: &mut impl Conversation) -> Result<(), Stop> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut progress = false;
            let out = talk.to_send();
            if !out.is_empty() {
                let n = self.try_send(out)?;
                if n > 0 {
                    talk.sent(n);
                    progress = true;
                }
            }
            match self.try_recv(&mut buf)? {
                Some(0) => {
                    return Err(Stop::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection before the conversation ended",
                    )));
                }
                Some(n) => {
                    if talk.on_input(&buf[..n])? {
                        return Ok(());
                    }
                    progress = true;
                }
                None => {}
            }
            if !progress {
                self.wait(None)?;
            }
        }
    }

    /// Closes the socket if one is open; returns whether one was.
    pub fn close(&mut self) -> bool {
        match self.stream.take() {
            Some(mut stream) => {
                let _ = self.poll.registry().deregister(&mut stream);
                true
            }
            None => false,
        }
    }
}
