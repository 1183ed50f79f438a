//! The cost of DPoP per request: a request with a DPoP-bound token (a proof signed per
//! request) beside the same request with a bearer token, and beside the ES256 signature alone
//! over a message the size of a proof's. Paired runs, so the ratios hold on a busy machine;
//! and heap allocations per request, counted by a global allocator.
//!
//! `cargo bench --features dpop --bench dpop`

mod support;

use std::{alloc::System, hint::black_box, time::Duration};

use http::Request;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service};
use tower_oauth2::{
    DpopKey, Error, FetchContext, NoReplay, OAuth2Layer, Token, TokenCache, TokenSource,
};

use support::{Body, TOKEN_40, noop, plain, send, six_headers};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A source of one DPoP-bound token that lives an hour.
struct Bound(DpopKey);

impl TokenSource for Bound {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        Ok(Token::bearer(TOKEN_40)
            .with_expires_in(Duration::from_secs(3600))
            .with_dpop(&self.0))
    }
}

/// Allocations (and reallocations) per request through `service`, of requests `build` makes.
fn allocations<S>(mut service: S, build: fn() -> Request<Body>) -> f64
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..2 {
        black_box(send(&mut service, build()));
    }
    let region = Region::new(GLOBAL);
    for _ in 0..1000 {
        black_box(send(&mut service, build()));
    }
    let change = region.change();
    (change.allocations + change.reallocations) as f64 / 1000.0
}

fn main() {
    let runtime = support::runtime();
    let bearer = support::warm_cache(&runtime, TOKEN_40);
    let key = DpopKey::generate().expect("a P-256 key");
    let bound = TokenCache::new(Bound(key));
    runtime
        .block_on(bound.token())
        .expect("a fixed source always answers");

    // The signature alone: ES256 over a message as long as a proof's signing input (header
    // with the JWK, claims with jti, htm, htu, iat and ath), about 420 bytes.
    let signer = SigningKey::from_slice(&[7; 32]).expect("a valid scalar");
    let message = vec![b'e'; 420];

    let mut bearer_client = OAuth2Layer::new(bearer.clone()).layer(noop());
    let mut dpop_client = OAuth2Layer::new(bound.clone()).layer(noop());
    let mut dpop_no_replay = OAuth2Layer::new(bound.clone())
        .replay(NoReplay)
        .layer(noop());
    let mut sign = || {
        let signature: Signature = signer.sign(black_box(&message));
        black_box(signature);
    };
    let mut variants: [(&str, &mut dyn FnMut()); 4] = [
        ("bearer", &mut support::sending(&mut bearer_client, plain)),
        ("dpop", &mut support::sending(&mut dpop_client, plain)),
        (
            "dpop_no_replay",
            &mut support::sending(&mut dpop_no_replay, plain),
        ),
        ("es256_signature", &mut sign),
    ];
    let timings = support::paired(&mut variants, 300, 20);
    let (bearer_t, dpop_t, no_replay_t, signature_t) =
        (timings[0], timings[1], timings[2], timings[3]);
    println!("\nper request (min of batches / median of batches):");
    for ((name, _), timing) in variants.iter().zip(&timings) {
        println!(
            "  {name:16} {:9.0} ns / {:9.0} ns",
            timing.min_ns, timing.median_ns
        );
    }
    let share = |with: f64, signature: f64| (with - signature) / with * 100.0;
    println!(
        "  dpop / bearer: x{:.1}; dpop / signature alone: x{:.2}; the rest of a DPoP request \
         (proof assembly, copies, the layer): {:.0} ns = {:.0}% (no replay: {:.0} ns = {:.0}%)",
        dpop_t.min_ns / bearer_t.min_ns,
        dpop_t.min_ns / signature_t.min_ns,
        dpop_t.min_ns - signature_t.min_ns,
        share(dpop_t.min_ns, signature_t.min_ns),
        no_replay_t.min_ns - signature_t.min_ns,
        share(no_replay_t.min_ns, signature_t.min_ns),
    );

    let layers = [
        ("bearer", OAuth2Layer::new(bearer.clone())),
        ("dpop", OAuth2Layer::new(bound.clone())),
    ];
    let mut counts = Vec::new();
    for (request, build) in [("plain", plain as fn() -> _), ("six_headers", six_headers)] {
        for (token, layer) in &layers {
            let replaying = allocations(layer.clone().layer(noop()), build);
            let no_replay = allocations(layer.clone().replay(NoReplay).layer(noop()), build);
            counts.push((format!("{token}_{request}"), replaying));
            counts.push((format!("{token}_{request}_no_replay"), no_replay));
        }
    }
    println!("\nheap allocations per request (building the request included):");
    for (name, count) in &counts {
        println!("  {name:28} {count:.1}");
    }
    let json = format!(
        r#"{{"bearer_ns":{},"dpop_ns":{},"dpop_no_replay_ns":{},"signature_ns":{},"allocations":{{{}}}}}"#,
        bearer_t.min_ns,
        dpop_t.min_ns,
        no_replay_t.min_ns,
        signature_t.min_ns,
        counts
            .iter()
            .map(|(name, count)| format!(r#""{name}":{count}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    std::fs::write(support::report_dir().join("dpop.json"), json).expect("the report");
}
