//! The registry: every server model echolab knows, in one list. Adding a model is one
//! crate, one line here and one page under `docs/models/`; the CLI, the conformance
//! suite and the benchmarks pick it up from this list.

use std::io;
use std::net::TcpListener;

use echolab_server::ServerContext;

/// How a model serves: takes the bound listener and runs until shutdown is requested.
pub type ServeFn = fn(TcpListener, &ServerContext) -> io::Result<()>;

/// One registered server model.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// The one lowercase word that names it everywhere (crate, CLI, tests, docs, results).
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// Whether it serves several clients at once (`iterative` does not, by design).
    pub concurrent: bool,
    /// Its entry point.
    pub serve: ServeFn,
}

/// Every model, simplest first.
pub const MODELS: &[Model] = &[
    Model {
        name: "iterative",
        summary: "blocking accept + read/write, one client at a time",
        concurrent: false,
        serve: echolab_iterative::serve,
    },
    Model {
        name: "threads",
        summary: "one OS thread per client, blocking read/write",
        concurrent: true,
        serve: echolab_threads::serve,
    },
    Model {
        name: "fork",
        summary: "one process per client (fork), blocking read/write",
        concurrent: true,
        serve: echolab_fork::serve,
    },
    Model {
        name: "pool",
        summary: "fixed worker threads fed by a bounded queue, blocking read/write",
        concurrent: true,
        serve: echolab_pool::serve,
    },
    Model {
        name: "poll",
        summary: "one thread, non-blocking sockets, level-triggered readiness loop (polling crate)",
        concurrent: true,
        serve: echolab_poll::serve,
    },
    Model {
        name: "mio",
        summary: "one thread, edge-triggered epoll via mio, drained until WouldBlock",
        concurrent: true,
        serve: echolab_mio::serve,
    },
];

/// Looks a model up by name.
pub fn find(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name)
}

/// The registered names, comma-separated, for error messages and help.
pub fn names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}
