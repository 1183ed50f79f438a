//! The Redis side of a fleet: one connection (standalone or cluster), the few commands and
//! scripts the lease protocol needs, each bounded by a timeout, and the wake-ups that arrive
//! through pub/sub.
//!
//! The connection speaks RESP3, so subscriptions share it with commands, and the client
//! subscribes again by itself after a reconnect. A standalone server is reached through
//! redis-rs' `ConnectionManager`, which reconnects in the background after a failure; a cluster
//! through its cluster client, which follows slot moves. On a cluster, wake-ups use sharded
//! pub/sub (`SPUBLISH`/`SSUBSCRIBE`), routed by the channel's hash tag to the shard that also
//! holds the token set's keys.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisError, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, SendError},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};
use tokio::sync::watch;

/// Sets the lease to `ARGV[1]` for `ARGV[2]` ms if nobody holds it: the status `WON` when
/// this caller won, otherwise the holder's `PTTL` (ms left; -1 for a lease without expiry, -2
/// for one gone since). Won is a reply of another type than any `PTTL` answer: a lease written
/// without `PX` answers -1, and must never look won.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {ok = 'WON'}
end
return redis.call('PTTL', KEYS[1])
";

/// Extends the lease to `ARGV[2]` ms if `ARGV[1]` still holds it: 1 if so, else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the lease if no replica can have set it: it has no expiry, or more than `ARGV[1]`
/// ms left (replicas set and renew leases to their length). 1 if it did, else 0.
const DELETE_FOREIGN_LEASE: &str = r"
local left = redis.call('PTTL', KEYS[1])
if left == -1 or left > tonumber(ARGV[1]) then
    redis.call('DEL', KEYS[1])
    return 1
end
return 0
";

/// Deletes the key if its value is still `ARGV[1]`: 1 if it did, else 0. Releases a lease, and
/// retires a token set after a 401.
const COMPARE_AND_DELETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// Replaces the value `ARGV[1]` with `ARGV[2]`, keeping its expiry, if it is still there: 1 if
/// it was, else 0. Retires a token set that carries a refresh token after a 401.
const COMPARE_AND_SWAP: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
    return 1
end
return 0
";

/// Writes the token set `ARGV[1]` for `ARGV[2]` ms if the token key still holds `ARGV[4]`
/// (nothing, when `ARGV[4]` is empty: a sealed value never is), and releases the lease if
/// `ARGV[3]` still holds it, in one step: a replica that sees the lease gone finds the token
/// set there. Answers 2 if it wrote, plus 1 if the lease was still held.
const COMMIT: &str = r"
local written = 0
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[4] == '') or current == ARGV[4] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    written = 2
end
if redis.call('GET', KEYS[2]) == ARGV[3] then
    redis.call('DEL', KEYS[2])
    return written + 1
end
return written
";

/// Writes the token set `ARGV[1]` for `ARGV[2]` ms if the key still holds `ARGV[3]` (nothing,
/// when `ARGV[3]` is empty): 1 if it did, else 0. Writes back a token set whose commit failed.
const WRITE_IF: &str = r"
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[3] == '') or current == ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
";

/// What a commit did: whether the token set was written (the key still held what the
/// committer had read), and whether the committer's lease was still held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Committed {
    pub(crate) written: bool,
    pub(crate) lease_held: bool,
}

/// Why a Redis operation did not complete. Neither variant carries a value or a key's content.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No answer within the fleet's timeout.
    Timeout,
    /// The client or the server reported an error.
    Redis(RedisError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer within the timeout"),
            Self::Redis(error) => fmt::Display::fmt(error, f),
        }
    }
}

/// The outcome of trying to take a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    Won,
    /// Another replica holds it, for this long at most unless it renews it.
    Held(Duration),
    /// Another holder has it, and it has no expiry: no replica of this crate writes such a
    /// lease (each sets `PX`), so a person or a tool did, and it will not go away by itself.
    HeldWithoutExpiry,
}

