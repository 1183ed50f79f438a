//! DPoP (RFC 9449) as a server checks it. With [`AuthServer::dpop`] on, a token request with a
//! valid proof gets a token of `token_type` `DPoP`, bound to the proof's key, and the API takes
//! that token only as `Authorization: DPoP <token>` with a proof by the same key for the very
//! request: method, URL without query, the token's hash, a fresh `jti`, and the server's
//! current nonce where one is required.

use std::{
    collections::{HashMap, HashSet},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderValue, Response, StatusCode, header::WWW_AUTHENTICATE};
use jsonwebtoken::{DecodingKey, Validation, jwk::ThumbprintHash};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    AuthServer, Model,
    wire::{json, respond},
};
use crate::Body;

/// How far a proof's `iat` may be from the server's clock.
const IAT_WINDOW: u64 = 60;

#[derive(Debug, Default)]
pub(super) struct Rules {
    nonce_at_token: bool,
    nonce_at_api: bool,
    /// The nonce proofs must carry where one is required.
    nonce: String,
    rotations: u32,
    jtis: HashSet<String>,
    /// The key thumbprint each DPoP-bound access token is bound to.
    bound: HashMap<String, String>,
    /// The thumbprint the token being issued is bound to.
    binding_next: Option<String>,
    /// The claims of every proof received, valid or not, in order.
    proofs: Vec<Value>,
}

/// Why a proof was refused.
pub(super) enum Refusal {
    /// The proof lacks the current nonce: the answer carries it.
    Nonce,
    Invalid(String),
}

impl AuthServer {
    /// Turns DPoP on (see the module docs); tokens requested without a proof stay bearer
    /// tokens.
    pub fn dpop(self) -> Self {
        self.model().dpop = Some(Rules {
            nonce: "nonce-0".to_owned(),
            ..Rules::default()
        });
        self
    }

    /// Proofs must carry the server's nonce: at the token endpoint, at the API, or both.
    /// Requests without it get `use_dpop_nonce` and the nonce in `DPoP-Nonce`.
    pub fn dpop_nonces(self, token_endpoint: bool, api: bool) -> Self {
        if let Some(rules) = self.model().dpop.as_mut() {
            rules.nonce_at_token = token_endpoint;
            rules.nonce_at_api = api;
        }
        self
    }

    /// Replaces the server's nonce, as servers do from time to time.
    pub fn rotate_dpop_nonce(&self) {
        if let Some(rules) = self.model().dpop.as_mut() {
            rules.rotations += 1;
            rules.nonce = format!("nonce-{}", rules.rotations);
        }
    }

    /// The claims of every DPoP proof received, in order, with the header's `typ`, `alg`
    /// and the key's thumbprint added as `_typ`, `_alg` and `_jkt`.
    pub fn dpop_proofs(&self) -> Vec<Value> {
        self.model()
            .dpop
            .as_ref()
            .map(|rules| rules.proofs.clone())
            .unwrap_or_default()
    }
}

impl Model {
    /// Checks the proof of a token request, if DPoP is on and the request has one; returns
    /// the thumbprint the token is to be bound to, or the answer that refuses the request.
    pub(super) fn check_token_proof(
        &mut self,
        proof: Option<&str>,
        url: &str,
    ) -> Result<Option<String>, Box<Response<Body>>> {
        let Some(rules) = self.dpop.as_mut() else {
            return Ok(None);
        };
        let Some(proof) = proof else {
            return Ok(None);
        };
        let required = rules.nonce_at_token;
        match rules.check(proof, "POST", url, None, required) {
            Ok(jkt) => Ok(Some(jkt)),
            Err(Refusal::Nonce) => {
                let body =
                    r#"{"error":"use_dpop_nonce","error_description":"a nonce is required"}"#;
                let mut answer = json(StatusCode::BAD_REQUEST, body);
                rules.attach_nonce(&mut answer);
                Err(Box::new(answer))
            }
            Err(Refusal::Invalid(why)) => {
                let body =
                    serde_json::json!({"error": "invalid_dpop_proof", "error_description": why});
                Err(Box::new(json(StatusCode::BAD_REQUEST, body.to_string())))
            }
        }
    }

