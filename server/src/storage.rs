//! Durable storage of a round: CSV rows appended to the bets file and events
//! to its state file, both made durable by one `fdatasync` per loop turn
//! (group commit), and the start-up that finds, locks and resumes them.
//!
//! `append` only buffers; nothing is durable until `commit` returns. The server
//! sends no ack for a row before the `commit` that covers it, nor an end ack
//! before the state file records the agency as finished.

use std::cell::{Ref, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use lottery_protocol::BetView;

use crate::round::{Entry, RecoveryError, Round, read_round};

/// A sink whose writes can be forced to stable storage and cut back.
pub trait Durable: Write {
    /// Makes every byte written so far survive a crash.
    fn sync(&self) -> io::Result<()>;
    /// Cuts the sink back to `len` bytes, so a failed write leaves nothing
    /// that was not committed.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl Durable for File {
    fn sync(&self) -> io::Result<()> {
        // Data only: the file's size is data for this purpose, so appended rows
        // are covered; timestamps are not worth a second journal write.
        self.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len))?;
        self.sync_data()
    }
}

/// In-memory storage for tests: nothing to sync.
impl Durable for Vec<u8> {
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        Vec::truncate(self, len as usize);
        Ok(())
    }
}

/// A storage failure: which file, at which step. The server stops on it,
/// after cutting the file back to what was committed.
#[derive(Debug)]
pub struct StorageError {
    /// `"bets file"` or `"state file"`, and its path once known.
    pub file: String,
    /// `"write"` or `"fdatasync"`.
    pub step: &'static str,
    pub source: io::Error,
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} failed: {}", self.file, self.step, self.source)
    }
}

impl std::error::Error for StorageError {}

impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> io::Error {
        io::Error::other(e)
    }
}

/// The sink, shared between the CSV writer (which offers no `get_mut`) and
/// the store (which must cut it back after a failure), counting what goes
/// through so the committed length is known without asking the file.
struct Counted<W> {
    inner: W,
    written: u64,
    /// A write or sync failed and the sink was cut back: it takes nothing
    /// more, so that the CSV writer's buffer (flushed again when it is
    /// dropped) cannot put unacked rows back after the cut.
    failed: bool,
}

struct Shared<W>(Rc<RefCell<Counted<W>>>);

impl<W: Write> Write for Shared<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut sink = self.0.borrow_mut();
        if sink.failed {
            return Err(io::Error::other("the bets file failed earlier"));
        }
        let n = sink.inner.write(buf)?;
        sink.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().inner.flush()
    }
}

/// Rows `agency,first_name,last_name,document,birthdate,number`, no header.
pub struct Store<W: Durable> {
    writer: csv::Writer<Shared<W>>,
    sink: Rc<RefCell<Counted<W>>>,
    /// How errors name the file.
    name: String,
    uncommitted: usize,
    committed: u64,
    commits: u64,
    /// Bytes of the sink covered by the last commit.
    committed_len: u64,
}

const WRITE_BUFFER: usize = 256 * 1024;

impl<W: Durable> Store<W> {
    /// A store appending to `sink`, which already holds `rows` rows in `len`
    /// bytes (a resumed round), all durable.
    pub fn new(sink: W) -> Store<W> {
        Store::resume(sink, 0, 0)
    }

    /// A store appending after `rows` durable rows taking `len` bytes.
    pub fn resume(sink: W, rows: u64, len: u64) -> Store<W> {
        let sink = Rc::new(RefCell::new(Counted {
            inner: sink,
            written: len,
            failed: false,
        }));
        Store {
            writer: csv::WriterBuilder::new()
                .has_headers(false)
                .buffer_capacity(WRITE_BUFFER)
                .from_writer(Shared(sink.clone())),
            sink,
            name: "bets file".to_owned(),
            uncommitted: 0,
            committed: rows,
            commits: 0,
            committed_len: len,
        }
    }

