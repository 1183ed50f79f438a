//! Fakes shared by the integration tests: a token endpoint that counts its grants and an API
//! that accepts only the tokens that endpoint issued and did not revoke.

#![allow(dead_code, unreachable_pub)]

pub mod recording;

use std::{
    collections::HashSet,
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use std::future::Future;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::Full;
use tower::{Service, service_fn};
use tower_oauth2::{ClientAuth, TokenCache, TokenClient, grant::ClientCredentials};

pub type Body = Full<Bytes>;

/// An authorization server: issues `token-1`, `token-2`, ... and an API that checks them.
pub struct Issuer {
    grants: AtomicUsize,
    valid: Mutex<HashSet<String>>,
    seen: Mutex<Vec<Option<String>>>,
    expires_in: Option<u64>,
    delay: Duration,
    refuse: Mutex<Option<(StatusCode, &'static str)>>,
}

impl Issuer {
    pub fn new() -> Arc<Self> {
        Self::with(Some(3600), Duration::ZERO)
    }

    pub fn with(expires_in: Option<u64>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            grants: AtomicUsize::new(0),
            valid: Mutex::new(HashSet::new()),
            seen: Mutex::new(Vec::new()),
            expires_in,
            delay,
            refuse: Mutex::new(None),
        })
    }

    /// How many token requests the endpoint answered.
    pub fn grants(&self) -> usize {
        self.grants.load(Ordering::SeqCst)
    }

    /// Makes the API answer 401 for `token` from now on.
    pub fn revoke(&self, token: &str) {
        self.valid.lock().unwrap().remove(token);
    }

    /// Makes the token endpoint answer `status` with `body` until `heal` is called.
    pub fn fail_with(&self, status: StatusCode, body: &'static str) {
        *self.refuse.lock().unwrap() = Some((status, body));
    }

    pub fn heal(&self) {
        *self.refuse.lock().unwrap() = None;
    }

    /// The bearer tokens the API received, in order (`None` for a request without one).
    pub fn seen(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }

    pub fn token_endpoint(
        self: &Arc<Self>,
    ) -> impl Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static {
        let issuer = Arc::clone(self);
        service_fn(move |_request: Request<Body>| {
            let issuer = Arc::clone(&issuer);
            async move {
                tokio::time::sleep(issuer.delay).await;
                let n = issuer.grants.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some((status, body)) = *issuer.refuse.lock().unwrap() {
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    *response.status_mut() = status;
                    return Ok(response);
                }
                let token = format!("token-{n}");
                issuer.valid.lock().unwrap().insert(token.clone());
                let expiry = issuer
                    .expires_in
                    .map(|seconds| format!(r#","expires_in":{seconds}"#))
                    .unwrap_or_default();
                let body = format!(r#"{{"access_token":"{token}","token_type":"Bearer"{expiry}}}"#);
                Ok(Response::new(Full::new(Bytes::from(body))))
            }
        })
    }

    /// The protected API: 200 with the token it saw, or 401.
    pub fn api<B: Send + 'static>(
        self: &Arc<Self>,
    ) -> impl Service<
        Request<B>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static {
        let issuer = Arc::clone(self);
        service_fn(move |request: Request<B>| {
            let issuer = Arc::clone(&issuer);
            async move {
                let token = request
                    .headers()
                    .get(AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .map(str::to_owned);
                issuer.seen.lock().unwrap().push(token.clone());
                let ok = token
                    .as_ref()
                    .is_some_and(|token| issuer.valid.lock().unwrap().contains(token));
                let mut response = Response::new(Full::new(Bytes::from(token.unwrap_or_default())));
                if !ok {
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    response.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                    );
                }
                Ok::<_, Infallible>(response)
            }
        })
    }

    /// A client-credentials grant against this issuer's token endpoint.
    pub fn grant(self: &Arc<Self>) -> ClientCredentials {
        let endpoint = TokenClient::new("https://auth.test/token", self.token_endpoint()).unwrap();
        ClientCredentials::new(endpoint, ClientAuth::basic("client", "secret"))
    }

    pub fn cache(self: &Arc<Self>) -> TokenCache {
        TokenCache::new(self.grant())
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::default()).unwrap()
}

pub async fn body_text(response: Response<Body>) -> String {
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
