//! Where step outputs live: in memory, or in a JSON file that survives restarts.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path as FsPath, PathBuf};
use std::pin::Pin;
use std::sync::{PoisonError, RwLock};

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::error::StoreError;

/// A boxed, sendable future (the return type of the [`OutputStore`] and
/// [`Sink`](crate::Sink) methods, so both traits can be used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Storage for outputs, keyed by (step, name). Implement it to keep outputs in your own
/// database; [`MemoryOutputs`] and [`FileOutputs`] come with the crate.
pub trait OutputStore: Send + Sync + 'static {
    /// The output `name` of `step`, if set.
    fn get<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// Sets (or replaces) the output `name` of `step`. When this returns `Ok`, the value must
    /// be readable by [`get`](OutputStore::get), also from other steps.
    fn set<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
        value: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// How many bytes the outputs of `step` take (the lengths of their values' JSON), when
    /// the store keeps count; the [`MetadataService`](crate::MetadataService) caps a step's
    /// total with it. The default, `None`, leaves the total uncapped.
    fn step_bytes<'a>(&'a self, step: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        let _ = step;
        Box::pin(async { Ok(None) })
    }
}

/// The length of a value's JSON: what an output's size is counted as.
pub(crate) fn value_bytes(value: &Value) -> u64 {
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len() as u64)
}

/// Outputs in memory (lost when the process ends).
#[derive(Debug, Default)]
pub struct MemoryOutputs {
    outputs: RwLock<HashMap<(String, String), Value>>,
}

impl MemoryOutputs {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl OutputStore for MemoryOutputs {
    fn get<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        let found = self
            .outputs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(step.to_owned(), name.to_owned()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn set<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
        value: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.outputs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((step.to_owned(), name.to_owned()), value);
        Box::pin(async { Ok(()) })
    }

    fn step_bytes<'a>(&'a self, step: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        let total = self
            .outputs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|((s, _), _)| s == step)
            .map(|(_, value)| value_bytes(value))
            .sum();
        Box::pin(async move { Ok(Some(total)) })
    }
}

type StepOutputs = BTreeMap<String, BTreeMap<String, Value>>;

/// The first line of an outputs log.
const LOG_HEADER: &str = r#"{"switchyard_outputs":2}"#;

/// Outputs in a file that survives restarts: a log, one JSON line per set
/// (`{"step", "name", "value"}`), appended and synced before the set returns, so a set costs
/// the size of its value, not of everything stored. When the log has grown to twice what it
/// holds (and past a mebibyte), it is rewritten with one line per output (to a temporary file,
/// synced, then renamed over it), so a crash leaves the old or the new file, never half of
/// one. A last line cut short by a crash (its set never returned) is dropped when the file is
/// opened. Files are created readable by their owner only.
///
/// A file written by earlier versions (one JSON document, `{"step": {"name": value}}`) is
/// read and turned into a log at the first set. A file that exists but does not parse is
/// refused at [`open`](FileOutputs::open) and left untouched.
///
/// ```
/// use serde_json::json;
/// use switchyard_metadata::{FileOutputs, OutputStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("outputs.json");
/// FileOutputs::open(&file).await?.set("build", "image", json!("app:1.2")).await?;
/// let reopened = FileOutputs::open(&file).await?;
/// assert_eq!(reopened.get("build", "image").await?, Some(json!("app:1.2")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct FileOutputs {
    path: PathBuf,
    state: tokio::sync::Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    outputs: StepOutputs,
    /// The length of each output's line (what a rewrite would write for it), and of its
    /// value's JSON.
    sizes: HashMap<(String, String), (u64, u64)>,
    /// The sum of `sizes`.
    live: u64,
    /// The file's length; zero until the file is a log (missing, or a legacy document).
    file: u64,
}

impl FileOutputs {
    /// Opens (or, on first set, creates) the store at `path`.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the file cannot be read, [`StoreError::Corrupt`] when it is not
    /// an outputs file.
    pub async fn open(path: impl AsRef<FsPath>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let state = read_log(&path, &bytes)?;
        Ok(FileOutputs {
            path,
            state: tokio::sync::Mutex::new(state),
        })
    }

