//! The device authorization grant (RFC 8628) against oidc-provider's own device flow: the
//! test plays the user at the server's pages (the user code form, the confirmation, then the
//! sign-in the server approves by itself) while the grant polls at the server's pace (no
//! `interval` from this server: every 5 seconds).

use std::collections::HashMap;

use bytes::Bytes;
use http::{
    Method, Request, StatusCode,
    header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE},
};
use http_body_util::{BodyExt, Full};
use tower_oauth2::{
    ClientAuth, Discovery, ErrorKind, TokenCache,
    grant::{DeviceAuthorization, DeviceCode},
};
use url::Url;

use crate::support::{api, get, http, issuer};

async fn grant(auth: ClientAuth) -> DeviceCode {
    let discovery = Discovery::new(&issuer(), http()).unwrap();
    DeviceCode::discover(&discovery, auth)
        .await
        .unwrap()
        .scopes(["openid", "api:read"])
        .on_prompt(|_| {})
}

/// A user's browser: it keeps every cookie it is sent and sends them all back.
#[derive(Default)]
struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    /// Sends a request, following redirects; returns the final status and page.
    async fn send(&mut self, url: &str, form: Option<&[(&str, &str)]>) -> (StatusCode, String) {
        let mut url = Url::parse(url).unwrap();
        let mut form = form.map(|fields| {
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish()
        });
        for _ in 0..10 {
            let cookie = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            let method = if form.is_some() {
                Method::POST
            } else {
                Method::GET
            };
            let request = Request::builder()
                .method(method)
                .uri(url.as_str())
                .header(COOKIE, cookie)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form.take().unwrap_or_default())))
                .unwrap();
            let response = http().request(request).await.unwrap();
            for set in response.headers().get_all(SET_COOKIE) {
                let pair = set.to_str().unwrap().split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            let status = response.status();
            let location = response.headers().get(LOCATION).cloned();
            match location.filter(|_| status.is_redirection()) {
                Some(location) => url = url.join(location.to_str().unwrap()).unwrap(),
                None => {
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    return (status, String::from_utf8_lossy(&body).into_owned());
                }
            }
        }
        panic!("more than 10 redirects");
    }
}

/// The value of the hidden form field `name` in `page`.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// The user enters the code at the verification URI and confirms (`approve`) or aborts.
async fn user_decides(authorization: &DeviceAuthorization, approve: bool) -> String {
    let uri = authorization.verification_uri().to_owned();
    let code = authorization.user_code().to_owned();
    let mut browser = Browser::default();
    let (status, page) = browser.send(&uri, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let xsrf = hidden(&page, "xsrf");
    let (status, page) = browser
        .send(&uri, Some(&[("xsrf", &xsrf), ("user_code", &code)]))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains(&code),
        "the confirmation shows the code: {page}"
    );
    let xsrf = hidden(&page, "xsrf");
    let decision = if approve {
        ("confirm", "yes")
    } else {
        ("abort", "yes")
    };
    let (_, page) = browser
        .send(
            &uri,
            Some(&[("xsrf", &xsrf), ("user_code", &code), decision]),
        )
        .await;
    page
}

#[tokio::test]
async fn a_device_approved_at_the_servers_pages_gets_tokens_that_refresh() {
    let grant = grant(ClientAuth::none("device-native")).await;
    let authorization = grant.start().await.unwrap();
    assert!(authorization.verification_uri().starts_with(&issuer()));
    let complete = authorization.verification_uri_complete().unwrap();
    assert!(complete.contains(authorization.user_code()), "{complete}");

    let (token, page) = tokio::join!(
        grant.wait_for_user(&authorization),
        user_decides(&authorization, true)
    );
    assert!(page.contains("Sign-in Success"), "{page}");
    let token = token.unwrap();
    assert!(token.refresh_token().is_some());

    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("user-1"), "{body}");
    let renewed = cache.refresh().await.unwrap();
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(renewed.token().refresh_token().is_some());
}

#[tokio::test]
async fn a_device_the_user_aborts_ends_with_access_denied() {
    let grant = grant(ClientAuth::basic("device-basic", "device-basic-secret")).await;
    let authorization = grant.start().await.unwrap();
    let (outcome, _) = tokio::join!(
        grant.wait_for_user(&authorization),
        user_decides(&authorization, false)
    );
    let error = outcome.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed, "{error}");
    assert_eq!(error.oauth_error(), Some("access_denied"), "{error}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_at_the_device_endpoint() {
    let grant = grant(ClientAuth::basic("device-basic", "wrong")).await;
    let error = grant.start().await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_client"), "{error}");
    assert!(
        error.to_string().contains("device authorization endpoint"),
        "{error}"
    );
}
