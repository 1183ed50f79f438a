//! A ready-made HTTPS client: hyper-util's client over rustls, for the token endpoint and the
//! API alike.
//!
//! The client speaks HTTP/1.1 and HTTP/2 (chosen by ALPN), checks certificates against
//! Mozilla's root certificates ([`client`]) or the system's ([`client_with_native_roots`]),
//! uses the `ring` crypto provider whatever other providers the program links, and never
//! follows a redirect. [`builder`] combines options: extra CA certificates, and a client
//! certificate ([`ClientIdentity`]) presented to every server that asks for one, for mutual
//! TLS (RFC 8705). It also speaks plain `http`: the token endpoint and
//! [`OAuth2Layer`](crate::OAuth2Layer) only accept that for loopback unless told otherwise.
//!
//! [`client`] sends requests with `Full<Bytes>` bodies, what [`TokenClient`] and most API calls
//! need; [`client_for`] builds the same client for another body type. The other
//! constructors are generic over the body: name it where the type is not inferred, for example
//! with the [`HttpsClient`] alias, whose body defaults to `Full<Bytes>`.
//!
//! ```no_run
//! use tower::ServiceBuilder;
//! use tower_oauth2::{ClientAuth, OAuth2Layer, TokenClient, grant::ClientCredentials, https};
//!
//! # fn main() -> Result<(), tower_oauth2::Error> {
//! // One line for the token endpoint...
//! let endpoint = TokenClient::https("https://auth.example.com/oauth2/token")?;
//! let grant = ClientCredentials::new(endpoint, ClientAuth::basic("my-client", "my-secret"));
//! // ...and the same kind of client for the API.
//! let client = ServiceBuilder::new()
//!     .layer(OAuth2Layer::new(grant))
//!     .service(https::client()?);
//! # Ok(())
//! # }
//! ```
//!
//! Requests through it need a Tokio runtime.
//!
//! [`TokenClient`]: crate::TokenClient

mod identity;

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http_body::Body;
use http_body_util::Full;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::{
    ClientConfig,
    pki_types::{CertificateDer, pem::PemObject},
};

pub use self::identity::ClientIdentity;
use crate::Error;

/// The rustls this module builds on, for [`client_with_tls_config`].
pub use rustls;

/// hyper-util's client with a rustls connector: what [`client`] returns.
pub type HttpsClient<B = Full<Bytes>> = Client<HttpsConnector<HttpConnector>, B>;

/// Returns an HTTPS client that trusts Mozilla's root certificates (the `webpki-roots`
/// crate), so it works the same in a minimal container without a system certificate store.
/// It sends requests with `Full<Bytes>` bodies; [`client_for`] is the same for other bodies.
///
/// Fails only if rustls rejects its own safe defaults.
///
/// ```
/// use tower_oauth2::{TokenClient, https};
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// let http = https::client()?;
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http.clone())?;
/// # Ok(())
/// # }
/// ```
pub fn client() -> Result<HttpsClient, Error> {
    client_for()
}

/// [`client`] for requests with bodies of type `B`, named with a turbofish when nothing else
/// names it.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::combinators::BoxBody;
/// use tower_oauth2::{BoxError, https};
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// let http = https::client_for::<BoxBody<Bytes, BoxError>>()?;
/// # Ok(())
/// # }
/// ```
pub fn client_for<B>() -> Result<HttpsClient<B>, Error>
where
    B: Body + Send,
    B::Data: Send,
{
    let config = config_builder()?.with_webpki_roots().with_no_client_auth();
    Ok(build(config))
}

/// Returns an HTTPS client that trusts the system's root certificates, as found by
/// `rustls-native-certs`: for networks whose proxies or servers use a private certificate
/// authority installed on the machine.
///
/// Fails when no usable root certificate is found.
pub fn client_with_native_roots<B>() -> Result<HttpsClient<B>, Error>
where
    B: Body + Send,
    B::Data: Send,
{
    builder().native_roots().build()
}

/// Returns an HTTPS client that trusts Mozilla's root certificates and, in addition, the CA
/// certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks): for a private
/// certificate authority, such as an enterprise's or a test server's, beside public ones.
///
/// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when `pem` holds no certificate
/// or one rustls cannot use as a root.
///
/// ```
/// use tower_oauth2::https;
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// # let pem = tower_oauth2_testkit::keys::TEST_CA_PEM;
/// // let pem = std::fs::read("corporate-ca.pem")?;
/// let http: https::HttpsClient = https::client_with_extra_roots(pem.as_bytes())?;
/// # Ok(())
/// # }
/// ```
pub fn client_with_extra_roots<B>(pem: &[u8]) -> Result<HttpsClient<B>, Error>
where
    B: Body + Send,
    B::Data: Send,
{
    builder().extra_roots(pem)?.build()
}

