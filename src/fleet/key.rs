//! The Redis keys of one token set, derived from what makes two caches' tokens interchangeable.
//!
//! Two caches share a token set when they ask the same token endpoint, as the same client, with
//! the same grant type, for the same scopes and resources or audiences, in the same namespace.
//! The keys are a SHA-256 of exactly those parts, with scopes, resources and audiences sorted
//! and deduplicated (their order does not change what the server grants): the domain string
//! below, then the namespace, token endpoint, client id and grant type, each as its length (u64,
//! big-endian) and bytes, then each list as its length and its items the same way. The first
//! 16 bytes, in hex, name the set. No secret is ever an input: not the client secret, nor any
//! token.
//!
//! All keys of one set share one hash tag, `{<hash>}`, so they live in one Redis Cluster slot
//! and a script may touch them together:
//!
//! ```text
//! tower-oauth2:{<hash>}:token   the sealed token set
//! tower-oauth2:{<hash>}:lease   the lease of the replica running the grant
//! tower-oauth2:{<hash>}:wake    the channel that wakes replicas waiting for the token set
//! ```

use std::{fmt, time::Duration};

use sha2::{Digest, Sha256};

use crate::TokenSetId;

/// Tells domains of the hash apart, and versions the key layout.
const DOMAIN: &[u8] = b"tower-oauth2 fleet token set v1";

