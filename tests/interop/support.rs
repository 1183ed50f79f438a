//! What the interop tests share: the server's addresses, an HTTP client, a scripted browser,
//! and the server's per-client counters.

use std::collections::HashMap;

use bytes::Bytes;
use http::{
    Request, StatusCode,
    header::{COOKIE, LOCATION, SET_COOKIE},
};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    BoxError, ClientAuth, OAuth2, OAuth2Layer, Token, TokenCache, TokenClient,
    grant::{AuthorizationCode, Callback},
};
use url::Url;

/// hyper-util's client: the real HTTP client under test, for the token endpoint and the API.
pub(crate) type Http = Client<HttpConnector, Full<Bytes>>;

/// The API client: `Http` wrapped in the middleware.
pub(crate) type Api = OAuth2<Http>;

/// The redirect URI every client that signs in is registered with.
pub(crate) const REDIRECT: &str = "http://127.0.0.1/callback";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the interop tests with interop/run.sh, which starts the server"
        )
    })
}

/// The authorization server, such as `http://127.0.0.1:41234`.
pub(crate) fn issuer() -> String {
    env("INTEROP_ISSUER")
}

/// The protected API's base URL.
pub(crate) fn api_url(path: &str) -> String {
    format!("{}{path}", env("INTEROP_API"))
}

pub(crate) fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

pub(crate) fn token_client() -> TokenClient {
    TokenClient::new(&format!("{}/token", issuer()), http()).unwrap()
}

/// A public native client's grant (PKCE, no secret). It expects the server to name itself in
/// every authorization response (RFC 9207), as oidc-provider does.
pub(crate) fn native_grant(client_id: &str, scopes: &[&str]) -> AuthorizationCode {
    AuthorizationCode::new(
        token_client(),
        ClientAuth::none(client_id),
        &format!("{}/auth", issuer()),
        REDIRECT,
    )
    .unwrap()
    .scopes(scopes)
    .issuer(issuer())
}

/// The API behind the middleware, with tokens from `cache`.
pub(crate) fn api(cache: &TokenCache) -> Api {
    ServiceBuilder::new()
        .layer(OAuth2Layer::new(cache.clone()))
        .service(http())
}

/// `GET path` on the API through `client`: its status and body.
pub(crate) async fn get(client: &Api, path: &str) -> Result<(StatusCode, String), BoxError> {
    let request = Request::get(api_url(path)).body(Full::default())?;
    let response = client.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET path` on the API with `access_token` and no middleware: the server's verdict on it.
pub(crate) async fn status_with(access_token: &str, path: &str) -> StatusCode {
    let request = Request::get(api_url(path))
        .header("authorization", format!("Bearer {access_token}"))
        .body(Full::default())
        .unwrap();
    http().request(request).await.unwrap().status()
}

/// Follows the server's redirects from `url` like a browser (sending back every cookie seen),
/// and returns the first address off the server: the redirect URI with the code.
pub(crate) async fn follow(url: &str) -> Url {
    let issuer = Url::parse(&issuer()).unwrap();
    let mut url = Url::parse(url).unwrap();
    let mut cookies: HashMap<String, String> = HashMap::new();
    for _ in 0..10 {
        if url.origin() != issuer.origin() {
            return url;
        }
        let cookie = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = Request::get(url.as_str())
            .header(COOKIE, cookie)
            .body(Full::default())
            .unwrap();
        let response = http().request(request).await.unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|value| value.to_str().unwrap().to_owned());
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            panic!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        };
        // The first hop is relative (`/interaction/<uid>`).
        url = url.join(&location).unwrap();
    }
    panic!("more than 10 redirects");
}

/// Signs in without a person: the server approves every interaction by itself.
pub(crate) async fn sign_in(url: &str) -> Callback {
    let back = follow(url).await;
    assert!(
        back.as_str().starts_with("http://127.0.0.1/callback?"),
        "{back}"
    );
    Callback::from_query(back.query().unwrap()).unwrap()
}

/// The whole authorization-code flow: URL, sign-in, exchange.
pub(crate) async fn authorize(grant: &AuthorizationCode) -> Token {
    let pending = grant.authorize_url();
    let callback = sign_in(pending.url()).await;
    grant.exchange(pending, callback).await.unwrap()
}

/// The server's counters for `client_id`: `success:<grant_type>`, `invalid_grant`,
/// `grant_revoked`, `wrong_auth_method`, ...
pub(crate) async fn counters(client_id: &str) -> HashMap<String, u64> {
    let request = Request::get(api_url(&format!("/stats/{client_id}")))
        .body(Full::default())
        .unwrap();
    let response = http().request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// One counter, zero when absent.
pub(crate) async fn counter(client_id: &str, name: &str) -> u64 {
    counters(client_id).await.get(name).copied().unwrap_or(0)
}

/// Makes the server forget one access token (its refresh token stays good), as a server does
/// when it invalidates a token before it expires.
pub(crate) async fn expire(access_token: &str) {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", access_token)
        .finish();
    let request = Request::post(api_url("/expire"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let response = http().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// An HTTP client that records the body of every request it sends through [`http`], so a
/// test can send one again as it was.
pub(crate) fn recording(
    log: std::sync::Arc<std::sync::Mutex<Vec<Bytes>>>,
) -> tower::util::BoxCloneSyncService<
    Request<Full<Bytes>>,
    http::Response<hyper::body::Incoming>,
    BoxError,
> {
    tower::util::BoxCloneSyncService::new(tower::service_fn(
        move |request: Request<Full<Bytes>>| {
            let log = log.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                log.lock().unwrap().push(body.clone());
                let response = http()
                    .request(Request::from_parts(parts, Full::new(body)))
                    .await?;
                Ok::<_, BoxError>(response)
            }
        },
    ))
}

/// Posts `form` to the token endpoint as it is, without the crate: the server's verdict on a
/// replayed request.
pub(crate) async fn post_token_form(form: Bytes) -> (StatusCode, String) {
    let request = Request::post(format!("{}/token", issuer()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(form))
        .unwrap();
    let response = http().request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
