//! Owner-only files: the data directory is 0700 and every file the server keeps in it 0600
//! (stores hold payloads and signing secrets, outputs what steps computed from secrets).
//!
//! New directories and files are created with those modes; directories and files written by
//! earlier versions, which did not, are tightened when the server starts. Elsewhere than on
//! Unix these are no-ops.

use std::path::Path;

use crate::error::ServerError;

/// Creates `dir` and its missing parents owner-only, or makes an existing `dir` owner-only.
///
/// # Errors
/// [`ServerError::DataDir`] naming the directory.
pub(crate) fn dir(dir: &Path) -> Result<(), ServerError> {
    let failed = |source| ServerError::DataDir {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(failed)?;
    restrict(dir, true).map_err(failed)
}

/// Writes `text` and a newline to `path`, owner-only (0600): in full to `<path>.partial`,
/// synced, then renamed over `path`, so a crash leaves the earlier file or the new one,
/// never a part of either.
///
/// # Errors
/// The file system's, for the partial file or the rename.
pub(crate) fn write(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&partial)?;
    // A partial file left by an earlier crash keeps its mode: owner-only again.
    restrict(&partial, false)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

/// Makes `path` owner-only if it exists: a file 0600, a directory 0700 with everything in
/// it, recursively. Symbolic links are not followed.
///
/// # Errors
/// [`ServerError::DataDir`] naming what could not be changed.
pub(crate) fn tighten(path: &Path) -> Result<(), ServerError> {
    let failed = |path: &Path, source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(failed(path, error)),
    };
    if meta.is_dir() {
        restrict(path, true).map_err(|e| failed(path, e))?;
        for entry in std::fs::read_dir(path).map_err(|e| failed(path, e))? {
            let entry = entry.map_err(|e| failed(path, e))?;
            tighten(&entry.path())?;
        }
    } else if meta.is_file() {
        restrict(path, false).map_err(|e| failed(path, e))?;
    }
    Ok(())
}

/// Sets the owner-only mode on `path` when its mode lets anyone else in.
fn restrict(path: &Path, is_dir: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            let wanted = if is_dir { 0o700 } else { 0o600 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted))?;
            tracing::info!(
                path = %path.display(),
                was = format!("{:o}", mode & 0o777),
                now = format!("{wanted:o}"),
                "made owner-only"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, is_dir);
    Ok(())
}
