//! Cloud metadata servers: Google's (`/computeMetadata/v1/instance/service-accounts/default/token`,
//! `Metadata-Flavor: Google`) and Azure's instance metadata service
//! (`/metadata/identity/oauth2/token`, `Metadata: true`), with their published answers.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::{HeaderValue, Method, Response, StatusCode, request::Parts};

use super::{Fake, FakeService, Misbehave, json, now, query, respond, serve};
use crate::{AuthServer, Body, Loopback};

const GCP_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

/// What both fakes keep.
#[derive(Debug, Default)]
struct Model {
    requests: usize,
    /// The query of each request that got a token.
    queries: Vec<Vec<(String, String)>>,
    misbehave: Option<Misbehave>,
}

/// Shared state and the server whose API accepts the minted tokens.
#[derive(Clone, Debug)]
struct State {
    server: AuthServer,
    model: Arc<Mutex<Model>>,
}

impl State {
    fn new(server: &AuthServer) -> Self {
        Self {
            server: server.clone(),
            model: Arc::default(),
        }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the request; the misbehaviour's answer if there is one.
    fn arrive(&self) -> Option<Response<Body>> {
        let mut model = self.model();
        model.requests += 1;
        model.misbehave.as_ref().map(Misbehave::respond)
    }
}

macro_rules! common {
    ($fake:ty) => {
        impl $fake {
            /// Requests received, whatever the answer.
            pub fn requests(&self) -> usize {
                self.state.model().requests
            }

            /// The query of each request that got a token, in order.
            pub fn queries(&self) -> Vec<Vec<(String, String)>> {
                self.state.model().queries.clone()
            }

            /// Misbehaves as `how` until [`heal`](Self::heal).
            pub fn misbehave(&self, how: Misbehave) {
                self.state.model().misbehave = Some(how);
            }

            /// Ends [`misbehave`](Self::misbehave).
            pub fn heal(&self) {
                self.state.model().misbehave = None;
            }

            /// The fake in process.
            pub fn service(&self) -> FakeService<Self> {
                FakeService::new(self.clone())
            }

            /// Serves it over HTTP on 127.0.0.1; its base URL is `loopback.url("")`.
            pub async fn serve(&self) -> std::io::Result<Loopback> {
                serve(self).await
            }
        }
    };
}

/// A fake Google metadata server. It answers `GET` of the default service account's token
/// with `{"access_token","expires_in","token_type":"Bearer"}` (and `Metadata-Flavor: Google`),
/// a token the [`AuthServer`] it was made for accepts; without the `Metadata-Flavor: Google`
/// header, or with `X-Forwarded-For` (a proxied request), 403; another path, 404 text.
#[derive(Clone, Debug)]
pub struct GcpMetadataServer {
    state: State,
}

impl GcpMetadataServer {
    /// A metadata server whose tokens `server`'s API accepts.
    pub fn new(server: &AuthServer) -> Self {
        Self {
            state: State::new(server),
        }
    }
}

common!(GcpMetadataServer);

impl Fake for GcpMetadataServer {
    fn answer(&self, request: &Parts) -> Response<Body> {
        if let Some(answer) = self.state.arrive() {
            return answer;
        }
        let flavor = request.headers.get("metadata-flavor");
        if flavor.is_none_or(|value| value != "Google")
            || request.headers.contains_key("x-forwarded-for")
        {
            return respond(
                StatusCode::FORBIDDEN,
                "<!DOCTYPE html><html><body>403 Forbidden: missing Metadata-Flavor header</body></html>",
            );
        }
        if request.method != Method::GET || request.uri.path() != GCP_PATH {
            return respond(StatusCode::NOT_FOUND, "not found");
        }
        let query = query(request);
        let (token, lifetime) = self.state.server.mint("gcp");
        self.state.model().queries.push(query);
        let body = serde_json::json!({
            "access_token": token,
            "expires_in": lifetime,
            "token_type": "Bearer",
        });
        let mut response = json(StatusCode::OK, body.to_string());
        response
            .headers_mut()
            .insert("metadata-flavor", HeaderValue::from_static("Google"));
        response
    }
}

/// A fake Azure instance metadata service. It answers `GET` of a managed identity's token
/// with `{"access_token","refresh_token":"","expires_in":"N","expires_on","not_before",
/// "resource","token_type":"Bearer"}` (numbers as strings, as IMDS writes them), a token the
/// [`AuthServer`] it was made for accepts. Without `Metadata: true`, `api-version` or
/// `resource`, or with a `client_id` it does not know (once [`identity`](Self::identity)
/// named some), it answers 400 `{"error":"invalid_request","error_description":..}`.
#[derive(Clone, Debug)]
pub struct AzureImdsServer {
    state: State,
    identities: Arc<Mutex<Vec<String>>>,
}

impl AzureImdsServer {
    /// An IMDS whose tokens `server`'s API accepts, with a system-assigned identity only.
    pub fn new(server: &AuthServer) -> Self {
        Self {
            state: State::new(server),
            identities: Arc::default(),
        }
    }

    /// The machine also has the user-assigned identity `client_id`.
    pub fn identity(self, client_id: &str) -> Self {
        self.identities
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(client_id.to_owned());
        self
    }
}

common!(AzureImdsServer);

fn invalid_request(description: &str) -> Response<Body> {
    let body = serde_json::json!({"error": "invalid_request", "error_description": description});
    json(StatusCode::BAD_REQUEST, body.to_string())
}

impl Fake for AzureImdsServer {
    fn answer(&self, request: &Parts) -> Response<Body> {
        if let Some(answer) = self.state.arrive() {
            return answer;
        }
        if request.method != Method::GET || request.uri.path() != IMDS_PATH {
            return respond(StatusCode::NOT_FOUND, "not found");
        }
        if request
            .headers
            .get("metadata")
            .is_none_or(|value| value != "true")
            || request.headers.contains_key("x-forwarded-for")
        {
            return invalid_request("Required metadata header not specified");
        }
        let query = query(request);
        let param = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        if param("api-version").is_none() {
            return invalid_request("Required query variable 'api-version' is missing");
        }
        let Some(resource) = param("resource") else {
            return invalid_request("Required query variable 'resource' is missing");
        };
        if let Some(client_id) = param("client_id") {
            let known = self
                .identities
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !known.contains(&client_id) {
                return invalid_request("Identity not found");
            }
        }
        let (token, lifetime) = self.state.server.mint("imds");
        self.state.model().queries.push(query);
        let now = now();
        let body = serde_json::json!({
            "access_token": token,
            "refresh_token": "",
            "expires_in": lifetime.to_string(),
            "expires_on": (now + lifetime).to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        });
        json(StatusCode::OK, body.to_string())
    }
}
