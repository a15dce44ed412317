//! The auth thread, `nanokvmd-auth`: password hashing (tens to hundreds of milliseconds of
//! CPU and 4 MiB each) and the accounts file's reads, writes and fsyncs, none of which may run
//! on the executor. Jobs run one at a time, so at most one hash's memory is in use at once; the
//! queue is short and a full queue is refused at once ("busy") rather than waited for.

use std::thread::JoinHandle;

use async_channel::{Receiver, Sender, TrySendError};

type Job = Box<dyn FnOnce() + Send>;

/// Jobs queued at most. Logins are throttled long before this matters.
const QUEUE: usize = 8;

#[derive(Debug, PartialEq)]
pub enum WorkerError {
    /// The queue is full: try again shortly.
    Busy,
    /// The thread is gone (the daemon is stopping).
    Stopped,
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerError::Busy => write!(f, "the auth thread is busy; try again"),
            WorkerError::Stopped => write!(f, "the auth thread has stopped"),
        }
    }
}

#[derive(Clone)]
pub struct AuthWorker {
    jobs: Sender<Job>,
}

impl AuthWorker {
    /// Starts the thread; it ends when every handle is dropped.
    pub fn spawn() -> std::io::Result<(AuthWorker, JoinHandle<()>)> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = async_channel::bounded(QUEUE);
        let join = std::thread::Builder::new()
            .name("nanokvmd-auth".into())
            .spawn(move || {
                keep_large_blocks_out_of_the_heap();
                while let Ok(job) = rx.recv_blocking() {
                    job();
                }
            })?;
        Ok((AuthWorker { jobs: tx }, join))
    }

    /// Runs `f` on the auth thread and waits (asynchronously) for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WorkerError> {
        let (reply_tx, reply_rx) = async_channel::bounded(1);
        let job: Job = Box::new(move || {
            let result = f();
            // Before the answer: whoever waits for it then sees the memory returned.
            give_back_freed_memory();
            let _ = reply_tx.send_blocking(result);
        });
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => WorkerError::Busy,
            TrySendError::Closed(_) => WorkerError::Stopped,
        })?;
        reply_rx.recv().await.map_err(|_| WorkerError::Stopped)
    }
}

/// A password hash's 4 MiB are freed when it ends, but glibc keeps freed memory of a thread's
/// arena for reuse (and after one large free it stops using mmap for that size), so every
/// hash would leave megabytes resident. Trimming hands them back; musl (the device) unmaps
/// large blocks by itself.
/// glibc serves a block above its mmap threshold with its own mapping, unmapped again when it
/// is freed, but it raises that threshold after the first such free, so later hashes would
/// come from the arena and stay resident. A fixed threshold (which turns the raising off)
/// keeps every hash's 4 MiB a mapping of its own.
fn keep_large_blocks_out_of_the_heap() {
    crate::sys::fix_mmap_threshold(1 << 20);
}

fn give_back_freed_memory() {
    crate::sys::trim_heap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_named_thread_in_order() {
        let (w, join) = AuthWorker::spawn().unwrap();
        let names = smol::block_on(async {
            let a = w.run(|| std::thread::current().name().map(String::from));
            let b = w.run(|| 2 + 2);
            (a.await, b.await)
        });
        assert_eq!(names.0, Ok(Some("nanokvmd-auth".to_string())));
        assert_eq!(names.1, Ok(4));
        drop(w);
        join.join().unwrap();
    }

    #[test]
    fn a_full_queue_is_refused_not_waited_for() {
        let (w, _join) = AuthWorker::spawn().unwrap();
        let (block_tx, block_rx) = std::sync::mpsc::channel::<()>();
        let refused = smol::block_on(async {
            // One job holds the thread, the queue fills up behind it, and then one is refused.
            let mut hold = Box::pin(w.run(move || {
                let _ = block_rx.recv();
            }));
            assert!(futures_lite::future::poll_once(&mut hold).await.is_none());
            let mut queued = Vec::new();
            let mut refused = None;
            for _ in 0..QUEUE + 2 {
                let mut job = Box::pin(w.run(|| ()));
                match futures_lite::future::poll_once(&mut job).await {
                    Some(r) => {
                        refused = Some(r);
                        break;
                    }
                    None => queued.push(job),
                }
            }
            block_tx.send(()).unwrap();
            refused
        });
        assert_eq!(refused, Some(Err(WorkerError::Busy)));
    }
}
