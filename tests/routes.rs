//! One client for many APIs: destinations with a token cache of their own
//! (`OAuth2Layer::route`), each API its own authorization server here.

mod common;

use http::{Request, StatusCode};
use tokio::task::JoinSet;
use tower::{Layer, ServiceExt, service_fn};
use tower_oauth2::{ErrorKind, OAuth2Layer};
use tower_oauth2_testkit::{AuthServer, Body, get};

use common::AuthServerExt;

/// One API in front: `/billing` and below on api.test answers with billing's server, anything
/// else with orders'.
fn apis(
    orders: &AuthServer,
    billing: &AuthServer,
) -> impl tower::Service<
    Request<Body>,
    Response = http::Response<Body>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let (orders, billing) = (orders.api::<Body>(), billing.api::<Body>());
    service_fn(move |request: Request<Body>| {
        let path = request.uri().path();
        let is_billing = path == "/billing" || path.starts_with("/billing/");
        let (orders, billing) = (orders.clone(), billing.clone());
        async move {
            if is_billing {
                billing.oneshot(request).await
            } else {
                orders.oneshot(request).await
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn each_destination_gets_the_token_of_its_own_source() {
    let (orders, billing) = (AuthServer::new(), AuthServer::new());
    let client = OAuth2Layer::new(orders.grant())
        .route("https://api.test/billing", billing.grant())
        .unwrap()
        .layer(apis(&orders, &billing));

    for uri in [
        "https://api.test/orders",
        "https://api.test/billing/invoices",
    ] {
        let response = client.clone().oneshot(get(uri)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
    assert_eq!(orders.grants(), 1);
    assert_eq!(billing.grants(), 1);
    assert_eq!(orders.api_tokens(), [Some("token-1".to_owned())]);
    assert_eq!(billing.api_tokens(), [Some("token-1".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn the_most_specific_destination_wins() {
    let (orders, billing) = (AuthServer::new(), AuthServer::new());
    let client = OAuth2Layer::new(orders.grant())
        .route("https://api.test", orders.grant())
        .unwrap()
        .route("https://api.test/billing", billing.grant())
        .unwrap()
        .layer(apis(&orders, &billing));
    client
        .clone()
        .oneshot(get("https://api.test/billing/x"))
        .await
        .unwrap();
    client
        .oneshot(get("https://api.test/billingx"))
        .await
        .unwrap();
    assert_eq!(billing.api_tokens().len(), 1);
    assert_eq!(
        orders.api_tokens().len(),
        1,
        "/billingx is not under /billing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_path_that_climbs_out_of_a_destination_does_not_get_its_token() {
    let (orders, billing) = (AuthServer::new(), AuthServer::new());
    let client = OAuth2Layer::new(orders.grant())
        .route("https://api.test/billing", billing.grant())
        .unwrap()
        .layer(apis(&orders, &billing));
    for uri in [
        "https://api.test/billing/../orders/42",
        "https://api.test/billing/%2e%2e/orders/42",
        "https://api.test/billing/%2E./orders/42",
        "https://api.test/billing/./../orders/42",
    ] {
        client.clone().oneshot(get(uri)).await.unwrap();
    }
    // The fake routes by the raw path, so these reach the billing API: with the layer's token.
    assert_eq!(billing.grants(), 0, "a climbing path got billing's token");
    assert!(orders.grants() >= 1);
}

#[tokio::test(start_paused = true)]
async fn each_destination_has_its_own_single_flight_and_its_own_401_refresh() {
    let (orders, billing) = (AuthServer::new(), AuthServer::new());
    let client = OAuth2Layer::new(orders.grant())
        .route("https://api.test/billing", billing.grant())
        .unwrap()
        .layer(apis(&orders, &billing));

    let mut calls = JoinSet::new();
    for n in 0..40 {
        let uri = if n % 2 == 0 {
            "https://api.test/orders"
        } else {
            "https://api.test/billing"
        };
        calls.spawn(client.clone().oneshot(get(uri)));
    }
    for response in calls.join_all().await {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
    assert_eq!((orders.grants(), billing.grants()), (1, 1));

    billing.revoke("token-1");
    let response = client
        .clone()
        .oneshot(get("https://api.test/billing"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!((orders.grants(), billing.grants()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_request_no_destination_covers_follows_the_layers_own_origins() {
    let (orders, billing) = (AuthServer::new(), AuthServer::new());
    let layer = OAuth2Layer::new(orders.grant())
        .allow_origin("https://orders.test")
        .unwrap()
        .route("https://api.test/billing", billing.grant())
        .unwrap();

    let client = layer.clone().layer(apis(&orders, &billing));
    let error = client
        .oneshot(get("https://api.test/orders"))
        .await
        .unwrap_err();
    let error = error.downcast_ref::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::OriginNotAllowed);

    let client = layer
        .send_others_without_token()
        .layer(apis(&orders, &billing));
    let response = client
        .oneshot(get("https://api.test/orders"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(orders.api_tokens(), [None]);
    assert_eq!(orders.grants() + billing.grants(), 0);
}

#[test]
fn a_destination_must_be_https_unless_loopback() {
    let server = AuthServer::new();
    let error = OAuth2Layer::new(server.grant())
        .route("http://api.test/billing", server.grant())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(
        OAuth2Layer::new(server.grant())
            .allow_plain_http()
            .route("http://api.test/billing", server.grant())
            .is_ok()
    );
}
