//! The registry: every server model echolab knows, in one list, each described by its
//! properties. Adding a model is its crate, one line in this crate's `Cargo.toml`, one
//! entry in [`MODELS`] and one page under `docs/models/`; the CLI, the suites, the
//! harness and the benchmarks pick it up from this list (tests/docs.rs checks the page
//! and the docs tables against it).
//!
//! Tests and the harness choose what to run against a model by its *properties* —
//! how it runs connections, its transport, the limits it has by nature, the flags it
//! takes — never by its name, so a new model with the same shape gets the same cases
//! with no edit.

#![forbid(unsafe_code)]

use std::io;

use echolab_server::{Listen, ServerContext};

/// How a model serves: binds what it needs from the [`Listen`] spec and runs until
/// shutdown is requested.
pub type ServeFn = fn(&Listen, &ServerContext) -> io::Result<()>;

/// Who runs a connection: the property that decides how a model behaves under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// One connection at a time, to its end (`iterative`): the others wait.
    InTurn,
    /// A new OS thread per connection.
    ThreadEach,
    /// A new process per connection (`fork`).
    ProcessEach,
    /// A fixed set of worker threads (`--workers`), each serving one connection at a
    /// time (whether they accept for themselves is [`Model::accepts_when_free`]).
    WorkerThreads,
    /// A fixed set of worker processes (`--workers`).
    WorkerProcesses,
    /// One thread multiplexing every connection over a readiness or completion call.
    EventLoop,
    /// Several event loops (`--workers`), each with its own connections.
    SeveralLoops,
    /// A task per connection on an async runtime (`tokio`): `--workers` threads, each
    /// an event loop, that steal each other's tasks. Unlike [`Runs::SeveralLoops`] no
    /// connection belongs to one thread, so if fewer threads start than asked for
    /// (`ulimit -u`), the ones that did serve every connection.
    Runtime,
}

impl Runs {
    /// A short phrase for tables.
    pub fn label(self) -> &'static str {
        match self {
            Runs::InTurn => "in turn",
            Runs::ThreadEach => "a thread each",
            Runs::ProcessEach => "a process each",
            Runs::WorkerThreads => "worker threads",
            Runs::WorkerProcesses => "worker processes",
            Runs::EventLoop => "one event loop",
            Runs::SeveralLoops => "several loops",
            Runs::Runtime => "a task each (runtime)",
        }
    }
}

/// What the model carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP: a byte stream per connection, framed or raw.
    Stream,
    /// UDP: one datagram in, one datagram out, no connection.
    Datagram,
}

impl Transport {
    /// A short word for tables.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Stream => "stream",
            Transport::Datagram => "datagram",
        }
    }
}

/// A family of models that a reader compares among themselves first: the charts draw
/// one panel per family. Derived from the properties ([`Model::family`]), never from a
/// name, so a new model lands in its family with no edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// A thread or a process blocks on each client (or serves one at a time).
    Blocking,
    /// One or several loops waiting on readiness (select, poll, epoll) or trying every
    /// socket in turn.
    ReadinessLoops,
    /// Told when I/O has finished (io_uring), or a runtime's tasks over loops it owns.
    CompletionAndRuntimes,
    /// UDP: one datagram in, one out.
    Datagram,
}

impl Family {
    /// Every family, in the order the charts draw them.
    pub const ALL: [Family; 4] = [
        Family::Blocking,
        Family::ReadinessLoops,
        Family::CompletionAndRuntimes,
        Family::Datagram,
    ];

    /// A short title for a chart's panel.
    pub fn label(self) -> &'static str {
        match self {
            Family::Blocking => "blocking: a thread or process per client",
            Family::ReadinessLoops => "readiness loops",
            Family::CompletionAndRuntimes => "completion and runtimes",
            Family::Datagram => "UDP",
        }
    }
}

/// One registered server model.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// The one lowercase word (`udp-` and one for a datagram model) that names it
    /// everywhere (crate, CLI, tests, docs, results).
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// Who runs a connection.
    pub runs: Runs,
    /// What it carries.
    pub transport: Transport,
    /// A descriptor limit the model has by nature (select(2)'s FD_SETSIZE): a
    /// connection whose descriptor is at or above it gets the busy notice.
    pub natural_limit: Option<usize>,
    /// Whether it never blocks waiting for I/O (`spin`): it burns CPU while idle by
    /// design, so a test's "no busy loop" bound does not apply to it.
    pub busy_waits: bool,
    /// Whether it is told when I/O has *finished* (io_uring completions) rather than
    /// when a socket is *ready* for it: the kernel holds its buffers meanwhile.
    pub completion: bool,
    /// Whether it takes `--offload N` (see [`Model::takes_offload`]).
    pub offload: bool,
    /// Whether a connection is accepted only by a thread or process free to serve it
    /// (`iterative`'s one loop; workers each blocking in `accept`), so that clients past
    /// what it serves at once wait in the kernel's listen backlog, unaccepted; otherwise
    /// an accept loop of the server's own (an acceptor, the parent, each event loop)
    /// takes every connection as it comes, up to `--max-conns`. Not given by [`Runs`]:
    /// `pool` and `prethreaded` both run connections on worker threads, but only
    /// `prethreaded`'s workers accept. With `--max-conns` above what it serves at once,
    /// such a model never reaches the limit and never sends the busy notice. False for a
    /// datagram model: it accepts nothing.
    pub accepts_when_free: bool,
    /// Its entry point.
    pub serve: ServeFn,
}

