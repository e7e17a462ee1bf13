//! The exercise's log lines, `action: A | result: R | key: value | …`, which
//! users and the course's tools read by splitting on `|`.
//!
//! Both binaries write their details through [`field`] whenever a value may
//! hold text from outside (an echo message, a config value, a file path, an
//! error that quotes input): it escapes what would break the format, so a
//! peer that sends `x | result: fail` or a newline cannot add fields or lines.
//! [`parse_line`] is the strict reading users apply; the tests hold every
//! line both binaries write to it.

use std::fmt::{self, Display, Write};

/// A value written into a log line with `|`, `\` and control characters
/// escaped: `|` as `\x7c`, `\` as `\\`, newline, carriage return and tab as
/// `\n`, `\r`, `\t`, any other control character as `\xNN` or `\u{NNNN}`.
/// Everything else, accents included, is written as it is. Escaping is
/// reversible, and an escaped value never contains `|` or a line break.
pub struct Field<T>(pub T);

/// Wraps `value` for a log line: `info!("… | msg: {}", field(&text))`.
pub fn field<T: Display>(value: T) -> Field<T> {
    Field(value)
}

impl<T: Display> Display for Field<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Escapes as the value is formatted: no intermediate String.
        write!(Escaper(f), "{}", self.0)
    }
}

struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut clean = 0;
        for (at, c) in s.char_indices() {
            let escaped: Option<&str> = match c {
                '|' => Some("\\x7c"),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                c if c.is_control() => None,
                _ => continue,
            };
            self.0.write_str(&s[clean..at])?;
            match escaped {
                Some(text) => self.0.write_str(text)?,
                None if (c as u32) < 0x100 => write!(self.0, "\\x{:02x}", c as u32)?,
                None => write!(self.0, "\\u{{{:04x}}}", c as u32)?,
            }
            clean = at + c.len_utf8();
        }
        self.0.write_str(&s[clean..])
    }
}

/// Makes a closed log output end the process quietly, as it ends `cat` or
/// `grep`: `server | head -1` then exits by SIGPIPE instead of aborting on a
/// failed write (the logger cannot report it). Rust ignores SIGPIPE by
/// default; sockets are unaffected, since std sends on them with
/// `MSG_NOSIGNAL` and a closed peer is an `EPIPE` error as before. Call first
/// thing in `main`.
pub fn end_on_closed_output() {
    // SAFETY: restoring a signal's default disposition at start-up, before
    // any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A log line as users read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub action: String,
    pub result: String,
    /// Every later field, in order.
    pub details: Vec<(String, String)>,
}

impl Line {
    /// The value of the first detail named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Keys a detail may not have: a reader that looks them up by name would take
/// the detail for the line's own action or result (or the logger's source).
pub const RESERVED_KEYS: [&str; 3] = ["action", "result", "source"];

/// Reads one line as the exercise's tools do: whatever precedes `action: `
/// (timestamp, level, target) is ignored; then split on `|`; the first field
/// is `action: A`, the second `result: R` with R one of `success`, `fail`,
/// `in_progress`; every later field is `key: value` with a non-empty key that
/// is not one of [`RESERVED_KEYS`]. The error says what is wrong.
pub fn parse_line(line: &str) -> Result<Line, String> {
    let Some((_, rest)) = line.split_once("action: ") else {
        return Err("no `action: `".to_owned());
    };
    let mut fields = rest.split('|').map(str::trim);
    let action = fields.next().unwrap_or_default().to_owned();
    if action.is_empty() {
        return Err("empty action".to_owned());
    }
    let result = fields
        .next()
        .and_then(|f| f.strip_prefix("result: "))
        .ok_or("the second field is not `result: …`")?
        .to_owned();
    if !["success", "fail", "in_progress"].contains(&result.as_str()) {
        return Err(format!(
            "result {result:?} is not success, fail or in_progress"
        ));
    }
    let details = fields
        .map(|f| {
            let (key, value) = f
                .split_once(':')
                .ok_or_else(|| format!("field {f:?} is not `key: value`"))?;
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(format!("field {f:?} has no one-word key"));
            }
            if RESERVED_KEYS.contains(&key) {
                return Err(format!("field {f:?} uses the reserved key {key:?}"));
            }
            Ok((key.to_owned(), value.trim().to_owned()))
        })
        .collect::<Result<_, _>>()?;
    Ok(Line {
        action,
        result,
        details,
    })
}

/// Every line of `log` through [`parse_line`]; the first that fails is
/// returned with its text.
pub fn parse_log(log: &str) -> Result<Vec<Line>, String> {
    log.lines()
        .map(|l| parse_line(l).map_err(|e| format!("{e}: {l}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_outside_cannot_add_fields_or_lines() {
        let table = [
            ("plain", "plain"),
            ("Ñandú O'Brien", "Ñandú O'Brien"),
            ("x | result: fail", "x \\x7c result: fail"),
            ("a\nb\r\n", "a\\nb\\r\\n"),
            ("tab\there", "tab\\there"),
            ("back\\slash", "back\\\\slash"),
            ("\u{1b}[2K", "\\x1b[2K"),
            ("\u{7f}\u{85}", "\\x7f\\x85"),
            ("\u{2028}", "\u{2028}"), // a line separator is not a control character
            ("", ""),
        ];
        for (raw, want) in table {
            assert_eq!(field(raw).to_string(), want, "{raw:?}");
            let line = format!("action: a | result: success | msg: {}", field(raw));
            let parsed = parse_line(&line).unwrap();
            assert_eq!(parsed.details.len(), 1, "{line}");
            assert_eq!(line.lines().count(), 1);
        }
        // Any Display, not only strings.
        let e = std::io::Error::other("bad | thing\n");
        assert_eq!(field(&e).to_string(), "bad \\x7c thing\\n");
    }

    #[test]
    fn the_strict_reading() {
        let ok = "2026-11-30T00:00:00.000Z INFO  [server] action: sorteo | result: success | cant_apuestas: 3";
        assert_eq!(
            parse_line(ok),
            Ok(Line {
                action: "sorteo".into(),
                result: "success".into(),
                details: vec![("cant_apuestas".into(), "3".into())],
            })
        );
        assert_eq!(parse_line(ok).unwrap().get("cant_apuestas"), Some("3"));
        let bad = [
            ("no action here", "no `action: `"),
            ("action: x", "the second field is not `result: …`"),
            (
                "action: x | result: ok",
                "result \"ok\" is not success, fail or in_progress",
            ),
            (
                "action: x | result: fail | oops",
                "field \"oops\" is not `key: value`",
            ),
            (
                "action: x | result: fail | : v",
                "field \": v\" has no one-word key",
            ),
            (
                "action: x | result: fail | result: success",
                "field \"result: success\" uses the reserved key \"result\"",
            ),
            (
                "action: x | result: fail | source: y",
                "field \"source: y\" uses the reserved key \"source\"",
            ),
        ];
        for (line, want) in bad {
            assert_eq!(parse_line(line), Err(want.to_owned()), "{line}");
        }
        assert!(parse_log("action: a | result: success\nstray").is_err());
    }
}
