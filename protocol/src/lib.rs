//! The lottery's wire format, shared by the server and the agency clients.
//!
//! Sans-IO: every function here takes bytes and returns values, `None`s for
//! "need more bytes", or typed errors. Nothing in this crate touches a socket,
//! a file or a clock, so the whole protocol is tested in memory and fuzzed.
//!
//! One whole conversation, all integers big-endian, as the reference client
//! and server exchange it (`shared/wire/agency-1.*.bin`: 5 bets, batches of 2):
//!
//! ```text
//! client -> server
//!   00 9e 00 01                          header, once: u16 batch size in bytes (158 = 2 bets),
//!                                        u16 agency (1)
//!   [bet 1][bet 2]                       batch 1: 158 bytes
//!   [bet 3][bet 4]                       batch 2: 158 bytes
//!   [bet 5][END_MESSAGE + 68 x 00]       batch 3: the last, ends with the end frame
//!
//!   bet frame, 79 bytes:
//!   | u8 agency (low 8 bits) | 30 first name, UTF-8, NUL-padded | 30 last name |
//!   | u32 document | 10 birthdate "YYYY-MM-DD" | u32 number |
//!
//! server -> client, each batch answered once it is on disk:
//!   [ack 1][ack 2]                       9 bytes each: u32 document | u32 number | u8 status
//!   [ack 3][ack 4]
//!   [ack 5][45 4e 44 00 00 00 00 00 00]  the end ack "END" + 6 NUL closes the last batch's answer
//!   ... the draw ...
//!   00 08 [u32 document][u32 document]   u16 length in bytes, then the agency's winners;
//!                                        then the server closes
//! ```

mod ack;
mod bet;
mod frame;
mod stream;
mod winners;

pub use ack::{ACK_LEN, Ack, END_ACK, Reply, Status, decode_reply};
pub use bet::{Bet, BetError, BetView, BirthDate, NAME_LEN, WINNING_NUMBER};
pub use frame::{
    END_FRAME, FRAME_LEN, HEADER_LEN, Header, HeaderError, MAX_BATCH_LEN, MAX_BETS_PER_BATCH,
    RejectReason, Rejection, decode_bet, is_end_frame, is_lottery_stream,
};
pub use stream::{Batch, StreamDecoder, StreamError, Unit, encode_stream};
pub use winners::{MAX_WINNERS, TooManyWinners, WinnersError, decode_winners, encode_winners};
