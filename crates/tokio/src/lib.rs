//! # tokio — a task per connection on a work-stealing runtime
//!
//! The server most Rust users would write instead of any of the others: tokio's
//! multi-thread runtime, one `async` task per connection, code that reads like the
//! blocking loop (`read`, feed the session, `write`) and runs like an event loop. The
//! runtime is `--workers` threads (one per CPU by default), each an edge-triggered
//! epoll loop over the tasks in its own queue, that steal from each other when idle;
//! one of them at a time polls the epoll instance (the *driver*) and wakes the tasks
//! whose sockets became ready, wherever they are queued. Everything else is the shared
//! [`Session`]: the task only moves bytes and waits.
//!
//! **Syscalls.** Per connection: `accept4` (tokio's `TcpListener::accept`),
//! `setsockopt(TCP_NODELAY)`, `epoll_ctl(ADD)` when the socket joins the runtime, and
//! `epoll_ctl(DEL)` + `close` when the task ends; the accept loop runs on the main
//! thread, so handing a new task to a parked worker costs a wake-up (a `futex`, or a
//! `write` to the driver's eventfd). Per message: one `recvfrom` and one `sendto`.
//! tokio stops reading when a read did not fill the buffer (edge-triggered epoll
//! reports the next arrival anew), so there is no `recvfrom` that returns `EAGAIN`.
//! A worker with nothing to run parks: in `epoll_wait` if it holds the driver, on a
//! `futex` if not — one connection costs an `epoll_wait` per message, as in `mio`;
//! under load the waits are shared by many messages.
//!
//! **Where it waits.** Worker threads park in `epoll_wait` (the driver, with a timeout
//! equal to the earliest timer) or on a `futex`; the accept loop runs on the main
//! thread inside `block_on` and parks on a `futex` until the driver wakes it. A task
//! waits in `select!` for whichever comes first: its socket readable (when the session
//! wants input), writable (when it has output), its session deadline, or shutdown.
//!
//! **What a connection costs.** A task (the `async fn`'s state machine and tokio's task
//! header), a [`Session`], a registration in tokio's I/O driver, a timer entry, and the
//! task's own [`READ_BUFFER`] — the one thing an event loop shares and a task cannot
//! (the buffer is borrowed across the `await`). It is reserved, not zeroed, so only the
//! pages a read touches are resident (measured per idle connection: `docs/models/tokio.md`).
//!
//! **How it fails under load.** Like the readiness loops, but on every core: thousands
//! of idle clients are thousands of small tasks. Past `--max-conns`, framed clients get
//! the busy notice; out of descriptors, the accept loop pauses for [`ACCEPT_BACKOFF`].
//! A task never blocks a worker (every socket call is non-blocking), and tokio's
//! cooperative budget makes a task that is always ready yield now and then, so one
//! client cannot stall the others on its worker. If fewer threads can start than asked
//! for (`ulimit -u`), the runtime is built with those that can (tokio itself would
//! panic and hang, see `runtime.rs`), and they run every task: no connection is tied to
//! a thread. The price of all this, against `mio`'s one hand-written loop, is the
//! runtime's own work per message (waking and polling the task, readiness and timer
//! bookkeeping), work a hand-written loop does not do.
//!
//! **Shutdown.** The accept loop waits on (a duplicate of) the shutdown descriptor,
//! registered with the runtime like a socket. When it fires, the listener is dropped (a
//! client connecting during the drain is refused), a `watch` channel tells every task,
//! and each takes in what its client already sent, calls [`Session::begin_shutdown`]
//! and runs until its session closes — bounded by the session's own linger deadline.
//! `serve` waits for every task, then shuts the runtime down.
//!
//! **With work.** `--work` runs inline in the task, on whichever worker thread polls
//! it: a blocking call holds that worker, and every task queued on it waits (or is
//! stolen by an idle worker — `--workers` blocking calls at once stall the runtime).
//! `--offload N` hands each complete frame to the same [`Offload`] pool of N threads
//! the other event loops use, through a port per task whose wake is a `Notify` (see
//! `offload.rs`), one frame out per connection so replies stay in order; a task waits
//! for its job in the same `select!` as for its socket, so SIGTERM drains offloaded
//! frames before the notice like any owed reply. Not tokio's own `spawn_blocking` with
//! `max_blocking_threads(N)`, for two reasons: the pool's threads start up front, so a
//! server that cannot start them (`ulimit -u`) fails before it listens, where
//! `spawn_blocking` starts them on demand and panics in the connection's task when
//! the OS refuses one and none is running; and with one pool for every model, `tokio
//! +offload4` and `mio+offload4` differ only in their loops, which is the comparison.
//! `spawn_blocking` would cost about the same per message (a queue push and a wake-up
//! either way).

