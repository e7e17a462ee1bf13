//! The client's one connection, with SIGTERM/SIGINT in the same `mio::Poll`:
//! every wait (sleeping, resolving, connecting, pausing between batches,
//! sending, waiting for winners) returns [`Stop::Signal`] as soon as a signal
//! arrives, so the client exits promptly.
//!
//! [`Link::converse`] sorts what ends a conversation early: a signal, a lost
//! connection ([`Stop::Lost`]: worth a new connection, see
//! [`crate::reconnect`]), or anything else ([`Stop::Io`]: a protocol error, a
//! failure of this process's own resources).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

const SOCKET: Token = Token(0);
const SIGNALS: Token = Token(1);
/// A name lookup finished on its helper thread.
const RESOLVED: Token = Token(2);

/// Turns `host:port` into its addresses. It may block (getaddrinfo), so the
/// link calls it on a helper thread.
type Resolver = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// One exchange over the link, sans-IO: it decides what to send and when; the
/// link writes, reads and waits.
pub trait Conversation {
    /// What may be written at `now` (empty: nothing for the moment).
    fn to_send(&self, now: Instant) -> &[u8];
    /// `n` bytes of [`Conversation::to_send`] were handed to the socket at `now`.
    fn sent(&mut self, n: usize, now: Instant);
    /// When [`Conversation::to_send`] will offer what it does not offer now,
    /// if only time stands in the way; `None`: it waits on the socket alone.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// Bytes from the peer; `Ok(true)` when the conversation is complete.
    fn on_input(&mut self, data: &[u8]) -> Result<bool, Stop>;
    /// The peer closed the connection before the conversation was complete:
    /// what that means at this point, for the error.
    fn closed_early(&self) -> String {
        "the server closed the connection before the conversation ended".to_owned()
    }
}