    /// The file this store writes.
    #[must_use]
    pub fn path(&self) -> &FsPath {
        &self.path
    }

    fn io(&self) -> impl Fn(std::io::Error) -> StoreError + '_ {
        |source| StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `line` (with its newline) and syncs it.
    async fn append(&self, line: &[u8]) -> Result<(), StoreError> {
        let mut options = tokio::fs::OpenOptions::new();
        options.append(true);
        let mut file = options.open(&self.path).await.map_err(self.io())?;
        file.write_all(line).await.map_err(self.io())?;
        file.sync_data().await.map_err(self.io())?;
        Ok(())
    }

    /// Writes `lines` (each with its newline) after the header to a temporary file, syncs it
    /// and renames it over the log. Returns the new file's length.
    async fn rewrite(&self, lines: &[Vec<u8>]) -> Result<u64, StoreError> {
        let io = self.io();
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // Outputs can hold what steps computed from secrets: owner-only, like the stores.
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&temporary).await.map_err(&io)?;
        // A temporary file left by a crash keeps its old mode; set it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .await
                .map_err(&io)?;
        }
        let mut length = 0u64;
        let mut header = LOG_HEADER.as_bytes().to_vec();
        header.push(b'\n');
        for chunk in std::iter::once(&header).chain(lines) {
            file.write_all(chunk).await.map_err(&io)?;
            length += chunk.len() as u64;
        }
        file.sync_all().await.map_err(&io)?;
        drop(file);
        tokio::fs::rename(&temporary, &self.path)
            .await
            .map_err(&io)?;
        Ok(length)
    }
}

/// One line of the log: `{"step", "name", "value"}` and its newline.
fn log_line(step: &str, name: &str, value: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let mut line =
        serde_json::to_vec(&serde_json::json!({"step": step, "name": name, "value": value}))?;
    line.push(b'\n');
    Ok(line)
}

/// The outputs in a file's bytes: a log (header first), or a legacy document.
fn read_log(path: &FsPath, bytes: &[u8]) -> Result<LogState, StoreError> {
    let corrupt = |line: usize, column: usize, message: String| StoreError::Corrupt {
        path: path.to_owned(),
        line,
        column,
        message,
    };
    let mut state = LogState::default();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(state);
    }
    let header = LOG_HEADER.as_bytes();
    if !bytes.starts_with(header) {
        // A document from an earlier version: kept as it is until the first set.
        let legacy: StepOutputs = serde_json::from_slice(bytes)
            .map_err(|e| corrupt(e.line(), e.column(), e.to_string()))?;
        for (step, outputs) in &legacy {
            for (name, value) in outputs {
                let size = log_line(step, name, value)
                    .map_err(|e| corrupt(1, 1, e.to_string()))?
                    .len() as u64;
                state
                    .sizes
                    .insert((step.clone(), name.clone()), (size, value_bytes(value)));
                state.live += size;
            }
        }
        state.outputs = legacy;
        return Ok(state);
    }
    #[derive(serde::Deserialize)]
    struct Line {
        step: String,
        name: String,
        value: Value,
    }
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let mut valid_length = 0u64;
    for (index, line) in lines.iter().enumerate() {
        let last = index + 1 == lines.len();
        if index == 0 {
            valid_length += line.len() as u64 + 1;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(line) {
            Ok(Line { step, name, value }) => {
                let size = line.len() as u64 + 1;
                let sizes = (size, value_bytes(&value));
                if let Some((old, _)) = state.sizes.insert((step.clone(), name.clone()), sizes) {
                    state.live -= old;
                }
                state.live += size;
                state.outputs.entry(step).or_default().insert(name, value);
                valid_length += size;
            }
            // The last line without its newline: a set cut short by a crash, never
            // acknowledged. Dropped (and overwritten by the next set's rewrite).
            Err(_) if last => {}
            Err(e) => return Err(corrupt(index + 1, e.column(), e.to_string())),
        }
    }
    // A torn tail (a last line without its newline, parsed or not, or anything the lines
    // above do not account for): rewrite the file at the next set, so the next line does not
    // follow part of one.
    state.file = if !bytes.ends_with(b"\n") || valid_length != bytes.len() as u64 {
        u64::MAX
    } else {
        valid_length
    };
    Ok(state)
}

