//! Fault injection for this crate's own tests (feature `fault-injection`):
//! crash points that kill the process right after a protocol step, and
//! injected read errors. Process-wide.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static ARMED: AtomicBool = AtomicBool::new(false);
static CRASH_AT: Mutex<Option<String>> = Mutex::new(None);
static READ_ERRORS: Mutex<Option<HashMap<String, i32>>> = Mutex::new(None);

/// Kills this process with `SIGKILL` when the protocol reaches `step`
/// (a name from the step table in `docs/storage-format.md`, e.g.
/// `claim:moved`). `None` disarms.
pub fn set_crash_point(step: Option<&str>) {
    let mut at = CRASH_AT.lock().unwrap_or_else(|e| e.into_inner());
    *at = step.map(str::to_owned);
    ARMED.store(at.is_some(), Ordering::SeqCst);
}

/// Makes every read of a file named `name` (in any directory) fail with the
/// OS error `errno`; `None` removes the injection.
pub fn set_read_error(name: &str, errno: Option<i32>) {
    let mut map = READ_ERRORS.lock().unwrap_or_else(|e| e.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    match errno {
        Some(e) => {
            map.insert(name.to_owned(), e);
        }
        None => {
            map.remove(name);
        }
    }
}

/// The crash point hook: called by the protocol after step `what` of
/// operation `op`.
pub(crate) fn step(op: &str, what: &str) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    let hit = CRASH_AT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_deref()
        .and_then(|at| at.split_once(':'))
        == Some((op, what));
    if hit {
        tracing::warn!(op, step = what, "fault injection: killing the process");
        // SAFETY: sending a signal to ourselves; SIGKILL ends the process at
        // once, like `kill -9`: no destructor, no cleanup code runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// The injected error for reads of `name`, if any.
pub(crate) fn read_error(name: &str) -> Option<io::Error> {
    let map = READ_ERRORS.lock().unwrap_or_else(|e| e.into_inner());
    map.as_ref()?
        .get(name)
        .map(|&e| io::Error::from_raw_os_error(e))
}
