//! `LoopbackRedirect` with a scripted browser on real loopback sockets and a fake token
//! endpoint.

#![cfg(feature = "loopback-redirect")]

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};
use tower::service_fn;
use tower_oauth2::{
    ClientAuth, ErrorKind, TokenClient,
    grant::{AuthorizationCode, LoopbackRedirect},
};

use tower_oauth2_testkit::Body;

type Forms = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// A grant whose token endpoint records forms and always issues a token.
fn grant(redirect_uri: &str) -> (AuthorizationCode, Forms) {
    let forms = Forms::default();
    let recorded = Arc::clone(&forms);
    let http = service_fn(move |request: Request<Body>| {
        let recorded = Arc::clone(&recorded);
        async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let form = form_urlencoded::parse(&body).into_owned().collect();
            recorded.lock().unwrap().push(form);
            let token =
                r#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r"}"#;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(token))))
        }
    });
    let endpoint = TokenClient::new("https://auth.test/token", http).unwrap();
    let grant = AuthorizationCode::new(
        endpoint,
        ClientAuth::none("cli"),
        "https://auth.test/authorize",
        redirect_uri,
    )
    .unwrap()
    .scopes(["read"]);
    (grant, forms)
}

fn params(url: &str) -> HashMap<String, String> {
    let (_, query) = url.split_once('?').unwrap();
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Sends `GET target` to the loopback address in `redirect_uri` and returns the raw response.
async fn browse(redirect_uri: &str, target: &str) -> String {
    let authority = redirect_uri
        .strip_prefix("http://")
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// A browser that, shown the authorization URL, comes back with `query(state)` after first
/// running `before` (stray requests).
fn browser(
    before: &'static [&'static str],
    query: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (LoopbackRedirect, oneshot::Receiver<(String, String)>) {
    let (report, seen) = oneshot::channel();
    let report = Mutex::new(Some(report));
    let redirect = LoopbackRedirect::new()
        .timeout(Duration::from_secs(10))
        .on_url(move |url| {
            let params = params(url);
            let redirect_uri = params["redirect_uri"].clone();
            let path = redirect_uri.splitn(4, '/').nth(3).unwrap().to_owned();
            let query = query(&params["state"]);
            let report = report.lock().unwrap().take().unwrap();
            tokio::spawn(async move {
                // A spare connection that never speaks, as browsers open.
                let authority = redirect_uri.strip_prefix("http://").unwrap();
                let _idle = TcpStream::connect(authority.split('/').next().unwrap()).await;
                for stray in before {
                    let response = browse(&redirect_uri, stray).await;
                    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
                }
                let response = browse(&redirect_uri, &format!("/{path}?{query}")).await;
                let _ = report.send((redirect_uri, response));
            });
        });
    (redirect, seen)
}

#[tokio::test]
async fn the_code_is_received_the_browser_told_to_close_and_the_code_exchanged() {
    let (grant, forms) = grant("http://127.0.0.1/callback");
    let grant = grant.issuer("https://auth.test");
    let (redirect, seen) = browser(&["/favicon.ico"], |state| {
        format!("code=c0de&state={state}&iss=https%3A%2F%2Fauth.test")
    });

    let token = redirect.authorize(&grant).await.unwrap();
    assert_eq!(token.access_token().expose(), "a");

    let (redirect_uri, response) = seen.await.unwrap();
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );
    assert!(redirect_uri.ends_with("/callback"), "{redirect_uri}");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("close this window"), "{response}");
    assert!(response.contains("Cache-Control: no-store"), "{response}");

    let forms = forms.lock().unwrap();
    assert_eq!(forms.len(), 1);
    assert_eq!(forms[0]["code"], "c0de");
    assert_eq!(forms[0]["redirect_uri"], redirect_uri);
    assert_eq!(forms[0]["client_id"], "cli");
    assert_eq!(forms[0]["code_verifier"].len(), 43);
}

