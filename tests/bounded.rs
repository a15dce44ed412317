//! Bounded waits: every wait in the harness has a limit, so a daemon that hangs fails a test
//! with a message saying what was awaited instead of hanging the suite.

use std::future::Future;
use std::time::Duration;

/// Runs `fut` for at most `d`; `None` when the time ran out first.
pub async fn timeout<T>(d: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

/// Runs `fut` for at most `d` and panics, naming `what`, when it takes longer.
pub async fn within<T>(d: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match timeout(d, fut).await {
        Some(v) => v,
        None => panic!("timed out after {d:?} waiting for {what}"),
    }
}

/// Runs an async test body on the current thread.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    smol::block_on(fut)
}
