//! A token as it is kept outside the process: JSON, with the access token's expiry as an
//! absolute Unix time, so that whoever reads it later (this program after a restart, another
//! replica of a fleet) computes the time left by its own clock.
//!
//! [`FileStore`](crate::FileStore) writes this form to its file, and the Redis fleet seals it
//! into its values; both refuse a layout version they do not know rather than misread it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::{Lineage, Token};

/// The layout; a saved token with a later version is refused rather than misread.
pub(crate) const VERSION: u32 = 1;

/// `token` in its saved form, saved at `now`: serialize it with any `serde_json` writer.
#[derive(Serialize)]
pub(crate) struct Saving<'a> {
    version: u32,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    /// When the token was saved, so a reader can tell its whole lifetime from the time it has
    /// left (a cache's refresh margin is at most half the lifetime). Optional: older readers
    /// ignore it, and tokens saved before it have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    /// `DPoP` for a bound token; absent for a bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "no_fields")]
    extra: &'a Map<String, Value>,
    /// The set's [`Lineage`], so that no reader takes it over a newer one; absent in sets
    /// saved before lineages, which load as the oldest.
    #[serde(skip_serializing_if = "is_unknown")]
    lineage: u64,
}

impl<'a> Saving<'a> {
    pub(crate) fn new(token: &'a Token, now: SystemTime) -> Self {
        // Rounded down: a token is taken for expired a fraction of a second early, never late.
        let expires_at = token
            .expires_in()
            .and_then(|lifetime| now.checked_add(lifetime))
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map(|since_epoch| since_epoch.as_secs());
        let issued_at = expires_at.and_then(|_| now.duration_since(UNIX_EPOCH).ok());
        Self {
            version: VERSION,
            access_token: token.access_token().expose(),
            expires_at,
            issued_at: issued_at.map(|since_epoch| since_epoch.as_secs()),
            scope: token.scopes(),
            refresh_token: token.refresh_token().map(|secret| secret.expose()),
            id_token: token.id_token().map(|secret| secret.expose()),
            token_type: token.binding().map(|_| "DPoP"),
            extra: token.extra(),
            lineage: token.lineage().as_u64(),
        }
    }
}

impl Saving<'_> {
    /// The saved form as JSON (indented when `pretty`) in a buffer sized to it first and
    /// zeroed when dropped: a buffer that grew while the tokens were written into it would
    /// leave copies of them behind in freed memory.
    pub(crate) fn to_json(
        &self,
        pretty: bool,
        trailing_newline: bool,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let write = |writer: &mut dyn std::io::Write| {
            if pretty {
                serde_json::to_writer_pretty(writer, self)
            } else {
                serde_json::to_writer(writer, self)
            }
        };
        let mut counter = crate::secret::Counter(0);
        write(&mut counter).ok()?;
        let mut json = Zeroizing::new(Vec::with_capacity(counter.0 + 1));
        write(&mut *json).ok()?;
        if trailing_newline {
            json.push(b'\n');
        }
        Some(json)
    }
}

#[derive(Deserialize)]
struct Saved {
    version: u32,
    access_token: String,
    expires_at: Option<u64>,
    issued_at: Option<u64>,
    scope: Option<Vec<String>>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    token_type: Option<String>,
    #[serde(default)]
    extra: Map<String, Value>,
    #[serde(default)]
    lineage: u64,
}

fn no_fields(extra: &&Map<String, Value>) -> bool {
    extra.is_empty()
}

fn is_unknown(lineage: &u64) -> bool {
    *lineage == Lineage::UNKNOWN.as_u64()
}

/// Why saved bytes are not a token. Never quotes the bytes, which hold secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Not JSON of the saved layout; where the reader stopped.
    Malformed { line: usize, column: usize },
    /// A layout version this program does not read.
    Version(u32),
}

/// The token saved in `bytes`, with its lifetime counted from `now` (zero once it has passed;
/// none when `expires_at` lies beyond what the system's clock represents). Never panics,
/// whatever the bytes.
pub(crate) fn decode(bytes: &[u8], now: SystemTime) -> Result<Token, Unreadable> {
    decode_with_lifetime(bytes, now).map(|(token, _)| token)
}

