//! A latest-value mailbox for state that many sessions show (LEDs, HID status, power): the
//! owning actor replaces the value; each session sees every *change*, coalesced, never a
//! backlog. A slow session can therefore never hold up the hid or atx actor, and never shows
//! a stale value after a newer one. Single-threaded: both ends live on the one executor.

use std::cell::RefCell;
use std::rc::Rc;

use event_listener::Event;

struct Shared<T> {
    value: RefCell<(T, u64)>,
    changed: Event,
}

/// The owner's end. Dropping it leaves every receiver with the last value, forever.
pub struct WatchSender<T> {
    shared: Rc<Shared<T>>,
}

/// A subscriber's end: remembers the last version it saw.
pub struct WatchReceiver<T> {
    shared: Rc<Shared<T>>,
    seen: u64,
}

impl<T> Clone for WatchReceiver<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

pub fn watch<T: Clone + PartialEq>(initial: T) -> (WatchSender<T>, WatchReceiver<T>) {
    let shared = Rc::new(Shared {
        value: RefCell::new((initial, 0)),
        changed: Event::new(),
    });
    (
        WatchSender {
            shared: shared.clone(),
        },
        WatchReceiver { shared, seen: 0 },
    )
}

impl<T: Clone + PartialEq> WatchSender<T> {
    /// Publishes `value`; subscribers are woken only when it differs from the current one.
    pub fn set(&self, value: T) {
        {
            let mut current = self.shared.value.borrow_mut();
            if current.0 == value {
                return;
            }
            current.0 = value;
            current.1 += 1;
        }
        self.shared.changed.notify(usize::MAX);
    }

    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "every subscriber so far is cloned from the first receiver"
        )
    )]
    pub fn subscribe(&self) -> WatchReceiver<T> {
        WatchReceiver {
            shared: self.shared.clone(),
            seen: self.shared.value.borrow().1,
        }
    }
}

impl<T: Clone> WatchReceiver<T> {
    /// The current value, marked as seen.
    pub fn current(&mut self) -> T {
        let v = self.shared.value.borrow();
        self.seen = v.1;
        v.0.clone()
    }

    /// Waits until the value differs from the last one this receiver saw, and returns it.
    /// Several changes in between arrive as the latest one.
    pub async fn changed(&mut self) -> T {
        loop {
            if self.shared.value.borrow().1 != self.seen {
                return self.current();
            }
            let listener = self.shared.changed.listen();
            if self.shared.value.borrow().1 != self.seen {
                return self.current();
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn a_receiver_sees_the_latest_change_once() {
        let (tx, mut rx) = watch(0u32);
        assert_eq!(rx.current(), 0);
        tx.set(1);
        tx.set(2);
        assert_eq!(future::block_on(rx.changed()), 2);
        // Nothing new: `changed` does not complete.
        assert!(future::block_on(future::poll_once(rx.changed())).is_none());
    }

    #[test]
    fn setting_the_same_value_wakes_nobody() {
        let (tx, mut rx) = watch(7u8);
        rx.current();
        tx.set(7);
        assert!(future::block_on(future::poll_once(rx.changed())).is_none());
    }

    #[test]
    fn a_waiting_receiver_is_woken() {
        let (tx, rx) = watch(false);
        let mut late = tx.subscribe();
        let ex = smol::LocalExecutor::new();
        let task = ex.spawn(async move { late.changed().await });
        future::block_on(ex.run(async {
            smol::future::yield_now().await;
            tx.set(true);
            assert!(task.await);
        }));
        drop(rx);
    }
}
