//! The endpoints that take a form: the token endpoint (RFC 6749) and the revocation endpoint
//! (RFC 7009).

use std::fmt::Write as _;

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{Request, Response, StatusCode};
use tokio::time::Instant;

use super::{
    AuthServer, Model, Received,
    assertion::JWT_BEARER,
    device::DEVICE_CODE,
    exchange::TOKEN_EXCHANGE,
    wire::{described, json, oauth_error, read, respond},
};
use crate::Body;

/// What an unknown refresh token gets: a vendor's error envelope rather than an RFC 6749 body,
/// so that clients meet both shapes.
const UNKNOWN_REFRESH_TOKEN: &str = r#"{"meta":{"pagination":{"limit":0,"offset":0,"total_count":0}},"errors":[{"httpcode":400,"message":"invalid refresh token"}]}"#;

impl AuthServer {
    pub(super) async fn answer_token_request<B: http_body::Body>(
        &self,
        request: Request<B>,
    ) -> Response<Body> {
        let delay = {
            let mut model = self.model();
            model.started += 1;
            model.token_delay
        };
        tokio::time::sleep(delay).await;
        let Some(received) = read(request).await else {
            return respond(StatusCode::BAD_REQUEST, "unreadable body");
        };
        let mut model = self.model();
        model.grants += 1;
        if let Some(answer) = model.record(&received) {
            return answer;
        }
        match model.check_token_proof(received.dpop.as_deref(), &received.url) {
            Ok(binding) => model.dpop_binding(binding),
            Err(answer) => return *answer,
        }
        model.grant(&received)
    }

    pub(super) async fn answer_revocation<B: http_body::Body>(
        &self,
        request: Request<B>,
    ) -> Response<Body> {
        let Some(received) = read(request).await else {
            return respond(StatusCode::BAD_REQUEST, "unreadable body");
        };
        let mut model = self.model();
        if let Some(answer) = model.record(&received) {
            return answer;
        }
        model.revocation(&received)
    }
}

impl Model {
    /// Records `request`, and returns the script's answer or the failure, if there is one.
    pub(super) fn record(&mut self, request: &Received) -> Option<Response<Body>> {
        self.received.push(request.clone());
        let (status, body) = self.script.pop_front().or(self.failure.clone())?;
        Some(respond(status, body))
    }

    /// Runs the grant of the `n`th token request, `n` being `self.grants`.
    fn grant(&mut self, request: &Received) -> Response<Body> {
        let grant_type = request.form.get("grant_type").map(String::as_str);
        // RFC 6749 4.4.3: no refresh token for the client-credentials grant.
        let with_refresh_token = match grant_type {
            Some("client_credentials" | JWT_BEARER | TOKEN_EXCHANGE) => false,
            Some("authorization_code" | "refresh_token" | DEVICE_CODE) => true,
            _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        };
        if let Err(why) = self.authenticate(request) {
            return described(StatusCode::UNAUTHORIZED, "invalid_client", &why);
        }
        match grant_type {
            Some(TOKEN_EXCHANGE) => return self.exchange(request),
            Some(DEVICE_CODE) => return self.poll_device(request),
            _ => {}
        }
        if grant_type == Some(JWT_BEARER)
            && let Err(why) = self.check_bearer_assertion(request)
        {
            return described(StatusCode::BAD_REQUEST, "invalid_grant", &why);
        }
        if grant_type == Some("refresh_token") {
            let presented = request.form.get("refresh_token");
            if !presented.is_some_and(|token| self.refresh.remove(token)) {
                return json(StatusCode::BAD_REQUEST, UNKNOWN_REFRESH_TOKEN);
            }
        }

        self.issue(with_refresh_token, "Bearer", "")
    }

    /// Issues `token-n` (and `refresh-n`), `n` being `self.grants`, saying `token_type`
    /// (a `Bearer` token is `DPoP` when the request bound it); `extra` is more JSON members for
    /// the answer, each with a leading comma.
    pub(super) fn issue(
        &mut self,
        with_refresh_token: bool,
        token_type: &str,
        extra: &str,
    ) -> Response<Body> {
        let n = self.grants;
        let access = format!("token-{n}");
        self.access
            .insert(access.clone(), Instant::now() + self.lifetime);
        let bearer = token_type == "Bearer";
        let bound = self.bind_issued(&access, bearer);
        let token_type = if bearer { bound } else { token_type };
        let mut body = format!(
            r#"{{"access_token":"{access}","token_type":"{token_type}","expires_in":{}"#,
            self.lifetime.as_secs()
        );
        if with_refresh_token {
            let refresh = format!("refresh-{n}");
            let _ = write!(body, r#","refresh_token":"{refresh}""#);
            self.refresh.insert(refresh);
        }
        body.push_str(extra);
        body.push('}');
        json(StatusCode::OK, body)
    }

    fn revocation(&mut self, request: &Received) -> Response<Body> {
        if let Err(why) = self.authenticate(request) {
            return described(StatusCode::UNAUTHORIZED, "invalid_client", &why);
        }
        if let Some(token) = request.form.get("token") {
            self.revoke(token);
        }
        // RFC 7009 2.2: a token the server does not know is answered 200 too.
        respond(StatusCode::OK, "")
    }

    /// Checks the client's credentials: a client assertion when the request carries one,
    /// else the secret.
    pub(super) fn authenticate(&mut self, request: &Received) -> Result<(), String> {
        if request.form.contains_key("client_assertion") {
            return self.check_client_assertion(request);
        }
        if self.authenticates(request) {
            Ok(())
        } else {
            Err("unknown client or wrong secret".to_owned())
        }
    }

    fn authenticates(&self, request: &Received) -> bool {
        let Some(client) = &self.client else {
            return true;
        };
        let basic = request
            .authorization
            .as_deref()
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok());
        let form = &request.form;
        let posted = form
            .get("client_id")
            .zip(form.get("client_secret"))
            .map(|(id, secret)| format!("{id}:{secret}"));
        basic.or(posted).as_ref() == Some(client)
    }
}
