//! The checks a server makes of signed JWTs (RFC 7523): client assertions (section 2.2 and
//! 3) and the JWT bearer grant's assertions (section 2.1).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{Model, Received};

/// The `grant_type` of the JWT bearer grant.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `client_assertion_type` of a JWT client assertion.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest an assertion may live, as many servers have it.
const MAX_LIFETIME: u64 = 300;

/// A key that checks signatures: a PEM public key (RSA, EC P-256 or Ed25519) or a shared
/// secret.
#[derive(Clone, Debug)]
pub(crate) enum Key {
    Public(String),
    Secret(String),
}

impl Key {
    pub(crate) fn new(key: &str) -> Self {
        if key.contains("-----BEGIN PUBLIC KEY-----") {
            Self::Public(key.to_owned())
        } else {
            Self::Secret(key.to_owned())
        }
    }

    /// The decoding key for `alg`, if this key can check it.
    fn decoding(&self, alg: Algorithm) -> Option<DecodingKey> {
        let pem = |pem: &str| pem.as_bytes().to_vec();
        match (self, alg) {
            (Self::Secret(secret), Algorithm::HS256) => {
                DecodingKey::from_secret(secret.as_bytes()).ok()
            }
            (Self::Public(key), Algorithm::RS256 | Algorithm::PS256) => {
                DecodingKey::from_rsa_pem(&pem(key)).ok()
            }
            (Self::Public(key), Algorithm::ES256) => DecodingKey::from_ec_pem(&pem(key)).ok(),
            (Self::Public(key), Algorithm::EdDSA) => DecodingKey::from_ed_pem(&pem(key)).ok(),
            _ => None,
        }
    }
}

/// What a client trusts an external issuer for, as a federated credential of Entra ID,
/// Google or AWS has it: tokens that issuer signed with a key of its JWKS, for this `sub`
/// and `aud` (see [`AuthServer::federated_client`](crate::AuthServer::federated_client)).
#[derive(Clone, Debug)]
pub struct FederatedCredential {
    /// The `iss` the token must have.
    pub issuer: String,
    /// The issuer's JWKS document (`{"keys": [...]}`), as its `jwks_uri` serves it.
    pub jwks: String,
    /// The `sub` the token must have, such as `repo:org/repo:ref:refs/heads/main`.
    pub subject: String,
    /// An `aud` the token must have, such as `api://AzureADTokenExchange`.
    pub audience: String,
}

/// Checks `jwt` against the federated credentials of a client: one must match all of it.
fn federated(jwt: &str, credentials: &[FederatedCredential]) -> Result<(), String> {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .map_err(|_| "the assertion is not a JWT")?
        .claims;
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| "not a JWT")?;
    let issuer = claims["iss"].as_str().ok_or("no iss")?;
    let trusted: Vec<&FederatedCredential> = credentials
        .iter()
        .filter(|credential| credential.issuer == issuer)
        .collect();
    if trusted.is_empty() {
        return Err("no federated credential trusts the assertion's issuer".to_owned());
    }
    let mut why = String::new();
    for credential in trusted {
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&credential.jwks)
            .map_err(|_| "the issuer's JWKS is unreadable")?;
        let Some(jwk) = header.kid.as_deref().and_then(|kid| jwks.find(kid)) else {
            why = "no key of the issuer's JWKS has the assertion's kid".to_owned();
            continue;
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| "an unusable key in the JWKS")?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&credential.issuer]);
        validation.set_audience(&[&credential.audience]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 0;
        match jsonwebtoken::decode::<Value>(jwt, &key, &validation) {
            Ok(verified) if verified.claims["sub"] == credential.subject.as_str() => return Ok(()),
            Ok(_) => why = "sub does not match the federated credential".to_owned(),
            Err(error) => why = format!("the assertion does not verify: {error}"),
        }
    }
    Err(why)
}

