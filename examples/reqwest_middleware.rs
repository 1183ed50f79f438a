//! `OAuth2Layer` as a middleware of `reqwest_middleware::ClientWithMiddleware` (the
//! `reqwest-middleware` feature): requests keep reqwest's builders and `.send()`, and a 401 is
//! answered by one refresh and one retry.
//!
//! ```sh
//! cargo run --features reqwest-middleware --example reqwest_middleware
//! ```
//!
//! It runs against the demo server on loopback and exits 0 only if every step happened.

use std::process::ExitCode;

use tower_oauth2::{
    BoxError, ClientAuth, CloneBodies, OAuth2Layer, TokenClient, grant::ClientCredentials,
};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET};

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let server = AuthServer::demo();
    let loopback = server.serve().await?;

    let endpoint = TokenClient::reqwest(&loopback.token_url(), reqwest::Client::builder())?;
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET));
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuth2Layer::new(grant).replay(CloneBodies))
        .build();

    let response = client.get(loopback.api_url("/orders")).send().await?;
    println!("GET /orders: {}", response.status());
    let first = response.status() == 200;

    server.revoke_all();
    let response = client
        .post(loopback.api_url("/orders"))
        .body(r#"{"item":"book"}"#)
        .send()
        .await?;
    let status = response.status();
    println!(
        "POST /orders after the token was revoked: {status} {}",
        response.text().await?
    );
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
