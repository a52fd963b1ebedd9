//! Thousands of connections need thousands of descriptors, but most systems start a
//! process with a soft limit of 1,024 under a much higher hard limit. The commands that
//! hold many sockets raise the soft limit to the hard one (children, such as the server
//! `compare` starts, inherit it), and say so when even the hard limit is too low,
//! instead of failing connection by connection with `EMFILE`.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors a process needs beside its sockets: stdio, the poller, pipes, /proc files.
const SPARE: u64 = 64;

/// Makes room for `sockets` open sockets; when even the hard limit is too low, returns
/// a warning naming `why` they are needed.
pub(crate) fn raise_descriptor_limit(sockets: u64, why: &str) -> Option<String> {
    let needed = sockets + SPARE;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= needed {
        return None;
    }
    let limit = match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(_) => soft,
    };
    (limit < needed).then(|| {
        format!(
            "the descriptor limit ({limit}) is below the {needed} {why} needs; \
             raise it with `ulimit -n {needed}`"
        )
    })
}
