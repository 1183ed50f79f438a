//! Private and public keys for tests of client assertions and the JWT bearer grant. They are
//! in this repository for everyone to read: tests only (see `keys/README.md`).

/// The `kid` of every JWK here.
pub const KEY_ID: &str = "test-key-1";

/// An RSA 2048 private key, PKCS#8 PEM.
pub const RSA_PRIVATE_PEM: &str = include_str!("../keys/rsa.pem");
/// Its public key, SPKI PEM.
pub const RSA_PUBLIC_PEM: &str = include_str!("../keys/rsa.pub.pem");
/// The same private key as a JWK.
pub const RSA_PRIVATE_JWK: &str = include_str!("../keys/rsa.jwk");
/// Its public key as a JWK.
pub const RSA_PUBLIC_JWK: &str = include_str!("../keys/rsa.pub.jwk");

/// An EC P-256 private key, PKCS#8 PEM.
pub const EC_PRIVATE_PEM: &str = include_str!("../keys/ec.pem");
/// Its public key, SPKI PEM.
pub const EC_PUBLIC_PEM: &str = include_str!("../keys/ec.pub.pem");
/// The same private key as a JWK.
pub const EC_PRIVATE_JWK: &str = include_str!("../keys/ec.jwk");
/// Its public key as a JWK.
pub const EC_PUBLIC_JWK: &str = include_str!("../keys/ec.pub.jwk");

/// An Ed25519 private key, PKCS#8 PEM.
pub const ED_PRIVATE_PEM: &str = include_str!("../keys/ed25519.pem");
/// Its public key, SPKI PEM.
pub const ED_PUBLIC_PEM: &str = include_str!("../keys/ed25519.pub.pem");
/// The same private key as a JWK.
pub const ED_PRIVATE_JWK: &str = include_str!("../keys/ed25519.jwk");
/// Its public key as a JWK.
pub const ED_PUBLIC_JWK: &str = include_str!("../keys/ed25519.pub.jwk");

/// An EC P-384 private key, PKCS#8 PEM: a key no ES256 signature can come from.
pub const EC_P384_PRIVATE_PEM: &str = include_str!("../keys/ec-p384.pem");

/// Another RSA 2048 private key, PKCS#8 PEM: the wrong key.
pub const OTHER_RSA_PRIVATE_PEM: &str = include_str!("../keys/rsa-other.pem");

/// A self-signed CA certificate, PEM (its key was thrown away): for code that reads CA files.
pub const TEST_CA_PEM: &str = include_str!("../keys/ca.pem");

/// A CA certificate, PEM, that issued [`TLS_SERVER_CERT_PEM`], [`MTLS_CLIENT_CERT_PEM`] and
/// [`MTLS_OTHER_CERT_PEM`] (its key was thrown away; `keys/make-tls.sh` made them all).
pub const TLS_CA_PEM: &str = include_str!("../keys/tls-ca.pem");
/// A server certificate for `127.0.0.1`, `::1` and `localhost`, PEM.
pub const TLS_SERVER_CERT_PEM: &str = include_str!("../keys/tls-server.pem");
/// Its private key (EC P-256), PKCS#8 PEM.
pub const TLS_SERVER_KEY_PEM: &str = include_str!("../keys/tls-server-key.pem");
/// A client certificate for mutual TLS, subject `CN=interop-mtls-client`, PEM.
pub const MTLS_CLIENT_CERT_PEM: &str = include_str!("../keys/mtls-client.pem");
/// Its private key (EC P-256), PKCS#8 PEM.
pub const MTLS_CLIENT_KEY_PEM: &str = include_str!("../keys/mtls-client-key.pem");
/// The certificate a rotation brings: the same CA and subject as [`MTLS_CLIENT_CERT_PEM`],
/// another key and serial, PEM.
pub const MTLS_CLIENT_NEXT_CERT_PEM: &str = include_str!("../keys/mtls-client-next.pem");
/// Its private key (EC P-256), PKCS#8 PEM.
pub const MTLS_CLIENT_NEXT_KEY_PEM: &str = include_str!("../keys/mtls-client-next-key.pem");
/// Another client certificate from the same CA, subject `CN=interop-other-client`: the wrong
/// one.
pub const MTLS_OTHER_CERT_PEM: &str = include_str!("../keys/mtls-other.pem");
/// Its private key (EC P-256), PKCS#8 PEM.
pub const MTLS_OTHER_KEY_PEM: &str = include_str!("../keys/mtls-other-key.pem");
/// A self-signed client certificate, subject `CN=interop-self-signed-client`, PEM.
pub const MTLS_SELF_SIGNED_CERT_PEM: &str = include_str!("../keys/mtls-self-signed.pem");
/// Its private key (RSA 2048), PKCS#8 PEM.
pub const MTLS_SELF_SIGNED_KEY_PEM: &str = include_str!("../keys/mtls-self-signed-key.pem");