#![forbid(unsafe_code)]

use std::io;
use std::net::TcpListener as StdListener;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::{Duration, Instant};

use echolab_proto::Session;
use echolab_server::{
    accept_failed, admit_socket, new_session, read_available, refuse_busy, Accepted,
    ConnectionSlot, Listen, Offload, ServerContext, Shutdown, ACCEPT_BACKOFF, READ_BUFFER,
};
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

mod offload;
mod runtime;

use offload::JobLine;

/// How long `serve` waits for the runtime's threads once every task has finished
/// (they have nothing left to do; this only bounds a worker tokio never started).
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// Serves every client as a task on tokio's multi-thread runtime (`--workers` worker
/// threads) until shutdown, then lets every session finish and returns.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Before binding: a server that cannot start its runtime never says it listens.
    let runtime = runtime::build(ctx.config.worker_count())?;
    let pool = ctx.start_offload()?;
    let listener = listen.bind()?;
    // tokio requires a non-blocking socket; `from_std` does not set it.
    listener.set_nonblocking(true)?;
    let result = runtime.block_on(accept_and_drain(listener, ctx, pool.as_ref()));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    // Every task has drained: every offloaded job is back, so this only joins.
    if let Some(pool) = pool {
        pool.finish();
    }
    result
}

/// Accepts until shutdown, then tells every task and waits for them all.
async fn accept_and_drain(
    listener: StdListener,
    ctx: &ServerContext,
    pool: Option<&Offload>,
) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let (stop, _) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let result = accept_until_shutdown(&listener, ctx, pool, &stop, &mut tasks).await;
    // Closing the listener now refuses clients that connect during the drain.
    drop(listener);
    // Every task holds a receiver, so this reaches them all (`Err` only when none is
    // left, which needs no telling).
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    result
}

/// The accept loop: [`TcpListener::accept`] with the shared bookkeeping
/// ([`admit_socket`], [`accept_failed`]), one spawned task per admitted connection.
async fn accept_until_shutdown(
    listener: &TcpListener,
    ctx: &ServerContext,
    pool: Option<&Offload>,
    stop: &watch::Sender<bool>,
    tasks: &mut JoinSet<()>,
) -> io::Result<()> {
    let shutdown = shutdown_requested(ctx.shutdown.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            requested = &mut shutdown => return requested,
            // Reap finished tasks as we go, so the set holds only live connections.
            Some(_) = tasks.join_next() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match admit_socket(&stream, ctx) {
                    Some(slot) => {
                        let line = pool.map(JobLine::new);
                        let task =
                            serve_connection(stream, slot, ctx.clone(), stop.subscribe(), line);
                        tasks.spawn(task);
                    }
                    // The busy notice is written by the shared std code path.
                    None => {
                        if let Ok(stream) = stream.into_std() {
                            refuse_busy(stream, ctx);
                        }
                    }
                },
                Err(e) => {
                    if let Accepted::BackOff = accept_failed(&e, ctx) {
                        // Out of descriptors: retrying at once would spin on an error
                        // only a closing connection clears.
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                            requested = &mut shutdown => return requested,
                        }
                    }
                }
            },
        }
    }
}

/// Resolves once shutdown is requested: the shutdown descriptor (a socket pair's read
/// end) turns readable and stays so. A duplicate of it joins the runtime's epoll as a
/// tokio `UnixStream` — safe code, where an `AsyncFd` on a borrowed descriptor would
/// need `unsafe` — and is only ever waited on, never read.
async fn shutdown_requested(shutdown: Shutdown) -> io::Result<()> {
    if shutdown.is_requested() {
        return Ok(());
    }
    let waker = StdUnixStream::from(shutdown.waker().try_clone_to_owned()?);
    // Already non-blocking: the duplicate shares the original's file description.
    let waker = UnixStream::from_std(waker)?;
    waker.readable().await
}

