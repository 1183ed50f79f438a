//! A TCP proxy on 127.0.0.1 between Redis clients and a real redis-server that misbehaves on
//! purpose, command by command: it reads each request far enough to see the command's name,
//! keys and arguments, and a [`Rule`] decides whether that command is delayed, answered with
//! an error instead of run, run with its answer lost, or the connection closed.
//!
//! Only requests are parsed; answers and pub/sub pushes stream back byte for byte. So that
//! answers stay in order without parsing them, a failed command is not dropped but replaced
//! by a script that makes Redis itself answer the error, and a delay holds back every later
//! request of the connection too (as a slow server or link does), never reorders them.
//!
//! ```
//! use std::time::Duration;
//! use tower_oauth2_testkit::redis_proxy::{Action, Rule};
//!
//! // Fail the second write of any key ending in `:token`, then every third one.
//! let rule = Rule::new(Action::Fail("ERR injected"), |command| {
//!     command.is_write() && command.has_key_ending(":token")
//! })
//! .after(1)
//! .every(3);
//! // Delay every command by 2 s for the next 5 s.
//! let spike = Rule::new(Action::Delay(Duration::from_secs(2)), |_| true)
//!     .for_window(Duration::from_secs(5));
//! // Answer nothing for the next second, then everything sent meanwhile.
//! let stall = Rule::new(Action::Stall, |_| true).for_window(Duration::from_secs(1));
//! # drop((rule, spike, stall));
//! ```
//!
//! Start it with [`RedisProxy::start`] in front of the server, hand [`RedisProxy::url`] to the
//! client, then [`add`](RedisProxy::add) rules while it runs.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedWriteHalf},
    sync::mpsc,
    task::AbortHandle,
    time::Instant,
};

mod command;

pub use self::command::Command;
use self::command::parse;

/// What the proxy does with a command a [`Rule`] picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forwards it this much later; later requests of the connection wait behind it.
    Delay(Duration),
    /// Holds it until the rule's [window](Rule::for_window) ends, as a server busy with one
    /// slow command (a `KEYS`, a fork for a snapshot) answers everything sent meanwhile at
    /// once when it is done. Without a window it acts as no rule.
    Stall,
    /// Does not run it: Redis answers this error instead (`ERR ...`; no quotes, no newlines).
    Fail(&'static str),
    /// Does not run it: closes the connection at once.
    Close,
    /// Runs it, then closes the connection before the answer reaches the client: the write
    /// happened, the client cannot know.
    LoseReply,
}

/// Which commands to act on, what to do to them, and when.
pub struct Rule {
    matches: Box<dyn Fn(&Command) -> bool + Send + Sync>,
    action: Action,
    after: usize,
    every: usize,
    times: Option<usize>,
    window: Option<Duration>,
}

impl Rule {
    /// `action` on every command `matches` picks, forever, unless told otherwise.
    pub fn new(action: Action, matches: impl Fn(&Command) -> bool + Send + Sync + 'static) -> Self {
        Self {
            matches: Box::new(matches),
            action,
            after: 0,
            every: 1,
            times: None,
            window: None,
        }
    }

    /// Lets the first `count` matches through untouched.
    #[must_use]
    pub fn after(mut self, count: usize) -> Self {
        self.after = count;
        self
    }

    /// Acts on every `n`-th match only (from the first after [`after`](Self::after)).
    #[must_use]
    pub fn every(mut self, n: usize) -> Self {
        self.every = n.max(1);
        self
    }

    /// Acts at most `count` times.
    #[must_use]
    pub fn times(mut self, count: usize) -> Self {
        self.times = Some(count);
        self
    }

    /// Acts only for `window` from when it is added.
    #[must_use]
    pub fn for_window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("action", &self.action)
            .field("after", &self.after)
            .field("every", &self.every)
            .field("times", &self.times)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// A rule the proxy holds, as [`RedisProxy::add`] returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleId(usize);

struct Active {
    id: RuleId,
    rule: Rule,
    until: Option<Instant>,
    matched: usize,
    acted: usize,
}

/// A Redis proxy on a port of 127.0.0.1: see the module docs.
#[derive(Debug)]
pub struct RedisProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    upstream: Mutex<Option<SocketAddr>>,
    rules: Mutex<Vec<Active>>,
    /// Every acted-on rule's count, kept after the rule is removed.
    acted: Mutex<Vec<usize>>,
    seen: Mutex<Vec<Command>>,
    connections: Mutex<Vec<AbortHandle>>,
    accepting: Mutex<Option<AbortHandle>>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl RedisProxy {
    /// Starts a proxy to `upstream`: `redis://HOST:PORT` (anything after the port ignored) or
    /// `HOST:PORT`.
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let upstream = resolve(upstream).await?;
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        *state.upstream.lock().unwrap() = Some(upstream);
        let task = tokio::spawn(accept(listener, Arc::clone(&state))).abort_handle();
        *state.accepting.lock().unwrap() = Some(task);
        Ok(Self { addr, state })
    }

