//! Interop tests against a real authorization server: oidc-provider, started on loopback by
//! `interop/run.sh`, which also runs these tests:
//!
//! ```sh
//! interop/run.sh
//! ```
//!
//! The script passes the server's URLs in `INTEROP_ISSUER` and `INTEROP_API`. Without them, or
//! with the server down, every test fails: nothing here is skipped.
//!
//! Each test uses clients of its own (registered in `interop/server.mjs`), so the server's
//! per-client counters of refreshes, `invalid_grant` answers and revoked grants belong to one
//! test even when tests run in parallel.

mod assertions;
mod authorization_code;
mod client_credentials;
mod device;
mod discovery;
mod dpop;
mod fapi;
mod jwt_bearer;
mod mtls;
mod mtls_cli;
mod par;
mod refresh;
mod resources;
mod revocation;
mod support;
mod token_exchange;
