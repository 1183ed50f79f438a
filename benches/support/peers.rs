//! The Rust peers that cache tokens, set up to attach a cached token the way their users do.
//!
//! - `aliri_tokens`: a `TokenWatcher` over a constant source; per request the header is built
//!   from the watched token, as `aliri_reqwest`'s middleware does.
//! - `yup-oauth2`: an authenticator over the instance-metadata flow, pointed at a token
//!   endpoint on loopback; per request `Authenticator::token` reads its cache.

use std::{
    convert::Infallible,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::Service;

use super::TOKEN_40;

/// A middleware that asks `header` for the `Authorization` value of every request that has
/// none: how a peer that hands out token strings is wired into a client.
#[derive(Clone)]
pub struct Attach<S, F> {
    inner: S,
    header: F,
}

impl<S, F, B> Service<Request<B>> for Attach<S, F>
where
    S: Service<Request<B>>,
    F: FnMut() -> HeaderValue,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        if !request.headers().contains_key(AUTHORIZATION) {
            request.headers_mut().insert(AUTHORIZATION, (self.header)());
        }
        self.inner.call(request)
    }
}

fn bearer(token: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).expect("a valid header");
    value.set_sensitive(true);
    value
}

/// `inner` with the token of an `aliri_tokens::TokenWatcher`.
pub fn aliri<S>(
    runtime: &tokio::runtime::Runtime,
    inner: S,
) -> Attach<S, impl FnMut() -> HeaderValue + Clone> {
    let watcher = runtime
        .block_on(aliri_tokens::TokenWatcher::spawn_from_token_source(
            aliri_tokens::sources::ConstTokenSource::new(TOKEN_40.to_owned()),
            aliri_tokens::jitter::NullJitter,
            aliri_tokens::backoff::ErrorBackoffConfig::default(),
        ))
        .expect("a constant source always answers");
    Attach {
        inner,
        header: move || bearer(watcher.token().access_token().as_str()),
    }
}

const SCOPES: [&str; 1] = ["https://api.example.com/orders"];

/// `inner` with the token of a `yup_oauth2` authenticator whose token endpoint runs in
/// `runtime` on loopback. The runtime must have a worker thread of its own.
pub fn yup<S>(
    runtime: &tokio::runtime::Runtime,
    inner: S,
) -> Attach<S, impl FnMut() -> HeaderValue + Clone> {
    let authenticator = runtime.block_on(async {
        let url = token_endpoint().await;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<String>();
        let opts = yup_oauth2::ApplicationDefaultCredentialsFlowOpts {
            metadata_url: Some(url),
        };
        let builder = match yup_oauth2::ApplicationDefaultCredentialsAuthenticator::with_client(
            opts,
            yup_oauth2::CustomHyperClientBuilder::from(client),
        )
        .await
        {
            yup_oauth2::authenticator::ApplicationDefaultCredentialsTypes::InstanceMetadata(
                builder,
            ) => builder,
            yup_oauth2::authenticator::ApplicationDefaultCredentialsTypes::ServiceAccount(_) => {
                panic!("GOOGLE_APPLICATION_CREDENTIALS must be unset for this benchmark")
            }
        };
        let authenticator = builder.build().await.expect("an authenticator");
        // The first call fetches; every later one is served from yup-oauth2's cache.
        authenticator.token(&SCOPES).await.expect("a token");
        authenticator
    });
    Attach {
        inner,
        header: move || {
            let token = super::now(authenticator.token(&SCOPES)).expect("a cached token");
            bearer(token.token().expect("an access token"))
        },
    }
}

/// A metadata-style token endpoint on loopback for yup-oauth2's instance-metadata flow. Not
/// the test kit's `AuthServer`: that flow sends a `GET`, and every peer must carry the same
/// 40-byte token.
async fn token_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let answer = service_fn(|_: Request<hyper::body::Incoming>| async {
                    let body = format!(
                        r#"{{"access_token":"{TOKEN_40}","expires_in":3600,"token_type":"Bearer"}}"#
                    );
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), answer)
                    .await;
            });
        }
    });
    format!("http://{address}/token")
}
