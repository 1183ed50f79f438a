//! Fakes of what workload identity talks to: an OIDC issuer that signs workload tokens and
//! serves its JWKS ([`Issuer`]), the GitHub Actions token service ([`GitHubActionsOidc`]),
//! Google's metadata server ([`GcpMetadataServer`]) and Azure's instance metadata service
//! ([`AzureImdsServer`]).
//!
//! Each answers the request and response shapes its provider publishes, checks the headers
//! the provider demands, and can be told to misbehave ([`Misbehave`]). Each is reached in
//! process ([`FakeService`]) or over HTTP on 127.0.0.1 ([`serve`]). The metadata servers mint
//! their access tokens in an [`AuthServer`](crate::AuthServer), so its API accepts them.

mod github;
mod metadata;

pub use github::{GITHUB_ISSUER, GitHubActionsOidc};
pub use metadata::{AzureImdsServer, GcpMetadataServer};

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use http::{HeaderValue, Request, Response, StatusCode, header::LOCATION, request::Parts};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::{Body, Loopback, keys};

/// An OIDC issuer of workload tokens (a CI provider, a cluster): it signs RS256 JWTs with
/// the kit's RSA key ([`keys::RSA_PRIVATE_PEM`], `kid` [`keys::KEY_ID`]) and publishes the
/// public key as a JWKS, for a federated credential to trust.
#[derive(Clone, Debug)]
pub struct Issuer {
    url: String,
}

impl Issuer {
    /// The issuer whose `iss` is `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
        }
    }

    /// Its `iss`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its JWKS document: `{"keys": [the public key, with its kid]}`.
    pub fn jwks(&self) -> String {
        format!(r#"{{"keys":[{}]}}"#, keys::RSA_PUBLIC_JWK.trim())
    }

    /// A token for `sub` with audience `aud`, expiring `lifetime_secs` from now (ago, when
    /// negative).
    pub fn sign(&self, sub: &str, aud: &str, lifetime_secs: i64) -> String {
        let now = now() as i64;
        let claims = serde_json::json!({
            "iss": self.url,
            "sub": sub,
            "aud": aud,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime_secs,
            "jti": format!("{:016x}", rand::random::<u64>()),
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(keys::KEY_ID.to_owned());
        let key =
            EncodingKey::from_rsa_pem(keys::RSA_PRIVATE_PEM.as_bytes()).expect("the kit's key");
        jsonwebtoken::encode(&header, &claims, &key).expect("a signable token")
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// How a fake misbehaves, until it is healed.
#[derive(Clone, Debug)]
pub enum Misbehave {
    /// Answer every request with this status and body: an HTML error page, a body that is
    /// not JSON, one larger than a client's limit.
    Answer(StatusCode, String),
    /// Answer every request `302 Found` to this location.
    Redirect(String),
}

impl Misbehave {
    fn respond(&self) -> Response<Body> {
        match self {
            Self::Answer(status, body) => respond(*status, body.clone()),
            Self::Redirect(location) => {
                let mut response = respond(StatusCode::FOUND, "");
                if let Ok(value) = HeaderValue::from_str(location) {
                    response.headers_mut().insert(LOCATION, value);
                }
                response
            }
        }
    }
}

/// A fake that answers `GET` requests from their head alone.
pub trait Fake: Clone + Send + Sync + 'static {
    /// The answer to `request`.
    fn answer(&self, request: &Parts) -> Response<Body>;
}

/// A [`Fake`] in process, as a tower `Service` for requests with a body of type `B`.
pub struct FakeService<T, B = Body> {
    fake: T,
    // One body type, so that a client can infer the body it sends (see `Endpoint`).
    body: PhantomData<fn(B)>,
}

impl<T: Fake, B> FakeService<T, B> {
    pub(crate) fn new(fake: T) -> Self {
        Self {
            fake,
            body: PhantomData,
        }
    }
}

impl<T: Fake, B> Service<Request<B>> for FakeService<T, B> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, _) = request.into_parts();
        let answer = self.fake.answer(&parts);
        Box::pin(async move { Ok(answer) })
    }
}

impl<T: Clone, B> Clone for FakeService<T, B> {
    fn clone(&self) -> Self {
        Self {
            fake: self.fake.clone(),
            body: PhantomData,
        }
    }
}

impl<T: fmt::Debug, B> fmt::Debug for FakeService<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FakeService").field(&self.fake).finish()
    }
}

/// Serves `fake` over HTTP on 127.0.0.1, until the returned [`Loopback`] is dropped.
pub async fn serve<T: Fake>(fake: &T) -> std::io::Result<Loopback> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let fake = fake.clone();
    let accepting = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let fake = fake.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let (parts, _) = request.into_parts();
                    let answer = fake.answer(&parts);
                    async move { Ok::<_, Infallible>(answer) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    })
    .abort_handle();
    Ok(Loopback::new(addr, accepting))
}

pub(crate) fn respond(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(Body::new(body.into()));
    *response.status_mut() = status;
    response
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = respond(status, body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// The query parameters of `request`.
pub(crate) fn query(request: &Parts) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}
