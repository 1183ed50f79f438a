//! The protected API. It accepts a bearer token the server issued that has neither expired nor
//! been revoked, and names it in its answer (see [`accepted_token`](crate::accepted_token)).
//! A `GET` gets `{"orders":[]}`, any other method `{"method":"POST","bytes":9}`: what it
//! received, so a test can see that a replayed body arrived whole. Anything else gets 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"`.

use http::{
    HeaderValue, Method, Request, Response, StatusCode,
    header::{AUTHORIZATION, WWW_AUTHENTICATE},
};
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::{
    AuthServer,
    wire::{json, respond},
};
use crate::{ACCEPTED_TOKEN, Body};

impl AuthServer {
    pub(super) async fn answer_api<B: http_body::Body>(
        &self,
        request: Request<B>,
    ) -> Response<Body> {
        let credentials = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| {
                scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop")
            })
            .map(|(scheme, token)| (scheme.to_owned(), token.to_owned()));
        let token = credentials.as_ref().map(|(_, token)| token.clone());
        let proof = request
            .headers()
            .get("dpop")
            .and_then(|value| value.to_str().ok());
        let url = request_url(&request);
        let accepted = {
            let mut model = self.model();
            model.api_tokens.push(token.clone());
            let valid = token.as_ref().and_then(|token| model.access.get(token));
            let accepted = valid.is_some_and(|expires| *expires > Instant::now());
            if !accepted {
                model.rejected += 1;
            }
            if accepted && let Some((scheme, token)) = &credentials {
                let method = request.method().as_str();
                if let Err(answer) = model.check_api_proof(token, scheme, proof, method, &url) {
                    model.rejected += 1;
                    return *answer;
                }
            }
            token.filter(|_| accepted)
        };
        let Some(token) = accepted else {
            let mut response = respond(StatusCode::UNAUTHORIZED, "invalid token");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            return response;
        };

        let method = request.method().clone();
        let mut response = if method == Method::GET {
            json(StatusCode::OK, r#"{"orders":[]}"#)
        } else {
            let Ok(body) = request.into_body().collect().await else {
                return respond(StatusCode::BAD_REQUEST, "unreadable body");
            };
            let size = body.to_bytes().len();
            json(
                StatusCode::OK,
                format!(r#"{{"method":"{method}","bytes":{size}}}"#),
            )
        };
        if let Ok(value) = HeaderValue::from_str(&token) {
            response.headers_mut().insert(ACCEPTED_TOKEN, value);
        }
        self.model().attach_api_nonce(&mut response);
        response
    }
}

/// The URL a request went to, without query: over HTTP `http://` + `Host` + path.
fn request_url<B>(request: &Request<B>) -> String {
    let uri = request.uri();
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok());
    match (uri.scheme_str(), uri.authority(), host) {
        (Some(scheme), Some(authority), _) => format!("{scheme}://{authority}{}", uri.path()),
        (_, _, Some(host)) => format!("http://{host}{}", uri.path()),
        _ => uri.path().to_owned(),
    }
}
