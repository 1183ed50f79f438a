//! A token request's form body and Basic credentials decode to the fields that went in.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_oauth2::__fuzz::form(data));