    /// Buffers one row. An error is a storage failure, not the peer's fault;
    /// the file has been cut back to its last commit.
    pub fn append(&mut self, bet: &BetView<'_>) -> Result<(), StorageError> {
        let mut agency = [0u8; 10];
        let mut document = [0u8; 10];
        let mut number = [0u8; 10];
        let result = self.writer.write_record([
            decimal(u32::from(bet.agency), &mut agency),
            bet.first_name.as_bytes(),
            bet.last_name.as_bytes(),
            decimal(bet.document, &mut document),
            bet.birthdate.as_bytes(),
            decimal(bet.number, &mut number),
        ]);
        if let Err(e) = result {
            return Err(self.fail("write", e.into()));
        }
        self.uncommitted += 1;
        Ok(())
    }

    /// Rows appended since the last commit.
    pub fn uncommitted(&self) -> usize {
        self.uncommitted
    }

    /// Writes out the buffer and syncs it. When it returns `Ok`, every row
    /// appended so far is on disk. Returns how many rows this commit covered.
    /// An error cuts the file back to the previous commit.
    pub fn commit(&mut self) -> Result<usize, StorageError> {
        if let Err(e) = self.writer.flush() {
            return Err(self.fail("write", e));
        }
        let synced = self.sink.borrow().inner.sync();
        if let Err(e) = synced {
            return Err(self.fail("fdatasync", e));
        }
        let rows = std::mem::take(&mut self.uncommitted);
        self.committed += rows as u64;
        self.commits += 1;
        self.committed_len = self.sink.borrow().written;
        Ok(rows)
    }

    /// Names the file in errors: `bets file /data/bets.csv`.
    pub fn named(mut self, path: &Path) -> Store<W> {
        self.name = format!("bets file {}", path.display());
        self
    }

    /// A failed write or sync: cut what it may have left back to the last
    /// commit (best effort; the error that stops the server is the first one).
    fn fail(&mut self, step: &'static str, source: io::Error) -> StorageError {
        let len = self.committed_len;
        let mut sink = self.sink.borrow_mut();
        let _ = sink.inner.truncate(len);
        sink.written = len;
        sink.failed = true;
        StorageError {
            file: self.name.clone(),
            step,
            source,
        }
    }

    /// Rows made durable so far (this run and, resumed, before it).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Syncs performed so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The sink, for tests that read back what was stored.
    pub fn sink(&self) -> Ref<'_, W> {
        Ref::map(self.sink.borrow(), |s| &s.inner)
    }
}

/// The round's state file: [`Entry`] lines appended, synced by [`StateLog::sync`]
/// before any ack they account for leaves.
pub struct StateLog<W: Durable> {
    sink: W,
    pending: Vec<u8>,
    /// Bytes of the sink that are durable.
    len: u64,
    name: String,
}

impl<W: Durable> StateLog<W> {
    /// A log appending after `len` durable bytes.
    pub fn new(sink: W, len: u64) -> StateLog<W> {
        StateLog {
            sink,
            pending: Vec::new(),
            len,
            name: "state file".to_owned(),
        }
    }

    /// Names the file in errors: `state file /data/bets.csv.state`.
    pub fn named(mut self, path: &Path) -> StateLog<W> {
        self.name = format!("state file {}", path.display());
        self
    }

    /// Queues an entry for the next [`StateLog::sync`].
    pub fn append(&mut self, entry: &Entry) {
        entry.encode(&mut self.pending);
    }

    /// Writes and syncs what was appended; a no-op when nothing was. An error
    /// cuts the file back to what was durable.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let step = match self.sink.write_all(&self.pending) {
            Ok(()) => match self.sink.sync() {
                Ok(()) => {
                    self.len += self.pending.len() as u64;
                    self.pending.clear();
                    return Ok(());
                }
                Err(e) => ("fdatasync", e),
            },
            Err(e) => ("write", e),
        };
        let _ = self.sink.truncate(self.len);
        Err(StorageError {
            file: self.name.clone(),
            step: step.0,
            source: step.1,
        })
    }

    /// The sink, for tests.
    pub fn sink(&self) -> &W {
        &self.sink
    }
}

