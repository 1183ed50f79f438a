//! The Redis fleet against real Redis servers: one standalone server and a three-master Redis
//! Cluster, started on loopback by `fleet/run.sh`, which also runs these tests:
//!
//! ```sh
//! fleet/run.sh
//! ```
//!
//! The script passes the servers in `FLEET_REDIS_URL` and `FLEET_CLUSTER_URLS`, and the
//! `redis-server` binary in `FLEET_REDIS_SERVER` for the tests that start, kill and restart a
//! server of their own. Without them every test fails: nothing here is skipped.
//!
//! Several `RedisFleet`s in one process stand in for the replicas of a fleet, each with many
//! concurrent callers. Every test uses a token set of its own (a random client id), so tests
//! running in parallel share the servers but no keys.

mod failures;
mod faults;
// The interop suite's helpers: the rotation test signs in at its server for a refresh token.
#[allow(
    dead_code,
    unused_imports,
    reason = "the rotation test uses a few of the interop suite's helpers"
)]
#[path = "../interop/support.rs"]
mod interop;
mod limits;
mod lineage;
mod process;
mod process_secrets;
mod processes;
mod retire;
mod rotation;
mod rotation_interop;
mod secrets;
mod sharing;
mod support;
mod wiring;
