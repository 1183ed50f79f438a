//! A client certificate and its private key, for mutual TLS (RFC 8705): what the `https`
//! feature's client presents to servers that ask for one.

mod watched;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use arc_swap::ArcSwap;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rustls::{
    SignatureScheme,
    client::ResolvesClientCert,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    sign::CertifiedKey,
};

use self::watched::Watched;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Error;

/// A client certificate (with the chain up to its certificate authority, if any) and its
/// private key: the client's identity in mutual TLS (RFC 8705). Give it to
/// [`builder`](super::builder)'s [`client_identity`](super::ClientBuilder::client_identity).
///
/// The key is checked against the certificate when the identity is made. `Debug` shows the
/// certificate's SHA-256 thumbprint, never the key, and no error quotes the key or the PEM.
/// The PEM this type reads from files is zeroed when dropped; the parsed key goes straight
/// to rustls, which keeps it in its signing key for as long as a client uses it (neither
/// rustls nor *ring* promises to zero it).
///
/// Cloning is cheap: clones share the key. An identity whose files a secret manager rotates
/// is made with [`watch_pem_files`](Self::watch_pem_files).
///
/// ```
/// use tower_oauth2::https::ClientIdentity;
///
/// # use tower_oauth2_testkit::keys;
/// # let (certificate, key) = (keys::MTLS_CLIENT_CERT_PEM, keys::MTLS_CLIENT_KEY_PEM);
/// // let certificate = std::fs::read("client.pem")?; let key = std::fs::read("client-key.pem")?;
/// let identity = ClientIdentity::from_pem(certificate.as_bytes(), key.as_bytes())?;
/// // What a server records as the `x5t#S256` of the tokens it binds to this certificate.
/// assert_eq!(identity.thumbprint().len(), 43);
///
/// // A key of another certificate is refused.
/// let error = ClientIdentity::from_pem(certificate.as_bytes(), keys::EC_PRIVATE_PEM.as_bytes())
///     .unwrap_err();
/// assert_eq!(error.kind(), tower_oauth2::ErrorKind::Config);
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientIdentity {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Loaded>,
    /// The files to read again when they change ([`ClientIdentity::watch_pem_files`]).
    files: Option<Watched>,
    reloads: AtomicU64,
}

/// One certificate chain and key, parsed.
struct Loaded {
    key: Arc<CertifiedKey>,
    thumbprint: String,
    chain_length: usize,
}

impl ClientIdentity {
    /// Reads the identity from PEM: `certificate_chain` holds the client certificate first,
    /// then any intermediate CA certificates (`-----BEGIN CERTIFICATE-----` blocks);
    /// `private_key` the certificate's key, PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`), RSA, ECDSA or Ed25519, not
    /// encrypted.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config), saying which part is wrong: the
    /// certificate PEM is invalid, holds no certificate, or the certificate cannot be parsed;
    /// the key PEM is invalid or holds no private key, or the key is of a kind rustls cannot
    /// use; the key is not the certificate's.
    pub fn from_pem(certificate_chain: &[u8], private_key: &[u8]) -> Result<Self, Error> {
        Ok(Self::of(
            Loaded::from_pem(certificate_chain, private_key)?,
            None,
        ))
    }

