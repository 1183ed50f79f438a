//! Where credentials and tokens may go: the rule for every URL the crate sends secrets to
//! (https, or plain http only on loopback or by an explicit opt-in), and the origins a layer
//! attaches its token for. Where a request goes, and the places that route matching compares it
//! with, are in `place.rs`.

mod place;

use std::{fmt, net::IpAddr, sync::Arc};

use http::Uri;
use url::Url;

pub(crate) use self::place::{Destination, Place, normalized_path};
use crate::{Error, ErrorKind};

/// Whether `host` (as in a URL, IPv6 in brackets) names this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses `url`, the address of `what` (such as "the token endpoint URL"), and checks that
/// secrets sent to it cannot cross a network in clear text: it must be absolute and `https`,
/// or `http` to a loopback host, or `http` anywhere when `plain_http` allows it.
pub(crate) fn secure_url(url: &str, what: &str, plain_http: bool) -> Result<Url, Error> {
    let config = |why: &str| Error::new(ErrorKind::Config).with_detail(format!("{what} {why}"));
    let parsed = Url::parse(url).map_err(|_| config("is not a valid URL"))?;
    let Some(host) = parsed.host_str() else {
        return Err(config("has no host"));
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if plain_http || is_loopback(host) => Ok(parsed),
        "http" => Err(config("must be https unless the host is loopback")),
        _ => Err(config("must be http or https")),
    }
}

/// [`secure_url`] as an `http::Uri`, for the endpoints the crate posts to.
pub(crate) fn secure_uri(url: &str, what: &str, plain_http: bool) -> Result<Uri, Error> {
    let parsed = secure_url(url, what, plain_http)?;
    parsed.as_str().parse().map_err(|_| {
        Error::new(ErrorKind::Config).with_detail(format!("{what} is not a valid URL"))
    })
}

/// The origins a layer's token may go to: any `https` origin (and `http` on loopback) unless
/// a list is given. Requests to other origins fail, unless the layer sends them without a
/// token.
#[derive(Clone, Default)]
pub(crate) struct Origins {
    allowed: Option<Arc<[Place]>>,
    plain_http: bool,
    send_others: bool,
}

/// What the layer does with one request.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Attach the token.
    Attach,
    /// Send the request as it is, without a token.
    SendAsIs,
    /// Fail the request with this error.
    Refuse(Error),
}

/// Why a request may not get the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declined {
    PlainHttp,
    Unlisted,
    OtherScheme,
}

impl Origins {
    pub(crate) fn allow(&mut self, origin: &str) -> Result<(), Error> {
        let uri: Uri = origin
            .parse()
            .map_err(|_| Error::config("an allowed origin is not a valid URL"))?;
        let place = Place::new(&uri, "").ok_or_else(|| {
            Error::config("an allowed origin needs an http or https scheme and a host")
        })?;
        let mut allowed: Vec<Place> = self.allowed.as_deref().unwrap_or_default().to_vec();
        allowed.push(place);
        self.allowed = Some(allowed.into());
        Ok(())
    }

    pub(crate) fn allow_plain_http(&mut self) {
        self.plain_http = true;
    }

    pub(crate) fn plain_http(&self) -> bool {
        self.plain_http
    }

    pub(crate) fn send_others(&mut self) {
        self.send_others = true;
    }

    /// Whether the common case decides at once: no list, and an `https` or relative request.
    /// Small enough to inline into every call; it reads nothing but the scheme.
    #[inline]
    pub(crate) fn attaches_any(&self, scheme: Option<&str>) -> bool {
        self.allowed.is_none() && matches!(scheme, Some("https") | None)
    }

    /// The decision for a request to `to`.
    #[cold]
    #[inline(never)]
    pub(crate) fn decide(&self, to: &Destination<'_>) -> Decision {
        match (self.judge(to), self.send_others) {
            (Ok(()), _) => Decision::Attach,
            (Err(_), true) => Decision::SendAsIs,
            (Err(why), false) => Decision::Refuse(not_allowed(why)),
        }
    }

    fn judge(&self, to: &Destination<'_>) -> Result<(), Declined> {
        let plain_http_allowed = || self.plain_http || to.host().is_some_and(is_loopback);
        match (to.scheme, &self.allowed) {
            // A relative request goes wherever the inner service is bound; that was the user's
            // choice, so without a list it gets the token.
            (None | Some("https"), None) => Ok(()),
            (Some("http"), _) if !plain_http_allowed() => Err(Declined::PlainHttp),
            (Some("http"), None) => Ok(()),
            (Some(_), None) => Err(Declined::OtherScheme),
            (_, Some(list)) if list.iter().any(|place| place.contains(to)) => Ok(()),
            (_, Some(_)) => Err(Declined::Unlisted),
        }
    }
}