impl Acquired {
    /// Reads the answer of the [`ACQUIRE`] script.
    fn parse(answer: &Value) -> Result<Self, RedisError> {
        Ok(match answer {
            Value::SimpleString(status) if status == "WON" => Self::Won,
            Value::Int(-1) => Self::HeldWithoutExpiry,
            // -2 (gone since) or another negative: try again soon.
            Value::Int(left) => {
                Self::Held(u64::try_from(*left).map_or(Duration::ZERO, Duration::from_millis))
            }
            _ => {
                return Err(RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "the lease script answered neither WON nor a PTTL",
                )));
            }
        })
    }
}

/// Where the fleet's Redis is.
enum Target {
    Standalone(Box<ConnectionInfo>),
    Cluster(Vec<ConnectionInfo>),
}

/// A connection of either kind, cheap to clone (both multiplex one socket per node).
#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Wake-ups by channel: a counter that pub/sub messages bump, which waiters watch.
#[derive(Default)]
struct Wakes {
    channels: Mutex<HashMap<Vec<u8>, watch::Sender<u64>>>,
}

impl Wakes {
    fn receiver(&self, channel: &str) -> watch::Receiver<u64> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        channels
            .entry(channel.as_bytes().to_vec())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn deliver(&self, info: PushInfo) {
        if !matches!(info.kind, PushKind::Message | PushKind::SMessage) {
            return;
        }
        let Some(Value::BulkString(channel)) = info.data.first() else {
            return;
        };
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = channels.get(channel) {
            sender.send_modify(|count| *count = count.wrapping_add(1));
        }
    }
}

/// The Redis of one fleet, connected on first use. Clones share the connection: a task that
/// writes a token set back after a failure holds one.
#[derive(Clone)]
pub(crate) struct Redis {
    target: Arc<Target>,
    pub(crate) timeout: Duration,
    connection: Arc<tokio::sync::Mutex<Option<Connection>>>,
    wakes: Arc<Wakes>,
    subscribed: Arc<Mutex<HashSet<String>>>,
}

impl Redis {
    pub(crate) fn standalone(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let info = resp3(url.into_connection_info()?);
        Ok(Self::new(Target::Standalone(Box::new(info)), timeout))
    }