/// Why a conversation stopped early.
#[derive(Debug)]
pub enum Stop {
    /// SIGTERM or SIGINT; the name is for the log.
    Signal(&'static str),
    /// The connection is gone before the conversation was complete: the peer
    /// closed it (the error is [`Conversation::closed_early`]'s explanation)
    /// or reset it, or a write or read on it failed as a dead connection
    /// does. The conversation itself found nothing wrong.
    Lost(io::Error),
    /// Anything else: what the conversation found wrong in the peer's bytes
    /// (`InvalidData`), or an error of the poll or of connecting.
    Io(io::Error),
}

impl Stop {
    /// Sorts an error of a read or write on an established connection: the
    /// kinds that mean the connection is dead are [`Stop::Lost`], the rest
    /// [`Stop::Io`].
    fn from_socket(e: io::Error) -> Stop {
        use io::ErrorKind as Kind;
        match e.kind() {
            // ECONNRESET: the peer reset the connection (or it was aborted under us).
            Kind::ConnectionReset | Kind::ConnectionAborted => Stop::Lost(e),
            // EPIPE: a write after the peer closed and reset.
            Kind::BrokenPipe => Stop::Lost(e),
            // The kernel gave up on the peer (retransmissions, keepalive).
            Kind::TimedOut => Stop::Lost(e),
            // The route to the peer is gone.
            Kind::HostUnreachable | Kind::NetworkUnreachable | Kind::NetworkDown => Stop::Lost(e),
            // The socket is no longer connected, or ended inside a read.
            Kind::NotConnected | Kind::UnexpectedEof => Stop::Lost(e),
            // Not a sign of a dead peer (out of memory, a bad descriptor): no retry helps.
            _ => Stop::Io(e),
        }
    }
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

/// The client's socket, its signals and its name lookups in one `mio::Poll`.
pub struct Link {
    poll: Poll,
    events: Events,
    signals: Signals,
    stream: Option<TcpStream>,
    /// Wakes the poll when a lookup on its helper thread is done.
    waker: Arc<Waker>,
    resolver: Resolver,
}

impl Link {
    /// A link with no connection yet that catches SIGTERM and SIGINT from now
    /// on (they no longer end the process; every wait reports them). Errors
    /// are the OS's (creating the poll, the signal pipe, the waker).
    pub fn new() -> io::Result<Link> {
        let poll = Poll::new()?;
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), RESOLVED)?);
        Ok(Link {
            poll,
            events: Events::with_capacity(16),
            signals,
            stream: None,
            waker,
            resolver: Arc::new(|address: &str| Ok(address.to_socket_addrs()?.collect())),
        })
    }

    /// Looks names up with `resolver` instead of the system's getaddrinfo (for
    /// tests, or a name service of one's own). An `ip:port` address is never
    /// looked up.
    pub fn with_resolver(
        mut self,
        resolver: impl Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Link {
        self.resolver = Arc::new(resolver);
        self
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

    /// Sleeps for `duration` unless a signal arrives first ([`Stop::Signal`]).
    pub fn sleep(&mut self, duration: Duration) -> Result<(), Stop> {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.wait(Some(deadline))?;
        }
        Ok(())
    }

    /// Connects to `address` (`host:port`), retrying with a short backoff
    /// (20 ms doubling to 500 ms) while the server is not there yet (not
    /// resolvable, refusing). `patience` bounds everything: lookups, attempts
    /// in progress and pauses. Errors: [`Stop::Signal`] at once on a signal;
    /// otherwise an I/O error `could not connect to <address> within
    /// <patience>: <the last attempt's error>`.
    pub fn connect(&mut self, address: &str, patience: Duration) -> Result<SocketAddr, Stop> {
        let give_up = Instant::now() + patience;
        let mut backoff = Duration::from_millis(20);
        loop {
            let error = match self.try_connect(address, give_up) {
                Ok(addr) => return Ok(addr),
                Err(Stop::Io(e)) => e,
                Err(stop) => return Err(stop),
            };
            // The last wait is cut to end at the deadline, and one more
            // attempt made there: the whole patience is used, not less.
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Stop::Io(io::Error::new(
                    error.kind(),
                    format!(
                        "could not connect to {address} within {}: {error}",
                        humantime::format_duration(patience)
                    ),
                )));
            }
            self.sleep(backoff.min(left))?;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// One attempt and no retry (the caller has its own schedule, see
    /// [`crate::reconnect`]): the lookup and the connect, abandoned after
    /// `bound`. Errors: [`Stop::Signal`] at once on a signal; otherwise the
    /// attempt's I/O error (refused, unreachable, not resolvable, timed out).
    pub fn connect_once(&mut self, address: &str, bound: Duration) -> Result<SocketAddr, Stop> {
        self.try_connect(address, Instant::now() + bound)
    }

    /// One attempt, the lookup included, abandoned at `give_up`.
    fn try_connect(&mut self, address: &str, give_up: Instant) -> Result<SocketAddr, Stop> {
        self.close();
        let addr = self.resolve(address, give_up)?;
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
            // A peer that never answers the SYN would hold us for the
            // kernel's two minutes of retries.
            if Instant::now() >= give_up {
                self.close();
                return Err(Stop::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr} had not answered (the connection was still being set up)"),
                )));
            }
            self.wait(Some(give_up))?;
        }
        let _ = self.stream.as_ref().expect("connected").set_nodelay(true);
        Ok(addr)
    }

    /// The first address of `address`. A name is looked up on a helper thread
    /// so that the wait stays in the poll: bounded by `give_up`, ended by a
    /// signal. An `ip:port` needs no lookup.
    fn resolve(&mut self, address: &str, give_up: Instant) -> Result<SocketAddr, Stop> {
        if let Ok(addr) = address.parse::<SocketAddr>() {
            return Ok(addr);
        }
        let (tx, rx) = mpsc::channel();
        let resolver = Arc::clone(&self.resolver);
        let waker = Arc::clone(&self.waker);
        let name = address.to_owned();
        // getaddrinfo cannot be cancelled: a lookup that outlives its attempt
        // finishes on its own thread and its answer is dropped.
        std::thread::Builder::new()
            .name("resolve".to_owned())
            .spawn(move || {
                let _ = tx.send(resolver(&name));
                let _ = waker.wake();
            })?;
        loop {
            match rx.try_recv() {
                Ok(addrs) => {
                    return addrs?.into_iter().next().ok_or_else(|| {
                        Stop::Io(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{address} resolves to no address"),
                        ))
                    });
                }
                // Not done yet: wait below.
                Err(mpsc::TryRecvError::Empty) => {}
                // The lookup panicked.
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(Stop::Io(io::Error::other(format!(
                        "looking up {address} failed without an answer"
                    ))));
                }
            }
            if Instant::now() >= give_up {
                return Err(Stop::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("looking up {address} had not finished"),
                )));
            }
            self.wait(Some(give_up))?;
        }
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
    /// feeds it what arrives, and waits only when neither made progress — for
    /// the socket, a signal, or the conversation's next deadline. Errors: a
    /// signal; [`Stop::Lost`] for an early close (with the conversation's
    /// [`Conversation::closed_early`]) or a socket error that means the
    /// connection is dead; otherwise [`Stop::Io`] (the conversation's, the
    /// poll's, another socket error).
    pub fn converse(&mut self, talk: &mut impl Conversation) -> Result<(), Stop> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut progress = false;
            let out = talk.to_send(Instant::now());
            if !out.is_empty() {
                let n = self.try_send(out).map_err(Self::sort_socket_error)?;
                if n > 0 {
                    // Stamped after the write: a pause counts from the last byte out.
                    talk.sent(n, Instant::now());
                    progress = true;
                }
            }
            match self.try_recv(&mut buf).map_err(Self::sort_socket_error)? {
                Some(0) => {
                    return Err(Stop::Lost(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        talk.closed_early(),
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
                self.wait(talk.poll_timeout())?;
            }
        }
    }

    /// The socket's errors sorted by [`Stop::from_socket`]; a signal stays one.
    fn sort_socket_error(stop: Stop) -> Stop {
        match stop {
            Stop::Io(e) => Stop::from_socket(e),
            other => other,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a shared, noisy machine may add to any real-time bound.
    const MARGIN: Duration = Duration::from_secs(3);

    /// Name lookups run on a helper thread and are awaited in the poll. One
    /// test, in real time with loose bounds, because it raises SIGTERM in this
    /// process and every link alive in it would see the signal.
    #[test]
    fn a_lookup_is_awaited_in_the_poll_bounded_and_ended_by_a_signal() {
        // A slow name server that answers: its thread wakes the poll, so the
        // connect does not sit out its 30 s of patience.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut answering = Link::new().unwrap().with_resolver(move |name| {
            assert_eq!(name, "server:12345");
            std::thread::sleep(Duration::from_millis(50));
            Ok(vec![addr])
        });
        let started = Instant::now();
        let connected = answering.connect("server:12345", Duration::from_secs(30));
        assert_eq!(connected.unwrap(), addr);
        assert!(started.elapsed() < MARGIN, "{:?}", started.elapsed());
        answering.close();

        // A name server that never answers: the connect timeout bounds it.
        let mut link = Link::new().unwrap().with_resolver(|_| {
            loop {
                std::thread::park();
            }
        });
        let patience = Duration::from_millis(300);
        let started = Instant::now();
        let result = link.connect("server:12345", patience);
        let took = started.elapsed();
        let Err(Stop::Io(e)) = result else {
            panic!("{result:?}");
        };
        assert_eq!(
            e.to_string(),
            "could not connect to server:12345 within 300ms: looking up server:12345 had not finished"
        );
        assert!(took >= patience && took < patience + MARGIN, "{took:?}");

        // A signal ends that wait at once.
        let raiser = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            signal_hook::low_level::raise(SIGTERM).unwrap();
        });
        let started = Instant::now();
        let result = link.connect("server:12345", Duration::from_secs(60));
        raiser.join().unwrap();
        assert!(matches!(result, Err(Stop::Signal("SIGTERM"))), "{result:?}");
        assert!(started.elapsed() < MARGIN, "{:?}", started.elapsed());
    }
}
