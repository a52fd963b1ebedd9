//! Loading the shared authentication key. The key is a file's bytes, never a command
//! line argument (command lines are visible to every user through `ps`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use echolab_proto::AuthKey;

/// Reads a key file, refusing one that group or others can read (as ssh does for
/// private keys) and one shorter than the minimum key length.
pub(crate) fn load_key_file(path: &Path) -> Result<AuthKey> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "key file {} is accessible by group or others (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    AuthKey::new(bytes).with_context(|| format!("key file {}", path.display()))
}
