//! Where the queue's notion of "now" comes from: the system clock, or a
//! manual clock that tests (and simulations) move by hand.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::Timestamp;

/// A source of the current time.
///
/// Every time the queue writes (`created`, `startedAt`, `completedAt`,
/// `runAt`, lease expiries) or compares against (due jobs, retention) comes
/// from its clock, never from the system directly, so a [`ManualClock`] makes
/// retry back-off and retention testable without sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock ([`Timestamp::now`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to.
///
/// Clones share the same time, so a test keeps one clone and hands another
/// to the queue:
///
/// ```
/// use std::time::Duration;
/// use semiont_jobs_model::Timestamp;
/// use semiont_jobs_queue::{Clock, ManualClock};
///
/// let clock = ManualClock::new(Timestamp::from_millis(1_000));
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(shared.now(), Timestamp::from_millis(3_000));
/// clock.set(Timestamp::from_millis(0));
/// assert_eq!(shared.now().as_millis(), 0);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            millis: Arc::new(AtomicI64::new(start.as_millis())),
        }
    }

    /// Moves the clock to `at` (backwards too, to test clock steps).
    pub fn set(&self, at: Timestamp) {
        self.millis.store(at.as_millis(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `d` and returns the new time.
    pub fn advance(&self, d: Duration) -> Timestamp {
        let step = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let previous = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(Timestamp::from_millis(ms.saturating_add(step)).as_millis())
            })
            .unwrap_or_else(|ms| ms);
        Timestamp::from_millis(previous.saturating_add(step))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