    /// `redis://127.0.0.1:PORT`, the URL clients use instead of the server's.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `rule` to every command from now on, after the rules added before it: the
    /// first rule that acts on a command decides.
    pub fn add(&self, rule: Rule) -> RuleId {
        let mut acted = self.state.acted.lock().unwrap();
        let id = RuleId(acted.len());
        acted.push(0);
        let until = rule.window.map(|window| Instant::now() + window);
        self.state.rules.lock().unwrap().push(Active {
            id,
            rule,
            until,
            matched: 0,
            acted: 0,
        });
        id
    }

    /// Stops applying the rule.
    pub fn remove(&self, id: RuleId) {
        self.state
            .rules
            .lock()
            .unwrap()
            .retain(|active| active.id != id);
    }

    /// Stops applying every rule.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// How many commands the rule has acted on so far.
    pub fn acted(&self, id: RuleId) -> usize {
        self.state.acted.lock().unwrap()[id.0]
    }

    /// How many of the commands seen so far `matches` picks.
    pub fn seen(&self, matches: impl Fn(&Command) -> bool) -> usize {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|command| matches(command))
            .count()
    }

    /// Closes every connection open now, as a network failure would.
    pub fn close_connections(&self) {
        for connection in self.state.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        if let Some(task) = self.state.accepting.lock().unwrap().take() {
            task.abort();
        }
        self.close_connections();
    }
}

impl State {
    /// The action of the first rule that acts on `command`, counting the matches.
    fn decide(&self, command: &Command) -> Option<Action> {
        let now = Instant::now();
        let mut rules = self.rules.lock().unwrap();
        for active in rules.iter_mut() {
            if active.until.is_some_and(|until| now >= until) || !(active.rule.matches)(command) {
                continue;
            }
            let n = active.matched;
            active.matched += 1;
            let rule = &active.rule;
            if n < rule.after || (n - rule.after) % rule.every != 0 {
                continue;
            }
            if rule.times.is_some_and(|times| active.acted >= times) {
                continue;
            }
            active.acted += 1;
            self.acted.lock().unwrap()[active.id.0] += 1;
            if rule.action == Action::Stall {
                return active.until.map(|until| Action::Delay(until - now));
            }
            return Some(rule.action.clone());
        }
        None
    }
}

async fn resolve(upstream: &str) -> std::io::Result<SocketAddr> {
    let rest = upstream
        .split_once("://")
        .map_or(upstream, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    };
    tokio::net::lookup_host(host_port)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the upstream address resolves to nothing"))
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    while let Ok((client, _)) = listener.accept().await {
        let connection = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let _ = serve(client, connection).await;
        });
        let mut connections = state.connections.lock().unwrap();
        connections.retain(|task| !task.is_finished());
        connections.push(task.abort_handle());
    }
}

