//! The axum example's self-check: 50 concurrent handler calls through one shared OAuth2 client
//! share one token from one grant.

use std::{path::PathBuf, process::Command};

/// The example binary that `cargo test` built next to this test.
fn example(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    let binary = path
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    // `cargo test` builds the examples with the tests; `cargo test --test NAME` alone does not.
    let built = std::fs::metadata(&binary).and_then(|meta| meta.modified());
    let source = std::fs::metadata(format!("{}/examples/{name}.rs", env!("CARGO_MANIFEST_DIR")))
        .and_then(|meta| meta.modified())
        .unwrap();
    assert!(
        built.is_ok_and(|built| built >= source),
        "{} is missing or older than its source: run `cargo test` or \
         `cargo build --example {name}` first",
        binary.display()
    );
    binary
}

#[test]
fn concurrent_handler_calls_share_one_token_and_one_grant() {
    let output = Command::new(example("axum_outbound"))
        .arg("--self-check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("50 answered 200") && stdout.contains("issued 1 token"),
        "{stdout}"
    );
    assert!(stdout.contains("the cache ran 1 fetch"), "{stdout}");
}
