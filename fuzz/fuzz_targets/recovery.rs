//! The recovery reader fed arbitrary bets and state files: see
//! `server_fuzz::recovery`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| server_fuzz::recovery::run(data));
