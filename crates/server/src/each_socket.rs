//! One thread per socket of a `SO_REUSEPORT` group (`reactors`: a loop per listener;
//! `udp-reuseport`: a blocking loop per UDP socket), and what happens when one of them
//! cannot start, cannot set up, or fails.
//!
//! **What cannot start is absent; what fails stops all.** A thread that cannot be
//! started (the process limit, memory), or that cannot set up what it serves with (an
//! epoll instance, an eventfd: out of descriptors), is left out: its socket is closed
//! before the port is announced, so the kernel hashes no client to it, and the rest
//! serve — as `pool`, `prefork` and `tokio` serve with the workers that could start (the
//! fault suite's process-limit case holds every model to that; its count in
//! `accepted_per_worker` stays 0, and a warning is logged). A worker that fails *while
//! serving* asks every other to shut down: by then clients are hashed to its socket, and
//! a server that silently lost it would drop their share.
//!
//! **Announced once every worker is set up.** Each worker says when its set-up is done
//! ([`SetUp::done`]); socket 0's says it last, after waiting for the others, and that is
//! when the port is announced. Announcing earlier let the first clients take the last
//! descriptors while a sibling was still opening its epoll instance, which then failed
//! and stopped the whole server (seen in the fault suite's out-of-descriptors case).

use std::cell::Cell;
use std::io;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::ServerContext;

/// How long socket 0 waits for the other workers to set up before it announces anyway:
/// set-up is a few syscalls, so only a machine that is stalled reaches it.
const SET_UP_LIMIT: Duration = Duration::from_secs(10);

/// A worker's word that its set-up is done. Dropped unsaid, it says the worker could not
/// set up: the worker is then left out, not a reason to stop the others.
pub struct SetUp<'a> {
    said: &'a Cell<bool>,
    then: Then<'a>,
}

enum Then<'a> {
    /// A worker on a thread of its own tells socket 0's.
    Tell(mpsc::Sender<()>),
    /// Socket 0's, on the calling thread: waits for every other worker's word (or its
    /// drop), then runs `started`.
    AwaitOthersThenStart {
        others: mpsc::Receiver<()>,
        started: Box<dyn FnOnce() -> io::Result<()> + 'a>,
    },
}

impl SetUp<'_> {
    /// Says the worker is set up and about to serve. On socket 0's worker this waits for
    /// the others and announces the port; its error (a failed announcement) is the
    /// worker's to return.
    pub fn done(self) -> io::Result<()> {
        self.said.set(true);
        match self.then {
            Then::Tell(to_first) => {
                // Socket 0's worker may have given up waiting: nothing to tell then.
                let _ = to_first.send(());
                Ok(())
            }
            Then::AwaitOthersThenStart { others, started } => {
                let deadline = Instant::now() + SET_UP_LIMIT;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match others.recv_timeout(left) {
                        Ok(()) => continue,
                        // Every other worker has said or dropped its word.
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            tracing::warn!(
                                "workers still setting up after {SET_UP_LIMIT:?}; announcing"
                            );
                            break;
                        }
                    }
                }
                started()
            }
        }
    }
}