/// `n` in decimal, in `buf`, without allocating.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// The state file beside a bets file: `<bets file>.state`.
pub fn state_path(bets: &Path) -> PathBuf {
    let mut name = bets.as_os_str().to_owned();
    name.push(".state");
    PathBuf::from(name)
}

/// Why the server cannot start on its files; each names the file.
#[derive(Debug)]
pub enum StartError {
    /// Another process holds the bets file's lock.
    Locked(PathBuf),
    Io {
        path: PathBuf,
        step: &'static str,
        source: io::Error,
    },
    Recovery {
        path: PathBuf,
        error: RecoveryError,
    },
    /// The round in progress waits for another number of agencies.
    Agencies {
        path: PathBuf,
        round: u16,
        config: u16,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Locked(path) => write!(
                f,
                "{} is locked by another server; two servers on one bets file would mangle it",
                path.display()
            ),
            StartError::Io { path, step, source } => {
                write!(f, "{}: {step} failed: {source}", path.display())
            }
            StartError::Recovery { path, error } => write!(
                f,
                "{}: {error}; the files are left as they are",
                path.display()
            ),
            StartError::Agencies {
                path,
                round,
                config,
            } => write!(
                f,
                "{}: the round in progress waits for {round} agencies, but AGENCIES is {config}; start with AGENCIES={round} to finish it, or move its files away",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StartError {}

fn io_error<'a>(path: &'a Path, step: &'static str) -> impl FnOnce(io::Error) -> StartError + 'a {
    move |source| StartError::Io {
        path: path.to_owned(),
        step,
        source,
    }
}

/// Opens and locks an existing bets file; `None` when there is none. The
/// first step of a start: nothing is changed before the lock is held and the
/// listener is bound.
pub fn lock_existing(path: &Path) -> Result<Option<File>, StartError> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => lock(file, path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, "open")(e)),
    }
}

/// Opens `path` for reading and writing, creating it if missing, and locks it.
fn create_locked(path: &Path) -> Result<File, StartError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_error(path, "create"))?;
    lock(file, path)
}

fn lock(file: File, path: &Path) -> Result<File, StartError> {
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::Locked(path.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(path, "lock")(e)),
    }
}

/// What a start found and did, for the log.
#[derive(Debug, Default)]
pub struct Opened {
    /// The previous round was complete and kept under this name (its bets;
    /// its state file beside it with `.state`).
    pub archived: Option<PathBuf>,
    /// A round in progress was resumed.
    pub resumed: bool,
    /// Bytes of a torn last row cut from the bets file.
    pub bets_cut: usize,
    /// Bytes of a torn last line cut from the state file.
    pub state_cut: usize,
    /// Rows were found with no state file beside them: which agencies had
    /// finished is not known (they tell again when they end again).
    pub state_missing: bool,
}

/// The round's files, locked and positioned for appending.
pub struct RoundFiles {
    pub bets: File,
    pub state: File,
    pub round: Round,
    /// Durable bytes of each file.
    pub bets_len: u64,
    pub state_len: u64,
    pub opened: Opened,
}

/// What a start does with the round it finds at its bets file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// No round, or one with nothing stored or decided: a new round with
    /// this start's `AGENCIES`.
    New,
    /// A complete round (drawn, every winner delivered): archived, then a
    /// new round.
    Archive,
    /// A round in progress, for this start's `AGENCIES`: resumed.
    Resume,
}

impl Plan {
    /// The word the logs use: `new`, `archived`, `resumed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::New => "new",
            Plan::Archive => "archived",
            Plan::Resume => "resumed",
        }
    }
}

/// A round read back from its files, and what a start does with it.
struct ReadBack {
    bets: Vec<u8>,
    state: Vec<u8>,
    /// `None` when only a complete round's state file is left (its bets
    /// file was archived before a crash).
    round: Option<Round>,
    plan: Plan,
}

