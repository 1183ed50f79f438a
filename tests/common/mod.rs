//! The kit's server seen through the crate's types. The kit cannot name them itself: it does not
//! depend on the crate, or the tests would see two copies of it.

use tower_oauth2::{ClientAuth, TokenCache, TokenClient, grant::ClientCredentials};
use tower_oauth2_testkit::AuthServer;

/// Token clients, grants and caches that reach an [`AuthServer`] in process.
#[allow(
    dead_code,
    reason = "every test binary compiles this module and uses a part of it"
)]
pub(crate) trait AuthServerExt {
    /// A token client for the token endpoint.
    fn token_client(&self) -> TokenClient;
    /// A token client for the revocation endpoint.
    fn revocation_client(&self) -> TokenClient;
    /// A client-credentials grant as `client` / `secret`, in HTTP Basic.
    fn grant(&self) -> ClientCredentials;
    /// A token cache over [`grant`](Self::grant).
    fn cache(&self) -> TokenCache;
    /// A token cache over [`grant`](Self::grant) whose token client proves possession of
    /// `key` (DPoP).
    #[cfg(feature = "dpop")]
    fn dpop_cache(&self, key: &tower_oauth2::DpopKey) -> TokenCache;
}

impl AuthServerExt for AuthServer {
    fn token_client(&self) -> TokenClient {
        TokenClient::new("https://auth.test/token", self.token_endpoint()).unwrap()
    }

    fn revocation_client(&self) -> TokenClient {
        TokenClient::new("https://auth.test/revoke", self.revocation_endpoint()).unwrap()
    }

    fn grant(&self) -> ClientCredentials {
        ClientCredentials::new(self.token_client(), ClientAuth::basic("client", "secret"))
    }

    fn cache(&self) -> TokenCache {
        TokenCache::new(self.grant())
    }

    #[cfg(feature = "dpop")]
    fn dpop_cache(&self, key: &tower_oauth2::DpopKey) -> TokenCache {
        let endpoint = self.token_client().dpop(key);
        TokenCache::new(ClientCredentials::new(
            endpoint,
            ClientAuth::basic("client", "secret"),
        ))
    }
}