/// The error of a request the token may not go to: says why, and which setting allows it.
fn not_allowed(why: Declined) -> Error {
    let detail = match why {
        Declined::PlainHttp => {
            "plain http to a host that is not loopback; `OAuth2Layer::allow_plain_http` sends \
             the token there anyway, `OAuth2Layer::send_others_without_token` sends such \
             requests without it"
        }
        Declined::Unlisted => {
            "the origin is not among those given to `OAuth2Layer::allow_origin`; add it there, \
             or let `OAuth2Layer::send_others_without_token` send such requests without a token"
        }
        Declined::OtherScheme => {
            "only http and https requests get a token; `OAuth2Layer::send_others_without_token` \
             sends others without it"
        }
    };
    Error::new(ErrorKind::OriginNotAllowed).with_detail(detail)
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed: Option<Vec<String>> = self
            .allowed
            .as_deref()
            .map(|list| list.iter().map(|place| format!("{place:?}")).collect());
        f.debug_struct("Origins")
            .field(
                "allowed",
                &allowed.as_deref().unwrap_or(&["any https".to_owned()]),
            )
            .field("plain_http", &self.plain_http)
            .field("send_others", &self.send_others)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the layer does with a request to `uri`: `Some(true)` attach, `Some(false)` send as
    /// it is, `None` refuse.
    fn decide(origins: &Origins, uri: &str) -> Option<bool> {
        let uri: Uri = uri.parse().unwrap();
        let decision = origins.decide(&Destination::of(&uri));
        if origins.attaches_any(uri.scheme_str()) {
            assert!(
                matches!(decision, Decision::Attach),
                "the shortcut and the rule disagree"
            );
        }
        match decision {
            Decision::Attach => Some(true),
            Decision::SendAsIs => Some(false),
            Decision::Refuse(error) => {
                assert_eq!(error.kind(), ErrorKind::OriginNotAllowed);
                None
            }
        }
    }

    fn refusal(origins: &Origins, uri: &str) -> String {
        let uri: Uri = uri.parse().unwrap();
        match origins.decide(&Destination::of(&uri)) {
            Decision::Refuse(error) => error.to_string(),
            other => panic!("{uri} was not refused: {other:?}"),
        }
    }

    #[test]
    fn secret_bearing_urls_must_be_https_unless_loopback() {
        for good in [
            "https://auth.example.com/token",
            "http://127.0.0.1:8080/token",
            "http://[::1]:8080/token",
            "http://localhost/token",
            "http://127.1.2.3/token",
        ] {
            assert!(secure_url(good, "the URL", false).is_ok(), "{good}");
        }
        for bad in [
            "http://auth.example.com/token",
            "http://10.0.0.1/token",
            "ftp://auth.example.com/token",
            "/token",
            "not a url",
        ] {
            let error = secure_url(bad, "the token endpoint URL", false).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config, "{bad}");
            assert!(
                error.to_string().contains("the token endpoint URL"),
                "{error}"
            );
        }
        assert!(secure_url("http://auth.example.com/token", "the URL", true).is_ok());
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
            assert_eq!(decide(&origins, uri), Some(true), "{uri}");
        }
    }

    #[test]
    fn by_default_a_request_the_token_may_not_go_to_fails_naming_the_setting() {
        let origins = Origins::default();
        let plain = refusal(&origins, "http://api.example.com/");
        assert!(plain.contains("allow_plain_http"), "{plain}");
        assert!(plain.contains("send_others_without_token"), "{plain}");
        let scheme = refusal(&origins, "ws://api.example.com/");
        assert!(scheme.contains("send_others_without_token"), "{scheme}");
    }

    #[test]
    fn declined_requests_go_out_without_the_token_only_when_asked() {
        let mut origins = Origins::default();
        origins.send_others();
        assert_eq!(decide(&origins, "http://api.example.com/"), Some(false));
        assert_eq!(decide(&origins, "https://api.example.com/"), Some(true));
    }

    #[test]
    fn plain_http_is_allowed_only_when_asked() {
        let mut origins = Origins::default();
        origins.allow_plain_http();
        assert_eq!(decide(&origins, "http://api.example.com/"), Some(true));
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
            assert_eq!(decide(&origins, uri), Some(true), "{uri}");
        }
        for uri in [
            "http://api.example.com/",
            "https://api.example.com:8443/",
            "https://evil.example.com/",
            "https://api.example.com.evil.test/",
            "http://127.0.0.1:9001/",
            "/relative",
        ] {
            assert_eq!(decide(&origins, uri), None, "{uri}");
        }
        assert!(refusal(&origins, "https://evil.example.com/").contains("allow_origin"));
        origins.send_others();
        assert_eq!(decide(&origins, "https://evil.example.com/"), Some(false));
    }

    #[test]
    fn a_listed_plain_http_origin_needs_loopback_or_the_opt_in() {
        let mut origins = Origins::default();
        origins.allow("http://api.internal").unwrap();
        assert!(refusal(&origins, "http://api.internal/").contains("allow_plain_http"));
        origins.allow_plain_http();
        assert_eq!(decide(&origins, "http://api.internal/"), Some(true));
    }

    #[test]
    fn an_origin_without_scheme_or_host_is_rejected() {
        let mut origins = Origins::default();
        for bad in ["api.example.com", "/path", "ftp://host", "not a url"] {
            assert!(origins.allow(bad).is_err(), "{bad}");
        }
    }
}