/// Checks an external assertion for `client_id`: its `sub` and `exp`, not its signature.
fn external(jwt: &str, client_id: &str) -> Result<(), String> {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .map_err(|_| "the assertion is not a JWT")?
        .claims;
    if claims["sub"] != client_id {
        return Err("sub must be the client_id".to_owned());
    }
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    if exp <= now() {
        return Err("the assertion has expired".to_owned());
    }
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Model {
    /// Checks a client assertion: its type, the client's key, `iss` = `sub` = `client_id`.
    pub(super) fn check_client_assertion(&mut self, request: &Received) -> Result<(), String> {
        let form = &request.form;
        if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
            return Err("client_assertion_type is not jwt-bearer".to_owned());
        }
        let client_id = form.get("client_id").ok_or("no client_id")?;
        if let Some(credentials) = self.federated.get(client_id) {
            return federated(&form["client_assertion"], credentials);
        }
        if self.external_clients.contains(client_id) {
            return external(&form["client_assertion"], client_id);
        }
        let keys = self
            .assertion_clients
            .get(client_id)
            .ok_or("the client has no registered key")?
            .clone();
        let kid = jsonwebtoken::decode_header(&form["client_assertion"])
            .map_err(|_| "not a JWT")?
            .kid;
        // As servers holding a client's JWKS do: the key the header names, else the only one.
        let key = match &kid {
            Some(kid) => keys
                .iter()
                .find(|(id, _)| id.as_deref() == Some(kid.as_str()))
                .or_else(|| keys.iter().find(|(id, _)| id.is_none())),
            None if keys.len() == 1 => keys.first(),
            None => None,
        }
        .ok_or("no registered key has the assertion's kid")?
        .1
        .clone();
        let claims = self.check(&form["client_assertion"], &key, &request.url)?;
        if claims["iss"] != client_id.as_str() || claims["sub"] != client_id.as_str() {
            return Err("iss and sub must be the client_id".to_owned());
        }
        self.verified_key_ids.push(kid);
        Ok(())
    }

    /// Checks the assertion of a JWT bearer grant against the key of its issuer, if the
    /// server knows any issuer.
    pub(super) fn check_bearer_assertion(&mut self, request: &Received) -> Result<(), String> {
        let assertion = request.form.get("assertion").ok_or("no assertion")?;
        if self.assertion_issuers.is_empty() {
            return if assertion.is_empty() {
                Err("empty assertion".to_owned())
            } else {
                Ok(())
            };
        }
        let payload = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
            .map_err(|_| "the assertion is not a JWT")?
            .claims;
        let issuer = payload["iss"].as_str().ok_or("no iss")?;
        let key = self
            .assertion_issuers
            .get(issuer)
            .ok_or("unknown assertion issuer")?
            .clone();
        let claims = self.check(assertion, &key, &request.url)?;
        if !claims["sub"].is_string() {
            return Err("no sub".to_owned());
        }
        Ok(())
    }

    /// Checks signature, audience, times and the `jti` of `jwt`; returns its claims.
    fn check(&mut self, jwt: &str, key: &Key, audience: &str) -> Result<Value, String> {
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| "not a JWT")?;
        let decoding = key
            .decoding(header.alg)
            .ok_or("an algorithm the key cannot check")?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Value>(jwt, &decoding, &validation)
            .map_err(|error| format!("the JWT does not verify: {error}"))?
            .claims;
        let now = now();
        let exp = claims["exp"].as_u64().ok_or("no exp")?;
        let iat = claims["iat"].as_u64().unwrap_or(now);
        if exp > now + MAX_LIFETIME || exp.saturating_sub(iat) > MAX_LIFETIME {
            return Err("the JWT lives longer than 5 minutes".to_owned());
        }
        let jti = claims["jti"].as_str().ok_or("no jti")?;
        if !self.seen_jtis.insert(jti.to_owned()) {
            return Err("the jti was used before".to_owned());
        }
        Ok(claims)
    }
}
