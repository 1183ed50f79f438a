//! The HTTPS side of the command line: the CA certificates of `--cacert`, and the client
//! certificate of `--client-cert` and `--client-key` (mutual TLS, RFC 8705), which one HTTP
//! client presents on every connection whose server asks for it: the metadata, the token
//! endpoint and the URLs, so certificate-bound tokens work at the API too.

use tower_oauth2::https::{self, ClientIdentity, HttpsClient};

use crate::options::{Options, Stop};

/// `--client-cert` and `--client-key`.
#[derive(Default)]
pub(crate) struct ClientCertificate {
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
}

impl ClientCertificate {
    /// Whether a certificate is given: then discovery uses the server's
    /// `mtls_endpoint_aliases`.
    pub(crate) fn given(&self) -> bool {
        self.cert.is_some()
    }

    /// The identity the two files hold, taken up again when they change; `None` when neither
    /// is given. Messages name the files and what is wrong, never what the key file holds.
    fn identity(&self) -> Result<Option<ClientIdentity>, Stop> {
        let (cert, key) = match (&self.cert, &self.key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => return Err(Stop::Usage("--client-cert needs --client-key".into())),
            (None, Some(_)) => return Err(Stop::Usage("--client-key needs --client-cert".into())),
        };
        ClientIdentity::watch_pem_files(cert, key)
            .map(Some)
            .map_err(|error| {
                Stop::Usage(format!("--client-cert {cert} --client-key {key}: {error}"))
            })
    }
}

/// The HTTP client for everything: Mozilla's roots plus `--cacert`'s, and the client
/// certificate when one is given (returned too, for the count of its reloads).
pub(crate) fn client(options: &Options) -> Result<(HttpsClient, Option<ClientIdentity>), Stop> {
    let mut builder = https::builder();
    if let Some(path) = &options.cacert {
        let pem = std::fs::read(path)
            .map_err(|error| Stop::Usage(format!("--cacert {path}: {error}")))?;
        builder = builder
            .extra_roots(&pem)
            .map_err(|error| Stop::Usage(format!("--cacert {path}: {error}")))?;
    }
    let identity = options.client_certificate.identity()?;
    if let Some(identity) = &identity {
        builder = builder.client_identity(identity.clone());
    }
    let client = builder
        .build()
        .map_err(|error| Stop::Usage(error.to_string()))?;
    Ok((client, identity))
}
