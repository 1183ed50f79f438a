//! What the fleet tests share: the servers `fleet/run.sh` started, replicas, a token endpoint
//! that counts its grants and checks refresh tokens, and raw access to Redis.

#![allow(unreachable_pub)]

use std::{
    future::Future,
    net::TcpListener,
    pin::Pin,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use redis::{AsyncCommands, Cmd, FromRedisValue};
use tokio::sync::Barrier;
use tower_oauth2::{
    Error, Lineage, Token,
    fleet::{
        __seam::{self, FleetScope, Obtained, TokenSetId},
        FleetKey, RedisFleet,
    },
};

/// The client secret the fake grant "uses": it must never reach Redis.
pub const CLIENT_SECRET: &str = "client-secret-sentinel-5f1c";

/// Which of the servers `fleet/run.sh` started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests with fleet/run.sh, which starts Redis")
    })
}

pub fn standalone_url() -> String {
    env("FLEET_REDIS_URL")
}

pub fn cluster_urls() -> Vec<String> {
    env("FLEET_CLUSTER_URLS")
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// The key every replica of a test fleet shares.
pub fn key() -> FleetKey {
    FleetKey::new(1, [0x42; 32])
}

/// One replica: a fleet with a short lease, so takeovers happen within a test's patience.
pub fn replica(mode: Mode, key: FleetKey) -> RedisFleet {
    let fleet = match mode {
        Mode::Standalone => RedisFleet::new(&standalone_url(), key),
        Mode::Cluster => RedisFleet::cluster(cluster_urls(), key),
    };
    fleet
        .expect("valid URL")
        .lease(Duration::from_secs(2))
        .namespace("tests")
}

pub fn replicas(mode: Mode, count: usize) -> Vec<Arc<RedisFleet>> {
    (0..count).map(|_| Arc::new(replica(mode, key()))).collect()
}

/// A token set no other test uses.
pub fn unique_set() -> TokenSetId {
    TokenSetId::new(
        "https://auth.example.com/oauth2/token",
        format!("client-{}", random_hex()),
        "client_credentials",
    )
    .scopes(["orders:read", "orders:write"])
}

/// The scope of `set` in `fleet`, for a cache with the default refresh margin.
pub fn scope(fleet: &RedisFleet, set: &TokenSetId) -> FleetScope {
    __seam::scope(fleet, set).refresh_margin(Duration::from_secs(60))
}

pub fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

type Granting = Pin<Box<dyn Future<Output = Result<Token, Error>> + Send>>;

/// A token endpoint: counts grants, issues unique tokens, and, when it rotates refresh
/// tokens, refuses any refresh token but the newest, as a server with reuse detection does.
pub struct Issuer {
    grants: AtomicUsize,
    delay: Duration,
    lifetime: Duration,
    rotates: bool,
    newest_refresh: Mutex<Option<String>>,
    refused: AtomicUsize,
    issued: Mutex<Vec<String>>,
}

impl Issuer {
    pub fn new(delay: Duration) -> Arc<Self> {
        Self::with(delay, Duration::from_secs(300), false)
    }

    /// Issues tokens valid for `lifetime`, and accepts only the newest refresh token.
    pub fn rotating(delay: Duration, lifetime: Duration) -> Arc<Self> {
        Self::with(delay, lifetime, true)
    }

    fn with(delay: Duration, lifetime: Duration, rotates: bool) -> Arc<Self> {
        Arc::new(Self {
            grants: AtomicUsize::new(0),
            delay,
            lifetime,
            rotates,
            newest_refresh: Mutex::new(None),
            refused: AtomicUsize::new(0),
            issued: Mutex::new(Vec::new()),
        })
    }

    pub fn grants(&self) -> usize {
        self.grants.load(Ordering::SeqCst)
    }

    /// Grants refused because they presented a refresh token that was not the newest.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Every access, refresh and id token issued, and the client secret.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = self.issued.lock().unwrap().clone();
        secrets.push(CLIENT_SECRET.to_owned());
        secrets
    }

    /// The grant to hand to `obtain`.
    pub fn grant(self: &Arc<Self>) -> impl FnOnce(Option<Token>) -> Granting + Send + 'static {
        let issuer = Arc::clone(self);
        move |previous| Box::pin(async move { issuer.issue(previous).await })
    }

    async fn issue(&self, previous: Option<Token>) -> Result<Token, Error> {
        let n = self.grants.fetch_add(1, Ordering::SeqCst) + 1;
        if self.rotates {
            let presented = previous
                .as_ref()
                .and_then(Token::refresh_token)
                .map(|secret| secret.expose().to_owned());
            let newest = self.newest_refresh.lock().unwrap().clone();
            if newest.is_some() && presented != newest {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(Error::source_failed("invalid_grant: refresh token reused"));
            }
        }
        tokio::time::sleep(self.delay).await;
        let tag = random_hex();
        let access = format!("access-{n}-{tag}");
        let refresh = format!("refresh-{n}-{tag}");
        let id = format!("id-{n}-{tag}");
        *self.newest_refresh.lock().unwrap() = Some(refresh.clone());
        self.issued
            .lock()
            .unwrap()
            .extend([access.clone(), refresh.clone(), id.clone()]);
        Ok(Token::bearer(access)
            .with_expires_in(self.lifetime)
            .with_refresh_token(refresh)
            .with_id_token(id)
            // A cache gives each set a lineage above the one it replaces; grant order does.
            .with_lineage(Lineage::from_u64(n as u64)))
    }
}

