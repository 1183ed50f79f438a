use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tower_oauth2_testkit::keys;

use super::*;

#[derive(Deserialize)]
struct Decoded {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: String,
}

fn verify(token: &Secret, key: &DecodingKey, alg: Algorithm) -> (Header, Decoded) {
    let mut validation = Validation::new(alg);
    validation.set_audience(&["https://auth.test/token"]);
    let data = jsonwebtoken::decode::<Decoded>(token.expose(), key, &validation).unwrap();
    (data.header, data.claims)
}

fn sign(key: &SigningKey) -> Secret {
    key.sign(&Claims::new("client", "client", "https://auth.test/token"))
        .unwrap()
}

#[test]
fn each_key_type_signs_with_its_default_algorithm_and_verifies() {
    let cases = [
        (
            keys::RSA_PRIVATE_PEM,
            keys::RSA_PUBLIC_PEM,
            Algorithm::RS256,
        ),
        (keys::EC_PRIVATE_PEM, keys::EC_PUBLIC_PEM, Algorithm::ES256),
        (keys::ED_PRIVATE_PEM, keys::ED_PUBLIC_PEM, Algorithm::EdDSA),
    ];
    for (private, public, alg) in cases {
        let key = SigningKey::from_pkcs8_pem(private).unwrap();
        assert_eq!(key.algorithm().jose(), alg);
        let public = match alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(public.as_bytes()),
            Algorithm::ES256 => DecodingKey::from_ec_pem(public.as_bytes()),
            _ => DecodingKey::from_ed_pem(public.as_bytes()),
        }
        .unwrap();
        let (header, claims) = verify(&sign(&key), &public, alg);
        assert_eq!(header.alg, alg);
        assert_eq!(
            (claims.iss.as_str(), claims.sub.as_str()),
            ("client", "client")
        );
        assert_eq!(claims.aud, "https://auth.test/token");
        assert!(claims.exp > claims.iat && claims.exp - claims.iat <= 300);
        assert_eq!(claims.jti.len(), 43);
    }
}

#[test]
fn an_rsa_key_signs_ps256_on_request_with_its_key_id() {
    let key = SigningKey::from_pkcs8_pem(keys::RSA_PRIVATE_PEM)
        .unwrap()
        .with_algorithm(SigningAlgorithm::Ps256)
        .unwrap()
        .with_key_id("k1");
    let public = DecodingKey::from_rsa_pem(keys::RSA_PUBLIC_PEM.as_bytes()).unwrap();
    let (header, _) = verify(&sign(&key), &public, Algorithm::PS256);
    assert_eq!(header.kid.as_deref(), Some("k1"));
}

#[test]
fn every_assertion_has_a_new_jti() {
    let key = SigningKey::from_secret(&Secret::new("s3cret")).unwrap();
    let public = DecodingKey::from_secret(b"s3cret").unwrap();
    let (_, first) = verify(&sign(&key), &public, Algorithm::HS256);
    let (_, second) = verify(&sign(&key), &public, Algorithm::HS256);
    assert_ne!(first.jti, second.jti);
}

#[test]
fn jwks_load_like_their_pem_twins() {
    for (jwk, public, alg) in [
        (
            keys::RSA_PRIVATE_JWK,
            keys::RSA_PUBLIC_PEM,
            Algorithm::RS256,
        ),
        (keys::EC_PRIVATE_JWK, keys::EC_PUBLIC_PEM, Algorithm::ES256),
        (keys::ED_PRIVATE_JWK, keys::ED_PUBLIC_PEM, Algorithm::EdDSA),
    ] {
        let key = SigningKey::from_jwk(jwk).unwrap();
        assert_eq!(key.key_id(), Some(keys::KEY_ID));
        let public = match alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(public.as_bytes()),
            Algorithm::ES256 => DecodingKey::from_ec_pem(public.as_bytes()),
            _ => DecodingKey::from_ed_pem(public.as_bytes()),
        }
        .unwrap();
        verify(&sign(&key), &public, alg);
    }
}

#[test]
fn an_algorithm_the_key_cannot_make_is_refused() {
    let ec = SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap();
    for alg in [
        SigningAlgorithm::Rs256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Hs256,
    ] {
        let error = ec.clone().with_algorithm(alg).unwrap_err();
        assert!(error.to_string().contains("EC P-256"), "{error}");
    }
    let error = SigningKey::from_pkcs8_pem(keys::EC_P384_PRIVATE_PEM).unwrap_err();
    assert!(error.to_string().contains("ES256"), "{error}");
}

#[test]
fn bad_keys_fail_without_repeating_them() {
    let public = SigningKey::from_pkcs8_pem(keys::RSA_PUBLIC_PEM).unwrap_err();
    let garbage =
        SigningKey::from_jwk(r#"{"kty":"EC","crv":"P-256","d":"sentinel!"}"#).unwrap_err();
    let unknown = SigningKey::from_jwk(r#"{"kty":"EC","crv":"P-521","d":"AAAA"}"#).unwrap_err();
    for error in [public, garbage, unknown] {
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("sentinel") && !shown.contains("MII"),
            "{shown}"
        );
    }
}

#[test]
fn debug_shows_the_algorithm_and_key_id_only() {
    let key = SigningKey::from_jwk(keys::ED_PRIVATE_JWK).unwrap();
    let debug = format!("{key:?}");
    assert!(
        debug.contains("EdDSA") && debug.contains(keys::KEY_ID),
        "{debug}"
    );
    let d = keys::ED_PRIVATE_JWK.split(r#""d":""#).nth(1).unwrap();
    assert!(!debug.contains(&d[..20]), "{debug}");
}

#[test]
fn algorithm_names_round_trip() {
    for alg in [
        SigningAlgorithm::Hs256,
        SigningAlgorithm::Rs256,
        SigningAlgorithm::Ps256,
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
    ] {
        assert_eq!(alg.as_str().parse::<SigningAlgorithm>().unwrap(), alg);
    }
    assert!("none".parse::<SigningAlgorithm>().is_err());
}
