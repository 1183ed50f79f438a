//! A fake endpoint of the authorization server that records every form it receives and
//! answers from a script, then with a default answer.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full};
use tower::service_fn;
use tower_oauth2::TokenClient;

use super::Body;

/// What the endpoint received.
#[derive(Debug, Clone)]
pub struct Sent {
    pub authorization: Option<String>,
    pub form: HashMap<String, String>,
}

/// The answer to the `n`th request (from 1) once the script has run out.
type Answer = fn(usize) -> (StatusCode, String);

/// An endpoint that records requests and answers from a script, then with its default.
pub struct Endpoint {
    sent: Mutex<Vec<Sent>>,
    script: Mutex<VecDeque<(StatusCode, String)>>,
    default: Answer,
}

impl Endpoint {
    /// A token endpoint whose default answer is `access-N` / `refresh-N`.
    pub fn new() -> Arc<Self> {
        Self::answering(|n| {
            (
                StatusCode::OK,
                format!(
                    r#"{{"access_token":"access-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"refresh-{n}"}}"#
                ),
            )
        })
    }

    /// An endpoint whose default answer is `default(n)`.
    pub fn answering(default: Answer) -> Arc<Self> {
        Arc::new(Self {
            sent: Mutex::default(),
            script: Mutex::default(),
            default,
        })
    }

    pub fn then(&self, status: StatusCode, body: &str) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, body.to_owned()));
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    pub fn client(self: &Arc<Self>) -> TokenClient {
        let endpoint = Arc::clone(self);
        let http = service_fn(move |request: Request<Body>| {
            let endpoint = Arc::clone(&endpoint);
            async move {
                let authorization = request
                    .headers()
                    .get(AUTHORIZATION)
                    .map(|value| value.to_str().unwrap().to_owned());
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let form = form_urlencoded::parse(&body).into_owned().collect();
                let n = {
                    let mut sent = endpoint.sent.lock().unwrap();
                    sent.push(Sent {
                        authorization,
                        form,
                    });
                    sent.len()
                };
                let scripted = endpoint.script.lock().unwrap().pop_front();
                let (status, body) = scripted.unwrap_or_else(|| (endpoint.default)(n));
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                Ok::<_, Infallible>(response)
            }
        });
        TokenClient::new("https://auth.test/token", http).unwrap()
    }
}
