//! Reading a credential file: blocking, bounded, on a thread of its own.
//!
//! Shared by every credential a file can hold, so the limits and the wording of its errors are
//! written once; the caller decides what the bytes mean.

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
};

use zeroize::Zeroizing;

use crate::{Error, ErrorKind};

/// The bytes of the file at `path`, at most `max` of them. `what` names the credential in
/// errors ("client secret"), which name the path and never quote the file.
///
/// The read runs on tokio's blocking pool: a file on a slow or stalled volume (a network
/// mount, a secret store's FUSE driver) must not hold a runtime worker.
pub(crate) async fn read(
    path: Arc<PathBuf>,
    what: &'static str,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let named = Arc::clone(&path);
    match tokio::task::spawn_blocking(move || read_now(&path, what, max)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::new(ErrorKind::Interrupted).with_detail(format!(
            "reading the {what} file {} stopped before it finished",
            named.display()
        ))),
    }
}

fn read_now(path: &Path, what: &str, max: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let failed = |why: String| {
        Error::new(ErrorKind::Config)
            .with_detail(format!("the {what} file {} {why}", path.display()))
    };
    let file = File::open(path).map_err(|error| failed(format!("could not be opened: {error}")))?;
    // Room for one byte more than allowed, so the buffer never grows (a grown buffer leaves an
    // unzeroed copy behind) and a file that is too large shows itself.
    let mut bytes = Zeroizing::new(Vec::with_capacity(max + 1));
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| failed(format!("could not be read: {error}")))?;
    if bytes.len() > max {
        return Err(failed(format!("is larger than {max} bytes")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_larger_than_the_limit_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, [b'a'; 11]).unwrap();
        let error = read(Arc::new(path.clone()), "client secret", 10)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("larger than 10 bytes"), "{message}");
        assert!(!message.contains("aaa"), "{message}");
        std::fs::write(&path, [b'a'; 10]).unwrap();
        assert_eq!(
            read(Arc::new(path), "client secret", 10)
                .await
                .unwrap()
                .len(),
            10
        );
    }
}