#[tokio::test]
async fn a_redirect_with_another_state_ends_the_flow_and_sends_nothing() {
    let (grant, forms) = grant("http://127.0.0.1/callback");
    let (redirect, seen) = browser(&[], |_| "code=c0de&state=forged".to_owned());

    let error = redirect.authorize(&grant).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StateMismatch);
    let (_, response) = seen.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("Sign-in failed"), "{response}");
    assert!(forms.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_redirect_from_another_issuer_ends_the_flow_and_sends_nothing() {
    let (grant, forms) = grant("http://127.0.0.1/callback");
    let grant = grant.issuer("https://auth.test");
    let (redirect, seen) = browser(&[], |state| {
        format!("code=c0de&state={state}&iss=https%3A%2F%2Fevil.test")
    });

    let error = redirect.authorize(&grant).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IssuerMismatch);
    let (_, response) = seen.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(forms.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_error_redirect_ends_the_flow_with_the_servers_error() {
    let (grant, forms) = grant("http://127.0.0.1/callback");
    let (redirect, _seen) = browser(&[], |state| {
        format!("error=access_denied&error_description=%3Cscript%3E&state={state}")
    });

    let error = redirect.authorize(&grant).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    assert_eq!(error.oauth_error(), Some("access_denied"));
    assert!(forms.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_error_redirect_with_another_state_is_a_forgery_not_the_servers_error() {
    let (grant, forms) = grant("http://127.0.0.1/callback");
    let (redirect, seen) = browser(&[], |_| "error=access_denied&state=forged".to_owned());

    let error = redirect.authorize(&grant).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StateMismatch);
    assert_eq!(error.oauth_error(), None);
    let (_, response) = seen.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(forms.lock().unwrap().is_empty());
}

#[tokio::test]
async fn no_redirect_in_time_fails_cleanly_and_closes_the_port() {
    let (grant, _forms) = grant("http://127.0.0.1/callback");
    let shown = Arc::new(Mutex::new(String::new()));
    let url = Arc::clone(&shown);
    let redirect = LoopbackRedirect::new()
        .timeout(Duration::from_millis(200))
        .on_url(move |shown| *url.lock().unwrap() = shown.to_owned());

    let error = redirect.authorize(&grant).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    assert!(error.to_string().contains("no redirect arrived"), "{error}");

    let redirect_uri = params(&shown.lock().unwrap())["redirect_uri"].clone();
    let authority = redirect_uri
        .strip_prefix("http://")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(TcpStream::connect(authority).await.is_err());
}

#[tokio::test]
async fn a_redirect_uri_with_a_port_listens_on_that_port() {
    // Find a free port, then ask for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (grant, _forms) = grant(&format!("http://127.0.0.1:{port}/cb"));
    let (redirect, seen) = browser(&[], |state| format!("code=c0de&state={state}"));
    redirect.authorize(&grant).await.unwrap();
    let (redirect_uri, _) = seen.await.unwrap();
    assert_eq!(redirect_uri, format!("http://127.0.0.1:{port}/cb"));
}

#[tokio::test]
async fn a_redirect_uri_off_loopback_is_a_configuration_error() {
    let (grant, _forms) = grant("https://app.test/callback");
    let error = LoopbackRedirect::new()
        .on_url(|_| panic!("no URL may be shown"))
        .authorize(&grant)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
}

#[cfg(unix)]
#[tokio::test]
async fn the_browser_command_gets_the_url_as_its_last_argument() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("url");
    let (grant, _forms) = grant("http://127.0.0.1/callback");
    let (redirect, _seen) = browser(&[], |state| format!("code=c0de&state={state}"));
    let script = format!("printf %s \"$1\" > {}", out.display());
    redirect
        .open_with("sh", ["-c", script.as_str(), "sh"])
        .authorize(&grant)
        .await
        .unwrap();

    let mut url = String::new();
    for _ in 0..100 {
        url = std::fs::read_to_string(&out).unwrap_or_default();
        if !url.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        url.starts_with("https://auth.test/authorize?response_type=code&"),
        "{url}"
    );
}