/// Resolves when the pool woke `line`; never without one.
async fn job_back(line: Option<&JobLine>) {
    match line {
        Some(line) => line.woken().await,
        None => std::future::pending().await,
    }
}

/// One connection's task: its session from first byte to close, then its stats.
async fn serve_connection(
    mut stream: TcpStream,
    slot: ConnectionSlot,
    ctx: ServerContext,
    mut stop: watch::Receiver<bool>,
    mut line: Option<JobLine>,
) {
    let Ok(mut session) = new_session(&ctx.config.session, Instant::now()) else {
        return;
    };
    let result = converse(&mut stream, &mut session, &mut stop, line.as_mut()).await;
    echolab_server::log_closed(&stream, &session, result.is_err());
    drop(stream);
    ctx.stats.record_session(&session, result.is_err());
    drop(slot);
}

/// The loop of one task: write what the session owes, read what it wants, apply its
/// deadlines, notice shutdown, take back an offloaded job — whichever is ready first —
/// until the session closes.
async fn converse(
    stream: &mut TcpStream,
    session: &mut Session,
    stop: &mut watch::Receiver<bool>,
    mut line: Option<&mut JobLine>,
) -> io::Result<()> {
    // Reserved, not zeroed: `read_buf` reads into the spare capacity, so a connection
    // costs no 64 KiB memset and only the pages its reads touch.
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUFFER);
    let (mut reader, mut writer) = stream.split();
    // One timer for the whole connection, moved when the session's deadline moves.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    // One shutdown future for the whole connection too, not a new one per turn.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    let mut shutting_down = false;
    loop {
        if let Some(line) = line.as_deref_mut() {
            line.exchange(session);
        }
        let job_out = line.as_deref().is_some_and(JobLine::is_out);
        if session.take_fin() {
            // Our FIN goes out after the last reply; the peer may still be sending, so
            // the session keeps reading until its FIN (lingering close).
            let _ = writer.shutdown().await;
        }
        if session.is_closed() {
            return Ok(());
        }
        // Re-armed only when the deadline came nearer or nothing is armed: the idle
        // deadline moves later after every message, and a timer that fires early only
        // makes the session re-check (it is re-armed here after firing), as
        // `Deadlines::schedule` does for the event loops.
        if let Some(deadline) = session.poll_timeout() {
            if armed.is_none_or(|at| deadline < at) {
                timer.as_mut().reset(deadline.into());
                armed = Some(deadline);
            }
        }
        tokio::select! {
            biased;
            // `Err` means the sender is gone, which happens only at shutdown too.
            _ = &mut stopped, if !shutting_down => {
                shutting_down = true;
                // Take in what the client already sent, without waiting for more: a
                // plain `read` on the socket, not tokio's cached readiness, which may
                // not have seen the newest bytes yet.
                let socket = SockRef::from(reader.as_ref());
                buf.resize(READ_BUFFER, 0);
                read_available(&mut &*socket, session, &mut buf)?;
                buf.clear();
                session.begin_shutdown(Instant::now());
            }
            written = writer.write(session.output()), if session.wants_write() => {
                match written? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    n => session.consume_output(n, Instant::now()),
                }
            }
            // `buf` is empty here, so 0 means end of stream, not a full buffer.
            read = reader.read_buf(&mut buf), if session.wants_read() => {
                match read? {
                    0 => session.handle_eof(Instant::now()),
                    _ => session.handle_input(&buf, Instant::now()),
                }
                buf.clear();
            }
            () = &mut timer, if armed.is_some() => {
                armed = None;
                session.handle_timeout(Instant::now());
            }
            // Taken back at the top of the next turn.
            () = job_back(line.as_deref()), if job_out => {}
            // A session that is not closed always wants to read, write or wait for a
            // deadline; should one ever want none of these, close it rather than hang.
            else => return Err(io::Error::other("session waits for nothing")),
        }
    }
}
