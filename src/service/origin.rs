//! Which origins a token may be sent to.

use std::{fmt, sync::Arc};

use http::Uri;

use super::request::sealed;
use crate::{Error, ErrorKind, endpoint::is_loopback};

/// Where tokens may go: any `https` origin (and `http` on loopback) unless a list is given.
#[derive(Clone, Default)]
pub(crate) struct Origins {
    allowed: Option<Arc<[Origin]>>,
    plain_http: bool,
    refuse_others: bool,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Attach the token.
    Attach,
    /// Send the request as it is, without a token.
    Skip,
    /// Fail the request.
    Refuse,
}

#[derive(Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: Box<str>,
    port: u16,
}

impl Origin {
    fn of(uri: &Uri) -> Option<Self> {
        Self::from_parts(uri.scheme_str(), uri.host(), uri.port_u16())
    }

    fn from_parts(scheme: Option<&str>, host: Option<&str>, port: Option<u16>) -> Option<Self> {
        let https = match scheme? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let port = port.unwrap_or(if https { 443 } else { 80 });
        Some(Self {
            https,
            host: host?.to_ascii_lowercase().into(),
            port,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The error of a request to an origin the token may not go to, when such requests are refused.
pub(crate) fn not_allowed() -> Error {
    Error::new(ErrorKind::OriginNotAllowed)
        .with_detail("the request's origin may not receive the token")
}

impl Origins {
    pub(crate) fn allow(&mut self, origin: &str) -> Result<(), Error> {
        let uri: Uri = origin
            .parse()
            .map_err(|_| Error::config("an allowed origin is not a valid URL"))?;
        let parsed = Origin::of(&uri).ok_or_else(|| {
            Error::config("an allowed origin needs an http or https scheme and a host")
        })?;
        let mut allowed: Vec<Origin> = self.allowed.as_deref().unwrap_or_default().to_vec();
        allowed.push(parsed);
        self.allowed = Some(allowed.into());
        Ok(())
    }

    pub(crate) fn allow_plain_http(&mut self) {
        self.plain_http = true;
    }

    pub(crate) fn refuse_others(&mut self) {
        self.refuse_others = true;
    }

    /// The verdict for a request to `uri`, through the same fast path requests take.
    #[cfg(test)]
    pub(crate) fn verdict(&self, uri: &Uri) -> Verdict {
        let mut request = http::Request::new(());
        *request.uri_mut() = uri.clone();
        let verdict = self.verdict_of(&request);
        assert_eq!(
            verdict,
            self.verdict_for(uri.scheme_str(), uri.host(), uri.port_u16()),
            "the fast path and the full check disagree on {uri}"
        );
        verdict
    }

    /// The verdict for `request`. The common case, any `https` origin or a relative request
    /// with no list of origins, is checked apart: small enough to be inlined into every call,
    /// and it reads neither host nor port.
    #[inline]
    pub(crate) fn verdict_of(&self, request: &impl sealed::Request) -> Verdict {
        let scheme = request.scheme();
        if self.allowed.is_none() && matches!(scheme, Some("https") | None) {
            return Verdict::Attach;
        }
        let (host, port) = request.host_and_port();
        self.verdict_for(scheme, host, port)
    }

    /// The verdict for a request to `scheme://host:port`, each `None` where the request does
    /// not say, so that any client's request type can be judged without building a `Uri`.
    #[cold]
    #[inline(never)]
    pub(crate) fn verdict_for(
        &self,
        scheme: Option<&str>,
        host: Option<&str>,
        port: Option<u16>,
    ) -> Verdict {
        let allowed = match (&self.allowed, scheme) {
            // A relative request goes wherever the inner service is bound; that was the user's
            // choice, so without a list it gets the token.
            (None, None) => true,
            (None, Some("https")) => true,
            (None, Some("http")) => self.plain_http || host.is_some_and(is_loopback),
            (None, Some(_)) => false,
            (Some(list), _) => Origin::from_parts(scheme, host, port).is_some_and(|origin| {
                (origin.https || self.plain_http || is_loopback(&origin.host))
                    && list.contains(&origin)
            }),
        };
        match (allowed, self.refuse_others) {
            (true, _) => Verdict::Attach,
            (false, false) => Verdict::Skip,
            (false, true) => Verdict::Refuse,
        }
    }
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed: Option<Vec<String>> = self
            .allowed
            .as_deref()
            .map(|list| list.iter().map(ToString::to_string).collect());
        f.debug_struct("Origins")
            .field(
                "allowed",
                &allowed.as_deref().unwrap_or(&["any https".to_owned()]),
            )
            .field("plain_http", &self.plain_http)
            .field("refuse_others", &self.refuse_others)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(origins: &Origins, uri: &str) -> Verdict {
        origins.verdict(&uri.parse().unwrap())
    }

    #[test]
    fn by_default_any_https_origin_and_loopback_http_get_the_token() {
        let origins = Origins::default();
        for uri in [
            "https://api.example.com/x",
            "https://other.example.org:8443/",
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]/x",
            "/relative/path",
        ] {
            assert_eq!(verdict(&origins, uri), Verdict::Attach, "{uri}");
        }
        assert_eq!(verdict(&origins, "http://api.example.com/"), Verdict::Skip);
        assert_eq!(verdict(&origins, "ws://api.example.com/"), Verdict::Skip);
    }

    #[test]
    fn plain_http_is_allowed_only_when_asked() {
        let mut origins = Origins::default();
        origins.allow_plain_http();
        assert_eq!(
            verdict(&origins, "http://api.example.com/"),
            Verdict::Attach
        );
    }

    #[test]
    fn a_list_matches_scheme_host_and_port() {
        let mut origins = Origins::default();
        origins.allow("https://API.example.com").unwrap();
        origins.allow("http://127.0.0.1:9000").unwrap();
        for uri in [
            "https://api.example.com/orders?x=1",
            "https://api.example.com:443/",
            "http://127.0.0.1:9000/",
        ] {
            assert_eq!(verdict(&origins, uri), Verdict::Attach, "{uri}");
        }
        for uri in [
            "http://api.example.com/",
            "https://api.example.com:8443/",
            "https://evil.example.com/",
            "https://api.example.com.evil.test/",
            "http://127.0.0.1:9001/",
            "/relative",
        ] {
            assert_eq!(verdict(&origins, uri), Verdict::Skip, "{uri}");
        }
        origins.refuse_others();
        assert_eq!(
            verdict(&origins, "https://evil.example.com/"),
            Verdict::Refuse
        );
    }

    #[test]
    fn a_listed_plain_http_origin_needs_loopback_or_the_opt_in() {
        let mut origins = Origins::default();
        origins.allow("http://api.internal").unwrap();
        assert_eq!(verdict(&origins, "http://api.internal/"), Verdict::Skip);
        origins.allow_plain_http();
        assert_eq!(verdict(&origins, "http://api.internal/"), Verdict::Attach);
    }

    #[test]
    fn an_origin_without_scheme_or_host_is_rejected() {
        let mut origins = Origins::default();
        for bad in ["api.example.com", "/path", "ftp://host", "not a url"] {
            assert!(origins.allow(bad).is_err(), "{bad}");
        }
    }
}