impl Model {
    /// Whether it serves TCP connections (every stream suite and scenario applies) rather
    /// than UDP datagrams (only the datagram suite and the `udp` scenario do).
    pub fn is_stream(&self) -> bool {
        self.transport == Transport::Stream
    }

    /// Whether it serves several clients at once (`iterative` does not, by design).
    pub fn concurrent(&self) -> bool {
        self.runs != Runs::InTurn
    }

    /// Whether `--workers` sizes it (a fixed set of threads, processes or loops).
    pub fn takes_workers(&self) -> bool {
        matches!(
            self.runs,
            Runs::WorkerThreads | Runs::WorkerProcesses | Runs::SeveralLoops | Runs::Runtime
        )
    }

    /// Whether each connection, or each worker, is a process of its own.
    pub fn forks(&self) -> bool {
        matches!(self.runs, Runs::ProcessEach | Runs::WorkerProcesses)
    }

    /// Whether each of its fixed workers (threads or processes) serves one connection
    /// at a time, to its end: clients past `--workers` wait, unread.
    pub fn one_client_per_worker(&self) -> bool {
        matches!(self.runs, Runs::WorkerThreads | Runs::WorkerProcesses)
    }

    /// Whether `--offload N` applies: an event loop that can hand each message's work
    /// to N worker threads and write the reply when it comes back. Blocking models do
    /// their work on their own thread or process by nature and refuse the flag.
    pub fn takes_offload(&self) -> bool {
        self.offload
    }

    /// Its [`Family`]: the datagram models together; then by who waits for what — a
    /// blocked thread or process per client, a loop told of readiness, a loop told of
    /// completions or a runtime's tasks.
    pub fn family(&self) -> Family {
        if !self.is_stream() {
            return Family::Datagram;
        }
        match self.runs {
            Runs::Runtime => Family::CompletionAndRuntimes,
            Runs::EventLoop | Runs::SeveralLoops if self.completion => {
                Family::CompletionAndRuntimes
            }
            Runs::EventLoop | Runs::SeveralLoops => Family::ReadinessLoops,
            Runs::InTurn
            | Runs::ThreadEach
            | Runs::ProcessEach
            | Runs::WorkerThreads
            | Runs::WorkerProcesses => Family::Blocking,
        }
    }
}

