//! When an external client assertion expires: its `exp`, read without checking the signature.
//!
//! The assertion is the client's own credential, made by someone the client trusts (its
//! platform, its workload identity provider); the authorization server verifies it. The client
//! only needs to know whether sending it is worth a request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// How long an assertion must still be good for to be sent: it has to reach the server and be
/// checked there, over a network and with clocks that drift.
pub(crate) const MARGIN: Duration = Duration::from_secs(5);

/// Whether `jwt` is good beyond `now` plus [`MARGIN`]. What has no readable `exp` (not a JWT,
/// a payload that is not JSON, no `exp`) counts as good: the server is the one to judge it,
/// and refusing an assertion the server would take is worse than one wasted request.
pub(crate) fn usable(jwt: &str, now: SystemTime) -> bool {
    remaining(jwt, now).is_none_or(|left| left > MARGIN)
}

/// The time left after `now` until the `exp` of `jwt`, a compact JWS (zero once it has
/// passed); `None` when it has no readable `exp`, or one a century or more away, which is
/// as good as none.
pub(crate) fn remaining(jwt: &str, now: SystemTime) -> Option<Duration> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<f64>,
    }
    let mut parts = jwt.split('.');
    let payload = parts.nth(1)?;
    // A compact JWS has exactly three parts; anything else (a JWE has five) is not ours to read.
    if parts.count() != 1 {
        return None;
    }
    let json = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?);
    // RFC 7519 allows a fractional NumericDate.
    let exp = serde_json::from_slice::<Claims>(&json).ok()?.exp?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    let left = (exp - now).max(0.0);
    // The bound also keeps `from_secs_f64` from overflowing.
    (left < 100.0 * 365.0 * 86_400.0).then(|| Duration::from_secs_f64(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn an_assertion_is_usable_until_five_seconds_before_its_exp() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(usable(&jwt(r#"{"exp":1006}"#), now));
        assert!(!usable(&jwt(r#"{"exp":1005}"#), now));
        assert!(!usable(&jwt(r#"{"exp":999}"#), now));
        assert!(usable(&jwt(r#"{"exp":1006.5}"#), now));
        assert!(!usable(&jwt(r#"{"exp":-1}"#), now));
    }

    #[test]
    fn what_has_no_readable_exp_is_left_to_the_server() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(usable(&jwt(r#"{"sub":"app"}"#), now));
        assert!(usable("not-a-jwt", now));
        assert!(usable("a.%%%.c", now));
        assert!(usable(&jwt("not json"), now));
        assert!(usable(&format!("{}.d.e", jwt(r#"{"exp":1}"#)), now));
        assert!(usable(&jwt(r#"{"exp":1e300}"#), now));
        assert!(usable(&jwt(r#"{"exp":"1"}"#), now));
    }

    #[test]
    fn the_exp_of_a_jwt_says_how_long_it_is_good_for() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            remaining(&jwt(r#"{"exp":1600}"#), now),
            Some(Duration::from_secs(600))
        );
        assert_eq!(remaining(&jwt(r#"{"exp":995}"#), now), Some(Duration::ZERO));
        assert_eq!(remaining(&jwt(r#"{"exp":1e300}"#), now), None);
    }

    #[test]
    fn opaque_tokens_and_jwts_without_exp_have_no_known_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(remaining("opaque-token", now), None);
        assert_eq!(remaining(&jwt(r#"{"sub":"a"}"#), now), None);
        assert_eq!(remaining("a.b.c.d", now), None);
        assert_eq!(remaining("a.!!!.c", now), None);
    }
}
