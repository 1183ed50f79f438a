//! Throughput over real HTTP: a hyper server and a hyper-util client on loopback, keep-alive,
//! 32 requests in flight, with and without the layer, in interleaved rounds so that the
//! machine's drift hits both alike. Written to `target/bench-report/end_to_end.json`.
//!
//! "Without" is measured twice: a client that sends no token at all, and one that sends the
//! same token as a static header (tower-http's `AddAuthorization`). The first ratio includes
//! what carrying the token costs on the wire (a 1 KiB header is written, sent and parsed on every
//! request); the second is what the layer itself costs.

mod support;

use std::{
    convert::Infallible,
    fmt::Write as _,
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tower::{Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorization;
use tower_oauth2::{BoxError, OAuth2Layer};

const IN_FLIGHT: usize = 32;
const REQUESTS: usize = 9_600;
const ROUNDS: usize = 21;

/// The API every variant calls. Not the test kit's `AuthServer`: the variant without a token
/// must get 200 too, and the server's work is inside every figure, so it does the least an API
/// does with a token.
async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let answer = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    // What an API does first with a bearer token: look at it.
                    let authorized = request.headers().contains_key(http::header::AUTHORIZATION);
                    let body = if authorized {
                        "{\"ok\":true}"
                    } else {
                        "{\"ok\":null}"
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        body.as_bytes(),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), answer)
                    .await;
            });
        }
    });
    address
}

/// Sends `REQUESTS` requests through clones of `service`, `IN_FLIGHT` at a time, and returns
/// requests per second.
async fn throughput<S>(service: S, uri: &Uri) -> f64
where
    S: Service<Request<Empty<Bytes>>, Response = Response<hyper::body::Incoming>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let mut service = service.clone();
            let uri = uri.clone();
            tokio::spawn(async move {
                for _ in 0..REQUESTS / IN_FLIGHT {
                    let request = Request::get(uri.clone()).body(Empty::new()).unwrap();
                    let response = service
                        .ready()
                        .await
                        .map_err(Into::into)
                        .unwrap()
                        .call(request)
                        .await
                        .map_err(Into::into)
                        .unwrap();
                    assert!(response.status().is_success());
                    response.into_body().collect().await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    REQUESTS as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::MIN, f64::max)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let address = runtime.block_on(server());
    let uri: Uri = format!("http://{address}/v1/orders").parse().unwrap();
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(IN_FLIGHT)
        .pool_idle_timeout(Duration::from_secs(60))
        .build_http();

    let token_1k = support::token_1k();
    let layered_40 =
        OAuth2Layer::new(support::warm_cache(&runtime, support::TOKEN_40)).layer(client.clone());
    let layered_1k =
        OAuth2Layer::new(support::warm_cache(&runtime, &token_1k)).layer(client.clone());
    let static_40 = AddAuthorization::bearer(client.clone(), support::TOKEN_40);
    let static_1k = AddAuthorization::bearer(client.clone(), &token_1k);

    let run = |which: usize| -> std::pin::Pin<Box<dyn std::future::Future<Output = f64>>> {
        match which {
            0 => Box::pin(throughput(client.clone(), &uri)),
            1 => Box::pin(throughput(layered_40.clone(), &uri)),
            2 => Box::pin(throughput(layered_1k.clone(), &uri)),
            3 => Box::pin(throughput(static_40.clone(), &uri)),
            _ => Box::pin(throughput(static_1k.clone(), &uri)),
        }
    };
    // Warm the connection pool and every path once.
    for which in 0..5 {
        runtime.block_on(run(which));
    }

    let mut best: [Vec<f64>; 5] = Default::default();
    let mut ratios: [Vec<f64>; 4] = Default::default();
    let mut rows = String::new();
    for round in 0..ROUNDS {
        // Rotate the order so that no variant always runs first.
        let mut figures = [0.0; 5];
        for step in 0..5 {
            let which = (round + step) % 5;
            figures[which] = runtime.block_on(run(which));
        }
        let [bare, with_40, with_1k, static_40, static_1k] = figures;
        for (column, figure) in best.iter_mut().zip(figures) {
            column.push(figure);
        }
        let round_ratios = [
            with_40 / bare,
            with_1k / bare,
            with_40 / static_40,
            with_1k / static_1k,
        ];
        for (column, ratio) in ratios.iter_mut().zip(round_ratios) {
            column.push(ratio);
        }
        println!(
            "round {round}: without {bare:.0} req/s | 40-byte token {with_40:.0} req/s ({:.3}x; static {static_40:.0}, {:.3}x) | 1 KiB token {with_1k:.0} req/s ({:.3}x; static {static_1k:.0}, {:.3}x)",
            round_ratios[0], round_ratios[2], round_ratios[1], round_ratios[3],
        );
        if round > 0 {
            rows.push(',');
        }
        write!(
            rows,
            r#"{{"bare":{bare},"token_40":{with_40},"token_1k":{with_1k},"static_40":{static_40},"static_1k":{static_1k}}}"#
        )
        .unwrap();
    }
    let [median_40, median_1k, median_static_40, median_static_1k] = ratios.map(median);
    println!(
        "median of the rounds' ratios, with the layer / without a token: 40-byte token {median_40:.3}x, 1 KiB token {median_1k:.3}x"
    );
    println!(
        "median of the rounds' ratios, with the layer / with the same static header: 40-byte token {median_static_40:.3}x, 1 KiB token {median_static_1k:.3}x"
    );
    let [best_bare, best_40, best_1k, _, _] = best.map(|column| max(&column));
    println!(
        "best round of each, with the layer / without a token: 40-byte token {:.3}x, 1 KiB token {:.3}x",
        best_40 / best_bare,
        best_1k / best_bare
    );
    let json = format!(
        r#"{{"in_flight":{IN_FLIGHT},"requests":{REQUESTS},"rounds":[{rows}],"median_ratio_40":{median_40},"median_ratio_1k":{median_1k},"median_static_ratio_40":{median_static_40},"median_static_ratio_1k":{median_static_1k},"best_ratio_40":{},"best_ratio_1k":{}}}"#,
        best_40 / best_bare,
        best_1k / best_bare
    );
    std::fs::write(support::report_dir().join("end_to_end.json"), json).unwrap();
}
