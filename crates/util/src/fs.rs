//! Atomic file replacement.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A file could not be written; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    /// The file being written.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl WriteError {
    /// A failed step: [`Exit::Failed`](crate::Exit::Failed).
    pub fn exit(&self) -> crate::Exit {
        crate::Exit::Failed
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over `path`, fsync of the directory. Readers
/// see the old or the new content, never a mix; a crash or an error leaves
/// the old file as it was. An existing file keeps its permissions (and, as
/// root, its owner); a new file gets the usual `0666 & !umask`.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<(), WriteError> {
    write(path, data, None)
}

/// [`atomic_write`], giving the file the permission bits `mode` (e.g.
/// `0o600` for a file only its owner may read) whether it existed or not.
pub fn atomic_write_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    write(path, data, Some(mode))
}

fn write(path: &Path, data: &[u8], mode: Option<u32>) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    // Dropped uncommitted (on any error below), the temporary file is
    // removed and `path` is untouched.
    let mut file = atomic_write_file::AtomicWriteFile::open(path).map_err(err)?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    file.write_all(data).map_err(err)?;
    file.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn replaces_the_content_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        atomic_write(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o640, "an existing file keeps its mode");
        // Nothing is left behind in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn sets_the_mode_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        atomic_write_mode(&p, b"s", 0o600).unwrap();
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        atomic_write_mode(&p, b"t", 0o600).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"t");
    }

    #[test]
    fn an_error_names_the_file_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("f");
        let e = atomic_write(&p, b"x").unwrap_err();
        assert_eq!(e.path, p);
        assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
        assert!(!dir.path().join("missing-dir").exists());
    }
}
