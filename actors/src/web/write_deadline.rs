//! A write deadline for one connection: a peer that accepts no bytes for the limit is gone.
//!
//! Every bounded queue protects the daemon from a slow client, but a client that stops reading
//! altogether would otherwise hold its socket, its task and its hub subscription for ever. The
//! wrapper fails a write that has been pending for the limit with `TimedOut`; hyper and the
//! session then drop the connection. Reads pass through untouched, and any accepted byte
//! starts the clock afresh.

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use smol::Timer;

pub struct WriteDeadline<T> {
    io: T,
    limit: Duration,
    /// Armed when a write or flush is pending; dropped on progress.
    timer: Option<Timer>,
    expired: bool,
}

impl<T> WriteDeadline<T> {
    pub fn new(io: T, limit: Duration) -> Self {
        Self {
            io,
            limit,
            timer: None,
            expired: false,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Runs one write operation under the deadline: a finished one disarms the timer, a pending
    /// one arms it. An expired timer fails the operation without retrying it: a full socket
    /// buffer keeps a little room that the kernel does not announce (it wakes a writer only
    /// when a third is free), so a retry may squeeze in a few bytes that the peer never took.
    fn guard<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>>
    where
        T: Unpin,
    {
        if self.expired || self.timer.as_mut().is_some_and(|t| fired(t, cx)) {
            return Poll::Ready(Err(self.expire()));
        }
        let poll = op(Pin::new(&mut self.io), cx);
        if poll.is_ready() {
            self.timer = None;
            return poll;
        }
        let limit = self.limit;
        if fired(self.timer.get_or_insert_with(|| Timer::after(limit)), cx) {
            return Poll::Ready(Err(self.expire()));
        }
        Poll::Pending
    }

    fn expire(&mut self) -> io::Error {
        self.timer = None;
        self.expired = true;
        self.timed_out()
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the peer accepted no data for {} s",
                self.limit.as_secs_f32()
            ),
        )
    }
}

/// Polls the timer (registering the task to be woken when it fires).
fn fired(timer: &mut Timer, cx: &mut Context<'_>) -> bool {
    Pin::new(timer).poll(cx).is_ready()
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_read_vectored(cx, bufs)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, |io, cx| io.poll_close(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use std::time::Instant;

    /// Accepts one byte every `every` polls that it is given; pending (and woken later by a
    /// timer) otherwise, or forever when `every` is 0.
    struct Trickle {
        every: usize,
        polls: usize,
        taken: usize,
        wake: Option<Timer>,
    }

    impl Trickle {
        fn new(every: usize) -> Self {
            Self {
                every,
                polls: 0,
                taken: 0,
                wake: None,
            }
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.every == 0 {
                return Poll::Pending;
            }
            if let Some(t) = &mut self.wake {
                if Pin::new(t).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.wake = None;
            }
            self.polls += 1;
            if self.polls == self.every {
                self.polls = 0;
                self.taken += 1;
                return Poll::Ready(Ok(buf.len().min(1)));
            }
            self.wake = Some(Timer::after(Duration::from_millis(10)));
            let _ = Pin::new(self.wake.as_mut().expect("set")).poll(cx);
            Poll::Pending
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_peer_that_takes_nothing_times_out_after_the_limit() {
        let limit = Duration::from_millis(100);
        let mut w = WriteDeadline::new(Trickle::new(0), limit);
        let t0 = Instant::now();
        let err = smol::block_on(w.write_all(b"hello")).expect_err("must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= limit, "{:?}", t0.elapsed());
        // And stays failed.
        let err = smol::block_on(w.write(b"x")).expect_err("still timed out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_slow_peer_that_keeps_taking_bytes_does_not_time_out() {
        // One byte per ~30 ms for 12 bytes (~360 ms), with a 100 ms limit.
        let mut w = WriteDeadline::new(Trickle::new(4), Duration::from_millis(100));
        smol::block_on(w.write_all(b"hello, world")).expect("no timeout");
        assert_eq!(w.io.taken, 12);
    }

    /// Takes a byte only when polled again without having woken anyone, like a full socket
    /// that has a little unannounced room.
    struct Unannounced {
        polled: bool,
    }

    impl AsyncWrite for Unannounced {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if std::mem::replace(&mut self.polled, true) {
                self.polled = false;
                return Poll::Ready(Ok(buf.len().min(1)));
            }
            Poll::Pending
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn room_found_only_by_the_retry_after_the_deadline_does_not_count() {
        let limit = Duration::from_millis(50);
        let mut w = WriteDeadline::new(Unannounced { polled: false }, limit);
        let t0 = Instant::now();
        let err = smol::block_on(w.write_all(b"hello")).expect_err("must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() < limit * 3, "{:?}", t0.elapsed());
    }

    #[test]
    fn reads_pass_through() {
        let mut r = WriteDeadline::new(&b"abc"[..], Duration::from_millis(1));
        let mut s = String::new();
        smol::block_on(r.read_to_string(&mut s)).expect("read");
        assert_eq!(s, "abc");
    }
}
