//! The two files of a watched client identity, and whether they changed since they were last
//! looked at: what `stat` says (modification time, size, and on Unix the inode a rename
//! brings), so that a new connection costs two `stat` calls and no read.

use std::{
    fs::Metadata,
    path::PathBuf,
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

pub(super) struct Watched {
    pub(super) certificate: PathBuf,
    pub(super) key: PathBuf,
    seen: Mutex<[Option<Stamp>; 2]>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &std::path::Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|metadata| Self {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode: inode(&metadata),
        })
    }
}

#[cfg(unix)]
fn inode(metadata: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(metadata)
}

#[cfg(not(unix))]
fn inode(_: &Metadata) -> u64 {
    0
}

impl Watched {
    /// The files, as they are now: the first look finds no change.
    pub(super) fn new(certificate: PathBuf, key: PathBuf) -> Self {
        let seen = [Stamp::of(&certificate), Stamp::of(&key)];
        Self {
            certificate,
            key,
            seen: Mutex::new(seen),
        }
    }

    /// Whether either file changed since the last look. A file that cannot be looked at
    /// (gone for a moment while it is replaced) counts as changed once it is back.
    pub(super) fn changed(&self) -> bool {
        let now = [Stamp::of(&self.certificate), Stamp::of(&self.key)];
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return false;
        }
        *seen = now;
        now.iter().all(Option::is_some)
    }
}
