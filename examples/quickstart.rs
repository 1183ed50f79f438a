//! A self-contained tour: an authorization server and an API start on loopback, and a
//! hyper-util client wrapped in `OAuth2Layer` calls the API.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! It prints what happens and exits 0 only if each behaviour happened as described.

use std::{process::ExitCode, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::task::JoinSet;
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{ClientAuth, OAuth2Layer, TokenClient, grant::ClientCredentials};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET};

const TOKEN_LIFETIME: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> Result<ExitCode, tower_oauth2::BoxError> {
    let server = AuthServer::demo().lifetime(TOKEN_LIFETIME);
    let loopback = server.serve().await?;
    println!(
        "Authorization server and API listening on {}",
        loopback.addr()
    );
    println!("Tokens live {} seconds.\n", TOKEN_LIFETIME.as_secs());

    // The same HTTP client serves the token endpoint and the API.
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let endpoint = TokenClient::new(&loopback.token_url(), http.clone())?;
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET))
        .scopes(["orders:read"]);
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(grant))
        .service(http);

    let get = |path: &str| {
        let request = Request::get(loopback.api_url(path)).body(Full::default());
        let client = client.clone();
        async move {
            let response = client.oneshot(request?).await?;
            Ok::<_, tower_oauth2::BoxError>(response.status())
        }
    };
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            failures.push(what.to_owned());
        }
    };

    // 1. Many requests at once on an empty cache share one grant.
    let mut requests = JoinSet::new();
    for n in 0..20 {
        requests.spawn(get(&format!("/orders/{n}")));
    }
    let statuses = requests.join_all().await;
    let ok = statuses
        .iter()
        .filter(|status| matches!(status, Ok(StatusCode::OK)))
        .count();
    println!(
        "1. 20 requests at once on an empty cache: {ok} answered 200, the server issued {} token.",
        server.grants()
    );
    check(
        ok == 20 && server.grants() == 1,
        "one grant for 20 concurrent requests",
    );

    // 2. Later requests reuse the cached token.
    for _ in 0..5 {
        check(
            get("/orders").await? == StatusCode::OK,
            "cached requests succeed",
        );
    }
    println!(
        "2. 5 more requests reused the cached token: still {} grant.",
        server.grants()
    );
    check(server.grants() == 1, "reuse from the cache");

    // 3. After the token expires, the next request waits for one refresh.
    tokio::time::sleep(TOKEN_LIFETIME + Duration::from_millis(500)).await;
    let status = get("/orders").await?;
    println!(
        "3. After the token expired, the next request waited for a refresh and got {}: {} grants in all.",
        status.as_u16(),
        server.grants()
    );
    check(
        status == StatusCode::OK && server.grants() == 2,
        "one refresh after expiry",
    );

    // 4. A token the server revoked is answered 401; the layer refreshes and retries once.
    server.revoke_all();
    let rejected_before = server.rejected();
    let status = get("/orders").await?;
    let rejected = server.rejected() - rejected_before;
    println!(
        "4. The server revoked the token. The API answered {rejected} request with 401, the layer \
         fetched a new token and retried: the caller got {}. {} grants in all.",
        status.as_u16(),
        server.grants()
    );
    check(
        status == StatusCode::OK && rejected == 1 && server.grants() == 3,
        "refresh and retry after a 401",
    );

    println!();
    if failures.is_empty() {
        println!("All four behaviours happened as described.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Did not happen as described: {}", failures.join("; "));
        Ok(ExitCode::FAILURE)
    }
}
