//! Group commit: callers queue writes, and whoever takes the flush lock writes everything
//! queued in one store transaction, so one disk sync serves many callers.
//!
//! There is no background task: the first caller to get the lock does the writing, and a
//! caller whose write another caller already made returns as soon as it is told, without
//! queueing for the lock. (Workers lined up for the lock only to find their write done would
//! otherwise each take it in turn and write one straggler apiece.)

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::StoreError;

type Waiter<R> = oneshot::Sender<Result<R, Arc<StoreError>>>;

/// A queue of writes of `T`, each answered with an `R`.
pub(crate) struct GroupCommit<T, R> {
    queue: Mutex<Vec<(T, Waiter<R>)>>,
    flush: tokio::sync::Mutex<()>,
}

impl<T, R> Default for GroupCommit<T, R> {
    fn default() -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            flush: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T, R> std::fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<T, R> GroupCommit<T, R> {
    /// Queues `item` and waits until it is written. `write` writes a batch atomically and
    /// answers each item in order; every caller must pass an equivalent `write`, since the
    /// one that takes the lock writes the others' items too.
    ///
    /// # Errors
    /// [`StoreError::Batch`] carrying the batch's error, when the write failed (every item of
    /// the batch gets it); [`StoreError::Interrupted`] when the caller writing the batch was
    /// cancelled before it finished.
    pub(crate) async fn submit<F, Fut>(&self, item: T, write: F) -> Result<R, StoreError>
    where
        F: FnOnce(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Vec<R>, StoreError>>,
    {
        let (done, mut outcome) = oneshot::channel();
        self.lock_queue().push((item, done));
        let written = tokio::select! {
            biased;
            written = &mut outcome => written,
            flushing = self.flush.lock() => {
                let batch = std::mem::take(&mut *self.lock_queue());
                if !batch.is_empty() {
                    let (items, waiters): (Vec<T>, Vec<Waiter<R>>) = batch.into_iter().unzip();
                    match write(items).await {
                        Ok(results) => {
                            for (waiter, result) in waiters.into_iter().zip(results) {
                                let _ = waiter.send(Ok(result));
                            }
                        }
                        Err(error) => {
                            let error = Arc::new(error);
                            for waiter in waiters {
                                let _ = waiter.send(Err(Arc::clone(&error)));
                            }
                        }
                    }
                }
                drop(flushing);
                outcome.await
            }
        };
        match written {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(StoreError::Batch(error)),
            Err(_) => Err(StoreError::Interrupted),
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<(T, Waiter<R>)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_batches_and_each_gets_its_answer() {
        let group = Arc::new(GroupCommit::<usize, usize>::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (group, batches) = (Arc::clone(&group), Arc::clone(&batches));
            tasks.push(tokio::spawn(async move {
                group
                    .submit(i, |items| async move {
                        batches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        Ok(items.into_iter().map(|i| i * 10).collect())
                    })
                    .await
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), i * 10);
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            batches < 200,
            "{batches} batches for 200 writes: nothing was grouped"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_item_in_it() {
        let group = GroupCommit::<u8, ()>::default();
        let result = group
            .submit(1, |_| async { Err(StoreError::Interrupted) })
            .await;
        assert!(
            matches!(result, Err(StoreError::Batch(e)) if matches!(*e, StoreError::Interrupted))
        );
    }
}