/// `callers` concurrent `obtain`s on each replica, released together; their results in order.
pub async fn herd(
    fleets: &[Arc<RedisFleet>],
    set: &TokenSetId,
    callers: usize,
    local: Option<&Token>,
    issuer: &Arc<Issuer>,
) -> Vec<Obtained> {
    let locals = vec![local.cloned(); fleets.len()];
    herd_each(fleets, set, callers, &locals, issuer).await
}

/// As [`herd`], with the token each replica holds locally.
pub async fn herd_each(
    fleets: &[Arc<RedisFleet>],
    set: &TokenSetId,
    callers: usize,
    locals: &[Option<Token>],
    issuer: &Arc<Issuer>,
) -> Vec<Obtained> {
    let barrier = Arc::new(Barrier::new(fleets.len() * callers));
    let mut tasks = Vec::new();
    for (fleet, local) in fleets.iter().zip(locals) {
        let scope = scope(fleet, set);
        for _ in 0..callers {
            let fleet = Arc::clone(fleet);
            let scope = scope.clone();
            let local = local.clone();
            let grant = issuer.grant();
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                __seam::obtain(&fleet, &scope, local.as_ref(), grant).await
            }));
        }
    }
    let mut obtained = Vec::new();
    for task in tasks {
        obtained.push(task.await.expect("caller task").expect("a token"));
    }
    obtained
}

/// How many of `obtained` came from each source: (fleet, granted, fallback).
pub fn sources(obtained: &[Obtained]) -> (usize, usize, usize) {
    let count = |name| obtained.iter().filter(|o| o.as_str() == name).count();
    (count("fleet"), count("granted"), count("fallback"))
}

/// The access tokens of `obtained`, deduplicated.
pub fn distinct_tokens(obtained: &[Obtained]) -> Vec<String> {
    let mut tokens: Vec<String> = obtained
        .iter()
        .map(|o| o.token().access_token().expose().to_owned())
        .collect();
    tokens.sort();
    tokens.dedup();
    tokens
}

/// Runs `cmd` on the Redis of `mode` through a plain client, behind the fleet's back.
pub async fn query<T: FromRedisValue>(mode: Mode, cmd: &Cmd) -> T {
    match mode {
        Mode::Standalone => {
            let client = redis::Client::open(standalone_url()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            cmd.query_async(&mut connection).await.unwrap()
        }
        Mode::Cluster => {
            let client = redis::cluster::ClusterClient::new(cluster_urls()).unwrap();
            let mut connection = client.get_async_connection().await.unwrap();
            cmd.query_async(&mut connection).await.unwrap()
        }
    }
}

pub async fn get(mode: Mode, key: &str) -> Option<Vec<u8>> {
    query(mode, redis::cmd("GET").arg(key)).await
}

pub async fn set(mode: Mode, key: &str, value: &[u8]) {
    query::<()>(
        mode,
        redis::cmd("SET").arg(key).arg(value).arg("PX").arg(60_000),
    )
    .await;
}

/// Every key and string value on every node of `mode`.
pub async fn everything(mode: Mode) -> Vec<(Vec<u8>, Vec<u8>)> {
    let nodes = match mode {
        Mode::Standalone => vec![standalone_url()],
        Mode::Cluster => cluster_urls(),
    };
    let mut entries = Vec::new();
    for node in nodes {
        let mut connection = redis::Client::open(node)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<Vec<u8>> = {
            let mut iter = connection.scan::<Vec<u8>>().await.unwrap();
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key.unwrap());
            }
            keys
        };
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .unwrap();
            let value: Vec<u8> = if kind == "string" {
                connection.get(&key).await.unwrap_or_default()
            } else {
                format!("<{kind}>").into_bytes()
            };
            entries.push((key, value));
        }
    }
    entries
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// A redis-server of a test's own, on a free port, that the test may kill and start again.
pub struct OwnRedis {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once, as a crash would (SIGKILL: no shutdown, no goodbye).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(env("FLEET_REDIS_SERVER"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "redis-server on port {} did not answer within 5 seconds",
            self.port
        );
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
