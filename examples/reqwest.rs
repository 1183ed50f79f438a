//! `OAuth2Layer` around `reqwest::Client` (the `reqwest` feature): reqwest's own request and
//! response types, a token endpoint reached through reqwest with redirects turned off, and a
//! 401 answered by one refresh and one retry (the request is copied with
//! `reqwest::Request::try_clone`).
//!
//! ```sh
//! cargo run --features reqwest --example reqwest
//! ```
//!
//! It runs against the demo server on loopback and exits 0 only if every step happened.

use std::process::ExitCode;

use tower::{Service, ServiceBuilder, ServiceExt};
use tower_oauth2::{
    BoxError, ClientAuth, CloneBodies, OAuth2Layer, TokenClient, grant::ClientCredentials,
};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET};

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let server = AuthServer::demo();
    let loopback = server.serve().await?;

    // The token endpoint, through a reqwest client built with redirects turned off.
    let endpoint = TokenClient::reqwest(&loopback.token_url(), reqwest::Client::builder())?;
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET));

    // The API client: `reqwest::Client` is a tower `Service<reqwest::Request>`. `CloneBodies`
    // replays any request whose body is in memory; streaming bodies are never replayed.
    let http = reqwest::Client::new();
    let mut client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(grant).replay(CloneBodies))
        .service(http.clone());

    // Build requests with reqwest's builder, send them through the layer.
    let request = http.get(loopback.api_url("/orders")).build()?;
    let response = client.ready().await?.call(request).await?;
    println!("GET /orders: {}", response.status());
    let first = response.status() == 200;

    server.revoke_all();
    let request = http
        .post(loopback.api_url("/orders"))
        .body(r#"{"item":"book"}"#)
        .build()?;
    let response = client.ready().await?.call(request).await?;
    let status = response.status();
    let body = response.text().await?;
    println!("POST /orders after the token was revoked: {status} {body}");
    println!(
        "The API rejected {} request; the server issued {} tokens.",
        server.rejected(),
        server.grants()
    );
    let retried = status == 200 && server.rejected() == 1 && server.grants() == 2;

    Ok(if first && retried {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