/// Serves each of `sockets` on a thread of its own, named `{name}-{index}`, with a
/// context that counts its accepts as worker `index`; socket 0 is served on the calling
/// thread. `serve` sets up, calls [`SetUp::done`], then serves; `started` (the model
/// announces its port there) runs in socket 0's `done`, once every other worker has set
/// up or been left out. A worker that cannot start or set up is left out (logged); one
/// that fails after its set-up, or a socket 0 that fails at all (its set-up, `started`),
/// asks every other one to shut down; the first error is returned once all have returned.
pub fn serve_each_socket<S: Send>(
    sockets: Vec<S>,
    ctx: &ServerContext,
    name: &str,
    started: impl FnOnce() -> io::Result<()>,
    serve: impl Fn(S, &ServerContext, SetUp<'_>) -> io::Result<()> + Sync,
) -> io::Result<()> {
    let mut sockets = sockets.into_iter().enumerate();
    let Some((first_index, first)) = sockets.next() else {
        return Ok(());
    };
    let serve = &serve;
    let (tell_first, from_others) = mpsc::channel();
    thread::scope(|scope| {
        let mut workers = Vec::new();
        for (index, socket) in sockets {
            let worker_ctx = ctx.for_worker(index);
            let tell_first = tell_first.clone();
            let spawned = thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn_scoped(scope, move || {
                    let said = Cell::new(false);
                    let set_up = SetUp {
                        said: &said,
                        then: Then::Tell(tell_first),
                    };
                    let result = serve(socket, &worker_ctx, set_up);
                    match result {
                        Err(e) if !said.get() => {
                            tracing::warn!(index, error = %e, "{name}: could not set up; serving without it");
                            Ok(())
                        }
                        Err(e) => {
                            worker_ctx.shutdown.request();
                            Err(e)
                        }
                        Ok(()) => Ok(()),
                    }
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                // The closure, and the socket and the word in it, are dropped: the
                // socket is closed before the port is announced.
                Err(e) => {
                    tracing::warn!(index, error = %e, "{name}: no thread; serving without it")
                }
            }
        }
        // Only the workers hold a sender now: socket 0's wait ends when each has
        // said its word or dropped it.
        drop(tell_first);
        let said = Cell::new(false);
        let set_up = SetUp {
            said: &said,
            then: Then::AwaitOthersThenStart {
                others: from_others,
                started: Box::new(started),
            },
        };
        let mut result = serve(first, &ctx.for_worker(first_index), set_up);
        if result.is_err() {
            // The ones already running stop too, or the scope would wait forever.
            ctx.shutdown.request();
        }
        for worker in workers {
            let joined = worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other(format!("a {name} thread panicked"))));
            result = result.and(joined);
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::{ServerConfig, Shutdown};

    fn ctx() -> ServerContext {
        ServerContext::new(ServerConfig::default(), Shutdown::new().expect("shutdown"))
    }

    /// A worker that serves until shutdown, bounded in time.
    fn until_shutdown(ctx: &ServerContext) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ctx.shutdown.is_requested() {
            if Instant::now() >= deadline {
                return Err(io::Error::other("never told to shut down"));
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    #[test]
    fn a_worker_failing_after_its_set_up_stops_every_other_and_its_error_is_returned() {
        let ctx = ctx();
        let served = AtomicUsize::new(0);
        let result = serve_each_socket(
            vec![0, 1, 2],
            &ctx,
            "test",
            || Ok(()),
            |socket, ctx, set_up| {
                set_up.done()?;
                served.fetch_add(1, Ordering::Relaxed);
                assert_eq!(ctx.worker, Some(socket), "each worker counts as itself");
                if socket == 2 {
                    return Err(io::Error::other("worker 2 failed"));
                }
                until_shutdown(ctx)
            },
        );
        let err = result.expect_err("the failure is returned");
        assert_eq!(err.to_string(), "worker 2 failed");
        assert_eq!(served.load(Ordering::Relaxed), 3);
        assert!(ctx.shutdown.is_requested());
    }

    #[test]
    fn a_worker_that_cannot_set_up_is_left_out_and_the_rest_serve() {
        let ctx = ctx();
        let served = AtomicUsize::new(0);
        let result = serve_each_socket(
            vec![0, 1, 2],
            &ctx,
            "test",
            || Ok(()),
            |socket, _, set_up| {
                if socket == 1 {
                    return Err(io::Error::other("out of descriptors"));
                }
                set_up.done()?;
                served.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        );
        result.expect("a worker left out is no error");
        assert_eq!(served.load(Ordering::Relaxed), 2);
        assert!(!ctx.shutdown.is_requested(), "nobody was asked to stop");
    }

    #[test]
    fn the_port_is_announced_only_once_every_other_worker_is_set_up() {
        let ctx = ctx();
        let set_up_count = AtomicUsize::new(0);
        let announced_after = AtomicUsize::new(usize::MAX);
        let result = serve_each_socket(
            vec![0, 1, 2, 3],
            &ctx,
            "test",
            || {
                announced_after.store(set_up_count.load(Ordering::SeqCst), Ordering::SeqCst);
                Ok(())
            },
            |socket, _, set_up| {
                if socket != 0 {
                    // A slow set-up: the announcement must wait for it, not race it.
                    thread::sleep(Duration::from_millis(20 * socket as u64));
                    set_up_count.fetch_add(1, Ordering::SeqCst);
                }
                set_up.done()
            },
        );
        result.expect("all served");
        assert_eq!(announced_after.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_failed_start_stops_the_rest_and_is_returned() {
        let ctx = ctx();
        let served_after_start = AtomicBool::new(false);
        let result = serve_each_socket(
            vec![0, 1],
            &ctx,
            "test",
            || Err(io::Error::other("cannot announce")),
            |socket, ctx, set_up| {
                set_up.done()?;
                if socket == 0 {
                    served_after_start.store(true, Ordering::Relaxed);
                }
                until_shutdown(ctx)
            },
        );
        assert_eq!(
            result.expect_err("the start failed").to_string(),
            "cannot announce"
        );
        assert!(
            !served_after_start.load(Ordering::Relaxed),
            "socket 0 served after a failed start"
        );
        assert!(ctx.shutdown.is_requested());
    }

    #[test]
    fn every_socket_is_served_and_all_return() {
        let ctx = ctx();
        let served = AtomicUsize::new(0);
        let result = serve_each_socket(
            vec![0, 1, 2, 3],
            &ctx,
            "test",
            || Ok(()),
            |_, _, set_up| {
                set_up.done()?;
                served.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        );
        result.expect("all served");
        assert_eq!(served.load(Ordering::Relaxed), 4);
        assert!(!ctx.shutdown.is_requested());
    }
}
