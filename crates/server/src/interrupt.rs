//! Waking threads blocked in `read`/`write` when shutdown comes, so that an idle
//! blocking connection costs no wake-up at all until then.
//!
//! A blocked `read` on a socket with `SO_RCVTIMEO` set is not restarted after a signal
//! handler runs, whatever `SA_RESTART` says (signal(7)): it fails with `EINTR`, and the
//! blocking loop then looks at the shutdown flag. So a connection thread registers
//! itself while it serves; once shutdown is requested a watcher thread signals every
//! registered thread, again every [`KICK_INTERVAL`] until it leaves, because a signal
//! that lands just before a thread enters `read` is lost (the thread checked the flag
//! a moment earlier and would sleep until its next deadline). Repeating the kick closes
//! that race without any per-connection timer.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::pthread::{pthread_kill, pthread_self, Pthread};
use nix::sys::signal::Signal;

use crate::Shutdown;

/// How often the watcher signals threads still blocked after shutdown.
pub(crate) const KICK_INTERVAL: Duration = Duration::from_millis(20);

/// The signal that interrupts a blocked call: its handler does nothing but exist.
const KICK: Signal = Signal::SIGUSR1;

/// The threads now serving a connection with blocking calls.
#[derive(Debug, Default)]
pub struct BlockedThreads {
    threads: Mutex<HashMap<u64, Pthread>>,
    next_id: AtomicU64,
}

/// A thread's registration; removes it on drop, while the thread is still alive (so a
/// kick never targets a thread that has exited).
#[derive(Debug)]
pub struct Registration<'a> {
    registry: &'a BlockedThreads,
    id: u64,
}

impl BlockedThreads {
    /// Registers the calling thread until the returned guard drops.
    pub fn register(&self) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, pthread_self());
        Registration { registry: self, id }
    }

    /// Signals every registered thread once; how many there were.
    fn kick_all(&self) -> usize {
        // Held while signalling: a thread cannot deregister, and so cannot exit, while
        // it is being signalled.
        let threads = self.lock();
        for thread in threads.values() {
            let _ = pthread_kill(*thread, KICK);
        }
        threads.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pthread>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// The watcher thread; stops and is joined on drop.
#[derive(Debug)]
pub struct Interrupter {
    stop: Arc<AtomicBool>,
    stop_tx: UnixStream,
    handle: Option<JoinHandle<()>>,
}

impl Interrupter {
    /// Starts a watcher that, once `shutdown` is requested, keeps signalling the threads
    /// registered in `blocked` until the interrupter is dropped.
    pub fn start(shutdown: &Shutdown, blocked: &Arc<BlockedThreads>) -> io::Result<Interrupter> {
        install_kick_handler()?;
        let (stop_rx, stop_tx) = UnixStream::pair()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (shutdown, blocked, flag) = (shutdown.clone(), Arc::clone(blocked), Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name("echolab-interrupter".into())
            .stack_size(64 * 1024)
            .spawn(move || watch(&shutdown, &blocked, &flag, &stop_rx))?;
        Ok(Interrupter {
            stop,
            stop_tx,
            handle: Some(handle),
        })
    }
}

impl Drop for Interrupter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = io::Write::write(&mut &self.stop_tx, &[1]);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn watch(shutdown: &Shutdown, blocked: &BlockedThreads, stop: &AtomicBool, stop_rx: &UnixStream) {
    // Sleep, without any timer, until shutdown or until the model is done.
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if shutdown.is_requested() {
            break;
        }
        let mut fds = [
            PollFd::new(shutdown.waker(), PollFlags::POLLIN),
            PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::NONE);
    }
    while !stop.load(Ordering::SeqCst) {
        blocked.kick_all();
        std::thread::sleep(KICK_INTERVAL);
    }
}

/// A handler for [`KICK`] that only sets an unused flag: its one job is to make a
/// blocked socket call return `EINTR` instead of killing the process.
fn install_kick_handler() -> io::Result<()> {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    INSTALLED.call_once(|| {
        let ignored = Arc::new(AtomicBool::new(false));
        result = signal_hook::flag::register(KICK as i32, ignored).map(drop);
    });
    result
}