/// Starts an HTTPS client with more than one of the options the other constructors take one
/// at a time: the system's roots or Mozilla's, extra CA certificates, and a client certificate
/// for mutual TLS ([`ClientIdentity`]).
///
/// ```
/// use tower_oauth2::{ClientAuth, TokenClient, https};
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// # use tower_oauth2_testkit::keys;
/// # let (ca, certificate, key) = (keys::TLS_CA_PEM, keys::MTLS_CLIENT_CERT_PEM, keys::MTLS_CLIENT_KEY_PEM);
/// // let ca = std::fs::read("corporate-ca.pem")?; and the same for the certificate and key.
/// let identity = https::ClientIdentity::from_pem(certificate.as_bytes(), key.as_bytes())?;
/// let http: https::HttpsClient = https::builder()
///     .extra_roots(ca.as_bytes())?
///     .client_identity(identity)
///     .build()?;
/// // The certificate is the client's proof at the token endpoint (RFC 8705), and binds the
/// // tokens it gets to itself: use the same client for the API.
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http.clone())?;
/// let auth = ClientAuth::tls_client_auth("my-service");
/// # Ok(())
/// # }
/// ```
pub fn builder() -> ClientBuilder {
    ClientBuilder {
        native_roots: false,
        extra_roots: Vec::new(),
        identity: None,
    }
}

/// The options of an HTTPS client: made by [`builder`], finished by
/// [`build`](Self::build). The client it builds is that of [`client`], with these changes.
#[must_use]
#[derive(Clone)]
pub struct ClientBuilder {
    native_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    identity: Option<ClientIdentity>,
}

impl ClientBuilder {
    /// Trusts the system's root certificates (as found by `rustls-native-certs`) instead of
    /// Mozilla's. [`build`](Self::build) fails when it finds none.
    pub fn native_roots(mut self) -> Self {
        self.native_roots = true;
        self
    }

    /// Also trusts the CA certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----`
    /// blocks), beside Mozilla's or the system's.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when `pem` holds no
    /// certificate or one that is not valid PEM.
    pub fn extra_roots(mut self, pem: &[u8]) -> Result<Self, Error> {
        let before = self.extra_roots.len();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate =
                certificate.map_err(|_| Error::config("the CA certificates are not valid PEM"))?;
            self.extra_roots.push(certificate);
        }
        if self.extra_roots.len() == before {
            return Err(Error::config("no CA certificate in the PEM"));
        }
        Ok(self)
    }

    /// Presents `identity`'s certificate on every TLS connection whose server asks for one
    /// (mutual TLS): the token endpoint, for [`ClientAuth::tls_client_auth`] and
    /// [`ClientAuth::self_signed_tls_client_auth`](crate::ClientAuth::self_signed_tls_client_auth),
    /// and the APIs, which check that a certificate-bound token (RFC 8705 section 3) comes
    /// with the certificate it was issued to.
    ///
    /// [`ClientAuth::tls_client_auth`]: crate::ClientAuth::tls_client_auth
    pub fn client_identity(mut self, identity: ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Builds the client, for requests with bodies of type `B` (`Full<Bytes>` by default
    /// through the [`HttpsClient`] alias).
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when no root certificate is
    /// usable (with [`native_roots`](Self::native_roots), none was found), or an extra one
    /// cannot be used as a root.
    pub fn build<B>(self) -> Result<HttpsClient<B>, Error>
    where
        B: Body + Send,
        B::Data: Send,
    {
        let mut roots = if self.native_roots {
            native_roots()?
        } else {
            rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }
        };
        for certificate in self.extra_roots {
            roots.add(certificate).map_err(|_| {
                Error::config("a CA certificate cannot be used as a root certificate")
            })?;
        }
        let config = config_builder()?.with_root_certificates(roots);
        let config = match self.identity {
            Some(identity) => config.with_client_cert_resolver(identity.resolver()),
            None => config.with_no_client_auth(),
        };
        Ok(build(config))
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("native_roots", &self.native_roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("identity", &self.identity)
            .finish()
    }
}

/// The system's root certificates; those rustls cannot use are skipped, as browsers do.
fn native_roots() -> Result<rustls::RootCertStore, Error> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(Error::config("no usable system root certificate"));
    }
    Ok(roots)
}

/// The crypto provider of this module's clients and client certificates: the process default
/// when the application installed one (`CryptoProvider::install_default`, for example
/// aws-lc-rs's with its post-quantum key exchange), otherwise *ring*'s.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    crate::tls::provider()
}

/// Returns an HTTPS client with your own rustls configuration: a private certificate
/// authority, client certificates (mutual TLS), a custom verifier. Its ALPN protocols are set
/// to HTTP/2 and HTTP/1.1.
///
/// Build `config` with `ClientConfig::builder_with_provider(https::crypto_provider())` rather
/// than `ClientConfig::builder()`: the latter panics when the program links more than one
/// crypto provider and installed none as the default.
///
/// ```
/// use tower_oauth2::https::{self, rustls};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut roots = rustls::RootCertStore::empty();
/// // roots.add(your_ca_certificate)?;
/// let config = rustls::ClientConfig::builder_with_provider(https::crypto_provider())
///     .with_safe_default_protocol_versions()?
///     .with_root_certificates(roots)
///     .with_no_client_auth();
/// let client: https::HttpsClient = https::client_with_tls_config(config);
/// # Ok(())
/// # }
/// ```
pub fn client_with_tls_config<B>(config: ClientConfig) -> HttpsClient<B>
where
    B: Body + Send,
    B::Data: Send,
{
    build(config)
}

/// A configuration builder over [`crypto_provider`].
fn config_builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, Error> {
    ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| {
            Error::config("rustls rejected its default protocol versions").with_source(error.into())
        })
}

fn build<B>(config: ClientConfig) -> HttpsClient<B>
where
    B: Body + Send,
    B::Data: Send,
{
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_all_versions()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}