/// Reads the round at `path` (its bets from `bets`, `None` when there is no
/// bets file) and decides what a start with `agencies` does with it. Changes
/// nothing. Errors: a state file that cannot be read, files this server did
/// not write, a round in progress for another number of agencies.
fn read_back(
    path: &Path,
    bets: Option<&mut File>,
    agencies: u16,
    now: u64,
) -> Result<ReadBack, StartError> {
    let state_path = state_path(path);
    let state = match std::fs::read(&state_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(&state_path, "read")(e)),
    };
    let mut bytes = Vec::new();
    match bets {
        Some(file) => {
            file.read_to_end(&mut bytes)
                .map_err(io_error(path, "read"))?;
        }
        None if crate::round::state_is_complete(&state) => {
            return Ok(ReadBack {
                bets: bytes,
                state,
                round: None,
                plan: Plan::Archive,
            });
        }
        None => {}
    }
    let round =
        read_round(&bytes, &state, agencies, now).map_err(|error| StartError::Recovery {
            path: path.to_owned(),
            error,
        })?;
    let untouched =
        round.rows == 0 && round.drawn.is_none() && crate::round::finished(&round).is_empty();
    let plan = if round.is_complete() {
        Plan::Archive
    } else if untouched {
        // Nothing was stored or decided: start afresh, with this AGENCIES.
        Plan::New
    } else if round.agencies != agencies {
        return Err(StartError::Agencies {
            path: path.to_owned(),
            round: round.agencies,
            config: agencies,
        });
    } else {
        Plan::Resume
    };
    Ok(ReadBack {
        bets: bytes,
        state,
        round: Some(round),
        plan,
    })
}

/// What a start with `agencies` would do with the round at `path`, without
/// starting: nothing is locked, created or changed, so it may run beside a
/// server on the same files. The same errors as [`open_round`] but
/// [`StartError::Locked`]. `now` is unix seconds.
pub fn check_round(path: &Path, agencies: u16, now: u64) -> Result<Plan, StartError> {
    let mut bets = match File::open(path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A start creates it, in a folder that must be there.
            let folder = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !folder.is_dir() {
                let gone = io::Error::from_raw_os_error(libc::ENOENT);
                return Err(io_error(path, "create")(gone));
            }
            None
        }
        Err(e) => return Err(io_error(path, "open")(e)),
    };
    read_back(path, bets.as_mut(), agencies, now).map(|read| read.plan)
}

/// Opens the round at `path` once the listener is bound: locks the bets file
/// (creating it if `locked` found none), reads the round back, and then, only
/// then, changes files: cuts torn tails, archives a complete round under a
/// name no earlier archive has, starts a new one. `now` is unix seconds.
pub fn open_round(
    path: &Path,
    locked: Option<File>,
    agencies: u16,
    now: u64,
) -> Result<RoundFiles, StartError> {
    let state_path = state_path(path);
    // With no bets file, nothing is created until the round reads back: a
    // start that is refused leaves the folder as it was.
    let mut bets = locked;
    let read = read_back(path, bets.as_mut(), agencies, now)?;
    let Some(recovered) = read.round else {
        // A complete round whose bets file was archived before a crash: its
        // state file follows it.
        let archived = archive_state(&state_path, path)?;
        let opened = Opened {
            archived: Some(archived),
            ..Opened::default()
        };
        return finish_new(path, agencies, now, opened);
    };
    let (bytes, state_bytes) = (read.bets, read.state);
    let mut opened = Opened {
        state_missing: state_bytes.is_empty() && !bytes.is_empty(),
        ..Opened::default()
    };
    match read.plan {
        Plan::Archive => {
            opened.archived = Some(archive(path, &state_path)?);
            drop(bets); // unlocks the archived file
            return finish_new(path, agencies, now, opened);
        }
        Plan::New => {
            // A torn first row is cut by the fresh start, and said so.
            opened.bets_cut = recovered.bets_torn;
            drop(bets);
            return finish_new(path, agencies, now, opened);
        }
        Plan::Resume => {}
    }
    let mut bets = match bets {
        Some(file) => file,
        None => create_locked(path)?,
    };
    // Resume: cut what a crash tore (never acknowledged), then append.
    opened.resumed = true;
    opened.bets_cut = recovered.bets_torn;
    opened.state_cut = recovered.state_torn;
    let bets_len = (bytes.len() - recovered.bets_torn) as u64;
    Durable::truncate(&mut bets, bets_len).map_err(io_error(path, "cut the torn last row"))?;
    let mut state = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&state_path)
        .map_err(io_error(&state_path, "open"))?;
    let mut state_len = (state_bytes.len() - recovered.state_torn) as u64;
    Durable::truncate(&mut state, state_len)
        .map_err(io_error(&state_path, "cut the torn last line"))?;
    if state_bytes.is_empty() {
        // Rows with no state file (a round from before state files): record
        // the round now, as the configuration describes it.
        let mut header = Vec::new();
        Entry::Header {
            agencies,
            started: recovered.started,
        }
        .encode(&mut header);
        state
            .write_all(&header)
            .map_err(io_error(&state_path, "write"))?;
        state
            .sync_data()
            .map_err(io_error(&state_path, "fdatasync"))?;
        state_len = header.len() as u64;
        sync_dir(path)?;
    }
    Ok(RoundFiles {
        bets,
        state,
        round: recovered,
        bets_len,
        state_len,
        opened,
    })
}

