//! The model of the server: what it knows and what it has seen. The endpoints live in files of
//! their own; the in-process services and the loopback server only route requests to them.

mod api;
mod assertion;
mod device;
mod dpop;
mod exchange;
mod loopback;
mod service;
mod token;
mod wire;

pub use assertion::FederatedCredential;
pub use device::DeviceUser;
pub use loopback::Loopback;
pub use service::Endpoint;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use tokio::time::Instant;

use self::wire::{json, respond};
use crate::{Body, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};

/// An authorization server and the API it protects.
///
/// The token endpoint runs the client-credentials, authorization-code and refresh-token grants
/// and numbers what it issues by request: the `n`th token request gets `token-n`, so a request
/// that failed uses a number up. The authorization-code and refresh-token grants also get
/// `refresh-n`, and a refresh token is good for one use (rotation). The API accepts the access
/// tokens the server issued, until they expire or are revoked.
///
/// It also runs the device authorization grant (RFC 8628: a device endpoint, and polls as
/// [`DeviceUser`] scripts) and token exchange (RFC 8693), each in a file of its own.
///
/// Clones share one server. See the [crate docs](crate) for the ways to reach it.
#[derive(Clone, Debug)]
pub struct AuthServer {
    model: Arc<Mutex<Model>>,
}

#[derive(Debug)]
struct Model {
    lifetime: Duration,
    token_delay: Duration,
    /// The one client allowed, as `id:secret`, if only one is.
    client: Option<String>,
    /// Expiry of each access token that is still good.
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
    /// The answer to every token and revocation request while the server is failing.
    failure: Option<(StatusCode, String)>,
    /// Answers for the next token and revocation requests, ahead of everything else.
    script: VecDeque<(StatusCode, String)>,
    grants: usize,
    /// Access tokens issued outside the token endpoint (by a metadata server).
    minted: usize,
    /// Token requests that have arrived, those still in their delay included.
    started: usize,
    received: Vec<Received>,
    api_tokens: Vec<Option<String>>,
    rejected: usize,
    /// Clients that authenticate with a JWT (RFC 7523 section 2.2), and their keys, each
    /// with its key id if it has one.
    assertion_clients: HashMap<String, Vec<(Option<String>, assertion::Key)>>,
    /// The `kid` of each client assertion whose signature verified, in order.
    verified_key_ids: Vec<Option<String>>,
    /// Clients that authenticate with a JWT another issuer made for them (a workload
    /// identity token), whose signature the server takes on trust.
    external_clients: HashSet<String>,
    /// Clients that authenticate with a token an external issuer signed, and the federated
    /// credentials that say which such tokens are theirs.
    federated: HashMap<String, Vec<FederatedCredential>>,
    /// Who may sign assertions of the JWT bearer grant, and with which key; any assertion is
    /// accepted while this is empty.
    assertion_issuers: HashMap<String, assertion::Key>,
    /// Every `jti` of an assertion accepted so far.
    seen_jtis: HashSet<String>,
    /// The metadata document, at the path it is served at.
    metadata: Option<(String, String)>,
    /// DPoP's rules and state, when it is on.
    dpop: Option<dpop::Rules>,
    /// The device authorization grant (RFC 8628): its settings and the codes issued.
    devices: device::Devices,
    /// What token exchange (RFC 8693) answers say about the token they issue.
    exchange: exchange::Exchange,
}

/// Where a request goes: in process, the service it was sent to; over HTTP, its path.
#[derive(Clone, Copy, Debug)]
enum Route {
    Token,
    Revocation,
    Device,
    Api,
}

/// A request the token or revocation endpoint received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The URL it was sent to: its URI, or over HTTP `http://` + `Host` + path.
    pub url: String,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its form fields.
    pub form: HashMap<String, String>,
    /// Its `DPoP` header.
    pub dpop: Option<String>,
}

impl AuthServer {
    /// A server that accepts any client and issues access tokens that live an hour.
    pub fn new() -> Self {
        let model = Model {
            lifetime: Duration::from_secs(3600),
            token_delay: Duration::ZERO,
            client: None,
            access: HashMap::new(),
            refresh: HashSet::new(),
            failure: None,
            script: VecDeque::new(),
            grants: 0,
            minted: 0,
            started: 0,
            received: Vec::new(),
            api_tokens: Vec::new(),
            rejected: 0,
            assertion_clients: HashMap::new(),
            verified_key_ids: Vec::new(),
            external_clients: HashSet::new(),
            federated: HashMap::new(),
            assertion_issuers: HashMap::new(),
            seen_jtis: HashSet::new(),
            metadata: None,
            dpop: None,
            devices: device::Devices::default(),
            exchange: exchange::Exchange::default(),
        };
        Self {
            model: Arc::new(Mutex::new(model)),
        }
    }