    fn of(loaded: Loaded, files: Option<Watched>) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(loaded),
                files,
                reloads: AtomicU64::new(0),
            }),
        }
    }

    /// Reads the identity from two PEM files, as [`from_pem`](Self::from_pem) reads it from
    /// memory, once. What is read is zeroed once parsed.
    ///
    /// # Errors
    ///
    /// Those of [`from_pem`](Self::from_pem), and [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// when a file cannot be read (the I/O error is the [source](std::error::Error::source)).
    pub fn from_pem_files(
        certificate_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        Loaded::from_files(certificate_chain.as_ref(), private_key.as_ref())
            .map(|loaded| Self::of(loaded, None))
    }

    /// Reads the identity from two PEM files now, as [`from_pem_files`](Self::from_pem_files)
    /// does, and again whenever either file changes (its modification time, size or, on Unix,
    /// inode: a file replaced by renaming, as cert-manager and Kubernetes secret volumes do):
    /// each new TLS connection looks (two `stat` calls) and, when a file changed, presents
    /// the new certificate. Connections already open keep the one they were made with.
    ///
    /// A pair that cannot be used when it changes (the certificate written before its key, a
    /// key of another certificate, a file half written) is not taken: the identity before it
    /// stays, a warning names the files, and the next connection after the next change tries
    /// again. [`reloads`](Self::reloads) counts the changes taken up.
    ///
    /// ```no_run
    /// use tower_oauth2::https::{self, ClientIdentity};
    ///
    /// let identity = ClientIdentity::watch_pem_files("/etc/tls/tls.crt", "/etc/tls/tls.key")?;
    /// let client = https::builder().client_identity(identity.clone()).build::<String>()?;
    /// # Ok::<_, tower_oauth2::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`from_pem_files`](Self::from_pem_files), for the files as they are now.
    pub fn watch_pem_files(
        certificate_chain: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> Result<Self, Error> {
        let watched = Watched::new(certificate_chain.into(), private_key.into());
        let loaded = Loaded::from_files(&watched.certificate, &watched.key)?;
        Ok(Self::of(loaded, Some(watched)))
    }

    /// Returns the current client certificate's SHA-256 thumbprint, base64url without
    /// padding: the `x5t#S256` confirmation (`cnf`) that a server puts in the tokens it binds
    /// to this certificate (RFC 8705 section 3.1).
    pub fn thumbprint(&self) -> String {
        self.inner.current.load().thumbprint.clone()
    }

    /// How many times a changed pair of files was taken up
    /// ([`watch_pem_files`](Self::watch_pem_files)); clones share it. Always 0 otherwise.
    pub fn reloads(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }

    /// What rustls asks for the certificate to present.
    pub(super) fn resolver(&self) -> Arc<dyn ResolvesClientCert> {
        self.inner.clone()
    }
}

impl Inner {
    /// Takes up the watched files if they changed since they were last looked at.
    fn look_at_files(&self) {
        let Some(files) = &self.files else {
            return;
        };
        if !files.changed() {
            return;
        }
        match Loaded::from_files(&files.certificate, &files.key) {
            Ok(loaded) => {
                self.current.store(Arc::new(loaded));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    certificate = %files.certificate.display(),
                    "the client certificate changed; new connections present the new one"
                );
            }
            Err(error) => tracing::warn!(
                certificate = %files.certificate.display(),
                key = %files.key.display(),
                %error,
                "the client certificate files changed but cannot be used; \
                 presenting the certificate before them"
            ),
        }
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIdentity")
    }
}

impl ResolvesClientCert for Inner {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.look_at_files();
        Some(Arc::clone(&self.current.load().key))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl Loaded {
    fn from_pem(certificate_chain: &[u8], private_key: &[u8]) -> Result<Self, Error> {
        let chain = CertificateDer::pem_slice_iter(certificate_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Error::config("the client certificate is not valid PEM"))?;
        let Some(leaf) = chain.first() else {
            return Err(Error::config(
                "no certificate in the client certificate PEM",
            ));
        };
        let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(leaf.as_ref()));
        let chain_length = chain.len();
        // The key goes to rustls by value: it parses it into its signing key and drops the
        // DER, so no copy stays here.
        let key = PrivateKeyDer::from_pem_slice(private_key).map_err(|error| match error {
            rustls::pki_types::pem::Error::NoItemsFound => Error::config(
                "no private key in the client key PEM (encrypted keys are not supported)",
            ),
            _ => Error::config("the client key is not valid PEM"),
        })?;
        let certified = CertifiedKey::from_der(chain, key, &crate::tls::provider())
            .map_err(|error| Error::config(why_refused(&error)))?;
        Ok(Self {
            key: Arc::new(certified),
            thumbprint,
            chain_length,
        })
    }

    fn from_files(certificate_chain: &Path, private_key: &Path) -> Result<Self, Error> {
        let read = |path: &Path, what: &'static str| {
            std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|error| Error::config(what).with_source(error.into()))
        };
        let chain = read(
            certificate_chain,
            "the client certificate file cannot be read",
        )?;
        let key = read(private_key, "the client key file cannot be read")?;
        Self::from_pem(&chain, &key)
    }
}

/// Why rustls refused a certificate and key, in words that quote neither.
fn why_refused(error: &rustls::Error) -> &'static str {
    use rustls::{Error as Tls, InconsistentKeys};
    match error {
        Tls::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "the private key does not belong to the client certificate"
        }
        Tls::InvalidCertificate(_) | Tls::NoCertificatesPresented => {
            "the client certificate cannot be parsed"
        }
        _ => "the client key is not an RSA, ECDSA or Ed25519 private key rustls can use",
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.inner.current.load();
        f.debug_struct("ClientIdentity")
            .field("thumbprint", &current.thumbprint)
            .field("chain_length", &current.chain_length)
            .field("watched", &self.inner.files.is_some())
            .field("key", &"[redacted]")
            .finish()
    }
}
