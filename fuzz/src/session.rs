//! The `session` target: the server's sessions fed arbitrary bytes, and valid
//! streams cut anywhere, through the in-memory loop of [`crate::net`].
//!
//! Input layout (every byte string is a valid input; see [`crate::reader`]):
//!
//! ```text
//! byte 0     config: bit 0 mode (0 raw, 1 valid); bits 1-3 agencies; bit 4 winners delay 0
//! byte 1     op count (mod 33)
//! ops        3 bytes each: [kind | slot << 4] [u16 argument]
//! then       raw:   the bytes the peers send, cut by the send ops
//!            valid: one byte per agency (bets per batch), then bet records
//! ```
//!
//! Ops, on the connection in `slot` (raw: one of 4, connected on first use;
//! valid: the agency's):
//!
//! | kind | op |
//! | --- | --- |
//! | 0-7 | send the next `arg` bytes of the stream (0: all the rest) |
//! | 8, 15 | end the loop turn: commit, release acks, the draw, writes, frees |
//! | 9 | the peer reads `arg` more bytes (0: stops reading; 65535: reads all) |
//! | 10 | the clock moves `arg` ms (valid: `arg % 500`), timers and stall sweep |
//! | 11 | raw: the peer shuts down its write side; valid: reconnect (below) |
//! | 12 | raw: the peer resets; valid: the peer reads all |
//! | 13 | raw: a new connection takes the slot; valid: shut down the write side once all is sent |
//! | 14 | raw: the draw deadline passes; valid: send, as 0-7 |
//!
//! **Raw**: `agencies` is 0 to 4 (0: echo only); what the peers send is the
//! bytes after the ops, in order, each send op taking the next piece; what is
//! left goes to slot 0. Then every peer reads all, the winners delay passes,
//! every peer shuts down, and 31 s pass. Checked: everything [`crate::net`] checks.
//!
//! **Valid**: 1 to 3 agencies; the bets are built from the records with
//! `Bet::new` (any name bytes made valid, any date made a real day), each
//! agency's stream encoded with `encode_stream`, and cut where the send ops
//! say. A reconnect (kind 11; mid-stream, or after the end while the agency
//! waits for the draw or its winners) drops the connection (EOF if `arg` is
//! odd, else a reset) and a new one resends the stream from its first bet
//! with `1 + (arg >> 1) % 103` bets per batch, as the client does. At the end
//! every stream is sent in full and read. Checked, on top: every agency's
//! rows are exactly its bets, in order, field by field, stored once; its last
//! connection got one stored ack per bet in order, the end ack and its
//! winners, byte for byte; an earlier one got a prefix of those; every agency
//! finished and the draw ran.

use std::time::Duration;

use lottery_protocol::{
    Ack, Bet, END_ACK, FRAME_LEN, Header, MAX_BETS_PER_BATCH, NAME_LEN, Status, WINNING_NUMBER,
    encode_stream, encode_winners,
};

use crate::net::{Net, STALL_TIMEOUT};
use crate::reader::Reader;

/// The server's default `WINNERS_DELAY`.
pub const WINNERS_DELAY: Duration = Duration::from_millis(100);
/// Ops per input.
pub const MAX_OPS: u8 = 32;
/// Bets per input in valid mode, to keep each run short.
pub const MAX_BETS: usize = 256;
/// Reconnections per agency in valid mode.
pub const MAX_RECONNECTS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub kind: u8,
    pub slot: u8,
    pub arg: u16,
}

impl Op {
    pub fn encode(self) -> [u8; 3] {
        let [hi, lo] = self.arg.to_be_bytes();
        [self.kind & 0x0f | self.slot << 4, hi, lo]
    }
}

/// Op kinds, by name, for seeds and tests.
pub mod kind {
    pub const SEND: u8 = 0;
    pub const END_TURN: u8 = 8;
    pub const READ: u8 = 9;
    pub const SLEEP: u8 = 10;
    pub const SHUTDOWN_OR_RECONNECT: u8 = 11;
    pub const RESET_OR_READ_ALL: u8 = 12;
    pub const RECONNECT_OR_SHUTDOWN: u8 = 13;
    pub const DEADLINE: u8 = 14;
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let config = input.u8();
    let delay = if config & 0x10 != 0 {
        Duration::ZERO
    } else {
        WINNERS_DELAY
    };
    let ops: Vec<Op> = (0..input.u8() % (MAX_OPS + 1))
        .map(|_| {
            let b = input.u8();
            Op {
                kind: b & 0x0f,
                slot: b >> 4,
                arg: input.u16(),
            }
        })
        .collect();
    if config & 1 == 0 {
        raw(u16::from((config >> 1) & 7) % 5, delay, &ops, input.rest());
    } else {
        valid(
            1 + u16::from((config >> 1) & 7) % 3,
            delay,
            &ops,
            &mut input,
        );
    }
}

