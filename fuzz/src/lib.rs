//! The server's fuzz targets as plain functions: `fuzz_targets/` hands them
//! to libFuzzer (`cargo fuzz run session`, `cargo fuzz run recovery`), and
//! the tests below run them over the seeds and over inputs derived from them
//! with a fixed pseudo-random generator, so the same checks run without a
//! fuzzer (`cargo test`, on stable).
//!
//! - [`session::run`]: sessions fed arbitrary bytes, and valid streams cut
//!   anywhere, through the in-memory loop of [`net`];
//! - [`recovery::run`]: `read_round` fed arbitrary file contents.

pub mod logs;
pub mod net;
pub mod reader;
pub mod recovery;
pub mod seeds;
pub mod session;

#[cfg(test)]
mod tests;
