//! A token endpoint on 127.0.0.1 that misbehaves on purpose, at the TCP level where it must:
//! it writes raw HTTP/1.1 by hand so that hangs, resets, drips and refusals are real socket
//! events, not simulations inside an HTTP library.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    task::AbortHandle,
};

/// One way for a token endpoint to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `500 Internal Server Error` with a text body.
    Status500,
    /// `503 Service Unavailable` with `Retry-After: 1`.
    Status503RetryAfterSeconds,
    /// `503 Service Unavailable` with `Retry-After` as an HTTP date two seconds ahead.
    Status503RetryAfterDate,
    /// `429 Too Many Requests` without `Retry-After`.
    Status429,
    /// Reads the request, then never answers.
    Hang,
    /// Sends the head and part of the body, then resets the connection.
    ResetMidBody,
    /// Nothing listens: every connection is refused.
    Refused,
    /// `200` with truncated JSON.
    GarbageJson,
    /// `200` with an empty body.
    Empty200,
    /// `200` with a 10 MB chunked body.
    HugeBody,
    /// `200` with a good token whose body arrives one byte a second.
    Drip,
    /// `502 Bad Gateway` with an HTML page.
    HtmlErrorPage,
    /// `200` with a token of type `mac`.
    WrongTokenType,
    /// `400` with the RFC 6749 error `invalid_client`.
    InvalidClient,
    /// `403` with a vendor's error envelope.
    VendorEnvelope,
}

impl Fault {
    /// Every fault, in the order of the table in `docs/failures.md`.
    pub const ALL: [Fault; 15] = [
        Fault::Status500,
        Fault::Status503RetryAfterSeconds,
        Fault::Status503RetryAfterDate,
        Fault::Status429,
        Fault::Hang,
        Fault::ResetMidBody,
        Fault::Refused,
        Fault::GarbageJson,
        Fault::Empty200,
        Fault::HugeBody,
        Fault::Drip,
        Fault::HtmlErrorPage,
        Fault::WrongTokenType,
        Fault::InvalidClient,
        Fault::VendorEnvelope,
    ];

    /// What the endpoint does, in a few words.
    pub fn label(self) -> &'static str {
        match self {
            Fault::Status500 => "500, text body",
            Fault::Status503RetryAfterSeconds => "503, `Retry-After: 1`",
            Fault::Status503RetryAfterDate => "503, `Retry-After` as HTTP date (+2 s)",
            Fault::Status429 => "429, no `Retry-After`",
            Fault::Hang => "accepts, then never answers",
            Fault::ResetMidBody => "connection reset mid-body",
            Fault::Refused => "connection refused",
            Fault::GarbageJson => "200, truncated JSON",
            Fault::Empty200 => "200, empty body",
            Fault::HugeBody => "200, 10 MB chunked body",
            Fault::Drip => "200, body drips 1 byte/s",
            Fault::HtmlErrorPage => "502, HTML error page",
            Fault::WrongTokenType => "200, `token_type: mac`",
            Fault::InvalidClient => "400, `invalid_client`",
            Fault::VendorEnvelope => "403, vendor error envelope",
        }
    }
}

