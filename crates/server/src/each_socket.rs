//! One thread per socket of a `SO_REUSEPORT` group (`reactors`: a loop per listener;
//! `udp-reuseport`: a blocking loop per UDP socket), and what happens when one of them
//! cannot start or fails.
//!
//! **What cannot start is absent; what fails stops all.** A thread that cannot be
//! started (the process limit, memory) is left out: its socket is closed before
//! `started` runs, that is before the port is announced, so the kernel hashes no
//! client to it, and the rest serve — as `pool`, `prefork` and `tokio` serve with the
//! workers that could start (the fault suite's process-limit case holds every model to
//! that; its count in `accepted_per_worker` stays 0, and a warning is logged). A worker
//! that fails *while serving* asks every other to shut down: by then clients are hashed
//! to its socket, and a server that silently lost it would drop their share.

use std::io;
use std::thread;

use crate::ServerContext;

/// Serves each of `sockets` on a thread of its own, named `{name}-{index}`, with a
/// context that counts its accepts as worker `index`; socket 0 is served on the calling
/// thread. `started` runs once every other thread has started or been left out,
/// before socket 0 is served (the model announces its port there). A worker that
/// returns an error, or a `started` that fails, asks every other one to shut down; the
/// first error is returned once all have returned.
pub fn serve_each_socket<S: Send>(
    sockets: Vec<S>,
    ctx: &ServerContext,
    name: &str,
    started: impl FnOnce(&S) -> io::Result<()>,
    serve: impl Fn(S, &ServerContext) -> io::Result<()> + Sync,
) -> io::Result<()> {
    let mut sockets = sockets.into_iter().enumerate();
    let Some((first_index, first)) = sockets.next() else {
        return Ok(());
    };
    let serve = &serve;
    let serve_stopping_all = move |socket: S, ctx: &ServerContext| {
        let result = serve(socket, ctx);
        if result.is_err() {
            ctx.shutdown.request();
        }
        result
    };
    thread::scope(|scope| {
        let mut workers = Vec::new();
        for (index, socket) in sockets {
            let worker_ctx = ctx.for_worker(index);
            let spawned = thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn_scoped(scope, move || serve_stopping_all(socket, &worker_ctx));
            match spawned {
                Ok(worker) => workers.push(worker),
                // The closure, and the socket in it, are dropped: closed before the
                // port is announced.
                Err(e) => {
                    tracing::warn!(index, error = %e, "{name}: no thread; serving without it")
                }
            }
        }
        let mut result = match started(&first) {
            Ok(()) => serve_stopping_all(first, &ctx.for_worker(first_index)),
            Err(e) => {
                // The ones already running stop too, or the scope would wait forever.
                ctx.shutdown.request();
                Err(e)
            }
        };
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

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
    fn a_failing_worker_stops_every_other_and_its_error_is_returned() {
        let ctx = ctx();
        let served = AtomicUsize::new(0);
        let result = serve_each_socket(
            vec![0, 1, 2],
            &ctx,
            "test",
            |_| Ok(()),
            |socket, ctx| {
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
    fn a_failed_start_serves_nothing_on_the_calling_thread_and_stops_the_rest() {
        let ctx = ctx();
        let served = AtomicUsize::new(0);
        let result = serve_each_socket(
            vec![0, 1],
            &ctx,
            "test",
            |&first| {
                assert_eq!(first, 0, "started sees socket 0");
                Err(io::Error::other("cannot announce"))
            },
            |socket, ctx| {
                assert_ne!(socket, 0, "socket 0 is served only after a good start");
                served.fetch_add(1, Ordering::Relaxed);
                until_shutdown(ctx)
            },
        );
        assert_eq!(
            result.expect_err("the start failed").to_string(),
            "cannot announce"
        );
        assert_eq!(served.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn every_socket_is_served_and_all_return() {
        let ctx = ctx();
        let served = AtomicUsize::new(0);
        let result = serve_each_socket(
            vec![0, 1, 2, 3],
            &ctx,
            "test",
            |_| Ok(()),
            |_, _| {
                served.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        );
        result.expect("all served");
        assert_eq!(served.load(Ordering::Relaxed), 4);
        assert!(!ctx.shutdown.is_requested());
    }
}