    /// Checks an API request with a DPoP-bound `token` and its proof; `Err` is the answer.
    pub(super) fn check_api_proof(
        &mut self,
        token: &str,
        scheme: &str,
        proof: Option<&str>,
        method: &str,
        url: &str,
    ) -> Result<(), Box<Response<Body>>> {
        let Some(rules) = self.dpop.as_mut() else {
            return Ok(());
        };
        let Some(bound_to) = rules.bound.get(token).cloned() else {
            return Ok(());
        };
        let refuse = |challenge: &'static str| {
            let mut answer = respond(StatusCode::UNAUTHORIZED, "invalid DPoP request");
            answer
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            Box::new(answer)
        };
        if !scheme.eq_ignore_ascii_case("dpop") {
            return Err(refuse(r#"DPoP error="invalid_token""#));
        }
        let Some(proof) = proof else {
            return Err(refuse(r#"DPoP error="invalid_dpop_proof""#));
        };
        let required = rules.nonce_at_api;
        match rules.check(proof, method, url, Some(token), required) {
            Ok(jkt) if jkt == bound_to => Ok(()),
            Ok(_) | Err(Refusal::Invalid(_)) => Err(refuse(r#"DPoP error="invalid_dpop_proof""#)),
            Err(Refusal::Nonce) => {
                let mut answer = refuse(r#"DPoP error="use_dpop_nonce""#);
                rules.attach_nonce(&mut answer);
                Err(answer)
            }
        }
    }

    /// The token about to be issued is bound to the key with thumbprint `jkt`, if any.
    pub(super) fn dpop_binding(&mut self, jkt: Option<String>) {
        if let Some(rules) = self.dpop.as_mut() {
            rules.binding_next = jkt;
        }
    }

    /// Binds `access` as [`dpop_binding`](Self::dpop_binding) said, when the answer may call it
    /// DPoP (`bindable`: it would otherwise say `Bearer`); returns its `token_type` for that
    /// case. A binding not used is dropped all the same.
    pub(super) fn bind_issued(&mut self, access: &str, bindable: bool) -> &'static str {
        let Some(rules) = self.dpop.as_mut() else {
            return "Bearer";
        };
        match rules.binding_next.take() {
            Some(jkt) if bindable => {
                rules.bound.insert(access.to_owned(), jkt);
                "DPoP"
            }
            _ => "Bearer",
        }
    }

    /// The answer of an API request DPoP accepted gets the current nonce, as servers send
    /// the next nonce with any answer.
    pub(super) fn attach_api_nonce(&self, answer: &mut Response<Body>) {
        if let Some(rules) = &self.dpop
            && rules.nonce_at_api
        {
            rules.attach_nonce(answer);
        }
    }
}

impl Rules {
    fn attach_nonce(&self, answer: &mut Response<Body>) {
        if let Ok(value) = HeaderValue::from_str(&self.nonce) {
            answer.headers_mut().insert("dpop-nonce", value);
        }
    }

    /// Checks `proof` for a `method` request to `url`; returns its key's thumbprint.
    fn check(
        &mut self,
        proof: &str,
        method: &str,
        url: &str,
        token: Option<&str>,
        nonce_required: bool,
    ) -> Result<String, Refusal> {
        let invalid = |why: &str| Refusal::Invalid(why.to_owned());
        let header = jsonwebtoken::decode_header(proof).map_err(|_| invalid("not a JWT"))?;
        let jwk = header.jwk.ok_or_else(|| invalid("no jwk"))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("unusable jwk"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
            .map_err(|error| Refusal::Invalid(format!("the proof does not verify: {error}")))?
            .claims;
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| invalid("no thumbprint"))?;
        let mut seen = claims.clone();
        seen["_typ"] = header.typ.clone().into();
        seen["_alg"] = format!("{:?}", header.alg).into();
        seen["_jkt"] = jkt.clone().into();
        self.proofs.push(seen);

        if header.typ.as_deref() != Some("dpop+jwt") {
            return Err(invalid("typ is not dpop+jwt"));
        }
        if claims["htm"] != method {
            return Err(invalid("htm is not the request's method"));
        }
        // Compared after RFC 3986's normalisation, as RFC 9449 section 4.3 asks of servers:
        // the host in lowercase, no default port.
        let url = url::Url::parse(url).map_or_else(|_| url.to_owned(), String::from);
        if claims["htu"] != url.as_str() {
            return Err(Refusal::Invalid(format!("htu is not {url}")));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let iat = claims["iat"].as_u64().ok_or_else(|| invalid("no iat"))?;
        if iat.abs_diff(now) > IAT_WINDOW {
            return Err(invalid("iat is too far from now"));
        }
        if let Some(token) = token {
            let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            if claims["ath"] != ath.as_str() {
                return Err(invalid("ath is not the token's hash"));
            }
        }
        if nonce_required && claims["nonce"] != self.nonce.as_str() {
            return Err(Refusal::Nonce);
        }
        let jti = claims["jti"].as_str().ok_or_else(|| invalid("no jti"))?;
        if !self.jtis.insert(jti.to_owned()) {
            return Err(invalid("the jti was used before"));
        }
        Ok(jkt)
    }
}
