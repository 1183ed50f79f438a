//! Replicas as separate OS processes: the `curl` example, built with the `https` and `redis`
//! features next to this test binary (`fleet/run.sh` builds it), run against the test kit's
//! server on loopback and the Redis servers the script started.

#![allow(unreachable_pub)]

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};
use tower_oauth2::{
    ClientAuth, TokenClient, TokenSource,
    fleet::{__seam, FleetKey},
    grant::ClientCredentials,
};
use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET, Loopback};

use crate::support::{Mode, cluster_urls, replica, standalone_url};

/// The key of the processes' key files, as `FleetKey` bytes.
pub const KEY: [u8; 32] = [0x5a; 32];
/// Another key, for a process that does not belong.
pub const OTHER_KEY: [u8; 32] = [0xa5; 32];

/// The `curl` example `fleet/run.sh` built next to this test binary, or the one
/// `FLEET_CURL_BINARY` names: another commit's build, to see a test fail without a fix.
pub fn curl_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEET_CURL_BINARY") {
        return PathBuf::from(path);
    }
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    let path = path.join("examples").join("curl");
    assert!(
        path.exists(),
        "{} is missing: run these tests with fleet/run.sh, which builds it",
        path.display()
    );
    path
}

/// A key file holding `key` as 64 hex characters.
pub fn key_file(key: &[u8; 32]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let hex: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
    std::fs::write(file.path(), format!("{}\n{}\n", &hex[..32], &hex[32..])).unwrap();
    file
}

/// The Redis options for `mode`.
pub fn redis_args(mode: Mode) -> Vec<String> {
    match mode {
        Mode::Standalone => vec!["--redis".into(), standalone_url()],
        Mode::Cluster => cluster_urls()
            .into_iter()
            .flat_map(|url| ["--redis-cluster".to_owned(), url])
            .collect(),
    }
}

/// The options of a replica of the demo client on `loopback`, sharing through `redis` with the
/// key in `key`, followed by `extra`; the API's `/orders` is the URL.
pub fn demo_args(
    loopback: &Loopback,
    redis: &[String],
    key: &tempfile::NamedTempFile,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--token-url".into(),
        loopback.token_url(),
        "--client-id".into(),
        CLIENT_ID.into(),
        "--client-secret".into(),
        CLIENT_SECRET.into(),
        "--redis-key-file".into(),
        key.path().to_str().unwrap().into(),
    ];
    args.extend(redis.iter().cloned());
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.push(loopback.api_url("/orders"));
    args
}

/// The Redis keys the demo client's token set on `loopback` lives under, as the processes
/// derive them: (token, lease).
pub fn demo_keys(server: &AuthServer, loopback: &Loopback) -> (String, String) {
    let endpoint = TokenClient::new(&loopback.token_url(), server.token_endpoint()).unwrap();
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET));
    let fleet = replica(Mode::Standalone, FleetKey::new(1, KEY)).namespace("");
    let scope = __seam::scope(&fleet, &grant.identity().unwrap());
    (scope.token_key().to_owned(), scope.lease_key().to_owned())
}

/// One running replica, its stderr collected line by line as it comes.
pub struct Process {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
}

impl Process {
    pub fn start(args: &[String]) -> Self {
        let mut child = Command::new(curl_binary())
            .args(args)
            .env_remove("OAUTH2_CLIENT_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("curl starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        let reader = tokio::spawn(async move {
            let mut pipe = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = pipe.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            stderr,
            reader,
        }
    }

    /// `count` replicas with the same options, started together.
    pub fn start_many(count: usize, args: &[String]) -> Vec<Self> {
        (0..count).map(|_| Self::start(args)).collect()
    }

    /// Whether a line of its stderr so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
    }

    /// Kills it at once, as a crash would: SIGKILL, no clean-up of any kind.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// Waits for it to exit, within two minutes.
    pub async fn finish(mut self) -> Finished {
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .expect("curl exits within two minutes")
            .unwrap();
        self.reader.await.unwrap();
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        Finished { status, stderr }
    }
}

/// Waits for every process in turn.
pub async fn finish_all(processes: Vec<Process>) -> Vec<Finished> {
    let mut finished = Vec::new();
    for process in processes {
        finished.push(process.finish().await);
    }
    finished
}

/// Polls `condition` every 10 ms until it holds; fails after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A replica that has exited.
pub struct Finished {
    pub status: ExitStatus,
    pub stderr: Vec<String>,
}

impl Finished {
    /// The numbers of its summary line: `requests`, `ok`, `token_fetches`,
    /// `retries_after_401`, `fleet_reads`.
    pub fn summary(&self) -> HashMap<String, u64> {
        let last = self.stderr.last().map(String::as_str).unwrap_or_default();
        last.split(' ')
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> u64 {
        self.summary()[name]
    }

    /// Asserts that it exited 0 with `requests` requests, all of them answered 2xx, and
    /// without a panic.
    pub fn assert_all_ok(&self, requests: u64) {
        let all = self.stderr.join("\n");
        assert!(self.status.success(), "{}: {all}", self.status);
        assert_eq!(self.get("requests"), requests, "{all}");
        assert_eq!(self.get("ok"), requests, "{all}");
        assert!(!all.contains("panicked"), "{all}");
    }

    /// Lines of its stderr that contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.stderr
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }
}

/// The sum of one number of every summary line.
pub fn sum(finished: &[Finished], name: &str) -> u64 {
    finished.iter().map(|process| process.get(name)).sum()
}