/// Aborts its tasks when the connection ends, however it ends (an abort of `serve` included).
struct Tasks(Vec<AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn serve(client: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    let upstream_addr = state.upstream.lock().unwrap().expect("set at start");
    let upstream = TcpStream::connect(upstream_addr).await?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (mut from_client, to_client) = client.into_split();
    let (from_upstream, to_upstream) = upstream.into_split();
    let muted = Arc::new(AtomicBool::new(false));
    let (requests, queue) = mpsc::unbounded_channel();
    let _tasks = Tasks(vec![
        tokio::spawn(answers(from_upstream, to_client, Arc::clone(&muted))).abort_handle(),
        tokio::spawn(forward(queue, to_upstream)).abort_handle(),
    ]);

    let mut buffer = Vec::new();
    let mut chunk = vec![0_u8; 16 * 1024];
    // Requests are sent in order, each no sooner than the one before it.
    let mut last_due = Instant::now();
    loop {
        let read = from_client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
        while let Some((command, length)) = parse(&buffer)? {
            let raw: Vec<u8> = buffer.drain(..length).collect();
            let action = state.decide(&command);
            state.seen.lock().unwrap().push(command);
            let now = Instant::now();
            let (due, bytes) = match action {
                // `decide` turns a stall into the delay left of its window.
                None | Some(Action::Stall) => (now, raw),
                Some(Action::Delay(delay)) => (now + delay, raw),
                Some(Action::Fail(message)) => (now, error_script(message)),
                Some(Action::Close) => return Ok(()),
                Some(Action::LoseReply) => {
                    muted.store(true, Ordering::SeqCst);
                    let _ = requests.send((last_due.max(now), raw));
                    // Long enough on loopback for Redis to run it; the answer is not passed on.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Ok(());
                }
            };
            last_due = last_due.max(due);
            if requests.send((last_due, bytes)).is_err() {
                return Ok(());
            }
        }
    }
}

async fn forward(
    mut queue: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    mut upstream: OwnedWriteHalf,
) {
    while let Some((due, bytes)) = queue.recv().await {
        tokio::time::sleep_until(due).await;
        if upstream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

async fn answers(
    mut upstream: tokio::net::tcp::OwnedReadHalf,
    mut client: OwnedWriteHalf,
    muted: Arc<AtomicBool>,
) {
    let mut chunk = vec![0_u8; 16 * 1024];
    while let Ok(read) = upstream.read(&mut chunk).await {
        if read == 0 || muted.load(Ordering::SeqCst) {
            return;
        }
        if client.write_all(&chunk[..read]).await.is_err() {
            return;
        }
    }
}

/// `EVAL "return redis.error_reply('MESSAGE')" 0`: Redis answers the error in the command's
/// place in the order of answers.
fn error_script(message: &str) -> Vec<u8> {
    let message: String = message
        .chars()
        .filter(|c| !matches!(c, '\'' | '\\' | '\r' | '\n'))
        .collect();
    let script = format!("return redis.error_reply('{message}')");
    let mut bytes = Vec::new();
    for part in ["EVAL", &script, "0"] {
        if bytes.is_empty() {
            bytes.extend_from_slice(b"*3\r\n");
        }
        bytes.extend_from_slice(format!("${}\r\n{part}\r\n", part.len()).as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(parts: &[&str]) -> Vec<u8> {
        let mut bytes = format!("*{}\r\n", parts.len()).into_bytes();
        for part in parts {
            bytes.extend_from_slice(format!("${}\r\n{part}\r\n", part.len()).as_bytes());
        }
        bytes
    }

    /// A stand-in for Redis: answers each request with `+<NAME> <args...>`, so a test sees
    /// what arrived.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0_u8; 4096];
                    while let Ok(read) = stream.read(&mut chunk).await {
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        while let Ok(Some((command, length))) = parse(&buffer) {
                            buffer.drain(..length);
                            let args: Vec<_> = command
                                .args()
                                .iter()
                                .map(|a| String::from_utf8_lossy(a))
                                .collect();
                            let line = format!("+{} {}\r\n", command.name(), args.join(" "));
                            let _ = stream.write_all(line.as_bytes()).await;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn read_line(stream: &mut TcpStream) -> Option<String> {
        let mut line = Vec::new();
        let mut byte = [0_u8; 1];
        while !line.ends_with(b"\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            line.push(byte[0]);
        }
        Some(String::from_utf8(line).unwrap().trim_end().to_owned())
    }

    #[tokio::test]
    async fn fails_delays_and_closes_the_commands_its_rules_pick() {
        let proxy = RedisProxy::start(&format!("redis://{}", echo_server().await))
            .await
            .unwrap();
        let fail = proxy.add(
            Rule::new(Action::Fail("ERR injected"), |command| command.is("SET"))
                .after(1)
                .every(2),
        );
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        for n in 0..4 {
            client
                .write_all(&request(&["SET", "k", &n.to_string()]))
                .await
                .unwrap();
        }
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(read_line(&mut client).await.unwrap());
        }
        // A failed command reaches the server as the error script, in its place.
        assert_eq!(answers[0], "+SET k 0");
        assert!(answers[1].starts_with("+EVAL return redis.error_reply('ERR injected')"));
        assert_eq!(answers[2], "+SET k 2");
        assert!(answers[3].starts_with("+EVAL"));
        assert_eq!(proxy.acted(fail), 2);
        proxy.remove(fail);

        proxy.add(
            Rule::new(Action::Delay(Duration::from_millis(300)), |command| {
                command.is("GET")
            })
            .times(1),
        );
        let started = Instant::now();
        client.write_all(&request(&["GET", "k"])).await.unwrap();
        client.write_all(&request(&["PING"])).await.unwrap();
        assert_eq!(read_line(&mut client).await.unwrap(), "+GET k");
        // The command behind the delayed one waited with it, in order.
        assert_eq!(read_line(&mut client).await.unwrap(), "+PING");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(proxy.seen(|command| command.is("GET")), 1);

        // A stall holds every command sent in its window until the window ends, no longer.
        let stall = proxy.add(
            Rule::new(Action::Stall, |command| command.is("PING"))
                .for_window(Duration::from_millis(300)),
        );
        let started = Instant::now();
        client.write_all(&request(&["PING"])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        client.write_all(&request(&["PING"])).await.unwrap();
        assert_eq!(read_line(&mut client).await.unwrap(), "+PING");
        assert_eq!(read_line(&mut client).await.unwrap(), "+PING");
        // Not 550 ms, as a delay of the window's length from the second PING would be.
        let stalled = started.elapsed();
        assert!(
            (Duration::from_millis(300)..Duration::from_millis(500)).contains(&stalled),
            "{stalled:?}"
        );
        assert_eq!(proxy.acted(stall), 2);
        proxy.remove(stall);

        proxy.add(Rule::new(Action::LoseReply, |command| command.is("DEL")));
        client.write_all(&request(&["DEL", "k"])).await.unwrap();
        assert_eq!(read_line(&mut client).await, None);

        proxy.clear();
        proxy.add(Rule::new(Action::Close, |command| command.is("QUIT")));
        let mut other = TcpStream::connect(proxy.addr()).await.unwrap();
        other.write_all(&request(&["PING"])).await.unwrap();
        assert_eq!(read_line(&mut other).await.unwrap(), "+PING");
        other.write_all(&request(&["QUIT"])).await.unwrap();
        assert_eq!(read_line(&mut other).await, None);
    }
}
