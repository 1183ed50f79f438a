//! A saved token (a `FileStore` file, an opened fleet value) reads without panicking, and saved
//! again reads back the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_oauth2::__fuzz::saved(data));
