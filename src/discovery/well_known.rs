//! Where a server's metadata document lives, and reading the answer from there.

use http::{HeaderMap, StatusCode, Uri};
use url::Url;

use super::ServerMetadata;
use crate::{
    Error, ErrorKind,
    origin::{secure_uri, secure_url},
};

/// The two places a server's metadata may be: RFC 8414's first, OpenID Connect's second.
///
/// RFC 8414 section 3.1 inserts the well-known segment between the origin and the issuer's
/// path (`https://as.example/tenant` → `https://as.example/.well-known/oauth-authorization-server/tenant`);
/// OpenID Connect Discovery section 4 appends it to the issuer. A trailing `/` of the issuer
/// is dropped first in both.
pub(crate) fn well_known(issuer: &str, plain_http: bool) -> Result<[Uri; 2], Error> {
    let url = secure_url(issuer, "the issuer", plain_http)?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(Error::config(
            "the issuer must have no query, fragment or user info (RFC 8414 section 2)",
        ));
    }
    let path = url.path().trim_end_matches('/');
    let origin = origin(&url);
    let rfc8414 = format!("{origin}/.well-known/oauth-authorization-server{path}");
    let oidc = format!("{origin}{path}/.well-known/openid-configuration");
    let uri = |text: &str| secure_uri(text, "the metadata URL", plain_http);
    Ok([uri(&rfc8414)?, uri(&oidc)?])
}

fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Reads the answer of one well-known URL: `None` for a 404, the one answer that sends
/// discovery on to the next URL.
pub(crate) fn read(
    issuer: &str,
    plain_http: bool,
) -> impl FnOnce(StatusCode, &HeaderMap, &[u8], &[&str]) -> Result<Option<ServerMetadata>, Error> {
    move |status, headers, body, secrets| {
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(crate::endpoint::parse::parse_acknowledgement(
                status, headers, body, secrets,
            )
            .err()
            .unwrap_or_else(|| Error::new(ErrorKind::UnexpectedResponse))
            .with_status(status));
        }
        ServerMetadata::parse(issuer, body, plain_http)
            .map(Some)
            .map_err(|error| error.with_status(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_insert_rfc8414_before_the_path_and_append_oidc_after_it() {
        let urls = |issuer| {
            well_known(issuer, false)
                .unwrap()
                .map(|uri| uri.to_string())
        };
        assert_eq!(
            urls("https://as.example"),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration",
            ]
        );
        assert_eq!(urls("https://as.example/"), urls("https://as.example"));
        assert_eq!(
            urls("https://as.example:8443/tenant/a/"),
            [
                "https://as.example:8443/.well-known/oauth-authorization-server/tenant/a",
                "https://as.example:8443/tenant/a/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            urls("http://127.0.0.1:9000/realms/x")[0],
            "http://127.0.0.1:9000/.well-known/oauth-authorization-server/realms/x"
        );
    }

    #[test]
    fn an_issuer_with_a_query_or_plain_http_is_refused() {
        for bad in [
            "https://as.example/?tenant=a",
            "https://as.example/#x",
            "http://as.example",
            "https://user@as.example",
        ] {
            let error = well_known(bad, false).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config, "{bad}");
        }
    }
}
