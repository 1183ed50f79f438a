//! The copy of a request kept for the retry after a 401. Every replayable request pays for it
//! and almost none is ever sent again, so a short URI is kept inline and the headers packed
//! into one buffer (a header map clone allocates per value); the request is rebuilt from the
//! copy only for the retry.

use std::fmt;

use bytes::Bytes;
use http::{
    Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version,
    uri::{Authority, PathAndQuery, Scheme},
};

/// What a retry needs of a request, copied before the request is first sent.
// Public in a private module: the sealed request trait names it.
#[allow(unreachable_pub)]
pub struct Snapshot<B> {
    method: Method,
    uri: UriCopy,
    version: Version,
    headers: Option<Box<[u8]>>,
    extensions: Extensions,
    body: B,
}

impl<B> Snapshot<B> {
    /// Copies everything of `request` but its body, which is `body` in the copy. Returns `None`
    /// for a request too large to pack, which is then not replayed.
    #[inline]
    pub(super) fn take(request: &Request<B>, body: B) -> Option<Self> {
        let headers = request.headers();
        let headers = if headers.is_empty() {
            None
        } else {
            Some(pack(headers)?)
        };
        Some(Self {
            method: request.method().clone(),
            uri: UriCopy::of(request.uri()),
            version: request.version(),
            headers,
            extensions: request.extensions().clone(),
            body,
        })
    }

    /// The request to send again. `None` if the copy cannot be read back, which only a URI or
    /// header value built unchecked can cause.
    pub(super) fn into_request(self) -> Option<Request<B>> {
        let mut request = Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri.into_uri()?;
        *request.version_mut() = self.version;
        *request.extensions_mut() = self.extensions;
        if let Some(packed) = self.headers {
            *request.headers_mut() = unpack(&packed)?;
        }
        Some(request)
    }
}

impl<B> fmt::Debug for Snapshot<B> {
    // The copy's headers may carry the caller's secrets (cookies, API keys): not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// URIs whose authority and path fit in this many bytes are copied inline.
const INLINE_URI: usize = 80;

/// A copy of a URI: short ones as bytes, longer ones (and unusual schemes) as a clone.
enum UriCopy {
    Inline {
        /// 0: no scheme, 1: `http`, 2: `https`.
        scheme: u8,
        /// Length of the authority, or `u8::MAX` for none.
        authority: u8,
        /// Length of the path and query, or `u8::MAX` for none.
        path: u8,
        bytes: [u8; INLINE_URI],
    },
    Cloned(Uri),
}

const NONE: u8 = u8::MAX;

impl UriCopy {
    #[inline]
    fn of(uri: &Uri) -> Self {
        let scheme = match uri.scheme_str() {
            None => 0,
            Some("http") => 1,
            Some("https") => 2,
            Some(_) => return Self::Cloned(uri.clone()),
        };
        let authority = uri.authority().map_or("", Authority::as_str).as_bytes();
        let path = uri
            .path_and_query()
            .map_or("", PathAndQuery::as_str)
            .as_bytes();
        if authority.len() + path.len() > INLINE_URI {
            return Self::Cloned(uri.clone());
        }
        let mut bytes = [0; INLINE_URI];
        bytes[..authority.len()].copy_from_slice(authority);
        bytes[authority.len()..authority.len() + path.len()].copy_from_slice(path);
        let length = |present: bool, len: usize| match (present, u8::try_from(len)) {
            (true, Ok(len)) => len,
            _ => NONE,
        };
        Self::Inline {
            scheme,
            authority: length(uri.authority().is_some(), authority.len()),
            path: length(uri.path_and_query().is_some(), path.len()),
            bytes,
        }
    }

    fn into_uri(self) -> Option<Uri> {
        let (scheme, authority, path, bytes) = match self {
            Self::Cloned(uri) => return Some(uri),
            Self::Inline {
                scheme,
                authority,
                path,
                bytes,
            } => (scheme, authority, path, bytes),
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = match scheme {
            1 => Some(Scheme::HTTP),
            2 => Some(Scheme::HTTPS),
            _ => None,
        };
        let mut rest = &bytes[..];
        if authority != NONE {
            let (text, after) = rest.split_at_checked(usize::from(authority))?;
            parts.authority =
                Some(Authority::from_maybe_shared(Bytes::copy_from_slice(text)).ok()?);
            rest = after;
        }
        if path != NONE {
            let text = rest.get(..usize::from(path))?;
            parts.path_and_query =
                Some(PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(text)).ok()?);
        }
        Uri::from_parts(parts).ok()
    }
}

/// Per header in the packed buffer: name length (2 bytes), value length (4 bytes), whether the
/// value is sensitive (1 byte), then the name and the value.
const ENTRY_HEAD: usize = 7;

fn pack(headers: &HeaderMap) -> Option<Box<[u8]>> {
    let size = headers
        .iter()
        .map(|(name, value)| ENTRY_HEAD + name.as_str().len() + value.len())
        .sum();
    let mut packed = Vec::with_capacity(size);
    for (name, value) in headers {
        let name = name.as_str().as_bytes();
        packed.extend_from_slice(&u16::try_from(name.len()).ok()?.to_le_bytes());
        packed.extend_from_slice(&u32::try_from(value.len()).ok()?.to_le_bytes());
        packed.push(u8::from(value.is_sensitive()));
        packed.extend_from_slice(name);
        packed.extend_from_slice(value.as_bytes());
    }
    Some(packed.into_boxed_slice())
}

fn unpack(mut packed: &[u8]) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    while !packed.is_empty() {
        let (head, rest) = packed.split_at_checked(ENTRY_HEAD)?;
        let name_len = usize::from(u16::from_le_bytes([head[0], head[1]]));
        let value_len =
            usize::try_from(u32::from_le_bytes([head[2], head[3], head[4], head[5]])).ok()?;
        let (name, rest) = rest.split_at_checked(name_len)?;
        let (value, rest) = rest.split_at_checked(value_len)?;
        let mut value = HeaderValue::from_bytes(value).ok()?;
        value.set_sensitive(head[6] != 0);
        headers.append(HeaderName::from_bytes(name).ok()?, value);
        packed = rest;
    }
    // Room for the `Authorization` header the retry adds, so the map need not grow for it.
    headers.reserve(1);
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(request: &Request<String>) -> Request<String> {
        Snapshot::take(request, String::new())
            .unwrap()
            .into_request()
            .unwrap()
    }

