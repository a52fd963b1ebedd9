//! Loading the shared authentication key. The key is a file's bytes, never a command
//! line argument (command lines are visible to every user through `ps`).
//!
//! The file is opened once, and its mode is read from that open handle (`fstat`) before
//! the bytes are read through the same handle: checking the path and then opening it
//! would let the file be swapped in between.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use echolab_proto::AuthKey;
use nix::fcntl::OFlag;

/// Reads a key file, refusing one that group or others can read (as ssh does for
/// private keys), one that is not a regular file, and one shorter than the minimum key
/// length.
pub(crate) fn load_key_file(path: &Path) -> Result<AuthKey> {
    let mut file =
        open(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    if !meta.is_file() {
        bail!("key file {} is not a regular file", path.display());
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "key file {} is accessible by group or others (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    AuthKey::new(bytes).with_context(|| format!("key file {}", path.display()))
}

/// Opens for reading without blocking on a FIFO or device (`O_NONBLOCK`, which a
/// regular file's reads ignore), so that what is not a regular file is refused, not
/// waited on.
fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A file with `bytes` at `mode` in a fresh directory, removed on drop.
    struct TempKey {
        dir: PathBuf,
        path: PathBuf,
    }

    impl TempKey {
        fn new(name: &str, bytes: &[u8], mode: u32) -> TempKey {
            let dir = std::env::temp_dir()
                .join(format!("echolab-key-file-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("key");
            std::fs::write(&path, bytes).expect("write key");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            TempKey { dir, path }
        }
    }

    impl Drop for TempKey {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const SECRET: &[u8] = b"a-shared-secret-of-32-bytes-long";

    #[test]
    fn a_private_key_file_loads() {
        let key = TempKey::new("good", SECRET, 0o600);
        let loaded = load_key_file(&key.path).expect("a 0600 key file loads");
        // The same key: it answers a challenge as the file's bytes do.
        let expected = AuthKey::new(SECRET.to_vec()).expect("a long enough key");
        let nonce = [7u8; echolab_proto::NONCE_LEN];
        assert!(expected.verify(&nonce, &loaded.respond(&nonce)));
    }

    #[test]
    fn a_group_readable_key_file_is_refused() {
        let key = TempKey::new("group", SECRET, 0o640);
        let err = load_key_file(&key.path).expect_err("group-readable");
        let text = format!("{err:#}");
        assert!(text.contains("accessible by group or others"), "{text}");
        assert!(text.contains("mode 640"), "{text}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let key = TempKey::new("fifo", b"", 0o600);
        std::fs::remove_file(&key.path).expect("remove");
        nix::unistd::mkfifo(&key.path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let err = load_key_file(&key.path).expect_err("a FIFO is no key file");
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
    }

    #[test]
    fn a_missing_key_file_says_which() {
        let err = load_key_file(Path::new("/nonexistent/echolab-key")).expect_err("missing");
        assert!(
            format!("{err:#}").contains("/nonexistent/echolab-key"),
            "{err:#}"
        );
    }
}