/// Starts a new round at `path`: an empty bets file and a state file holding
/// its header, both durable, names included.
fn finish_new(
    path: &Path,
    agencies: u16,
    now: u64,
    opened: Opened,
) -> Result<RoundFiles, StartError> {
    let mut bets = create_locked(path)?;
    Durable::truncate(&mut bets, 0).map_err(io_error(path, "empty"))?;
    let state_path = state_path(path);
    let mut state = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&state_path)
        .map_err(io_error(&state_path, "create"))?;
    let mut header = Vec::new();
    Entry::Header {
        agencies,
        started: now,
    }
    .encode(&mut header);
    state
        .write_all(&header)
        .map_err(io_error(&state_path, "write"))?;
    state
        .sync_data()
        .map_err(io_error(&state_path, "fdatasync"))?;
    sync_dir(path)?;
    Ok(RoundFiles {
        bets,
        state,
        round: Round::new(agencies, now),
        bets_len: 0,
        state_len: header.len() as u64,
        opened,
    })
}

/// Moves a complete round's two files to `<bets>.round-<k>` and
/// `<bets>.round-<k>.state`, `k` the first number neither name has, with a
/// rename that refuses to replace (`RENAME_NOREPLACE`): no archive is ever
/// overwritten, even by a concurrent start. Returns the bets archive's name.
fn archive(bets: &Path, state: &Path) -> Result<PathBuf, StartError> {
    for k in 1u32.. {
        let to = archive_name(bets, k);
        let to_state = state_path(&to);
        if to.exists() || to_state.exists() {
            continue;
        }
        match rename_noreplace(bets, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(bets, "archive")(e)),
        }
        rename_noreplace(state, &to_state).map_err(io_error(state, "archive"))?;
        sync_dir(bets)?;
        return Ok(to);
    }
    unreachable!("fewer than 2^32 archives")
}

/// `<bets>.round-<k>`: the name of a bets file's `k`th archive.
fn archive_name(bets: &Path, k: u32) -> PathBuf {
    let mut name = bets.as_os_str().to_owned();
    name.push(format!(".round-{k}"));
    PathBuf::from(name)
}

/// Moves a lone state file to `<bets>.round-<k>.state`, `k` the first number
/// whose state name is free (the archive of its bets file, if any, took the
/// same `k`).
fn archive_state(state: &Path, bets: &Path) -> Result<PathBuf, StartError> {
    for k in 1u32.. {
        let to = state_path(&archive_name(bets, k));
        match rename_noreplace(state, &to) {
            Ok(()) => {
                sync_dir(bets)?;
                return Ok(to);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(state, "archive")(e)),
        }
    }
    unreachable!("fewer than 2^32 archives")
}