    #[test]
    fn a_snapshot_keeps_method_uri_version_headers_and_extensions() {
        let mut request = Request::post("https://api.example.com/x?y=1")
            .version(Version::HTTP_2)
            .header("x-trace", "1")
            .body(String::new())
            .unwrap();
        request.extensions_mut().insert(7_u32);
        let copy = round_trip(&request);
        assert_eq!(copy.method(), "POST");
        assert_eq!(copy.uri(), "https://api.example.com/x?y=1");
        assert_eq!(copy.version(), Version::HTTP_2);
        assert_eq!(copy.headers()["x-trace"], "1");
        assert_eq!(copy.extensions().get::<u32>(), Some(&7));
    }

    #[test]
    fn every_kind_of_uri_comes_back_the_same() {
        let long = format!("https://api.example.com/{}?q=1", "x".repeat(200));
        for uri in [
            "https://api.example.com/v1/orders?limit=10",
            "http://127.0.0.1:8080/",
            "https://user@api.example.com:8443/a/b?c=d&e",
            "https://api.example.com",
            "/relative/path?x=1",
            "/",
            "*",
            "api.example.com:443",
            "wss://socket.example.com/live",
            long.as_str(),
        ] {
            let uri: Uri = uri.parse().unwrap();
            let mut request = Request::new(String::new());
            *request.uri_mut() = uri.clone();
            let copy = round_trip(&request);
            assert_eq!(copy.uri(), &uri, "{uri}");
            assert_eq!(copy.uri().scheme(), uri.scheme(), "{uri}");
            assert_eq!(copy.uri().authority(), uri.authority(), "{uri}");
            assert_eq!(copy.uri().path_and_query(), uri.path_and_query(), "{uri}");
        }
    }

    #[test]
    fn short_uris_are_copied_inline_and_long_or_unusual_ones_cloned() {
        let inline =
            |uri: &str| matches!(UriCopy::of(&uri.parse().unwrap()), UriCopy::Inline { .. });
        assert!(inline("https://api.example.com/v1/orders?limit=10"));
        assert!(inline("/relative"));
        assert!(!inline(&format!(
            "https://api.example.com/{}",
            "x".repeat(80)
        )));
        assert!(!inline("wss://socket.example.com/live"));
    }

    #[test]
    fn a_snapshot_keeps_every_value_of_every_header_in_order_and_their_sensitivity() {
        let mut secret = HeaderValue::from_static("session=abc");
        secret.set_sensitive(true);
        let mut request = Request::get("/")
            .header("accept", "application/json")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .header(
                "x-binary",
                HeaderValue::from_bytes(b"caf\xe9\ttab").unwrap(),
            )
            .header("x-empty", "")
            .body(String::new())
            .unwrap();
        request.headers_mut().append("cookie", secret);
        request
            .headers_mut()
            .append("x-multi", HeaderValue::from_static("three"));

        let copy = round_trip(&request);
        assert_eq!(copy.headers(), request.headers());
        let listed = |r: &Request<String>| -> Vec<(String, Vec<u8>, bool)> {
            r.headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec(), v.is_sensitive()))
                .collect()
        };
        assert_eq!(listed(&copy), listed(&request));
        assert!(copy.headers()["cookie"].is_sensitive());
    }

    #[test]
    fn a_request_without_headers_gets_no_header_copy() {
        let request = Request::get("https://api.example.com/")
            .body(String::new())
            .unwrap();
        let snapshot = Snapshot::take(&request, String::new()).unwrap();
        assert!(snapshot.headers.is_none());
        assert!(snapshot.into_request().unwrap().headers().is_empty());
    }

    #[test]
    fn packed_headers_that_cannot_be_read_back_give_no_request() {
        let request = Request::get("/")
            .header("x-a", "b")
            .body(String::new())
            .unwrap();
        let mut snapshot = Snapshot::take(&request, String::new()).unwrap();
        let mut packed = snapshot.headers.take().unwrap().into_vec();
        // A byte no header value may hold.
        *packed.last_mut().unwrap() = b'\n';
        assert!(unpack(&packed[..packed.len() - 1]).is_none(), "truncated");
        snapshot.headers = Some(packed.into_boxed_slice());
        assert!(snapshot.into_request().is_none());
    }
}
