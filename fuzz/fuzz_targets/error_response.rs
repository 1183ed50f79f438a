//! An error answer (status, Retry-After, body): typed, transient when it should be, no secret or control character in its text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_oauth2::__fuzz::error_response(data));
