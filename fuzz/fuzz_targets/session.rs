//! Sessions fed arbitrary bytes, and valid streams cut anywhere: see
//! `server_fuzz::session`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| server_fuzz::session::run(data));