/// How many bytes a send op takes from what is left.
fn piece(arg: u16, left: usize) -> usize {
    if arg == 0 {
        left
    } else {
        usize::from(arg).min(left)
    }
}

fn window(arg: u16) -> usize {
    match arg {
        0 => 0,
        u16::MAX => usize::MAX,
        n => usize::from(n),
    }
}

fn raw(agencies: u16, delay: Duration, ops: &[Op], mut payload: &[u8]) {
    let mut net = Net::new(agencies, delay);
    let mut slots: [Option<usize>; 4] = [None; 4];
    fn live(net: &mut Net, slot: &mut Option<usize>) -> usize {
        match *slot {
            Some(key) if net.is_live(key) => key,
            _ => {
                let key = net.connect();
                *slot = Some(key);
                key
            }
        }
    }
    for op in ops {
        let slot = &mut slots[usize::from(op.slot % 4)];
        let existing = slot.filter(|&k| net.is_live(k));
        match op.kind {
            0..=7 => {
                let n = piece(op.arg, payload.len());
                let (bytes, rest) = payload.split_at(n);
                payload = rest;
                let key = live(&mut net, slot);
                net.send(key, bytes);
            }
            8 | 15 => net.end_turn(),
            9 => {
                if let Some(key) = existing {
                    match window(op.arg) {
                        0 => net.stop_reading(key),
                        n => net.peer_reads(key, n),
                    }
                }
            }
            10 => net.sleep(Duration::from_millis(u64::from(op.arg))),
            11 => existing.into_iter().for_each(|k| net.shutdown_write(k)),
            12 => existing.into_iter().for_each(|k| net.reset(k)),
            13 => {
                if let Some(key) = existing {
                    net.reset(key);
                }
                *slot = Some(net.connect());
            }
            _ => net.deadline_draw(),
        }
    }
    if !payload.is_empty() {
        let key = live(&mut net, &mut slots[0]);
        net.send(key, payload);
    }
    net.end_turn();
    let keys: Vec<usize> = net.live().map(|(&k, _)| k).collect();
    for &key in &keys {
        net.peer_reads(key, usize::MAX);
    }
    net.sleep(delay);
    net.end_turn();
    for &key in &keys {
        net.shutdown_write(key);
    }
    net.end_turn();
    net.sleep(STALL_TIMEOUT + Duration::from_secs(1));
    net.end_turn();
}

/// A name from arbitrary bytes, made valid: UTF-8, no NUL, 1 to 30 bytes.
fn name(bytes: &[u8]) -> String {
    let mut name: String = String::from_utf8_lossy(bytes).replace('\0', "");
    while name.len() > NAME_LEN {
        name.pop();
    }
    if name.is_empty() {
        name.push('X');
    }
    name
}

/// Reads one bet record (see [`crate::seeds::bet_record`] for the writer).
pub fn read_bet(input: &mut Reader<'_>, agencies: u16) -> Bet {
    let sel = input.u8();
    let agency = 1 + u16::from(sel & 0x7f) % agencies;
    let document = input.u32();
    let number = input.u32();
    let number = if sel & 0x80 != 0 {
        WINNING_NUMBER
    } else {
        number
    };
    let year = 1 + input.u16() % 9999;
    let month = 1 + input.u8() % 12;
    let day = 1 + input.u8() % 31;
    let first_len = 1 + usize::from(input.u8()) % NAME_LEN;
    let first = name(input.take(first_len));
    let last_len = 1 + usize::from(input.u8()) % NAME_LEN;
    let last = name(input.take(last_len));
    let date = |day: u8| format!("{year:04}-{month:02}-{day:02}");
    Bet::new(agency, &first, &last, document, &date(day), number)
        .or_else(|_| Bet::new(agency, &first, &last, document, &date(28), number))
        .expect("a valid bet")
}

/// One agency's side in valid mode.
struct Agency {
    number: u16,
    bets: Vec<Bet>,
    stream: Vec<u8>,
    sent: usize,
    key: usize,
    earlier: Vec<usize>,
}

impl Agency {
    fn encode(&mut self, per_batch: usize) {
        let frames: Vec<[u8; FRAME_LEN]> = self.bets.iter().map(|b| b.view().encode()).collect();
        self.stream.clear();
        encode_stream(
            Header::new(per_batch, self.number),
            &frames,
            &mut self.stream,
        );
        self.sent = 0;
    }

    fn send(&mut self, net: &mut Net, n: usize) {
        let bytes = &self.stream[self.sent..self.sent + n];
        self.sent += n;
        net.send(self.key, bytes);
    }