    pub(crate) fn cluster(urls: Vec<String>, timeout: Duration) -> Result<Self, RedisError> {
        let infos = urls
            .into_iter()
            .map(|url| url.into_connection_info().map(resp3))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(Target::Cluster(infos), timeout))
    }

    fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target: Arc::new(target),
            timeout,
            connection: Arc::default(),
            wakes: Arc::default(),
            subscribed: Arc::default(),
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(*self.target, Target::Cluster(_))
    }

    /// The servers, as `host:port`, without credentials: for `Debug`.
    pub(crate) fn addresses(&self) -> Vec<String> {
        let infos = match &*self.target {
            Target::Standalone(info) => std::slice::from_ref(&**info),
            Target::Cluster(infos) => infos.as_slice(),
        };
        infos.iter().map(|info| address(info.addr())).collect()
    }

    /// The shared connection, made on first use. A connection that could not be made is tried
    /// again by the next operation.
    /// Waiting for another caller's attempt counts against the same timeout, so callers that
    /// queue behind a server that never answers all give up after one timeout, not one each.
    async fn connection(&self) -> Result<Connection, Failure> {
        self.bounded(async {
            let mut slot = self.connection.lock().await;
            if let Some(connection) = &*slot {
                return Ok(connection.clone());
            }
            let connection = self.connect().await?;
            *slot = Some(connection.clone());
            Ok(connection)
        })
        .await
    }

    async fn connect(&self) -> Result<Connection, RedisError> {
        let wakes = Arc::clone(&self.wakes);
        let push = move |info: PushInfo| {
            wakes.deliver(info);
            Ok::<(), SendError>(())
        };
        match &*self.target {
            Target::Standalone(info) => {
                use_tls_provider(std::slice::from_ref(&**info));
                let client = redis::Client::open((**info).clone())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(self.timeout)
                    .set_push_sender(push)
                    .set_automatic_resubscription();
                let manager = ConnectionManager::new_with_config(client, config).await?;
                Ok(Connection::Standalone(manager))
            }
            Target::Cluster(infos) => {
                use_tls_provider(infos);
                let client = ClusterClientBuilder::new(infos.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(push)
                    .connection_timeout(self.timeout)
                    .response_timeout(self.timeout)
                    .retries(2)
                    .build()?;
                Ok(Connection::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Runs `operation` within the timeout.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Failure::Redis(error)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Runs `cmd` within the timeout. A command that failed because the connection was lost
    /// is sent once more: the first command after a restart of Redis is the one that learns
    /// the old connection is gone, and the client has reconnected by the second.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Failure> {
        let mut connection = self.connection().await?;
        self.bounded(async {
            match cmd.query_async(&mut connection).await {
                Err(error) if lost_connection(&error) => cmd.query_async(&mut connection).await,
                answer => answer,
            }
        })
        .await
    }

    /// The value at `key`, if there is one.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.query(&cmd).await
    }

    /// Takes the lease for `holder` for `length`, unless another holder has it.
    pub(crate) async fn acquire(
        &self,
        lease: &str,
        holder: &str,
        length: Duration,
    ) -> Result<Acquired, Failure> {
        let mut cmd = script(ACQUIRE, &[lease]);
        cmd.arg(holder).arg(millis(length));
        let answer: Value = self.query(&cmd).await?;
        Acquired::parse(&answer).map_err(Failure::Redis)
    }

    /// Extends the lease if `holder` still holds it; `false` when it does not.
    pub(crate) async fn renew(
        &self,
        lease: &str,
        holder: &str,
        length: Duration,
    ) -> Result<bool, Failure> {
        let mut cmd = script(RENEW, &[lease]);
        cmd.arg(holder).arg(millis(length));
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Deletes the lease at `key` if no replica whose leases last `lease` can have set it;
    /// `true` when it did.
    pub(crate) async fn delete_foreign_lease(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<bool, Failure> {
        let mut cmd = script(DELETE_FOREIGN_LEASE, &[key]);
        cmd.arg(millis(lease));
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Deletes `key` if it still holds `value`; `true` when it did.
    pub(crate) async fn compare_and_delete(
        &self,
        key: &str,
        value: &[u8],
    ) -> Result<bool, Failure> {
        let mut cmd = script(COMPARE_AND_DELETE, &[key]);
        cmd.arg(value);
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Replaces `old` at `key` with `new`, keeping its expiry, if `key` still holds `old`;
    /// `true` when it did.
    pub(crate) async fn compare_and_swap(
        &self,
        key: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, Failure> {
        let mut cmd = script(COMPARE_AND_SWAP, &[key]);
        cmd.arg(old).arg(new);
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Deletes `key` if it still holds `value`, in a task of its own: for a lease whose holder
    /// was dropped, which cannot wait. Does nothing without a connection or a runtime.
    pub(crate) fn spawn_compare_and_delete(&self, key: &str, value: &[u8]) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(mut connection) = self
            .connection
            .try_lock()
            .ok()
            .and_then(|slot| slot.clone())
        else {
            return;
        };
        let mut cmd = script(COMPARE_AND_DELETE, &[key]);
        cmd.arg(value);
        let timeout = self.timeout;
        runtime.spawn(async move {
            let deleting = cmd.query_async::<i64>(&mut connection);
            let _ = tokio::time::timeout(timeout, deleting).await;
        });
    }

    /// Writes `value` at `token` for `ttl` if `token` still holds `expected` (nothing, when
    /// `None`), and releases `lease` if `holder` still holds it.
    pub(crate) async fn commit(
        &self,
        token: &str,
        lease: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
        holder: &str,
    ) -> Result<Committed, Failure> {
        let mut cmd = script(COMMIT, &[token, lease]);
        cmd.arg(value)
            .arg(millis(ttl))
            .arg(holder)
            .arg(expected.unwrap_or_default());
        let answer = self.query::<i64>(&cmd).await?;
        Ok(Committed {
            written: answer & 2 != 0,
            lease_held: answer & 1 != 0,
        })
    }

    /// Writes `value` at `key` for `ttl` if `key` still holds `expected` (nothing, when
    /// `None`); `true` when it did.
    pub(crate) async fn write_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Failure> {
        let mut cmd = script(WRITE_IF, &[key]);
        cmd.arg(value)
            .arg(millis(ttl))
            .arg(expected.unwrap_or_default());
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Wakes the replicas waiting on `channel`.
    pub(crate) async fn publish(&self, channel: &str) -> Result<(), Failure> {
        let mut cmd = redis::cmd(if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        cmd.arg(channel).arg("1");
        self.query::<i64>(&cmd).await.map(drop)
    }

    /// A receiver that changes when a message arrives on `channel`. Subscribes on first use.
    /// A server that refuses the subscription (an ACL, a proxy without pub/sub) leaves the
    /// waiters polling, and is asked again next time; a server that cannot be reached fails.
    pub(crate) async fn wake_on(&self, channel: &str) -> Result<watch::Receiver<u64>, Failure> {
        let receiver = self.wakes.receiver(channel);
        let known = self
            .subscribed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(channel);
        if known {
            return Ok(receiver);
        }
        match self.subscribe(channel).await {
            Ok(()) => {
                self.subscribed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(channel.to_owned());
            }
            Err(Failure::Redis(error)) if !lost_connection(&error) && !error.is_timeout() => {
                tracing::debug!(%error, "no pub/sub wake-ups; waiters poll");
            }
            Err(failure) => return Err(failure),
        }
        Ok(receiver)
    }

    async fn subscribe(&self, channel: &str) -> Result<(), Failure> {
        match self.connection().await? {
            Connection::Standalone(mut manager) => self.bounded(manager.subscribe(channel)).await,
            Connection::Cluster(mut cluster) => self.bounded(cluster.ssubscribe(channel)).await,
        }
    }
}

/// `EVAL` of `source` over `keys`; arguments follow. Sent whole each time: Redis caches it,
/// and unlike `EVALSHA` it needs no reloading after a restart or on a new cluster node.
fn script(source: &str, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(source).arg(keys.len()).arg(keys);
    cmd
}

fn lost_connection(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

fn resp3(info: ConnectionInfo) -> ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.set_redis_settings(settings)
}

/// The longest expiry the fleet sets in Redis, for a token set or a lease, whatever the token's
/// lifetime and the fleet's settings: Redis refuses a `PX` past `i64::MAX` milliseconds from
/// now, and would fail every write of a fleet built with `Duration::MAX`.
pub(crate) const LONGEST_EXPIRY: Duration = Duration::from_secs(365 * 24 * 3600);

/// `duration` as the milliseconds of a `PX`: at least 1, at most [`LONGEST_EXPIRY`].
fn millis(duration: Duration) -> u64 {
    let clamped = duration.min(LONGEST_EXPIRY);
    u64::try_from(clamped.as_millis()).map_or(1, |ms| ms.max(1))
}

fn address(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (tls)"),
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "?".to_owned(),
    }
}

/// redis-rs builds its TLS configuration from rustls' process default, which panics when a
/// program links two providers and installs neither: install `ring`, this crate's, when no
/// default is set.
fn use_tls_provider(infos: &[ConnectionInfo]) {
    let tls = infos
        .iter()
        .any(|info| matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
    if tls && rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_won_status_is_a_won_lease() {
        let won = Value::SimpleString("WON".to_owned());
        assert_eq!(Acquired::parse(&won).unwrap(), Acquired::Won);
        // What PTTL answers for a lease someone set without PX: held, not won.
        assert_eq!(
            Acquired::parse(&Value::Int(-1)).unwrap(),
            Acquired::HeldWithoutExpiry
        );
        assert_eq!(
            Acquired::parse(&Value::Int(-2)).unwrap(),
            Acquired::Held(Duration::ZERO)
        );
        assert_eq!(
            Acquired::parse(&Value::Int(1500)).unwrap(),
            Acquired::Held(Duration::from_millis(1500))
        );
        for other in [
            Value::Nil,
            Value::Okay,
            Value::SimpleString("OK".to_owned()),
            Value::BulkString(b"WON".to_vec()),
        ] {
            assert!(Acquired::parse(&other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn every_expiry_sent_to_redis_is_between_a_millisecond_and_a_year() {
        let year_ms = 365 * 24 * 3600 * 1000;
        assert_eq!(millis(Duration::MAX), year_ms);
        assert_eq!(millis(LONGEST_EXPIRY + Duration::from_secs(1)), year_ms);
        assert_eq!(millis(Duration::from_secs(10)), 10_000);
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(10)), 1);
    }
}
