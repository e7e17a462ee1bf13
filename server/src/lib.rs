//! The central lottery server. See the README for the design; the modules go
//! from the pure parts to the one that owns the sockets:
//!
//! - [`cli`]: the command line;
//! - [`config`]: `config.ini` and its environment overrides;
//! - [`storage`]: CSV rows, group-committed with one `fdatasync` per loop turn;
//! - [`lottery`]: agencies, their stored bets and the draw;
//! - [`session`]: one connection's state machine, sans-IO;
//! - [`server`]: the `mio` poll loop that drives them.

pub mod app;
pub mod cli;
pub mod config;
pub mod lottery;
pub mod round;
pub mod server;
pub mod session;
pub mod storage;
