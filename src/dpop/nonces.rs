//! The nonces servers hand out for DPoP proofs (RFC 9449 section 8 and 9), remembered per
//! origin: the newest `DPoP-Nonce` an origin sent, from any answer, goes into the next proof
//! for that origin.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use http::HeaderMap;

/// How many origins a key remembers nonces for. A new origin beyond it takes the place of the
/// one first seen longest ago, which then costs a resend if it demands a nonce again.
const MAX_ORIGINS: usize = 256;
/// The longest nonce kept; RFC 9449 sets no limit, and servers send a few dozen characters.
const MAX_NONCE: usize = 1024;

/// The nonces of every origin a key's proofs went to.
#[derive(Default)]
pub(crate) struct Nonces {
    origins: ArcSwap<Vec<Arc<OriginNonce>>>,
}

/// One origin's newest nonce. A request holds its origin's while it is out, so that the
/// answer's nonce lands without another lookup.
pub(crate) struct OriginNonce {
    scheme: Box<str>,
    /// `host[:port]`, lowercase, without the scheme's default port.
    authority: Box<str>,
    nonce: ArcSwapOption<String>,
}

impl Nonces {
    /// The nonce of the origin `scheme://authority` (user info and a default port ignored).
    pub(crate) fn of_origin(&self, scheme: &str, authority: &str) -> Arc<OriginNonce> {
        let authority = super::origin_authority(scheme, authority);
        let find = |origins: &[Arc<OriginNonce>]| {
            origins
                .iter()
                .find(|origin| {
                    *origin.scheme == *scheme && origin.authority.eq_ignore_ascii_case(authority)
                })
                .cloned()
        };
        if let Some(origin) = find(&self.origins.load()) {
            return origin;
        }
        let new = Arc::new(OriginNonce {
            scheme: scheme.into(),
            authority: authority.to_ascii_lowercase().into(),
            nonce: ArcSwapOption::empty(),
        });
        let mut found = None;
        self.origins.rcu(|origins| {
            found = find(origins);
            let mut origins = Vec::clone(origins);
            if found.is_none() {
                if origins.len() >= MAX_ORIGINS {
                    origins.remove(0);
                }
                origins.push(Arc::clone(&new));
            }
            origins
        });
        found.unwrap_or(new)
    }
}

impl OriginNonce {
    /// The newest nonce, if the origin sent one.
    pub(crate) fn nonce(&self) -> Option<Arc<String>> {
        self.nonce.load_full()
    }

    /// Keeps the nonce of an answer's `DPoP-Nonce` header, when it has a well-formed one.
    pub(crate) fn record(&self, headers: &HeaderMap) {
        let Some(value) = headers.get("dpop-nonce") else {
            return;
        };
        let value = value.as_bytes();
        // RFC 9449 section 8.1: 1*NQCHAR (visible ASCII but `"` and `\`).
        let well_formed = !value.is_empty()
            && value.len() <= MAX_NONCE
            && value
                .iter()
                .all(|&byte| (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'\\');
        if !well_formed {
            return;
        }
        let Ok(nonce) = std::str::from_utf8(value) else {
            return;
        };
        if self.nonce.load().as_deref().map(String::as_str) != Some(nonce) {
            self.nonce.store(Some(Arc::new(nonce.to_owned())));
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with_nonce(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("dpop-nonce", HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn each_origin_keeps_its_own_newest_nonce() {
        let nonces = Nonces::default();
        let api = nonces.of_origin("https", "api.example.com");
        api.record(&with_nonce("n1"));
        api.record(&with_nonce("n2"));
        let auth = nonces.of_origin("https", "auth.example.com");
        auth.record(&with_nonce("a1"));

        assert_eq!(
            nonces
                .of_origin("https", "API.example.com")
                .nonce()
                .as_deref()
                .map(String::as_str),
            Some("n2")
        );
        assert_eq!(
            nonces
                .of_origin("https", "user@auth.example.com")
                .nonce()
                .as_deref()
                .map(String::as_str),
            Some("a1")
        );
        assert_eq!(nonces.of_origin("http", "api.example.com").nonce(), None);
    }

    #[test]
    fn an_origin_first_seen_after_the_table_is_full_keeps_its_nonce() {
        let nonces = Nonces::default();
        for n in 0..MAX_ORIGINS {
            nonces.of_origin("https", &format!("api{n}.example.com"));
        }
        let late = nonces.of_origin("https", "late.example.com");
        late.record(&with_nonce("kept"));
        let again = nonces.of_origin("https", "late.example.com");
        assert_eq!(again.nonce().as_deref().map(String::as_str), Some("kept"));
        // The origin first seen made room; the rest stay.
        assert_eq!(nonces.origins.load().len(), MAX_ORIGINS);
        assert!(Arc::ptr_eq(
            &nonces.of_origin("https", "api1.example.com"),
            &nonces.of_origin("https", "api1.example.com")
        ));
    }

    #[test]
    fn malformed_nonces_are_not_kept() {
        let origin = Nonces::default().of_origin("https", "api.example.com");
        origin.record(&with_nonce("good"));
        for bad in ["", "has space", "quo\"te", "back\\slash"] {
            origin.record(&with_nonce(bad));
        }
        origin.record(&HeaderMap::new());
        assert_eq!(origin.nonce().as_deref().map(String::as_str), Some("good"));
    }
}
