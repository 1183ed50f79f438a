//! Why an endpoint could not be reached, in a few words a user can act on, found along the
//! HTTP client's error chain without repeating its text.

use crate::{BoxError, Error, ErrorKind};

/// The error of an HTTP client that could not reach an endpoint, saying why in a few words
/// found along the error's chain. The chain's own text is kept as the source, never shown: some
/// clients quote the URL, query and all.
pub(super) fn unreachable(error: BoxError) -> Error {
    let reason = match reason_unreachable(&*error) {
        Some(reason) => reason.to_owned(),
        None => match root_cause(&*error) {
            Some(cause) => format!("the connection failed: {cause}"),
            None => "the connection failed".to_owned(),
        },
    };
    Error::new(ErrorKind::Transport)
        .with_detail(reason)
        .with_source(error)
}

/// The innermost error's own words, such as hyper-util's `invalid URL, scheme is not http`:
/// what a user needs to mend a client. Left out when it names a URL (which may carry a query)
/// or is long enough to be a quoted body.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let text = innermost.to_string();
    let plain = !text.contains("://") && text.len() <= 200 && !text.is_empty();
    plain.then_some(text)
}

fn reason_unreachable(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use std::io::ErrorKind as Io;
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            match io.kind() {
                Io::ConnectionRefused => return Some("connection refused"),
                Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe => {
                    return Some("connection reset");
                }
                Io::TimedOut => return Some("connection timed out"),
                _ => {}
            }
        }
        // Read, never shown: the clients' errors say "dns error" or "failed to lookup address",
        // and name certificates or TLS when the handshake fails.
        let text = error.to_string().to_ascii_lowercase();
        if text.contains("dns error") || text.contains("lookup address") {
            return Some("DNS lookup failed");
        }
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            return Some("TLS handshake failed");
        }
        next = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// An error whose own text is `text`, caused by `source`.
    #[derive(Debug)]
    struct Wrapped(
        &'static str,
        Option<Box<dyn std::error::Error + Send + Sync>>,
    );

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|source| source as _)
        }
    }

    fn reason(error: Wrapped) -> String {
        unreachable(Box::new(error)).to_string()
    }

    #[test]
    fn an_unreachable_endpoint_says_why_from_anywhere_in_the_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let chain = Wrapped("client error (Connect)", Some(Box::new(refused)));
        assert_eq!(
            reason(chain),
            "could not reach token endpoint: connection refused"
        );

        let dns = std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        );
        let chain = Wrapped(
            "client error (Connect)",
            Some(Box::new(Wrapped("dns error", Some(Box::new(dns))))),
        );
        assert_eq!(
            reason(chain),
            "could not reach token endpoint: DNS lookup failed"
        );

        let tls = Wrapped("invalid peer certificate: UnknownIssuer", None);
        assert_eq!(
            reason(Wrapped("client error (Connect)", Some(Box::new(tls)))),
            "could not reach token endpoint: TLS handshake failed"
        );
        assert_eq!(
            reason(Wrapped(
                "client error (Connect)",
                Some(Box::new(Wrapped("invalid URL, scheme is not http", None)))
            )),
            "could not reach token endpoint: the connection failed: invalid URL, scheme is not http"
        );
    }

    #[test]
    fn a_root_cause_that_names_a_url_or_is_long_is_left_out() {
        let url = Wrapped(
            "client error",
            Some(Box::new(Wrapped(
                "error sending request for url (https://auth.example.com/token?key=sentinel)",
                None,
            ))),
        );
        assert_eq!(
            reason(url),
            "could not reach token endpoint: the connection failed"
        );
        let long: &'static str = Box::leak("x".repeat(201).into_boxed_str());
        assert_eq!(
            reason(Wrapped(long, None)),
            "could not reach token endpoint: the connection failed"
        );
    }

    #[test]
    fn the_reason_never_repeats_the_clients_text() {
        let chain = Wrapped(
            "error sending request for url (https://auth.example.com/token?key=sentinel)",
            Some(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        );
        let shown = reason(chain);
        assert!(!shown.contains("sentinel"), "{shown}");
        assert!(!shown.contains("auth.example.com"), "{shown}");
    }
}
