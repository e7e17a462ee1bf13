//! A lottery agency. Sans-IO parts ([`config`], [`data`], [`agency`],
//! [`reconnect`]) and the one piece that owns a socket ([`link`]).

pub mod agency;
pub mod cli;
pub mod config;
pub mod data;
pub mod generate;
pub mod link;
pub mod load;
pub mod reconnect;
