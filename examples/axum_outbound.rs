//! An axum server whose handlers call a downstream API through one OAuth2 client, shared by
//! every handler through the router's state.
//!
//! ```sh
//! cargo run --example axum_outbound                 # serve on 127.0.0.1:3000 until Ctrl-C
//! cargo run --example axum_outbound -- --self-check # 50 concurrent calls, then check
//! ```
//!
//! The downstream API and its authorization server are the demo server on loopback. With
//! `--self-check` the example calls its own handlers 50 times at once and exits 0 only if all
//! succeeded with one token from one grant.

use std::{net::SocketAddr, process::ExitCode};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{net::TcpListener, task::JoinSet};
use tower::ServiceExt;
use tower_oauth2::{
    BoxError, ClientAuth, OAuth2, TokenCache, TokenClient, grant::ClientCredentials,
};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET};

type Http = Client<HttpConnector, Full<Bytes>>;

/// What every handler shares. Cloning it per request clones handles, not connections or
/// tokens: the client's connection pool and token cache are shared.
#[derive(Clone)]
struct AppState {
    orders: OAuth2<Http>,
    orders_base: String,
}

#[derive(serde::Serialize)]
struct Order {
    id: u32,
    upstream_status: u16,
    upstream_body: String,
}

async fn order(
    State(state): State<AppState>,
    Path(id): Path<u32>,
) -> Result<Json<Order>, (StatusCode, String)> {
    let request = Request::get(format!("{}/orders/{id}", state.orders_base))
        .body(Full::default())
        .map_err(|error| (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    // `oneshot` waits for readiness and then calls: the pattern for a shared client.
    let response = state.orders.oneshot(request).await.map_err(bad_gateway)?;
    let upstream_status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| bad_gateway(error.into()))?
        .to_bytes();
    Ok(Json(Order {
        id,
        upstream_status,
        upstream_body: String::from_utf8_lossy(&body).into_owned(),
    }))
}

/// A failed downstream call, token errors included, is a 502 here. The crate's errors never
/// contain a secret, so the message may go to the caller.
fn bad_gateway(error: BoxError) -> (StatusCode, String) {
    (StatusCode::BAD_GATEWAY, error.to_string())
}

fn app(state: AppState) -> Router {
    Router::new()
        .route("/orders/{id}", get(order))
        .with_state(state)
}

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let self_check = std::env::args().any(|arg| arg == "--self-check");
    let downstream = AuthServer::demo();
    let loopback = downstream.serve().await?;

    // One HTTP client and one token cache for the whole server.
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let endpoint = TokenClient::new(&loopback.token_url(), http.clone())?;
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET))
        .scopes(["orders:read"]);
    let cache = TokenCache::new(grant);
    let state = AppState {
        orders: OAuth2::new(http, cache.clone()),
        orders_base: loopback.api_url(""),
    };

    let addr = if self_check {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app(state)).await });

    if !self_check {
        println!("Listening on http://{addr}; try: curl http://{addr}/orders/42");
        tokio::signal::ctrl_c().await?;
        return Ok(ExitCode::SUCCESS);
    }

    let ok = call_concurrently(addr, 50).await?;
    let stats = cache.stats();
    println!(
        "50 concurrent handler calls: {ok} answered 200 with the upstream's 200; the \
         authorization server issued {} token; the cache ran {} fetch.",
        downstream.grants(),
        stats.fetches,
    );
    server.abort();
    let passed = ok == 50 && downstream.grants() == 1 && stats.fetches == 1;
    println!("self-check {}", if passed { "passed" } else { "FAILED" });
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Calls `/orders/{n}` on the server `n` times at once; returns how many calls succeeded
/// end to end.
async fn call_concurrently(addr: SocketAddr, n: u32) -> Result<usize, BoxError> {
    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    let mut calls = JoinSet::new();
    for id in 0..n {
        let client = client.clone();
        calls.spawn(async move {
            let request =
                Request::get(format!("http://{addr}/orders/{id}")).body(Full::default())?;
            let response = client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let order: serde_json::Value = serde_json::from_slice(&body)?;
            Ok::<_, BoxError>(status == 200 && order["upstream_status"] == 200 && order["id"] == id)
        });
    }
    let mut ok = 0;
    for outcome in calls.join_all().await {
        ok += usize::from(outcome?);
    }
    Ok(ok)
}