    /// The server of the examples: only [`CLIENT_ID`] with [`CLIENT_SECRET`] gets tokens, and
    /// [`REFRESH_TOKEN`] is good for the refresh-token grant.
    pub fn demo() -> Self {
        Self::new()
            .client(CLIENT_ID, CLIENT_SECRET)
            .refresh_token(REFRESH_TOKEN)
    }

    /// Access tokens live `lifetime` (an hour unless set), and answers say so in `expires_in`.
    pub fn lifetime(self, lifetime: Duration) -> Self {
        self.model().lifetime = lifetime;
        self
    }

    /// The token endpoint waits `delay` before it answers.
    pub fn token_delay(self, delay: Duration) -> Self {
        self.model().token_delay = delay;
        self
    }

    /// Only this client may use the token and revocation endpoints, with its credentials in
    /// HTTP Basic or in the form; any other gets `401 invalid_client`.
    pub fn client(self, id: &str, secret: &str) -> Self {
        self.model().client = Some(format!("{id}:{secret}"));
        self
    }

    /// `id` authenticates with a client assertion (RFC 7523 section 2.2) signed by `key`:
    /// for `client_secret_jwt` the secret itself, for `private_key_jwt` the public key in
    /// PEM. The server checks the signature, `iss` = `sub` = `id`, `aud` = the URL the
    /// request was sent to, `exp` in the future and at most 5 minutes after `iat`, and that
    /// no `jti` comes twice; a failure is `401 invalid_client` with a description.
    pub fn assertion_client(self, id: &str, key: &str) -> Self {
        let key = assertion::Key::new(key);
        self.model()
            .assertion_clients
            .insert(id.to_owned(), vec![(None, key)]);
        self
    }

    /// `id` authenticates with client assertions signed by any of `keys`, PEM public keys
    /// named by key id, as a server holding the client's JWKS does: an assertion is checked
    /// with the key its header's `kid` names, and one without a `kid` or naming no key is
    /// refused (`401 invalid_client`). Checked otherwise as for
    /// [`assertion_client`](Self::assertion_client);
    /// [`verified_key_ids`](Self::verified_key_ids) says which key each one used.
    pub fn assertion_client_keys(self, id: &str, keys: &[(&str, &str)]) -> Self {
        self.set_assertion_keys(id, keys);
        self
    }

    /// The client `id` has `keys` from now on (see
    /// [`assertion_client_keys`](Self::assertion_client_keys)), as when its keys are rotated
    /// at the server.
    pub fn set_assertion_keys(&self, id: &str, keys: &[(&str, &str)]) {
        let keys = keys
            .iter()
            .map(|(kid, pem)| (Some((*kid).to_owned()), assertion::Key::new(pem)))
            .collect();
        self.model().assertion_clients.insert(id.to_owned(), keys);
    }

    /// The `kid` of each client assertion whose signature verified, in order (`None` for one
    /// without a `kid`).
    pub fn verified_key_ids(&self) -> Vec<Option<String>> {
        self.model().verified_key_ids.clone()
    }

    /// `id` authenticates with an external client assertion (RFC 7521 section 4.2): a JWT
    /// another issuer made for it, such as a workload identity token. The server stands in
    /// for one that trusts that issuer: it does not check the signature, only that the
    /// payload's `sub` is `id` and its `exp` in the future; a failure is `401 invalid_client`.
    pub fn external_assertion_client(self, id: &str) -> Self {
        self.model().external_clients.insert(id.to_owned());
        self
    }

    /// `id` authenticates with a client assertion an external issuer signed (a workload
    /// identity token), as Entra ID, Google and AWS federated credentials have it: the
    /// assertion must verify with a key of `credential`'s JWKS (by `kid`), and its `iss`,
    /// `sub` and `aud` match the credential's, its `exp` in the future. Calls add more
    /// credentials for the same client (any one may match). A failure is
    /// `401 invalid_client` with a description that says which check failed.
    pub fn federated_client(self, id: &str, credential: FederatedCredential) -> Self {
        self.model()
            .federated
            .entry(id.to_owned())
            .or_default()
            .push(credential);
        self
    }