impl OutputStore for FileOutputs {
    fn step_bytes<'a>(&'a self, step: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let state = self.state.lock().await;
            Ok(Some(
                state
                    .sizes
                    .iter()
                    .filter(|((s, _), _)| s == step)
                    .map(|(_, (_, value))| value)
                    .sum(),
            ))
        })
    }

    fn get<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .state
                .lock()
                .await
                .outputs
                .get(step)
                .and_then(|outputs| outputs.get(name))
                .cloned())
        })
    }

    fn set<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
        value: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let line = log_line(step, name, &value).map_err(|e| StoreError::Io {
                path: self.path.clone(),
                source: e.into(),
            })?;
            let size = line.len() as u64;
            let key = (step.to_owned(), name.to_owned());
            let value_size = value_bytes(&value);
            let mut state = self.state.lock().await;
            let old = state.sizes.get(&key).map_or(0, |(line, _)| *line);
            let live = state.live - old + size;
            // Not a log yet (new or legacy), or grown to twice what it holds: rewrite it
            // whole, this output included. Otherwise append the one line.
            let rewrite = state.file == 0
                || state.file == u64::MAX
                || state.file + size > 2 * live + (1 << 20);
            if rewrite {
                let mut lines = Vec::with_capacity(state.sizes.len() + 1);
                for (s, outputs) in &state.outputs {
                    for (n, v) in outputs {
                        if (s.as_str(), n.as_str()) != (step, name) {
                            lines.push(log_line(s, n, v).map_err(|e| StoreError::Io {
                                path: self.path.clone(),
                                source: e.into(),
                            })?);
                        }
                    }
                }
                lines.push(line);
                state.file = self.rewrite(&lines).await?;
            } else {
                self.append(&line).await?;
                state.file += size;
            }
            // Memory changes only once the file holds the new value.
            state.live = live;
            state.sizes.insert(key, (size, value_size));
            state
                .outputs
                .entry(step.to_owned())
                .or_default()
                .insert(name.to_owned(), value);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn memory_round_trip() {
        let store = MemoryOutputs::new();
        assert_eq!(store.get("a", "x").await.expect("get"), None);
        store.set("a", "x", json!(1)).await.expect("set");
        store.set("a", "x", json!(2)).await.expect("set");
        assert_eq!(store.get("a", "x").await.expect("get"), Some(json!(2)));
        assert_eq!(store.get("b", "x").await.expect("get"), None);
    }

    #[tokio::test]
    async fn corrupt_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("outputs.json");
        std::fs::write(&file, b"{\"a\": {\"x\": 1}").expect("write");
        let err = FileOutputs::open(&file).await.expect_err("corrupt");
        assert!(matches!(err, StoreError::Corrupt { line: 1, .. }), "{err}");
        assert_eq!(
            std::fs::read(&file).expect("read"),
            b"{\"a\": {\"x\": 1}".to_vec()
        );
    }

    #[tokio::test]
    async fn failed_write_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("missing-dir").join("outputs.json");
        let store = FileOutputs::open(&file).await.expect("open");
        let err = store.set("a", "x", json!(1)).await.expect_err("no dir");
        assert!(matches!(err, StoreError::Io { .. }));
        assert_eq!(store.get("a", "x").await.expect("get"), None);
    }

    #[tokio::test]
    async fn sets_append_and_the_log_is_compacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("outputs.json");
        let store = FileOutputs::open(&file).await.expect("open");
        let blob = "x".repeat(10 * 1024);
        for i in 0..1000 {
            store
                .set("build", "log", json!({"i": i, "blob": blob}))
                .await
                .expect("set");
        }
        store
            .set("deploy", "url", json!("https://x"))
            .await
            .expect("set");
        // 10 MB were written through it; it holds one 10 KiB output and a small one, and the
        // file stays within twice that plus a mebibyte.
        let length = std::fs::metadata(&file).expect("stat").len();
        assert!(length < (1 << 20) + 64 * 1024, "{length}");
        let reopened = FileOutputs::open(&file).await.expect("reopen");
        assert_eq!(
            reopened
                .get("build", "log")
                .await
                .expect("get")
                .expect("set")["i"],
            999
        );
        assert_eq!(
            reopened.get("deploy", "url").await.expect("get"),
            Some(json!("https://x"))
        );
        let build = reopened.step_bytes("build").await.expect("count");
        assert!(build > Some(10 * 1024), "{build:?}");
        assert_eq!(reopened.step_bytes("nobody").await.expect("count"), Some(0));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_dropped_and_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("outputs.json");
        let store = FileOutputs::open(&file).await.expect("open");
        store.set("a", "x", json!(1)).await.expect("set");
        store.set("a", "y", json!(2)).await.expect("set");
        drop(store);
        // A crash in the middle of appending a third line.
        let mut bytes = std::fs::read(&file).expect("read");
        bytes.extend_from_slice(br#"{"step":"a","name":"z","val"#);
        std::fs::write(&file, &bytes).expect("write");
        let store = FileOutputs::open(&file).await.expect("open");
        assert_eq!(store.get("a", "y").await.expect("get"), Some(json!(2)));
        assert_eq!(store.get("a", "z").await.expect("get"), None);
        store.set("a", "z", json!(3)).await.expect("set");
        drop(store);
        let store = FileOutputs::open(&file).await.expect("reopen");
        assert_eq!(store.get("a", "z").await.expect("get"), Some(json!(3)));
        assert_eq!(store.get("a", "x").await.expect("get"), Some(json!(1)));
        // A whole line whose newline was not written: kept, and the next set does not run
        // into it.
        let mut bytes = std::fs::read(&file).expect("read");
        bytes.extend_from_slice(br#"{"step":"a","name":"w","value":4}"#);
        std::fs::write(&file, &bytes).expect("write");
        let store = FileOutputs::open(&file).await.expect("open");
        store.set("a", "v", json!(5)).await.expect("set");
        drop(store);
        let store = FileOutputs::open(&file).await.expect("reopen");
        assert_eq!(store.get("a", "w").await.expect("get"), Some(json!(4)));
        assert_eq!(store.get("a", "v").await.expect("get"), Some(json!(5)));
        drop(store);
        // A bad line that is not the last is corruption: refused, file untouched.
        let mut bytes = std::fs::read(&file).expect("read");
        let mut broken = b"{\"switchyard_outputs\":2}\nnot json\n".to_vec();
        broken.extend_from_slice(&bytes[bytes.iter().position(|b| *b == b'\n').expect("nl") + 1..]);
        std::fs::write(&file, &broken).expect("write");
        let err = FileOutputs::open(&file).await.expect_err("corrupt");
        assert!(matches!(err, StoreError::Corrupt { line: 2, .. }), "{err}");
        bytes.clear();
        assert_eq!(std::fs::read(&file).expect("read"), broken);
    }

    #[tokio::test]
    async fn a_document_from_an_earlier_version_is_read_and_converted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("outputs.json");
        std::fs::write(
            &file,
            serde_json::to_vec_pretty(&json!({"build": {"image": "app:1", "n": 2}})).expect("json"),
        )
        .expect("write");
        let store = FileOutputs::open(&file).await.expect("open");
        assert_eq!(
            store.get("build", "image").await.expect("get"),
            Some(json!("app:1"))
        );
        store.set("build", "n", json!(3)).await.expect("set");
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(text.starts_with(LOG_HEADER), "{text}");
        let reopened = FileOutputs::open(&file).await.expect("reopen");
        assert_eq!(
            reopened.get("build", "image").await.expect("get"),
            Some(json!("app:1"))
        );
        assert_eq!(
            reopened.get("build", "n").await.expect("get"),
            Some(json!(3))
        );
    }
}