/// As [`decode`], with the token's whole lifetime as it was when saved, if the saved form
/// tells it.
pub(crate) fn decode_with_lifetime(
    bytes: &[u8],
    now: SystemTime,
) -> Result<(Token, Option<Duration>), Unreadable> {
    // serde's messages can quote the input: only the position is kept.
    let saved: Saved = serde_json::from_slice(bytes).map_err(|error| Unreadable::Malformed {
        line: error.line(),
        column: error.column(),
    })?;
    if saved.version != VERSION {
        return Err(Unreadable::Version(saved.version));
    }
    // An expiry past what this system's clock can represent (`u64::MAX` seconds, say) is no
    // expiry, as the cache takes a lifetime too long for an `Instant`: the token is used until
    // a request with it gets a 401 answer.
    let expires_at = saved
        .expires_at
        .filter(|&secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)).is_some());
    let lifetime = expires_at
        .zip(saved.issued_at)
        .map(|(expires_at, issued_at)| Duration::from_secs(expires_at.saturating_sub(issued_at)));
    let mut token = Token::bearer(saved.access_token)
        .with_extra(saved.extra)
        .with_lineage(Lineage::from_u64(saved.lineage));
    if let Some(at) = expires_at.and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
    {
        token = token.with_expires_in(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    if let Some(scopes) = saved.scope {
        token = token.with_scopes(scopes);
    }
    if let Some(refresh_token) = saved.refresh_token {
        token = token.with_refresh_token(refresh_token);
    }
    if let Some(id_token) = saved.id_token {
        token = token.with_id_token(id_token);
    }
    // A DPoP-bound token is good only with its key, which is not saved: it loads as expired,
    // so the cache refreshes it, with a proof, before anything is sent with it.
    if saved
        .token_type
        .is_some_and(|kind| kind.eq_ignore_ascii_case("dpop"))
    {
        token = token.with_expires_in(Duration::ZERO);
    }
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifetime_is_read_back_beside_the_time_left() {
        let saved_at = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = Token::bearer("a").with_expires_in(Duration::from_secs(300));
        let json = serde_json::to_vec(&Saving::new(&token, saved_at)).unwrap();
        let later = saved_at + Duration::from_secs(100);
        let (token, lifetime) = decode_with_lifetime(&json, later).unwrap();
        assert_eq!(token.expires_in(), Some(Duration::from_secs(200)));
        assert_eq!(lifetime, Some(Duration::from_secs(300)));
    }

    #[test]
    fn a_large_token_set_is_written_into_a_buffer_that_never_grows() {
        let token = Token::bearer("a".repeat(40_000)).with_refresh_token("r".repeat(20_000));
        for pretty in [false, true] {
            let json = Saving::new(&token, UNIX_EPOCH)
                .to_json(pretty, true)
                .unwrap();
            // Sized first: room for the newline and nothing more was ever needed.
            assert_eq!(json.capacity(), json.len(), "pretty: {pretty}");
            assert_eq!(
                decode(&json, UNIX_EPOCH)
                    .unwrap()
                    .access_token()
                    .expose()
                    .len(),
                40_000
            );
        }
    }

    #[test]
    fn a_token_saved_without_issue_time_or_expiry_has_no_known_lifetime() {
        let older = br#"{"version":1,"access_token":"a","expires_at":1000300}"#;
        let (_, lifetime) = decode_with_lifetime(older, UNIX_EPOCH).unwrap();
        assert_eq!(lifetime, None);
        let json = serde_json::to_vec(&Saving::new(&Token::bearer("a"), UNIX_EPOCH)).unwrap();
        let (token, lifetime) = decode_with_lifetime(&json, UNIX_EPOCH).unwrap();
        assert_eq!((token.expires_in(), lifetime), (None, None));
        assert!(!String::from_utf8(json).unwrap().contains("issued_at"));
    }

    #[test]
    fn the_lineage_is_saved_and_read_back_and_a_set_saved_without_one_is_the_oldest() {
        let token = Token::bearer("a").with_lineage(Lineage::from_u64(42));
        let json = serde_json::to_vec(&Saving::new(&token, UNIX_EPOCH)).unwrap();
        assert_eq!(
            decode(&json, UNIX_EPOCH).unwrap().lineage(),
            token.lineage()
        );
        let older = br#"{"version":1,"access_token":"a"}"#;
        assert_eq!(
            decode(older, UNIX_EPOCH).unwrap().lineage(),
            Lineage::UNKNOWN
        );
    }

    #[cfg(feature = "dpop")]
    #[test]
    fn a_bound_token_is_saved_as_dpop_and_loads_expired_with_its_refresh_token() {
        let key = crate::DpopKey::generate().unwrap();
        let token = Token::bearer("a")
            .with_refresh_token("r")
            .with_expires_in(Duration::from_secs(300))
            .with_dpop(&key);
        let json = serde_json::to_vec(&Saving::new(&token, UNIX_EPOCH)).unwrap();
        assert!(String::from_utf8_lossy(&json).contains(r#""token_type":"DPoP""#));

        let loaded = decode(&json, UNIX_EPOCH).unwrap();
        assert_eq!(loaded.expires_in(), Some(Duration::ZERO));
        assert_eq!(loaded.refresh_token().unwrap().expose(), "r");
        assert_eq!(loaded.scheme(), "Bearer");
    }
}
