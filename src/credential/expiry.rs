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
    let Some(exp) = expires_at(jwt) else {
        return true;
    };
    let deadline = now + MARGIN;
    UNIX_EPOCH + Duration::from_secs(exp) > deadline
}

/// The `exp` claim of a compact JWS, in seconds since the epoch.
fn expires_at(jwt: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<serde_json::Number>,
    }
    let mut parts = jwt.split('.');
    let payload = parts.nth(1)?;
    // A compact JWS has exactly three parts; anything else (a JWE has five) is not ours to read.
    if parts.count() != 1 {
        return None;
    }
    let json = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?);
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    let exp = claims.exp?;
    // RFC 7519 allows a fractional NumericDate; a negative one is long past.
    exp.as_u64()
        .or_else(|| exp.as_f64().map(|seconds| seconds.max(0.0) as u64))
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
    }
}
