//! Where a request goes, and the places it is matched against: an origin and a path that
//! covers itself and what is below it. Paths are compared as the server resolves them, so
//! that dot segments and escapes cannot carry a token past a route.

use std::{borrow::Cow, fmt};

use http::Uri;

use super::secure_uri;
use crate::{Error, ErrorKind};

/// Where a request goes, as far as the origin rule cares: what the request wrote, unparsed.
// Public in a private module: the sealed request trait names it.
#[allow(unreachable_pub)]
#[derive(Debug)]
pub struct Destination<'a> {
    /// `None` for a relative request, which goes wherever the inner service is bound.
    pub scheme: Option<&'a str>,
    /// `[user@]host[:port]`, as the request wrote it.
    pub authority: Option<&'a str>,
    pub path: &'a str,
}

impl<'a> Destination<'a> {
    pub(crate) fn of(uri: &'a Uri) -> Self {
        Self {
            scheme: uri.scheme_str(),
            authority: uri.authority().map(|authority| authority.as_str()),
            path: uri.path(),
        }
    }

    /// Whether the scheme is `https` (`Some(true)`) or `http` (`Some(false)`).
    #[inline]
    fn https(&self) -> Option<bool> {
        match self.scheme? {
            "https" => Some(true),
            "http" => Some(false),
            _ => None,
        }
    }

    /// The host of the authority (IPv6 in brackets), for the loopback test.
    pub(super) fn host(&self) -> Option<&'a str> {
        let authority = self.authority?;
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        if host.starts_with('[') {
            return host.find(']').map(|end| &host[..=end]);
        }
        Some(host.split_once(':').map_or(host, |(host, _)| host))
    }
}

/// An origin, and a path within it that covers itself and everything below it (`/billing`
/// covers `/billing/x`, not `/billingx`): an origin a layer's token may go to, or a destination
/// with a token source of its own.
#[derive(Clone)]
pub(crate) struct Place {
    https: bool,
    /// `host:port`, lowercase, for `Debug`.
    origin: Box<str>,
    /// The authorities a request may write for the origin, lowercase: with its port, and
    /// without it when the port is the scheme's own.
    authorities: [Box<str>; 2],
    /// Without a trailing slash; empty for the whole origin.
    path: Box<str>,
}

impl Place {
    /// The place of `uri`'s origin and `path`; `None` without an `http` or `https` scheme and
    /// a host.
    pub(super) fn new(uri: &Uri, path: &str) -> Option<Self> {
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host()?.to_ascii_lowercase();
        let default = if https { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default);
        let origin: Box<str> = format!("{host}:{port}").into();
        let bare = if port == default {
            host.into()
        } else {
            origin.clone()
        };
        Some(Self {
            https,
            authorities: [origin.clone(), bare],
            origin,
            path: path.trim_end_matches('/').into(),
        })
    }

    /// Parses `destination`, such as `https://api.example.com/billing`: `https`, or `http` on
    /// loopback or when `plain_http` allows it.
    pub(crate) fn parse(destination: &str, plain_http: bool) -> Result<Self, Error> {
        let what = "a destination with a token of its own";
        let uri = secure_uri(destination, what, plain_http)?;
        Self::new(&uri, uri.path()).ok_or_else(|| {
            Error::new(ErrorKind::Config).with_detail(format!("{what} is not a valid URL"))
        })
    }

    /// Whether a request to `to` goes here: its scheme and authority as the request wrote
    /// them, so that a request pays no parsing for them (an authority written another way,
    /// with user info say, is not this place's), and its path as the server resolves it.
    pub(crate) fn contains(&self, to: &Destination<'_>) -> bool {
        self.contains_at(to, &normalized_path(to.path))
    }

    /// As [`contains`](Self::contains), with `to`'s path already resolved
    /// ([`normalized_path`]): for a caller that asks many places about one request.
    pub(crate) fn contains_at(&self, to: &Destination<'_>, path: &str) -> bool {
        let under = self.path.is_empty()
            || path
                .strip_prefix(&*self.path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if to.https() != Some(self.https) || !under {
            return false;
        }
        // Most requests write the authority as it was configured: an exact comparison first.
        to.authority.is_some_and(|written| {
            self.authorities
                .iter()
                .any(|authority| written == &**authority || written.eq_ignore_ascii_case(authority))
        })
    }

    /// How much of a path it names: the longer, the more specific.
    pub(crate) fn depth(&self) -> usize {
        self.path.len()
    }
}

/// `path` as the server resolves it (RFC 3986 section 6.2.2): escapes of unreserved
/// characters decoded (`%2e` is `.`), and dot segments removed, so that `/billing/../orders`
/// is matched as `/orders`. Paths without `%` or a dot segment, nearly all, are used as they
/// are.
pub(crate) fn normalized_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%')
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| path.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(byte));
        match escaped {
            Some(byte) => {
                decoded.push(char::from(byte));
                at += 3;
            }
            None => {
                let len = path[at..].chars().next().map_or(1, char::len_utf8);
                decoded.push_str(&path[at..at + len]);
                at += len;
            }
        }
    }
    let mut segments: Vec<&str> = Vec::new();
    let ends_in_dir = decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut resolved = String::with_capacity(decoded.len());
    for segment in &segments {
        resolved.push('/');
        resolved.push_str(segment);
    }
    if ends_in_dir || resolved.is_empty() {
        resolved.push('/');
    }
    Cow::Owned(resolved)
}

impl fmt::Debug for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.origin, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_matched_as_the_server_resolves_it() {
        for (path, resolved) in [
            ("/billing/x", "/billing/x"),
            ("/billing/../orders/42", "/orders/42"),
            ("/billing/%2e%2e/orders", "/orders"),
            ("/a/./b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/%7Euser/%2Fx", "/~user/%2Fx"),
            ("/../..", "/"),
            ("/caf%C3%A9/%zz", "/caf%C3%A9/%zz"),
        ] {
            assert_eq!(normalized_path(path), resolved, "{path}");
        }
    }

    #[test]
    fn a_place_covers_its_path_and_below_on_its_origin_only() {
        let place = Place::parse("https://API.example.com/billing/", false).unwrap();
        let covers = |uri: &str| place.contains(&Destination::of(&uri.parse().unwrap()));
        assert!(covers("https://api.example.com/billing"));
        assert!(covers("https://api.example.com:443/billing/invoices?x=1"));
        assert!(!covers("https://api.example.com/billingx"));
        assert!(!covers("https://api.example.com/orders"));
        assert!(!covers("http://api.example.com/billing"));
        assert!(!covers("https://api.example.com:8443/billing"));
        let whole = Place::parse("https://api.example.com", false).unwrap();
        assert!(whole.contains(&Destination::of(
            &"https://api.example.com/x".parse().unwrap()
        )));
        assert!(Place::parse("http://api.example.com", false).is_err());
        assert!(Place::parse("http://127.0.0.1:8080/a", false).is_ok());
    }
}