    /// The one client allowed (see [`client`](Self::client)) has a new secret from now on,
    /// as when its secret is rotated at the server.
    pub fn rotate_client_secret(&self, id: &str, secret: &str) {
        self.model().client = Some(format!("{id}:{secret}"));
    }

    /// The JWT bearer grant accepts only assertions that `issuer` signed with `key` (a PEM
    /// public key, or a shared secret), checked like client assertions; `sub` may be anyone.
    /// Without any such issuer, any assertion is accepted.
    pub fn assertion_issuer(self, issuer: &str, key: &str) -> Self {
        let key = assertion::Key::new(key);
        self.model()
            .assertion_issuers
            .insert(issuer.to_owned(), key);
        self
    }

    /// Serves `document` at `path` over HTTP, such as
    /// `/.well-known/oauth-authorization-server`.
    pub fn metadata(self, path: &str, document: &str) -> Self {
        self.model().metadata = Some((path.to_owned(), document.to_owned()));
        self
    }

    /// The server knows `token` as a refresh token, as if it had issued it.
    pub fn refresh_token(self, token: &str) -> Self {
        self.model().refresh.insert(token.to_owned());
        self
    }

    /// Answers every token, revocation and device authorization request with `status` and
    /// `body` until
    /// [`heal`](Self::heal) is called.
    pub fn fail_with(&self, status: StatusCode, body: &str) {
        self.model().failure = Some((status, body.to_owned()));
    }

    /// Ends [`fail_with`](Self::fail_with).
    pub fn heal(&self) {
        self.model().failure = None;
    }

    /// Answers the next token, revocation or device authorization request with `status` and
    /// `body`, before anything else; calls queue up.
    pub fn answer_next(&self, status: StatusCode, body: &str) {
        self.model().script.push_back((status, body.to_owned()));
    }

    /// Revokes `token`, an access or a refresh token.
    pub fn revoke(&self, token: &str) {
        self.model().revoke(token);
    }

    /// Revokes every token issued so far, as an administrator would.
    pub fn revoke_all(&self) {
        let mut model = self.model();
        model.access.clear();
        model.refresh.clear();
    }

    /// Token requests received, whatever the answer.
    pub fn grants(&self) -> usize {
        self.model().grants
    }

    /// Token requests that have reached the token endpoint, those still waiting out the
    /// [`token_delay`](Self::token_delay) included: with a delay, a test can tell that a grant
    /// is in flight, and act on the client that runs it.
    pub fn token_requests_started(&self) -> usize {
        self.model().started
    }

    /// Issues an access token named `prefix-n` outside the token endpoint (a metadata
    /// server's), good for the API for the server's lifetime: the token and that lifetime in
    /// seconds.
    pub(crate) fn mint(&self, prefix: &str) -> (String, u64) {
        let mut model = self.model();
        model.minted += 1;
        let token = format!("{prefix}-{}", model.minted);
        let lifetime = model.lifetime;
        model
            .access
            .insert(token.clone(), Instant::now() + lifetime);
        (token, lifetime.as_secs())
    }

    /// Every request to the token and revocation endpoints, in order.
    pub fn received(&self) -> Vec<Received> {
        self.model().received.clone()
    }

    /// The bearer token of each API request, in order (`None` for a request without one).
    pub fn api_tokens(&self) -> Vec<Option<String>> {
        self.model().api_tokens.clone()
    }

    /// API requests answered 401.
    pub fn rejected(&self) -> usize {
        self.model().rejected
    }

    async fn answer<B: http_body::Body>(
        &self,
        route: Route,
        request: Request<B>,
    ) -> Response<Body> {
        match route {
            Route::Token => self.answer_token_request(request).await,
            Route::Revocation => self.answer_revocation(request).await,
            Route::Device => self.answer_device_authorization(request).await,
            Route::Api => self.answer_api(request).await,
        }
    }

    fn answer_metadata(&self, path: &str) -> Response<Body> {
        match &self.model().metadata {
            Some((at, document)) if at == path => json(StatusCode::OK, document.clone()),
            _ => respond(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        // A test that panicked while holding the lock left nothing half-done worth refusing.
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for AuthServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    fn revoke(&mut self, token: &str) {
        self.access.remove(token);
        self.refresh.remove(token);
    }
}
