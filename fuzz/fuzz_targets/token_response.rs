//! A 200 answer's body: never a panic, only header-safe tokens, no secret in any error.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_oauth2::__fuzz::token_response(data));
