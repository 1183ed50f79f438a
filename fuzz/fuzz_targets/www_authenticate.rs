//! A WWW-Authenticate value: parses or is refused, and what parses writes back to itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_oauth2::__fuzz::www_authenticate(data));