/// The hex hash that names the token set `id` in `namespace`.
fn hash(id: &TokenSetId, namespace: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    let fields = [namespace, &id.token_endpoint, &id.client_id, &id.grant_type];
    for field in fields {
        put(&mut hasher, field);
    }
    for list in [&id.scopes, &id.resources, &id.audiences] {
        put_sorted(&mut hasher, list);
    }
    // Later parts are written only when present, so that the keys of the sets that have none
    // stay what they were. The encoding above is prefix-free, so this cannot collide.
    if id.subject.is_some() || !id.params.is_empty() {
        hasher.update(b"+subject,params");
        put(&mut hasher, id.subject.as_deref().unwrap_or_default());
        put_sorted(&mut hasher, &id.params);
    }
    // 128 bits name a token set among any number a fleet will ever hold.
    let digest = hasher.finalize();
    digest[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn put_sorted(hasher: &mut Sha256, list: &[String]) {
    let mut sorted: Vec<&str> = list.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    hasher.update((sorted.len() as u64).to_be_bytes());
    for item in sorted {
        put(hasher, item);
    }
}

fn put(hasher: &mut Sha256, field: &str) {
    hasher.update((field.len() as u64).to_be_bytes());
    hasher.update(field.as_bytes());
}

/// One token set as a fleet stores it: its Redis keys, and the refresh margin of the cache
/// that asks, which decides whether a shared token is fresh enough to take. Made by
/// `RedisFleet::scope`.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetScope {
    pub(super) hash: String,
    pub(super) token: String,
    pub(super) lease: String,
    pub(super) wake: String,
    pub(super) refresh_margin: Duration,
    /// Whether the set moves on by refresh tokens (the code, refresh and device grants): a
    /// replica never grants it alone when Redis fails.
    pub(super) refreshes: bool,
}

impl FleetScope {
    pub(super) fn derive(namespace: &str, id: &TokenSetId) -> Self {
        let hash = hash(id, namespace);
        Self {
            token: format!("tower-oauth2:{{{hash}}}:token"),
            lease: format!("tower-oauth2:{{{hash}}}:lease"),
            wake: format!("tower-oauth2:{{{hash}}}:wake"),
            hash,
            refresh_margin: Duration::ZERO,
            refreshes: matches!(
                id.grant_type.as_str(),
                "authorization_code"
                    | "refresh_token"
                    | "urn:ietf:params:oauth:grant-type:device_code"
            ),
        }
    }

    /// Sets the refresh margin of the cache that asks: a shared token is taken only when it has
    /// more time left than the margin, capped at half the token's lifetime as the cache caps
    /// it, so the cache would not find it stale at once. Default: zero.
    #[must_use]
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Returns the Redis key of the sealed token set.
    pub fn token_key(&self) -> &str {
        &self.token
    }

    /// Returns the Redis key of the lease.
    pub fn lease_key(&self) -> &str {
        &self.lease
    }

    /// Returns the channel that wakes waiting replicas.
    pub fn wake_channel(&self) -> &str {
        &self.wake
    }
}

/// The hash alone: enough to find the keys, and what logs name the token set by.
impl fmt::Debug for FleetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetScope")
            .field("hash", &self.hash)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> TokenSetId {
        TokenSetId::new(
            "https://auth.example.com/oauth2/token",
            "client-1",
            "client_credentials",
        )
    }

    #[test]
    fn the_order_of_scopes_and_audiences_does_not_matter() {
        let a = id().scopes(["b", "a", "c"]).audience("x").audience("y");
        let b = id()
            .scopes(["c", "a", "b", "a"])
            .audience("y")
            .audience("x");
        assert_eq!(FleetScope::derive("", &a), FleetScope::derive("", &b));
    }

    #[test]
    fn every_part_changes_the_keys() {
        let base = FleetScope::derive("ns", &id().scopes(["a"]));
        let variants = [
            FleetScope::derive("other", &id().scopes(["a"])),
            FleetScope::derive("ns", &id()),
            FleetScope::derive("ns", &id().scopes(["a", "b"])),
            FleetScope::derive("ns", &id().scopes(["a"]).resource("r")),
            FleetScope::derive("ns", &id().scopes(["a"]).audience("r")),
            FleetScope::derive(
                "ns",
                &TokenSetId::new("https://other/token", "client-1", "client_credentials")
                    .scopes(["a"]),
            ),
            FleetScope::derive(
                "ns",
                &TokenSetId::new(
                    "https://auth.example.com/oauth2/token",
                    "client-2",
                    "client_credentials",
                )
                .scopes(["a"]),
            ),
            FleetScope::derive(
                "ns",
                &TokenSetId::new(
                    "https://auth.example.com/oauth2/token",
                    "client-1",
                    "refresh_token",
                )
                .scopes(["a"]),
            ),
        ];
        for variant in &variants {
            assert_ne!(variant.hash, base.hash, "{variant:?}");
        }
        let subject = FleetScope::derive("ns", &id().scopes(["a"]).subject("user-1"));
        let other = FleetScope::derive("ns", &id().scopes(["a"]).subject("user-2"));
        let param = FleetScope::derive("ns", &id().scopes(["a"]).param("prompt", "none"));
        for variant in [&subject, &other, &param] {
            assert_ne!(variant.hash, base.hash, "{variant:?}");
        }
        assert_ne!(subject.hash, other.hash);
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = TokenSetId::new("ab", "c", "g").scopes(["x y"]);
        let b = TokenSetId::new("a", "bc", "g").scopes(["x", "y"]);
        assert_ne!(
            FleetScope::derive("", &a).hash,
            FleetScope::derive("", &b).hash
        );
        let resource = id().resource("r");
        let audience = id().audience("r");
        assert_ne!(
            FleetScope::derive("", &resource).hash,
            FleetScope::derive("", &audience).hash
        );
    }

    #[test]
    fn keys_share_one_hash_tag_and_show_no_part_in_clear() {
        let scope = FleetScope::derive(
            "team-sentinel",
            &TokenSetId::new("https://sentinel.example/token", "sentinel-client", "gt")
                .scopes(["sentinel:read"])
                .audience("sentinel-api"),
        );
        let tag = format!("{{{}}}", scope.hash);
        assert_eq!(scope.hash.len(), 32);
        assert!(scope.hash.bytes().all(|b| b.is_ascii_hexdigit()));
        for key in [scope.token_key(), scope.lease_key(), scope.wake_channel()] {
            assert!(key.starts_with("tower-oauth2:"), "{key}");
            assert_eq!(key.matches('{').count(), 1, "{key}");
            assert!(key.contains(&tag), "{key}");
            assert!(!key.contains("sentinel"), "{key}");
        }
        assert!(!format!("{scope:?}").contains("sentinel"));
    }

    #[test]
    fn the_hash_is_stable_across_releases() {
        // Replicas running different versions must agree on the keys: a change here splits
        // fleets during a rolling upgrade, and needs a new DOMAIN. The value was computed
        // independently of this code, from the layout the module docs describe.
        let scope = FleetScope::derive("", &id().scopes(["orders:read"]));
        assert_eq!(scope.hash, KNOWN_HASH);
    }

    const KNOWN_HASH: &str = "af97c1688c3a540e75d261b122d5fc76";
}
