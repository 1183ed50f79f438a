//! The Redis side of a fleet: one connection (standalone or cluster), every command bounded by
//! a timeout, and the wake-ups that arrive through pub/sub. The scripts the lease protocol
//! runs over it are in `scripts.rs`.
//!
//! The connection speaks RESP3, so subscriptions share it with commands, and the client
//! subscribes again by itself after a reconnect. A standalone server is reached through
//! redis-rs' `ConnectionManager`, which reconnects in the background after a failure; a cluster
//! through its cluster client, which follows slot moves. On a cluster, wake-ups use sharded
//! pub/sub (`SPUBLISH`/`SSUBSCRIBE`), routed by the channel's hash tag to the shard that also
//! holds the token set's keys.

mod scripts;

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

pub(crate) use self::scripts::{Acquired, LONGEST_EXPIRY};

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

fn address(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (tls)"),
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "?".to_owned(),
    }
}

/// redis-rs builds its TLS configuration from rustls' process default, which panics when a
/// program links two providers and installs neither: install the crate's when none is set.
fn use_tls_provider(infos: &[ConnectionInfo]) {
    let tls = infos
        .iter()
        .any(|info| matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
    if tls {
        crate::tls::install_default_if_none();
    }
}
