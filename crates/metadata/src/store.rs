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
}

type StepOutputs = BTreeMap<String, BTreeMap<String, Value>>;

/// Outputs in a JSON file (`{"step": {"name": value}}`), rewritten atomically on every set
/// (write to a temporary file, fsync, rename), so a crash leaves the old or the new file,
/// never half of one.
///
/// A file that exists but does not parse is refused at [`open`](FileOutputs::open) and left
/// untouched.
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
    outputs: tokio::sync::Mutex<StepOutputs>,
}

impl FileOutputs {
    /// Opens (or, on first set, creates) the store at `path`.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the file cannot be read, [`StoreError::Corrupt`] when it is not
    /// an outputs document.
    pub async fn open(path: impl AsRef<FsPath>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let outputs = match tokio::fs::read(&path).await {
            Ok(bytes) => {
                serde_json::from_slice::<StepOutputs>(&bytes).map_err(|e| StoreError::Corrupt {
                    path: path.clone(),
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StepOutputs::new(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        Ok(FileOutputs {
            path,
            outputs: tokio::sync::Mutex::new(outputs),
        })
    }

    /// The file this store writes.
    #[must_use]
    pub fn path(&self) -> &FsPath {
        &self.path
    }

    async fn write(&self, outputs: &StepOutputs) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(outputs).map_err(|e| io(e.into()))?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // Outputs can hold what steps computed from secrets: owner-only, like the stores.
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&temporary).await.map_err(io)?;
        // A temporary file left by a crash keeps its old mode; set it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .await
                .map_err(io)?;
        }
        file.write_all(&bytes).await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        tokio::fs::rename(&temporary, &self.path)
            .await
            .map_err(io)?;
        Ok(())
    }
}

impl OutputStore for FileOutputs {
    fn get<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .outputs
                .lock()
                .await
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
            let mut outputs = self.outputs.lock().await;
            let mut next = outputs.clone();
            next.entry(step.to_owned())
                .or_default()
                .insert(name.to_owned(), value);
            // Memory changes only once the file holds the new value.
            self.write(&next).await?;
            *outputs = next;
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
}
