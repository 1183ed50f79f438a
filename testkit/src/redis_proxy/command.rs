//! The requests the proxy reads: RESP arrays of bulk strings (what every client library
//! sends) or inline commands, parsed just far enough to name the command and its keys.

use std::fmt;

/// One request as the client sent it: the command's name and its arguments.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    parts: Vec<Vec<u8>>,
}

impl Command {
    /// The command's name, upper case (`GET`, `EVAL`, ...).
    pub fn name(&self) -> String {
        self.parts
            .first()
            .map(|name| String::from_utf8_lossy(name).to_ascii_uppercase())
            .unwrap_or_default()
    }

    /// Whether its name is `name`, in any case.
    pub fn is(&self, name: &str) -> bool {
        self.parts
            .first()
            .is_some_and(|first| first.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// Every argument after the name.
    pub fn args(&self) -> &[Vec<u8>] {
        self.parts.get(1..).unwrap_or_default()
    }

    /// The keys it names: the `numkeys` keys of `EVAL`, `EVALSHA` and `FCALL` (and their `_RO`
    /// forms), every argument of `DEL`, `UNLINK`, `EXISTS` and `MGET`, the first argument of
    /// any other command but those without keys (`PING`, `HELLO`, pub/sub, ...).
    pub fn keys(&self) -> Vec<&[u8]> {
        let args = self.args();
        let name = self.name();
        match name.as_str() {
            "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => {
                let count = args
                    .get(1)
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
                args.iter().skip(2).take(count).map(Vec::as_slice).collect()
            }
            "DEL" | "UNLINK" | "EXISTS" | "MGET" | "TOUCH" => {
                args.iter().map(Vec::as_slice).collect()
            }
            "PING" | "HELLO" | "AUTH" | "SELECT" | "CLIENT" | "INFO" | "SCRIPT" | "FUNCTION"
            | "CLUSTER" | "READONLY" | "READWRITE" | "QUIT" | "COMMAND" | "MULTI" | "EXEC"
            | "DISCARD" | "SUBSCRIBE" | "SSUBSCRIBE" | "PSUBSCRIBE" | "UNSUBSCRIBE"
            | "SUNSUBSCRIBE" | "PUNSUBSCRIBE" | "PUBLISH" | "SPUBLISH" => Vec::new(),
            _ => args.first().map(Vec::as_slice).into_iter().collect(),
        }
    }

    /// Whether one of its keys ends with `suffix` (`:token`, `:lease`).
    pub fn has_key_ending(&self, suffix: &str) -> bool {
        self.keys()
            .iter()
            .any(|key| key.ends_with(suffix.as_bytes()))
    }

    /// The script of an `EVAL`, as text.
    pub fn script(&self) -> Option<String> {
        if self.is("EVAL") || self.is("EVAL_RO") {
            self.args()
                .first()
                .map(|script| String::from_utf8_lossy(script).into_owned())
        } else {
            None
        }
    }

    /// Whether it may change data: a write command, or a script or function that is not a
    /// read-only form (the proxy cannot tell what a script does).
    pub fn is_write(&self) -> bool {
        const WRITES: [&str; 20] = [
            "SET",
            "SETEX",
            "PSETEX",
            "SETNX",
            "GETSET",
            "GETDEL",
            "GETEX",
            "DEL",
            "UNLINK",
            "EXPIRE",
            "PEXPIRE",
            "EXPIREAT",
            "PEXPIREAT",
            "PERSIST",
            "RENAME",
            "INCR",
            "EVAL",
            "EVALSHA",
            "FCALL",
            "FLUSHALL",
        ];
        WRITES.iter().any(|name| self.is(name))
    }
}

impl fmt::Debug for Command {
    /// The name and the keys; values may be secrets and are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<_> = self
            .keys()
            .into_iter()
            .map(String::from_utf8_lossy)
            .collect();
        write!(f, "{} {keys:?}", self.name())
    }
}

/// One whole request at the start of `buffer` and its length in bytes, `None` if it is not all
/// there yet. Requests are RESP arrays of bulk strings, or inline commands (a line of words).
pub(super) fn parse(buffer: &[u8]) -> std::io::Result<Option<(Command, usize)>> {
    let malformed = || std::io::Error::other("malformed Redis request");
    let Some(&first) = buffer.first() else {
        return Ok(None);
    };
    if first != b'*' {
        let Some(end) = buffer.iter().position(|&byte| byte == b'\n') else {
            return Ok(None);
        };
        let parts = buffer[..end]
            .split(|byte| byte.is_ascii_whitespace())
            .filter(|word| !word.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return Ok(Some((Command { parts }, end + 1)));
    }
    let Some((count, mut at)) = number(buffer, 1)? else {
        return Ok(None);
    };
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        match buffer.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(_) => return Err(malformed()),
        }
        let Some((length, start)) = number(buffer, at + 1)? else {
            return Ok(None);
        };
        let end = start + length;
        if buffer.len() < end + 2 {
            return Ok(None);
        }
        parts.push(buffer[start..end].to_vec());
        at = end + 2;
    }
    Ok(Some((Command { parts }, at)))
}

/// The decimal number at `at`, ended by CRLF, and where the next line starts.
fn number(buffer: &[u8], at: usize) -> std::io::Result<Option<(usize, usize)>> {
    let rest = buffer.get(at..).unwrap_or_default();
    let Some(end) = rest.windows(2).position(|pair| pair == b"\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&rest[..end]).map_err(std::io::Error::other)?;
    let value = text.parse().map_err(std::io::Error::other)?;
    Ok(Some((value, at + end + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(parts: &[&str]) -> Vec<u8> {
        let mut bytes = format!("*{}\r\n", parts.len()).into_bytes();
        for part in parts {
            bytes.extend_from_slice(format!("${}\r\n{part}\r\n", part.len()).as_bytes());
        }
        bytes
    }

    #[test]
    fn parses_arrays_in_pieces_and_inline_commands() {
        let bytes = request(&["EVAL", "return 1", "2", "a:token", "a:lease", "x"]);
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (command, length) = parse(&bytes).unwrap().unwrap();
        assert_eq!(length, bytes.len());
        assert_eq!(command.keys(), [b"a:token".as_slice(), b"a:lease"]);
        assert!(command.is_write() && command.has_key_ending(":lease"));
        assert_eq!(command.script().as_deref(), Some("return 1"));
        let (inline, length) = parse(b"get a:token\r\nPING").unwrap().unwrap();
        assert_eq!((inline.name().as_str(), length), ("GET", 13));
        assert!(!inline.is_write() && inline.has_key_ending(":token"));
        assert!(parse(b"*1\r\n+oops\r\n").is_err());
    }
}