/// `rename(2)` that fails with `AlreadyExists` rather than replace `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes a file's directory entry durable (fdatasync does not cover it).
fn sync_dir(path: &Path) -> Result<(), StartError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir, "sync the folder"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lottery_protocol::Bet;

    #[test]
    fn rows_are_csv_in_the_documented_order() {
        let mut store = Store::new(Vec::new());
        let a = Bet::new(300, "Ana María", "Pérez, Jr.", 30904465, "1999-03-17", 7574).unwrap();
        let b = Bet::new(1, "Juan \"el\"", "Ruiz", 0, "2000-02-29", 4294967295).unwrap();
        store.append(&a.view()).unwrap();
        store.append(&b.view()).unwrap();
        assert_eq!(store.uncommitted(), 2);
        assert_eq!(store.commit().unwrap(), 2);
        assert_eq!(
            (store.uncommitted(), store.committed(), store.commits()),
            (0, 2, 1)
        );
        assert_eq!(
            String::from_utf8(store.sink().clone()).unwrap(),
            "300,Ana María,\"Pérez, Jr.\",30904465,1999-03-17,7574\n\
             1,\"Juan \"\"el\"\"\",Ruiz,0,2000-02-29,4294967295\n"
        );
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 7574, 30904465, u32::MAX] {
            assert_eq!(decimal(n, &mut [0; 10]), n.to_string().as_bytes());
        }
    }

    /// A sink that fails after `ok` bytes, as a full disk does.
    struct Full {
        data: Vec<u8>,
        ok: usize,
        fail_sync: bool,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.ok.saturating_sub(self.data.len());
            if room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = room.min(buf.len());
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Durable for Full {
        fn sync(&self) -> io::Result<()> {
            if self.fail_sync {
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            }
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_or_sync_cuts_the_file_back_to_its_last_commit() {
        let bet = Bet::new(1, "Ana", "Gómez", 1, "1990-01-01", 2).unwrap();
        let row = "1,Ana,Gómez,1,1990-01-01,2\n".len();
        let mut store = Store::new(Full {
            data: Vec::new(),
            ok: row * 2 + 5,
            fail_sync: false,
        });
        store.append(&bet.view()).unwrap();
        store.commit().unwrap();
        store.append(&bet.view()).unwrap();
        store.append(&bet.view()).unwrap();
        let e = store.commit().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "bets file write failed: {}",
                io::Error::from_raw_os_error(libc::ENOSPC)
            )
        );
        assert_eq!(store.sink().data.len(), row, "back to the first commit");
        // What the CSV writer still buffers cannot reach the file afterwards,
        // not even when the writer is dropped (it flushes then).
        store.sink.borrow_mut().inner.ok = usize::MAX;
        assert!(store.append(&bet.view()).is_ok(), "buffered only");
        assert!(store.commit().is_err());
        let sink = store.sink.clone();
        drop(store);
        assert_eq!(sink.borrow().inner.data.len(), row, "nothing after the cut");

        let mut store = Store::new(Full {
            data: Vec::new(),
            ok: usize::MAX,
            fail_sync: true,
        });
        store.append(&bet.view()).unwrap();
        assert_eq!(store.commit().unwrap_err().step, "fdatasync");
        assert!(store.sink().data.is_empty());

        let mut log = StateLog::new(
            Full {
                data: b"round 1 agencies 1 started 0\n".to_vec(),
                ok: 35,
                fail_sync: false,
            },
            29,
        );
        log.append(&Entry::Finished {
            agency: 1,
            bets: 12345,
        });
        let e = log.sync().unwrap_err();
        assert_eq!((e.file.as_str(), e.step), ("state file", "write"));
        assert_eq!(log.sink().data.len(), 29);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_opener_of_a_locked_bets_file_is_refused_and_changes_nothing() {
        let dir = scratch("lock");
        let path = dir.join("bets.csv");
        let first = open_round(&path, lock_existing(&path).unwrap(), 2, 1).unwrap();
        std::fs::write(dir.join("marker"), "x").unwrap();
        let before: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let err = lock_existing(&path).unwrap_err();
        assert!(matches!(err, StartError::Locked(_)), "{err}");
        let after: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(before, after);
        drop(first);
        assert!(
            lock_existing(&path).unwrap().is_some(),
            "free once the first is gone"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_start_resumes_cuts_torn_tails_and_archives_complete_rounds() {
        let dir = scratch("resume");
        let path = dir.join("bets.csv");
        let state = state_path(&path);
        // A round in progress with a torn row and a torn state line.
        std::fs::write(&path, "1,Ana,B,1,1990-01-01,7574\n2,Bo,C,2,19").unwrap();
        std::fs::write(&state, "round 1 agencies 2 started 9\nfinished 1 1\nfini").unwrap();
        let files = open_round(&path, lock_existing(&path).unwrap(), 2, 50).unwrap();
        assert!(files.opened.resumed);
        assert_eq!((files.opened.bets_cut, files.opened.state_cut), (11, 4));
        assert_eq!(files.round.started, 9);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1,Ana,B,1,1990-01-01,7574\n"
        );
        assert_eq!(
            std::fs::read_to_string(&state).unwrap(),
            "round 1 agencies 2 started 9\nfinished 1 1\n"
        );
        drop(files);
        // Another AGENCIES for a round in progress: refused, nothing changed.
        let err = open_round(&path, lock_existing(&path).unwrap(), 3, 50)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("waits for 2 agencies, but AGENCIES is 3"),
            "{err}"
        );
        // A complete round is archived, twice without overwriting.
        for k in 1..=2 {
            std::fs::write(&path, "1,Ana,B,1,1990-01-01,7574\n").unwrap();
            std::fs::write(
                &state,
                "round 1 agencies 1 started 9\nfinished 1 1\ndrawn\ndelivered 1\n",
            )
            .unwrap();
            let files = open_round(&path, lock_existing(&path).unwrap(), 1, 60).unwrap();
            let archived = files.opened.archived.clone().unwrap();
            assert_eq!(archived, dir.join(format!("bets.csv.round-{k}")));
            assert_eq!(
                std::fs::read_to_string(&archived).unwrap(),
                "1,Ana,B,1,1990-01-01,7574\n"
            );
            assert!(state_path(&archived).is_file());
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
            assert_eq!(
                std::fs::read_to_string(&state).unwrap(),
                "round 1 agencies 1 started 60\n"
            );
        }
        // A crash between the archive's two renames: the lone state file
        // follows its bets file's archive.
        std::fs::write(
            &state,
            "round 1 agencies 1 started 9\nfinished 1 1\ndrawn\ndelivered 1\n",
        )
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.join("bets.csv.round-3"), "1,Ana,B,1,1990-01-01,7574\n").unwrap();
        let files = open_round(&path, lock_existing(&path).unwrap(), 1, 70).unwrap();
        assert_eq!(
            files.opened.archived,
            Some(dir.join("bets.csv.round-3.state"))
        );
        assert_eq!(
            std::fs::read_to_string(&state).unwrap(),
            "round 1 agencies 1 started 70\n"
        );
        drop(files);
        // Unreadable files are refused and left alone.
        std::fs::write(&path, "not,a,bet\nmore\n").unwrap();
        let err = open_round(&path, lock_existing(&path).unwrap(), 1, 60)
            .err()
            .unwrap();
        assert!(err.to_string().contains("bets file line 1"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not,a,bet\nmore\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The check says what a start then does, for every kind of round, and
    /// changes nothing; its errors are the start's.
    #[test]
    fn a_check_predicts_the_start_and_changes_nothing() {
        const ROW: &str = "1,Ana,B,1,1990-01-01,7574\n";
        const HEADER: &str = "round 1 agencies 2 started 9\n";
        /// Bets file, state file (`None`: absent), AGENCIES, and what the
        /// start does or a part of its error.
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            u16,
            Result<Plan, &'static str>,
        );
        let table: &[Case] = &[
            (None, None, 2, Ok(Plan::New)),
            (Some(""), Some(HEADER), 2, Ok(Plan::New)),
            // Nothing stored or decided: any AGENCIES starts afresh.
            (Some(""), Some(HEADER), 5, Ok(Plan::New)),
            (Some("1,Ana,B,1,19"), Some(HEADER), 5, Ok(Plan::New)),
            (Some(ROW), Some(HEADER), 2, Ok(Plan::Resume)),
            (Some(ROW), None, 3, Ok(Plan::Resume)),
            (
                Some(ROW),
                Some(HEADER),
                3,
                Err("waits for 2 agencies, but AGENCIES is 3"),
            ),
            // An agency finished with no bets: the round is under way.
            (
                Some(""),
                Some("round 1 agencies 2 started 9\nfinished 2 0\n"),
                3,
                Err("waits for 2 agencies, but AGENCIES is 3"),
            ),
            // Drawn, but a winner is still owed: resumed, not archived.
            (
                Some(ROW),
                Some("round 1 agencies 1 started 9\nfinished 1 1\ndrawn\n"),
                1,
                Ok(Plan::Resume),
            ),
            (
                Some(ROW),
                Some("round 1 agencies 1 started 9\nfinished 1 1\ndrawn\ndelivered 1\n"),
                4,
                Ok(Plan::Archive),
            ),
            (
                Some(""),
                Some("round 1 agencies 2 started 9\nfinished 1 0\ndrawn excluded 2\ndelivered 1\n"),
                2,
                Ok(Plan::Archive),
            ),
            (
                None,
                Some("round 1 agencies 1 started 9\nfinished 1 1\ndrawn\ndelivered 1\n"),
                1,
                Ok(Plan::Archive),
            ),
            (Some("not,a,bet\nmore\n"), None, 1, Err("bets file line 1")),
        ];
        let dir = scratch("check");
        let path = dir.join("bets.csv");
        let state = state_path(&path);
        let files = |dir: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| {
                    let path = e.unwrap().path();
                    let text = std::fs::read_to_string(&path).unwrap();
                    (path, text)
                })
                .collect();
            names.sort();
            names
        };
        for (i, (bets, state_text, agencies, want)) in table.iter().enumerate() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            if let Some(bets) = bets {
                std::fs::write(&path, bets).unwrap();
            }
            if let Some(text) = state_text {
                std::fs::write(&state, text).unwrap();
            }
            let before = files(&dir);
            let checked = check_round(&path, *agencies, 50).map_err(|e| e.to_string());
            assert_eq!(files(&dir), before, "case {i}: the check changed files");
            let started = open_round(&path, lock_existing(&path).unwrap(), *agencies, 50);
            let did = started.map(|f| {
                if f.opened.archived.is_some() {
                    Plan::Archive
                } else if f.opened.resumed {
                    Plan::Resume
                } else {
                    Plan::New
                }
            });
            match want {
                Ok(plan) => {
                    assert_eq!(checked.as_ref().ok(), Some(plan), "case {i}: {checked:?}");
                    assert_eq!(did.as_ref().ok(), Some(plan), "case {i}");
                }
                Err(text) => {
                    let err = checked.expect_err("refused");
                    assert!(err.contains(text), "case {i}: {err}");
                    assert_eq!(did.err().map(|e| e.to_string()), Some(err), "case {i}");
                }
            }
        }
        // A bets file in a folder that is not there: the start cannot create
        // it, and the check says so in the same words.
        let lost = dir.join("missing/bets.csv");
        let checked = check_round(&lost, 2, 50)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let started = open_round(&lost, lock_existing(&lost).unwrap(), 2, 50)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            checked.as_ref().is_err_and(|e| e.contains("create failed")),
            "{checked:?}"
        );
        assert_eq!(checked, started);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
