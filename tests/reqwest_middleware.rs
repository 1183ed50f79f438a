//! `OAuth2Layer` as a `reqwest_middleware::Middleware`: requests built and sent with reqwest's
//! own builders, against servers on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower_oauth2::{
    ClientAuth, CloneBodies, Error, ErrorKind, FetchContext, OAuth2Layer, Token, TokenCache,
    TokenClient, TokenSource, grant::ClientCredentials,
};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET, Loopback};

/// The examples' server, on loopback.
async fn demo() -> (AuthServer, Loopback) {
    let server = AuthServer::demo();
    let loopback = server.serve().await.unwrap();
    (server, loopback)
}

fn cache(loopback: &Loopback) -> TokenCache {
    let endpoint = TokenClient::reqwest(&loopback.token_url(), reqwest::Client::builder()).unwrap();
    TokenCache::new(ClientCredentials::new(
        endpoint,
        ClientAuth::basic(CLIENT_ID, CLIENT_SECRET),
    ))
}

fn client<P>(layer: OAuth2Layer<P>) -> ClientWithMiddleware
where
    OAuth2Layer<P>: reqwest_middleware::Middleware,
{
    ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build()
}

/// The crate's error inside the middleware error of a failed send.
fn token_error(sent: reqwest_middleware::Result<reqwest::Response>) -> tower_oauth2::Error {
    match sent {
        Err(reqwest_middleware::Error::Middleware(error)) => {
            error.downcast::<tower_oauth2::Error>().unwrap()
        }
        Err(error) => panic!("not a middleware error: {error}"),
        Ok(response) => panic!("sent: {}", response.status()),
    }
}

#[tokio::test]
async fn concurrent_sends_share_one_grant() {
    let (server, loopback) = demo().await;
    let client = client(OAuth2Layer::new(cache(&loopback)));

    let mut calls = tokio::task::JoinSet::new();
    for n in 0..20 {
        let request = client.get(loopback.api_url(&format!("/orders/{n}")));
        calls.spawn(request.send());
    }
    for response in calls.join_all().await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn a_401_is_retried_once_with_a_new_token() {
    let (server, loopback) = demo().await;
    let cache = cache(&loopback);
    let client = client(OAuth2Layer::new(cache.clone()).replay(CloneBodies));
    let warm = client
        .get(loopback.api_url("/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    server.revoke_all();

    let response = client
        .post(loopback.api_url("/orders"))
        .body("item=book")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"method":"POST","bytes":9}"#
    );
    assert_eq!(server.rejected(), 1);
    assert_eq!(server.grants(), 2);
    assert_eq!(cache.stats().retries_after_401, 1);
}

#[tokio::test]
async fn by_default_a_request_with_a_body_gets_its_401_and_the_token_is_retired() {
    let (server, loopback) = demo().await;
    let client = client(OAuth2Layer::new(cache(&loopback)));
    client
        .get(loopback.api_url("/orders"))
        .send()
        .await
        .unwrap();
    server.revoke_all();

    let response = client
        .post(loopback.api_url("/orders"))
        .body("item=book")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let get = client
        .get(loopback.api_url("/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(server.grants(), 2);
}

#[tokio::test]
async fn an_authorization_header_the_caller_set_is_sent_as_it_is() {
    let (server, loopback) = demo().await;
    let client = client(OAuth2Layer::new(cache(&loopback)));
    let response = client
        .get(loopback.api_url("/orders"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn a_refused_origin_is_a_typed_error_inside_the_middleware_error() {
    let (server, loopback) = demo().await;
    let client = client(OAuth2Layer::new(cache(&loopback)));
    let error = client.get("http://api.invalid/orders").send().await;
    assert_eq!(token_error(error).kind(), ErrorKind::OriginNotAllowed);
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn a_request_to_an_origin_not_allowed_goes_out_without_the_token() {
    let (server, loopback) = demo().await;
    let layer = OAuth2Layer::new(cache(&loopback))
        .allow_origin("https://api.example.com")
        .unwrap()
        .send_others_without_token();
    let response = client(layer)
        .get(loopback.api_url("/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.grants(), 0);
}

/// Hands out a token the API does not know, then fails.
struct UnknownThenFailing(AtomicUsize);

impl TokenSource for UnknownThenFailing {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        match self.0.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(Token::bearer("unknown-to-the-api")),
            _ => Err(Error::source_failed("the token service is down")),
        }
    }
}

#[tokio::test]
async fn when_no_new_token_can_be_had_after_a_401_the_error_says_why_and_nothing_is_resent() {
    let (server, loopback) = demo().await;
    let client = client(OAuth2Layer::new(UnknownThenFailing(AtomicUsize::new(0))));

    let error = client.get(loopback.api_url("/orders")).send().await;
    assert_eq!(token_error(error).kind(), ErrorKind::Source);
    assert_eq!(server.api_tokens().len(), 1);
}

#[tokio::test]
async fn a_clone_used_as_the_last_handle_still_retries_after_a_401() {
    let (server, loopback) = demo().await;
    let cache = cache(&loopback);
    let client = client(OAuth2Layer::new(cache.clone()));
    let warm = client.get(loopback.api_url("/orders")).send().await;
    assert_eq!(warm.unwrap().status(), 200);
    server.revoke_all();
    drop(cache);

    // A task that owns its clone, and nothing else that holds the layer.
    let sent = {
        let owned = client.clone();
        drop(client);
        owned.get(loopback.api_url("/orders")).send()
    };
    let response = tokio::spawn(sent).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.rejected(), 1);
    assert_eq!(server.grants(), 2);
}
