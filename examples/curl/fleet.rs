//! The Redis options: one `RedisFleet` for the token cache, sealing tokens with the key of
//! `--redis-key-file`. Built without the `redis` feature, a Redis option is an error that says
//! how to build with it, and the example is otherwise the same.

use tower_oauth2::TokenCacheBuilder;

#[cfg(not(feature = "redis"))]
use crate::options::Redis;
use crate::options::Stop;

#[cfg(feature = "redis")]
pub(crate) use self::enabled::Fleet;

#[cfg(feature = "redis")]
mod enabled {
    use std::{path::Path, sync::Arc};

    use tower_oauth2::{
        TokenCacheBuilder,
        fleet::{FleetKey, RedisFleet},
    };
    use zeroize::Zeroizing;

    use crate::options::{Redis, Stop};

    /// The id every process gives its key: a process with another key cannot open what this
    /// one seals, whatever the id, and one id keeps the key file a plain 32 bytes.
    const KEY_ID: u32 = 1;

    /// The fleet this process shares tokens through.
    pub(crate) struct Fleet(Arc<RedisFleet>);

    impl Fleet {
        /// The fleet the Redis options ask for, if they ask for one.
        pub(crate) fn from_options(redis: &Redis) -> Result<Option<Self>, Stop> {
            if !redis.wanted() {
                return Ok(None);
            }
            let key = key(redis.key_file.as_deref(), redis.plaintext)?;
            let (fleet, option) = match &redis.url {
                Some(url) => (RedisFleet::new(url, key), "--redis"),
                None => (RedisFleet::cluster(&redis.cluster, key), "--redis-cluster"),
            };
            // The error does not repeat the URL, which may hold a password.
            let fleet = fleet.map_err(|error| Stop::Usage(format!("{option}: {error}")))?;
            let mut fleet = if redis.plaintext {
                fleet.plaintext()
            } else {
                fleet
            };
            if let Some(lease) = redis.lease {
                fleet = fleet.lease(lease);
            }
            if let Some(timeout) = redis.timeout {
                fleet = fleet.timeout(timeout);
            }
            Ok(Some(Self(Arc::new(fleet))))
        }

        pub(crate) fn join(&self, builder: TokenCacheBuilder) -> Result<TokenCacheBuilder, Stop> {
            builder
                .fleet(Arc::clone(&self.0))
                .map_err(|error| Stop::Usage(error.to_string()))
        }

        /// Token fetches that ran without the fleet because Redis failed.
        pub(crate) fn fallbacks(&self) -> u64 {
            self.0.stats().fallbacks
        }
    }

    /// The key in `path`: 64 hex characters, whitespace anywhere ignored. Messages name the
    /// option and the file, never what the file holds.
    fn key(path: Option<&Path>, plaintext: bool) -> Result<FleetKey, Stop> {
        let Some(path) = path else {
            if plaintext {
                // Seals nothing: a plaintext fleet writes tokens in clear.
                let mut unused = Zeroizing::new([0_u8; 32]);
                rand::fill(&mut unused[..]);
                return Ok(FleetKey::new(KEY_ID, *unused));
            }
            return Err(Stop::Usage(
                "--redis-key-file is required with --redis or --redis-cluster \
                 (or --redis-plaintext to store tokens unencrypted)"
                    .into(),
            ));
        };
        let shown = path.display();
        let text = Zeroizing::new(std::fs::read(path).map_err(|error| {
            Stop::Usage(format!("--redis-key-file {shown}: cannot read it: {error}"))
        })?);
        let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
            text.iter()
                .copied()
                .filter(|byte| !byte.is_ascii_whitespace())
                .collect(),
        );
        let malformed = || {
            Stop::Usage(format!(
                "--redis-key-file {shown}: expected 64 hex characters (32 bytes)"
            ))
        };
        if digits.len() != 64 {
            return Err(malformed());
        }
        let mut bytes = Zeroizing::new([0_u8; 32]);
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = hex_digit(pair[0]).ok_or_else(malformed)?;
            let low = hex_digit(pair[1]).ok_or_else(malformed)?;
            *byte = (high << 4) | low;
        }
        Ok(FleetKey::new(KEY_ID, *bytes))
    }

    fn hex_digit(digit: u8) -> Option<u8> {
        char::from(digit)
            .to_digit(16)
            .and_then(|value| u8::try_from(value).ok())
    }
}

/// Without the `redis` feature there is never a fleet.
#[cfg(not(feature = "redis"))]
pub(crate) struct Fleet(std::convert::Infallible);

#[cfg(not(feature = "redis"))]
impl Fleet {
    pub(crate) fn from_options(redis: &Redis) -> Result<Option<Self>, Stop> {
        if redis.wanted() {
            return Err(Stop::Usage(
                "the Redis options need the example built with the `redis` feature: \
                 cargo run --features https,dpop,redis --example curl"
                    .into(),
            ));
        }
        Ok(None)
    }

    pub(crate) fn join(&self, _: TokenCacheBuilder) -> Result<TokenCacheBuilder, Stop> {
        match self.0 {}
    }

    pub(crate) fn fallbacks(&self) -> u64 {
        match self.0 {}
    }
}

/// `builder`, sharing its tokens through `fleet` if there is one.
pub(crate) fn join(
    builder: TokenCacheBuilder,
    fleet: Option<&Fleet>,
) -> Result<TokenCacheBuilder, Stop> {
    match fleet {
        Some(fleet) => fleet.join(builder),
        None => Ok(builder),
    }
}
