//! `<data_dir>/switchyard.pid`: the running server's process id, under an advisory lock the
//! server holds while it runs. The kernel lets go of the lock when the process ends, however
//! it ends, so a locked file always names a live server and a stale file is never signalled.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The file's name in the data directory.
pub(crate) const PID_FILE: &str = "switchyard.pid";

/// The lock a serving process holds; the file goes when it is dropped at a clean stop.
#[derive(Debug)]
pub(crate) struct Held {
    path: PathBuf,
    _file: File,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Who holds the data directory's lock.
#[derive(Debug)]
pub(crate) enum Holder {
    /// A server, with this process id.
    Server(u32),
    /// No process: the lock is taken by the caller until the value is dropped.
    Nobody {
        /// The locked file (none when there was no file).
        _lock: Option<File>,
    },
}

fn open(data_dir: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(data_dir.join(PID_FILE))
}

/// Takes the lock without waiting; `Ok(false)` when another process holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// For `serve`: takes the lock and writes this process's id. `Ok(None)` when another
/// process holds it (a second server on the data directory: it is left as it is).
///
/// # Errors
/// The file system's.
pub(crate) fn hold(data_dir: &Path) -> std::io::Result<Option<Held>> {
    let mut file = open(data_dir)?;
    if !try_lock(&file)? {
        return Ok(None);
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_all()?;
    Ok(Some(Held {
        path: data_dir.join(PID_FILE),
        _file: file,
    }))
}

/// For `rotate-key`: the server holding the lock, or the lock itself when none does (so no
/// server starts on the data directory meanwhile).
///
/// # Errors
/// The file system's; a locked file that does not hold a process id.
pub(crate) fn holder(data_dir: &Path) -> std::io::Result<Holder> {
    if !data_dir.join(PID_FILE).exists() {
        return Ok(Holder::Nobody { _lock: None });
    }
    let mut file = open(data_dir)?;
    if try_lock(&file)? {
        return Ok(Holder::Nobody { _lock: Some(file) });
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let pid = text.trim().parse().map_err(|_| {
        std::io::Error::other(format!(
            "{} is locked by a running process but holds no process id",
            data_dir.join(PID_FILE).display()
        ))
    })?;
    Ok(Holder::Server(pid))
}
