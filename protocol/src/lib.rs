//! The lottery's wire format, shared by the server and the agency clients.
//!
//! Sans-IO: every function here takes bytes and returns values, `NeedMore`-style
//! `None`s or typed errors. Nothing in this crate touches a socket, a file or a
//! clock, so the whole protocol is tested in memory and can be fuzzed.
//!
//! The stream, all integers big-endian:
//!
//! ```text
//! client -> server   [u16 batch_len][u16 agency] then batch_len bytes = k 79-byte frames
//!                    frame: bet (u8 agency | 30 first name | 30 last name | u32 document
//!                           | 10 birthdate | u32 number)  or  end ("END_MESSAGE" + 68 NUL)
//! server -> client   per batch, after it is stored: one 9-byte ack per bet
//!                    (u32 document | u32 number | u8 status), then "END" + 6 NUL if the
//!                    batch held the end frame
//!                    after the draw: [u16 byte_len][u32 document]*  then close
//! ```

mod ack;
mod bet;
mod frame;
mod winners;

pub use ack::{ACK_LEN, Ack, END_ACK, Reply, Status, decode_reply};
pub use bet::{Bet, BetError, BetView, BirthDate, NAME_LEN, WINNING_NUMBER};
pub use frame::{
    BatchHeader, END_FRAME, FRAME_LEN, HEADER_LEN, HeaderError, MAX_BATCH_LEN, MAX_BETS_PER_BATCH,
    RejectReason, Rejection, decode_bet, encode_batch, is_end_frame,
};
pub use winners::{MAX_WINNERS, TooManyWinners, WinnersError, decode_winners, encode_winners};
