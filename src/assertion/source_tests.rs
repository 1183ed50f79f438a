use std::sync::atomic::AtomicUsize;

use tower_oauth2_testkit::keys;

use super::*;

fn key_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

#[tokio::test]
async fn a_pem_file_takes_the_configured_key_id_and_a_jwk_its_own() {
    let (_dir, path) = key_file(keys::RSA_PRIVATE_PEM);
    let source = KeySource::file(&path).with_key_id("configured");
    let key = source.read().await.unwrap();
    assert_eq!(key.key_id(), Some("configured"));
    assert_eq!(key.algorithm(), SigningAlgorithm::Rs256);
    std::fs::write(&path, keys::EC_PRIVATE_JWK).unwrap();
    let key = source.read().await.unwrap();
    assert_eq!(key.key_id(), Some(keys::KEY_ID));
    assert_eq!(key.algorithm(), SigningAlgorithm::Es256);
    assert_eq!(source.reloads(), 1);
}

#[tokio::test]
async fn an_unchanged_file_is_not_parsed_again_and_is_no_reload() {
    let (_dir, path) = key_file(keys::ED_PRIVATE_PEM);
    let source = KeySource::file(&path);
    let first = source.read().await.unwrap();
    let second = source.read().await.unwrap();
    // The same parsed key comes back: nothing was parsed the second time.
    assert!(Arc::ptr_eq(&first.inner, &second.inner));
    assert_eq!(source.reloads(), 0);
    // The same key written again with other whitespace is parsed, and is no reload.
    std::fs::write(&path, format!("\n{}\n", keys::ED_PRIVATE_PEM)).unwrap();
    let third = source.read().await.unwrap();
    assert!(!Arc::ptr_eq(&first.inner, &third.inner) && first.same_as(&third));
    assert_eq!(source.reloads(), 0);
}

#[tokio::test]
async fn a_bad_file_is_a_config_error_naming_the_path_and_not_its_contents() {
    let sentinel = "-----BEGIN PRIVATE KEY-----\nc2VudGluZWw=\n-----END PRIVATE KEY-----\n";
    let (dir, path) = key_file(sentinel);
    let source = KeySource::file(&path);
    let shown = |error: Error| {
        assert_eq!(error.kind(), ErrorKind::Config);
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(!message.contains("c2VudGluZWw"), "{message}");
        message
    };
    shown(source.read().await.unwrap_err());
    std::fs::write(&path, " \n").unwrap();
    assert!(shown(source.read().await.unwrap_err()).contains("empty"));
    std::fs::write(&path, "c".repeat(MAX_KEY_FILE + 1)).unwrap();
    assert!(shown(source.read().await.unwrap_err()).contains("larger than"));
    std::fs::write(&path, r#"{"kty":"EC","crv":"P-256","d":"c2VudGluZWw"}"#).unwrap();
    shown(source.read().await.unwrap_err());
    drop(dir);
    assert!(shown(source.read().await.unwrap_err()).contains("opened"));
}

#[tokio::test]
async fn an_algorithm_the_file_s_key_cannot_make_is_a_config_error() {
    let (_dir, path) = key_file(keys::EC_PRIVATE_PEM);
    let source = KeySource::file(&path).with_algorithm(SigningAlgorithm::Ps256);
    let error = source.load().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.to_string().contains("PS256"), "{error}");
    std::fs::write(&path, keys::RSA_PRIVATE_PEM).unwrap();
    assert_eq!(
        source.load().await.unwrap().algorithm(),
        SigningAlgorithm::Ps256
    );
}

#[tokio::test]
async fn a_function_s_key_counts_a_reload_only_when_it_changes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let source = KeySource::from_fn(move || {
        // Parsed anew each call: equal keys must still count as unchanged.
        let pem = match counted.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => keys::RSA_PRIVATE_PEM,
            _ => keys::OTHER_RSA_PRIVATE_PEM,
        };
        async move { SigningKey::from_pkcs8_pem(pem) }
    });
    assert!(source.can_change());
    for _ in 0..3 {
        source.read().await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(source.reloads(), 1);
    let failing = KeySource::from_fn(|| async { Err::<SigningKey, _>("vault is down") });
    assert_eq!(failing.read().await.unwrap_err().kind(), ErrorKind::Source);
}

#[test]
fn debug_shows_the_kind_and_path_and_no_key_material() {
    let key = SigningKey::from_pkcs8_pem(keys::RSA_PRIVATE_PEM).unwrap();
    let fixed = format!("{:?}", KeySource::from(key));
    assert!(
        fixed.contains("KeySource::Fixed") && !fixed.contains("PRIVATE"),
        "{fixed}"
    );
    assert!(!KeySource::fixed(SigningKey::from_jwk(keys::EC_PRIVATE_JWK).unwrap()).can_change());
    let file = format!(
        "{:?}",
        KeySource::file("/run/keys/client.pem").with_key_id("k1")
    );
    assert!(
        file.contains("/run/keys/client.pem") && file.contains("k1"),
        "{file}"
    );
}
