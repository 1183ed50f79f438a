//! Text that goes into an error's message: what a server wrote, made safe to show, and
//! durations in a message's words.

use std::time::Duration;

/// `duration` as an error message says it: `60 s`, `1.5 s`, `250 ms`.
pub(crate) fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// Makes text from a server safe to show: control characters and runs of whitespace become one
/// space, every secret is replaced by `[redacted]`, and the result is cut to `max` characters.
pub(crate) fn sanitize(text: &str, secrets: &[&str], max: usize) -> String {
    let scrubbed = scrub(text, secrets);
    let mut out = String::with_capacity(scrubbed.len().min(max + 3));
    let mut chars = 0;
    let mut pending_space = false;
    for c in scrubbed.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if chars + usize::from(pending_space) >= max {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// Replaces every secret in `text` by `[redacted]`, the longest first: a secret that contains
/// another must not be cut in two by the shorter one's replacement.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|secret| !secret.is_empty())
        .collect();
    secrets.sort_unstable_by_key(|secret| std::cmp::Reverse(secret.len()));
    let mut scrubbed = text.to_owned();
    for secret in secrets {
        if scrubbed.contains(secret) {
            scrubbed = scrubbed.replace(secret, "[redacted]");
        }
    }
    scrubbed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_collapses_whitespace_strips_controls_and_truncates() {
        assert_eq!(sanitize("  a\r\n\tb \x07 c  ", &[], 100), "a b c");
        assert_eq!(sanitize("abcdef", &[], 3), "abc…");
        assert_eq!(sanitize("ééééé", &[], 2), "éé…");
    }

    #[test]
    fn sanitize_removes_every_secret() {
        let text = "echo: client_secret=s3cret&code=c0de s3cret";
        let clean = sanitize(text, &["s3cret", "c0de", ""], 200);
        assert_eq!(
            clean,
            "echo: client_secret=[redacted]&code=[redacted] [redacted]"
        );
    }

    #[test]
    fn a_secret_that_contains_another_is_scrubbed_whole() {
        let clean = sanitize("token=XYZsecret", &["secret", "XYZsecret"], 200);
        assert_eq!(clean, "token=[redacted]");
    }
}
