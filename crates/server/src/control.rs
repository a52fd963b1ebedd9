//! Requests on the server's stdin, one a line, each answered with one line on its
//! stdout: how a harness measures a server it did not start as its own child (through
//! `ssh host`, `ip netns exec ns`), where its `/proc` cannot be read. A pipe is all it
//! takes, so it works through anything that forwards stdin and stdout. The one request
//! is `snapshot` ([`crate::Snapshot`]).
//!
//! Who reads stdin depends on whether the model forks:
//!
//! - A model that does not fork gets one reader thread ([`spawn_reader`]) that blocks in
//!   `read(0)` and answers.
//! - A process model (`fork`, `prefork`) must not have that thread: `fork` copies only
//!   the calling thread, so a reader holding the stdout lock, this module's lock or the
//!   allocator's at the moment of a fork would leave it held forever in the child, and
//!   [`crate::Children::new`] refuses a multi-threaded parent for that reason. Its parent
//!   loop polls stdin ([`waker`]) beside the shutdown and SIGCHLD pipes, and calls
//!   [`on_readable`] when it is readable: one `read` that cannot block, then the answers.
//!   Answering in the loop that reaps has a second use: no child is reaped while a
//!   snapshot reads the tree, so none is counted both live and reaped, or neither.
//!
//! stdin is read with raw `read(2)` calls, never through `std::io::Stdin`'s buffer (a
//! line buffered there would leave the descriptor unreadable with a request waiting).
//! End of input (stdin is `/dev/null`, or whoever wrote the requests closed the pipe)
//! ends the requests, and not the server unless it was started to stop then
//! ([`on_end`]: `echolab serve --stop-on-eof`, how a harness stops a server through `ssh`,
//! where a signal to the local `ssh` would not reach it); after it [`waker`] is `None`,
//! so a loop does not spin on a descriptor that stays readable at EOF.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use nix::errno::Errno;

use crate::{ServerStats, Snapshot};

/// Turns one request line (without its newline) into its answer line, if it has one.
pub type Answer = Box<dyn FnMut(&str) -> Option<String> + Send>;

/// A request line longer than this is dropped unanswered: input from a pipe never grows
/// memory without bound.
const MAX_REQUEST: usize = 4096;

struct Control {
    /// Called once at end of input.
    on_end: Option<Box<dyn FnOnce() + Send>>,
    /// The start of a request still arriving.
    pending: Vec<u8>,
    /// Dropping the rest of an over-long line, up to its newline.
    skipping: bool,
    answer: Answer,
}

/// Whether the reader thread runs (and is counted among the server's threads).
static READER: AtomicBool = AtomicBool::new(false);

/// `None`: nothing installed, or stdin has ended.
static CONTROL: Mutex<Option<Control>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Control>> {
    // A poisoned lock only means an answer panicked; the requests go on.
    CONTROL.lock().unwrap_or_else(|e| e.into_inner())
}

/// From now on, lines on stdin are requests answered by `answer`.
pub fn install(answer: Answer) {
    *lock() = Some(Control {
        on_end: None,
        pending: Vec::new(),
        skipping: false,
        answer,
    });
}

/// Calls `then` when stdin ends (after [`install`]).
pub fn on_end(then: Box<dyn FnOnce() + Send>) {
    if let Some(control) = lock().as_mut() {
        control.on_end = Some(then);
    }
}

/// Answers `snapshot` with a [`Snapshot`] of `model` and its counters `stats`;
/// anything else with an error line (which names the one request there is).
pub fn answer_snapshots(model: String, stats: Arc<ServerStats>) -> Answer {
    let started = Instant::now();
    let mut count = 0;
    Box::new(move |request| match request.trim() {
        "snapshot" => {
            count += 1;
            let mut snapshot = Snapshot::take(&model, &stats, started, count);
            // The reader thread is the measurement's, not the model's: a local run's
            // server, whose stdin is /dev/null, has none, and the counts must agree.
            if READER.load(Ordering::Relaxed) {
                snapshot.threads = snapshot.threads.saturating_sub(1);
            }
            serde_json::to_string(&snapshot).ok()
        }
        "" => None,
        other => Some(
            serde_json::json!({
                "error": format!("unknown request `{other}`: the one request is `snapshot`")
            })
            .to_string(),
        ),
    })
}

/// stdin while requests may still come on it: poll it for `POLLIN` and call
/// [`on_readable`] when it is ready. `None` before [`install`] and after end of input.
pub fn waker() -> Option<io::Stdin> {
    lock().is_some().then(io::stdin)
}

/// Reads stdin once and answers every complete request. After a poll said stdin was
/// readable this cannot block; on the reader thread it waits for input.
pub fn on_readable() {
    let mut buf = [0u8; 1024];
    let n = match nix::unistd::read(io::stdin(), &mut buf) {
        Ok(n) => n,
        Err(Errno::EINTR | Errno::EAGAIN) => return,
        // EBADF (no stdin at all), EIO: no request can come.
        Err(_) => 0,
    };
    let mut control = lock();
    if n == 0 {
        if let Some(then) = control.take().and_then(|c| c.on_end) {
            drop(control);
            then();
        }
        return;
    }
    let Some(control) = control.as_mut() else {
        return;
    };
    let mut out = io::stdout().lock();
    for &byte in &buf[..n] {
        if byte != b'\n' {
            if control.pending.len() < MAX_REQUEST {
                control.pending.push(byte);
            } else {
                control.skipping = true;
            }
            continue;
        }
        let line = std::mem::take(&mut control.pending);
        if std::mem::take(&mut control.skipping) {
            continue;
        }
        if let Some(answer) = (control.answer)(&String::from_utf8_lossy(&line)) {
            // Whoever asked may be gone; that is no reason to stop serving.
            let _ = writeln!(out, "{answer}");
        }
    }
    let _ = out.flush();
}

/// Starts the reader thread of a model that does not fork (see the module docs): it
/// answers until stdin ends, then exits.
pub fn spawn_reader() -> io::Result<()> {
    std::thread::Builder::new()
        .name("stdin-requests".into())
        .spawn(|| {
            READER.store(true, Ordering::Relaxed);
            while waker().is_some() {
                on_readable();
            }
            READER.store(false, Ordering::Relaxed);
        })
        .map(drop)
}
