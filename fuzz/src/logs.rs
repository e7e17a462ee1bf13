//! A logger that writes nowhere but checks every line the server logs, at
//! debug level (the most it writes): one line, no terminal escape, and it
//! parses as strictly as the course's tools read it (`tp0_log::parse_line`).
//! Peer bytes reach the log (echo lines, errors that quote input), so this
//! holds the escaping to arbitrary input.

use std::fmt::Write;
use std::sync::Once;

struct Checker;

impl log::Log for Checker {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        thread_local! {
            static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            let _ = write!(line, "{}", record.args());
            check_line(line);
        });
    }

    fn flush(&self) {}
}

static CHECKER: Checker = Checker;

/// Installs the checking logger once per process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another logger already installed (none is, in the targets) keeps its place.
        if log::set_logger(&CHECKER).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
}

/// A whole log line: one line, no escape byte, strictly parseable.
pub fn check_line(line: &str) {
    check_text(line);
    if let Err(e) = tp0_log::parse_line(line) {
        panic!("a log line that does not parse ({e}): {line:?}");
    }
}

/// A session error as the loop logs it (`server.rs`, `read`): its text may
/// quote peer bytes, escaped by `field`.
pub fn check_error(e: &server::session::SessionError) {
    check_line(&format!(
        "action: {} | result: fail | ip: 127.0.0.1 | error: {}",
        e.action(),
        tp0_log::field(e)
    ));
}

fn check_text(text: &str) {
    assert!(
        !text.contains(['\n', '\r', '\u{1b}']),
        "a line break or escape byte in a log line: {text:?}"
    );
}
