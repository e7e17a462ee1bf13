//! Durable bet storage: CSV rows appended to one file, made durable by one
//! `fdatasync` per loop turn (group commit).
//!
//! `append` only buffers; nothing is durable until `commit` returns. The server
//! sends no ack for a row before the `commit` that covers it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use lottery_protocol::BetView;

/// A sink whose writes can be forced to stable storage.
pub trait Durable: Write {
    /// Makes every byte written so far survive a crash.
    fn sync(&self) -> io::Result<()>;
}

impl Durable for File {
    fn sync(&self) -> io::Result<()> {
        // Data only: the file's size is data for this purpose, so appended rows
        // are covered; timestamps are not worth a second journal write.
        self.sync_data()
    }
}

/// In-memory storage for tests: nothing to sync.
impl Durable for Vec<u8> {
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Rows `agency,first_name,last_name,document,birthdate,number`, no header.
pub struct Store<W: Durable> {
    writer: csv::Writer<W>,
    uncommitted: usize,
    committed: u64,
    commits: u64,
}

const WRITE_BUFFER: usize = 256 * 1024;

impl Store<File> {
    /// Opens `path` for a new round. An existing non-empty file is kept, renamed
    /// to `<path>.<unix seconds>` (returned), so that no stored bet is ever lost
    /// to a restart; crash recovery into the same round is a later feature.
    pub fn open(path: &Path) -> io::Result<(Store<File>, Option<PathBuf>)> {
        let mut kept = None;
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{secs}"));
            let backup = PathBuf::from(name);
            std::fs::rename(path, &backup)?;
            kept = Some(backup);
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        // The new file's name (and the kept round's) must survive a crash too:
        // fdatasync on the file does not cover its directory entry.
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
        Ok((Store::new(file), kept))
    }
}

impl<W: Durable> Store<W> {
    pub fn new(sink: W) -> Store<W> {
        Store {
            writer: csv::WriterBuilder::new()
                .has_headers(false)
                .buffer_capacity(WRITE_BUFFER)
                .from_writer(sink),
            uncommitted: 0,
            committed: 0,
            commits: 0,
        }
    }

    /// Buffers one row. An error is a storage failure, not the peer's fault.
    pub fn append(&mut self, bet: &BetView<'_>) -> io::Result<()> {
        let mut agency = [0u8; 10];
        let mut document = [0u8; 10];
        let mut number = [0u8; 10];
        self.writer.write_record([
            decimal(u32::from(bet.agency), &mut agency),
            bet.first_name.as_bytes(),
            bet.last_name.as_bytes(),
            decimal(bet.document, &mut document),
            bet.birthdate.as_bytes(),
            decimal(bet.number, &mut number),
        ])?;
        self.uncommitted += 1;
        Ok(())
    }

    /// Rows appended since the last commit.
    pub fn uncommitted(&self) -> usize {
        self.uncommitted
    }

    /// Writes out the buffer and syncs it. When it returns `Ok`, every row
    /// appended so far is on disk. Returns how many rows this commit covered.
    pub fn commit(&mut self) -> io::Result<usize> {
        self.writer.flush()?;
        self.writer.get_ref().sync()?;
        let rows = std::mem::take(&mut self.uncommitted);
        self.committed += rows as u64;
        self.commits += 1;
        Ok(rows)
    }

    /// Rows made durable so far.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Syncs performed so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The sink, for tests that read back what was stored.
    pub fn sink(&self) -> &W {
        self.writer.get_ref()
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

    #[test]
    fn open_keeps_an_old_round() {
        let dir = std::env::temp_dir().join(format!("store-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bets.csv");
        std::fs::write(&path, "1,A,B,1,2000-01-01,1\n").unwrap();
        let (mut store, kept) = Store::open(&path).unwrap();
        let kept = kept.expect("the old round is kept");
        assert_eq!(
            std::fs::read_to_string(&kept).unwrap(),
            "1,A,B,1,2000-01-01,1\n"
        );
        store.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let (_, kept_again) = Store::open(&path).unwrap();
        assert_eq!(kept_again, None, "an empty file is simply reused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
