//! Server-to-client acks: one 9-byte record per bet, and the end ack.

use std::fmt;

use crate::frame::RejectReason;

/// Bytes of an ack record.
pub const ACK_LEN: usize = 9;
/// The ack that closes a batch holding the end frame: `END` and 6 NUL bytes.
pub const END_ACK: [u8; ACK_LEN] = *b"END\0\0\0\0\0\0";

/// The status byte of an ack. `Stored` is the only success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// The bet is written and synced to disk.
    Stored = 1,
    /// The frame's agency byte is not the low byte of the header's agency.
    AgencyMismatch = 2,
    /// A name is empty, not UTF-8, or has bytes after its NUL padding.
    InvalidName = 3,
    /// The birthdate is not a real day written as `YYYY-MM-DD`.
    InvalidBirthdate = 4,
}

impl Status {
    pub fn from_byte(byte: u8) -> Option<Status> {
        match byte {
            1 => Some(Status::Stored),
            2 => Some(Status::AgencyMismatch),
            3 => Some(Status::InvalidName),
            4 => Some(Status::InvalidBirthdate),
            _ => None,
        }
    }
}

impl From<RejectReason> for Status {
    fn from(reason: RejectReason) -> Status {
        match reason {
            RejectReason::AgencyMismatch { .. } => Status::AgencyMismatch,
            RejectReason::InvalidName { .. } => Status::InvalidName,
            RejectReason::InvalidBirthdate => Status::InvalidBirthdate,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Stored => "stored",
            Status::AgencyMismatch => "agency mismatch",
            Status::InvalidName => "invalid name",
            Status::InvalidBirthdate => "invalid birthdate",
        })
    }
}

/// The ack of one bet. `status` is the raw byte, so that a peer's unknown code
/// is shown rather than lost; [`Status::from_byte`] names the known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub document: u32,
    pub number: u32,
    pub status: u8,
}

impl Ack {
    pub fn new(document: u32, number: u32, status: Status) -> Ack {
        Ack {
            document,
            number,
            status: status as u8,
        }
    }

    pub fn encode(&self) -> [u8; ACK_LEN] {
        let mut out = [0u8; ACK_LEN];
        out[..4].copy_from_slice(&self.document.to_be_bytes());
        out[4..8].copy_from_slice(&self.number.to_be_bytes());
        out[8] = self.status;
        out
    }
}

/// One 9-byte record from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Ack(Ack),
    End,
}

/// Decodes one 9-byte record. The end ack is recognised by its exact bytes.
pub fn decode_reply(bytes: &[u8; ACK_LEN]) -> Reply {
    if *bytes == END_ACK {
        return Reply::End;
    }
    Reply::Ack(Ack {
        document: u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")),
        number: u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
        status: bytes[8],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_layout_and_round_trip() {
        let ack = Ack::new(30904465, 7574, Status::Stored);
        let bytes = ack.encode();
        assert_eq!(bytes, [0x01, 0xd7, 0x90, 0x91, 0, 0, 0x1d, 0x96, 1]);
        assert_eq!(decode_reply(&bytes), Reply::Ack(ack));
        assert_eq!(decode_reply(&END_ACK), Reply::End);
        assert_eq!(&END_ACK[..3], b"END");
    }

    #[test]
    fn status_codes_are_stable() {
        for (byte, status) in [
            (1, Status::Stored),
            (2, Status::AgencyMismatch),
            (3, Status::InvalidName),
            (4, Status::InvalidBirthdate),
        ] {
            assert_eq!(status as u8, byte);
            assert_eq!(Status::from_byte(byte), Some(status));
        }
        assert_eq!(Status::from_byte(0), None);
        assert_eq!(Status::from_byte(5), None);
    }
}