/// Every model, in the docs' reading order (docs/README.md lists them so, each the answer
/// to the failure of the one before): the tables of the CLI, the results and the docs follow it.
pub const MODELS: &[Model] = &[
    Model {
        name: "iterative",
        summary: "blocking accept + read/write, one client at a time",
        runs: Runs::InTurn,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: true,
        serve: echolab_iterative::serve,
    },
    Model {
        name: "fork",
        summary: "one process per client (fork), blocking read/write",
        runs: Runs::ProcessEach,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: false,
        serve: echolab_fork::serve,
    },
    Model {
        name: "threads",
        summary: "one OS thread per client, blocking read/write",
        runs: Runs::ThreadEach,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: false,
        serve: echolab_threads::serve,
    },
    Model {
        name: "pool",
        summary: "fixed worker threads fed by a bounded queue, blocking read/write",
        runs: Runs::WorkerThreads,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: false,
        serve: echolab_pool::serve,
    },
    Model {
        name: "prethreaded",
        summary: "fixed worker threads started up front, each blocking in accept on the shared listener",
        runs: Runs::WorkerThreads,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: true,
        serve: echolab_prethreaded::serve,
    },
    Model {
        name: "prefork",
        summary:
            "fixed worker processes forked up front, each blocking in accept on the shared listener",
        runs: Runs::WorkerProcesses,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: true,
        serve: echolab_prefork::serve,
    },
    Model {
        name: "spin",
        summary: "non-blocking sockets tried in turn, no readiness call (burns CPU)",
        runs: Runs::EventLoop,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: true,
        completion: false,
        offload: true,
        accepts_when_free: false,
        serve: echolab_spin::serve,
    },
    Model {
        name: "select",
        summary: "select(2) over fd_sets rebuilt every turn; descriptors >= 1024 refused",
        runs: Runs::EventLoop,
        transport: Transport::Stream,
        natural_limit: Some(echolab_select::FD_LIMIT),
        busy_waits: false,
        completion: false,
        offload: true,
        accepts_when_free: false,
        serve: echolab_select::serve,
    },
    Model {
        name: "poll",
        summary: "poll(2) over a pollfd array kept in step with the connections",
        runs: Runs::EventLoop,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: true,
        accepts_when_free: false,
        serve: echolab_poll::serve,
    },
    Model {
        name: "polling",
        summary: "level-triggered epoll through the polling crate",
        runs: Runs::EventLoop,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: true,
        accepts_when_free: false,
        serve: echolab_polling::serve,
    },
    Model {
        name: "mio",
        summary: "edge-triggered epoll via mio, drained until WouldBlock",
        runs: Runs::EventLoop,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: true,
        accepts_when_free: false,
        serve: echolab_mio::serve,
    },
    Model {
        name: "reactors",
        summary: "one edge-triggered mio loop per CPU, each on its own SO_REUSEPORT listener",
        runs: Runs::SeveralLoops,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: true,
        accepts_when_free: false,
        serve: echolab_reactors::serve,
    },
    Model {
        name: "tokio",
        summary: "a task per client on tokio's multi-thread runtime (work-stealing epoll loops)",
        runs: Runs::Runtime,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: true,
        accepts_when_free: false,
        serve: echolab_tokio::serve,
    },
    Model {
        name: "uring",
        summary: "io_uring completions: multishot accept, multishot receive into a provided-buffer ring, owned sends",
        runs: Runs::EventLoop,
        transport: Transport::Stream,
        natural_limit: None,
        busy_waits: false,
        completion: true,
        offload: true,
        accepts_when_free: false,
        serve: echolab_uring::serve,
    },
    Model {
        name: "udp-iterative",
        summary: "one blocking UDP socket: recvfrom, sendto, repeat (the course's UDP server)",
        runs: Runs::InTurn,
        transport: Transport::Datagram,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: false,
        serve: echolab_udp_iterative::serve,
    },
    Model {
        name: "udp-mio",
        summary: "one non-blocking UDP socket in an edge-triggered mio loop, bounded queue of replies owed",
        runs: Runs::EventLoop,
        transport: Transport::Datagram,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: true,
        accepts_when_free: false,
        serve: echolab_udp_mio::serve,
    },
    Model {
        name: "udp-batch",
        summary: "recvmmsg/sendmmsg: up to 32 datagrams per syscall",
        runs: Runs::InTurn,
        transport: Transport::Datagram,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: false,
        serve: echolab_udp_batch::serve,
    },
    Model {
        name: "udp-reuseport",
        summary: "one UDP socket per worker on one port (SO_REUSEPORT), a blocking thread each",
        runs: Runs::WorkerThreads,
        transport: Transport::Datagram,
        natural_limit: None,
        busy_waits: false,
        completion: false,
        offload: false,
        accepts_when_free: false,
        serve: echolab_udp_reuseport::serve,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The grouping the charts are read by (issue 24): checked here against names, so
    /// that the properties, not a list, keep producing it.
    #[test]
    fn families_group_the_models_as_a_reader_compares_them() {
        let members = |family: Family| -> Vec<&str> {
            MODELS
                .iter()
                .filter(|m| m.family() == family)
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(
            members(Family::Blocking),
            [
                "iterative",
                "fork",
                "threads",
                "pool",
                "prethreaded",
                "prefork"
            ]
        );
        assert_eq!(
            members(Family::ReadinessLoops),
            ["spin", "select", "poll", "polling", "mio", "reactors"]
        );
        assert_eq!(members(Family::CompletionAndRuntimes), ["tokio", "uring"]);
        assert_eq!(
            members(Family::Datagram),
            ["udp-iterative", "udp-mio", "udp-batch", "udp-reuseport"]
        );
    }

    /// Who accepts is a property of its own, not of who runs the connection: `pool`'s
    /// acceptor takes every client, `prethreaded`'s workers only the ones they serve.
    #[test]
    fn who_accepts_is_a_property_of_its_own() {
        let when_free: Vec<&str> = MODELS
            .iter()
            .filter(|m| m.accepts_when_free)
            .map(|m| m.name)
            .collect();
        assert_eq!(when_free, ["iterative", "prethreaded", "prefork"]);
        for model in MODELS {
            if model.runs == Runs::InTurn && model.is_stream() {
                assert!(model.accepts_when_free, "{}: serves in turn", model.name);
            }
            if !model.is_stream() {
                assert!(!model.accepts_when_free, "{}: accepts nothing", model.name);
            }
        }
    }
}