    /// What its last connection must get: every ack, the end ack, the winners.
    fn expected(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for bet in &self.bets {
            out.extend_from_slice(&Ack::new(bet.document, bet.number, Status::Stored).encode());
        }
        out.extend_from_slice(&END_ACK);
        let winners: Vec<u32> = self
            .bets
            .iter()
            .filter(|b| b.number == WINNING_NUMBER)
            .map(|b| b.document)
            .collect();
        encode_winners(&winners, &mut out).expect("few winners");
        out
    }
}

fn valid(agencies: u16, delay: Duration, ops: &[Op], input: &mut Reader<'_>) {
    let per_batch: Vec<usize> = (0..agencies)
        .map(|_| 1 + usize::from(input.u8()) % MAX_BETS_PER_BATCH)
        .collect();
    let mut all = Vec::new();
    while !input.is_empty() && all.len() < MAX_BETS {
        all.push(read_bet(input, agencies));
    }
    let mut net = Net::new(agencies, delay);
    let mut side: Vec<Agency> = (1..=agencies)
        .map(|number| {
            let mut a = Agency {
                number,
                bets: all.iter().filter(|b| b.agency == number).cloned().collect(),
                stream: Vec::new(),
                sent: 0,
                key: net.connect(),
                earlier: Vec::new(),
            };
            a.encode(per_batch[usize::from(number) - 1]);
            a
        })
        .collect();
    for op in ops {
        let a = &mut side[usize::from(op.slot) % usize::from(agencies)];
        let left = a.stream.len() - a.sent;
        match op.kind {
            0..=7 | 14 => a.send(&mut net, piece(op.arg, left)),
            8 | 15 => net.end_turn(),
            9 => match window(op.arg) {
                0 => net.stop_reading(a.key),
                n => net.peer_reads(a.key, n),
            },
            10 => net.sleep(Duration::from_millis(u64::from(op.arg % 500))),
            11 if a.earlier.len() < MAX_RECONNECTS => {
                if op.arg & 1 == 1 {
                    net.shutdown_write(a.key);
                } else {
                    net.reset(a.key);
                }
                a.earlier.push(a.key);
                a.key = net.connect();
                a.encode(1 + usize::from(op.arg >> 1) % MAX_BETS_PER_BATCH);
            }
            12 => net.peer_reads(a.key, usize::MAX),
            13 if left == 0 => net.shutdown_write(a.key),
            _ => {}
        }
    }
    for a in &mut side {
        let left = a.stream.len() - a.sent;
        a.send(&mut net, left);
    }
    net.end_turn();
    for a in &side {
        net.peer_reads(a.key, usize::MAX);
    }
    net.sleep(delay);
    net.end_turn();

    assert!(
        net.app.lottery.drawn(),
        "every agency sent its stream: the draw ran"
    );
    let rows = stored_rows(&net);
    assert_eq!(rows.len(), all.len(), "rows stored, once each");
    for a in &side {
        let mine: Vec<&[String; 6]> = rows
            .iter()
            .filter(|r| r[0] == a.number.to_string())
            .collect();
        let want: Vec<[String; 6]> = a.bets.iter().map(row).collect();
        assert_eq!(
            mine.len(),
            want.len(),
            "agency {}: rows stored and bets sent",
            a.number
        );
        for (i, (got, want)) in mine.iter().zip(&want).enumerate() {
            assert_eq!(*got, want, "agency {}, bet {}", a.number, i + 1);
        }
        assert_eq!(
            net.durable().agency[usize::from(a.number)].finished,
            Some(a.bets.len() as u64)
        );
        let expected = a.expected();
        assert!(
            !net.is_live(a.key),
            "agency {}: its last connection is done",
            a.number
        );
        let last = net.gone.iter().find(|g| g.key == a.key).expect("freed");
        assert_eq!(last.sent, a.stream, "agency {}: the whole stream", a.number);
        assert_eq!(
            last.received, expected,
            "agency {}: every ack, the end ack and the winners",
            a.number
        );
        for &key in &a.earlier {
            let got = net.received(key);
            assert!(
                expected.starts_with(got),
                "agency {}: a dropped connection got {} bytes that are not a prefix of its acks, end ack and winners",
                a.number,
                got.len()
            );
        }
    }
}

/// A bet as the server's CSV row.
fn row(bet: &Bet) -> [String; 6] {
    [
        bet.agency.to_string(),
        bet.first_name.clone(),
        bet.last_name.clone(),
        bet.document.to_string(),
        bet.birthdate.as_str().to_owned(),
        bet.number.to_string(),
    ]
}

/// The bets file's rows, field by field.
fn stored_rows(net: &Net) -> Vec<[String; 6]> {
    let sink = net.app.store.sink().clone();
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&sink[..])
        .records()
        .map(|r| {
            let r = r.expect("a CSV row");
            assert_eq!(r.len(), 6, "six columns");
            std::array::from_fn(|i| r[i].to_owned())
        })
        .collect()
}
