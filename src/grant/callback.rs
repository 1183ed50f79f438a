//! What comes back to the redirect URI, and the checks it must pass before its code is sent
//! anywhere.

use std::fmt;

use crate::{Error, ErrorKind, Secret, error::sanitize};

/// What the authorization server sent back to the redirect URI: a code or an error, the
/// `state`, and the server's `iss` when it sends one (RFC 9207).
///
/// An error response is a `Callback` too: it must pass the same `state` and `iss` checks as a
/// code before the app believes it, because anyone can send a browser to the redirect URI with
/// `?error=access_denied`. [`AuthorizationCode::exchange`](super::AuthorizationCode::exchange)
/// runs the checks, then returns the server's error.
///
/// ```
/// use tower_oauth2::grant::Callback;
///
/// let callback = Callback::from_query("code=c0de&state=xyz&iss=https%3A%2F%2Fauth.example.com")?;
/// assert_eq!(callback.state(), "xyz");
/// assert_eq!(callback.issuer(), Some("https://auth.example.com"));
/// assert!(callback.error().is_none());
///
/// let denied = Callback::from_query("error=access_denied&state=xyz")?;
/// assert_eq!(denied.error().and_then(|error| error.oauth_error()), Some("access_denied"));
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
pub struct Callback {
    /// The code, or the error the server sent instead.
    answer: Result<Secret, Error>,
    state: String,
    issuer: Option<String>,
}

impl Callback {
    /// Creates a callback from the `code` and `state` query parameters a web framework parsed.
    /// Add the `iss` parameter, when there is one, with [`with_issuer`](Self::with_issuer).
    pub fn new(code: impl Into<Secret>, state: impl Into<String>) -> Self {
        Self {
            answer: Ok(code.into()),
            state: state.into(),
            issuer: None,
        }
    }

    /// Adds the `iss` query parameter (URL-decoded), for a grant that expects one
    /// ([`AuthorizationCode::issuer`](super::AuthorizationCode::issuer)).
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Reads the query string of the redirect (without the leading `?`).
    ///
    /// An error response (RFC 6749 section 4.1.2.1) reads as a callback whose
    /// [`error`](Self::error) is the server's, of kind [`ErrorKind::AuthorizationFailed`].
    ///
    /// Fails with [`ErrorKind::AuthorizationFailed`] when the redirect carries neither a code
    /// nor an error, or repeats one of `code`, `state`, `iss` and `error` (RFC 6749 section 3.1
    /// allows each once). A missing `state` reads as empty, which no pending request matches.
    pub fn from_query(query: &str) -> Result<Self, Error> {
        let mut code = None;
        let mut state = None;
        let mut issuer = None;
        let (mut error, mut description, mut uri) = (None, None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*name {
                "code" => {
                    once(&mut code, Secret::new(value.into_owned()))?;
                    continue;
                }
                "state" => &mut state,
                "iss" => &mut issuer,
                "error" => &mut error,
                "error_description" => &mut description,
                "error_uri" => &mut uri,
                _ => continue,
            };
            once(slot, value.into_owned())?;
        }
        let answer = match (error, code) {
            (Some(error), _) => {
                let clean = |text: String| sanitize(&text, &[], 300);
                Err(Error::new(ErrorKind::AuthorizationFailed).with_oauth(
                    Some(sanitize(&error, &[], 64)),
                    description.map(clean),
                    uri.map(clean),
                ))
            }
            (None, Some(code)) if !code.is_empty() => Ok(code),
            (None, _) => {
                return Err(Error::new(ErrorKind::AuthorizationFailed)
                    .with_detail("the redirect carries neither a code nor an error"));
            }
        };
        Ok(Self {
            answer,
            state: state.unwrap_or_default(),
            issuer,
        })
    }

    /// Returns the `state` the server sent back.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Returns the `iss` the server sent back, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// Returns the error the redirect carries instead of a code, if it does. Until the
    /// callback's `state` (and `iss`) are checked, it may not come from the server at all.
    pub fn error(&self) -> Option<&Error> {
        self.answer.as_ref().err()
    }

    /// Checks that the callback answers the request whose state is `state`, from `issuer` when
    /// one is expected, and returns its code, or the error the server sent instead.
    pub(crate) fn verify(self, state: &str, issuer: Option<&str>) -> Result<Secret, Error> {
        if !same(self.state.as_bytes(), state.as_bytes()) {
            return Err(Error::new(ErrorKind::StateMismatch));
        }
        if let Some(expected) = issuer {
            match self.issuer.as_deref() {
                Some(sent) if sent == expected => {}
                Some(sent) => {
                    return Err(Error::new(ErrorKind::IssuerMismatch).with_detail(format!(
                        "the response's iss is {:?}, the grant expects {expected:?}",
                        sanitize(sent, &[], 200)
                    )));
                }
                None => {
                    return Err(Error::new(ErrorKind::IssuerMismatch)
                        .with_detail("the response has no iss parameter"));
                }
            }
        }
        self.answer
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.answer.as_ref().ok())
            .field("error", &self.error())
            .field("state", &self.state)
            .field("issuer", &self.issuer)
            .finish()
    }
}

fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), Error> {
    if slot.replace(value).is_some() {
        return Err(Error::new(ErrorKind::AuthorizationFailed)
            .with_detail("the redirect repeats a parameter that may appear once"));
    }
    Ok(())
}

/// Compares in time that depends on the length only, so `state` cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_compare_equal_only_when_identical() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(same(b"", b""));
    }

    #[test]
    fn a_callback_without_code_or_error_fails() {
        let error = Callback::from_query("state=xyz").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
        let error = Callback::from_query("code=&state=xyz").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    }

    #[test]
    fn a_repeated_parameter_fails() {
        for query in [
            "code=a&code=b&state=xyz",
            "code=a&state=xyz&state=xyz",
            "code=a&state=xyz&iss=x&iss=y",
            "error=a&error=b&state=xyz",
        ] {
            let error = Callback::from_query(query).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::AuthorizationFailed, "{query}");
        }
    }

    #[test]
    fn a_callback_error_keeps_code_description_and_uri() {
        let callback = Callback::from_query(
            "error=invalid_scope&error_description=unknown+scope%0Aevil&error_uri=https%3A%2F%2Fx",
        )
        .unwrap();
        let error = callback.error().unwrap();
        assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
        assert_eq!(error.oauth_error(), Some("invalid_scope"));
        assert_eq!(error.description(), Some("unknown scope evil"));
        assert_eq!(error.error_uri(), Some("https://x"));
    }

    #[test]
    fn an_error_response_is_believed_only_after_its_state_and_issuer_pass() {
        let query = "error=access_denied&state=xyz&iss=https%3A%2F%2Fevil.test";
        let forged = Callback::from_query(query).unwrap();
        assert_eq!(
            forged.verify("other", None).unwrap_err().kind(),
            ErrorKind::StateMismatch
        );
        let forged = Callback::from_query(query).unwrap();
        let error = forged.verify("xyz", Some("https://auth.test")).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::IssuerMismatch);
        assert!(error.to_string().contains("evil.test"), "{error}");

        let genuine = Callback::from_query(query).unwrap();
        let error = genuine
            .verify("xyz", Some("https://evil.test"))
            .unwrap_err();
        assert_eq!(error.oauth_error(), Some("access_denied"));
    }

    #[test]
    fn debug_hides_the_code() {
        let callback = Callback::new("sentinel-code", "xyz");
        assert!(!format!("{callback:?}").contains("sentinel"));
    }
}
