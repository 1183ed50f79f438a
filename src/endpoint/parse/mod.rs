//! Reading the server's answers: a token endpoint's (`token.rs`), and what every answer shares,
//! a success's JSON object and the error a failure stands for (`answer.rs`). The readers of
//! single members here serve both and the device grant's answers.

mod answer;
mod token;

use std::time::Duration;

use serde_json::Value;

#[cfg(any(test, fuzzing))]
pub(crate) use self::token::parse_response;
pub(crate) use self::{
    answer::{demands_dpop_nonce, is_invalid_client, parse_acknowledgement, parse_object},
    token::{NOT_APPLICABLE, parse_bound_response, parse_exchange_response},
};
use crate::{Error, ErrorKind};

/// Seconds as a number or a numeric string; zero or negative is zero (for a token: already
/// stale).
pub(crate) fn expires_in(value: Option<Value>) -> Result<Option<Duration>, Error> {
    let seconds = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_f64(),
        Some(Value::String(text)) => text.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match seconds {
        Some(seconds) if seconds.is_finite() => {
            // Anything beyond a century is as good as forever and must not overflow an Instant.
            let seconds = seconds.clamp(0.0, 100.0 * 365.0 * 86_400.0);
            Ok(Some(Duration::from_secs(seconds as u64)))
        }
        _ => Err(invalid("`expires_in` is not a number of seconds")),
    }
}

/// A string member that may be absent; empty counts as absent.
pub(crate) fn optional_string(value: Option<Value>, name: &str) -> Result<Option<String>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(&format!("`{name}` is not a string"))),
    }
}

pub(crate) fn invalid(detail: &str) -> Error {
    Error::new(ErrorKind::InvalidResponse).with_detail(detail)
}