/// A faulty token endpoint until [`heal`](Self::heal) is called; then a good one that issues
/// `healed-1`, `healed-2`, ...
#[derive(Debug)]
pub struct FaultServer {
    addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    fault: Fault,
    healed: AtomicBool,
    /// Requests read completely, faulty or not.
    requests: AtomicUsize,
    issued: AtomicUsize,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl FaultServer {
    /// Starts failing with `fault` on a port of 127.0.0.1.
    pub async fn start(fault: Fault) -> std::io::Result<Self> {
        let state = Arc::new(State {
            fault,
            healed: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let addr = if fault == Fault::Refused {
            // Nothing listens until the server heals.
            unused_port()?
        } else {
            let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
            let addr = listener.local_addr()?;
            state.spawn(accept(listener, Arc::clone(&state)));
            addr
        };
        Ok(Self { addr, state })
    }

    /// The URL of the token endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Requests the endpoint has read so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// From now on every request gets a good token.
    pub fn heal(&self) -> std::io::Result<()> {
        self.state.healed.store(true, Ordering::SeqCst);
        if self.state.fault == Fault::Refused {
            let listener = listen(self.addr)?;
            self.state.spawn(accept(listener, Arc::clone(&self.state)));
        }
        Ok(())
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        for task in self.state.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl State {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task).abort_handle();
        self.tasks.lock().unwrap().push(handle);
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// A loopback port below the ephemeral range, free now: client sockets the kernel numbers
/// itself cannot take it before the server binds it again.
fn unused_port() -> std::io::Result<SocketAddr> {
    for _ in 0..1000 {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, rand::random_range(20_000..30_000)));
        if listen(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(std::io::Error::other(
        "no free port below the ephemeral range",
    ))
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let connection = Arc::clone(&state);
        state.spawn(async move {
            let _ = serve(stream, connection).await;
        });
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    // Reading the whole request first matters: closing a socket with unread input makes the
    // kernel send a reset, which would turn every fault into "connection reset".
    read_request(&mut stream).await?;
    state.requests.fetch_add(1, Ordering::SeqCst);
    if state.healed.load(Ordering::SeqCst) {
        let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let body =
            format!(r#"{{"access_token":"healed-{n}","token_type":"Bearer","expires_in":3600}}"#);
        return respond(
            &mut stream,
            "200 OK",
            "application/json",
            &[],
            body.as_bytes(),
        )
        .await;
    }
    match state.fault {
        Fault::Status500 => {
            respond(
                &mut stream,
                "500 Internal Server Error",
                "text/plain",
                &[],
                b"internal error",
            )
            .await
        }
        Fault::Status503RetryAfterSeconds => {
            let headers = [("Retry-After", "1".to_owned())];
            respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                &headers,
                b"busy",
            )
            .await
        }
        Fault::Status503RetryAfterDate => {
            let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
            let headers = [("Retry-After", at)];
            respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                &headers,
                b"busy",
            )
            .await
        }
        Fault::Status429 => {
            respond(
                &mut stream,
                "429 Too Many Requests",
                "text/plain",
                &[],
                b"slow down",
            )
            .await
        }
        Fault::Hang => std::future::pending().await,
        Fault::ResetMidBody => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(br#"{"access_token":"partial"#).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            // An abortive close: the kernel sends RST instead of FIN.
            stream.set_zero_linger()?;
            drop(stream);
            Ok(())
        }
        Fault::Refused => unreachable!("nothing listens while the fault lasts"),
        Fault::GarbageJson => {
            let body = br#"{"access_token":"abc","token_type":"#;
            respond(&mut stream, "200 OK", "application/json", &[], body).await
        }
        Fault::Empty200 => respond(&mut stream, "200 OK", "application/json", &[], b"").await,
        Fault::HugeBody => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            let chunk = vec![b'a'; 64 * 1024];
            let mut sent = 0;
            while sent < 10 * 1024 * 1024 {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                stream.write_all(&chunk).await?;
                stream.write_all(b"\r\n").await?;
                sent += chunk.len();
            }
            stream.write_all(b"0\r\n\r\n").await?;
            stream.shutdown().await
        }
        Fault::Drip => {
            let body = br#"{"access_token":"drip","token_type":"Bearer","expires_in":3600}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            for byte in body {
                stream.write_all(&[*byte]).await?;
                stream.flush().await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            stream.shutdown().await
        }
        Fault::HtmlErrorPage => {
            let page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\
                <body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>";
            respond(&mut stream, "502 Bad Gateway", "text/html", &[], page).await
        }
        Fault::WrongTokenType => {
            let body = br#"{"access_token":"abc","token_type":"mac","expires_in":3600}"#;
            respond(&mut stream, "200 OK", "application/json", &[], body).await
        }
        Fault::InvalidClient => {
            let body = br#"{"error":"invalid_client","error_description":"unknown client"}"#;
            respond(
                &mut stream,
                "400 Bad Request",
                "application/json",
                &[],
                body,
            )
            .await
        }
        Fault::VendorEnvelope => {
            let body = br#"{"meta":{"pagination":{"limit":0,"offset":0,"total_count":0}},"errors":[{"httpcode":403,"message":"invalid client secret"}]}"#;
            respond(&mut stream, "403 Forbidden", "application/json", &[], body).await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// Reads one request: the head, then as many body bytes as `Content-Length` says.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0; 4096];
    let head_end = loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Ok(())
}
