//! What the loop keeps per connection: the requests it has in the kernel, and the
//! buffer a send points at, which must outlive the send.

/// A connection's requests in the kernel.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    pub(crate) recv: Recv,
    /// The output buffer the kernel is sending from: it lives here, untouched, until
    /// the send's completion.
    pub(crate) send: Option<Vec<u8>>,
    pub(crate) send_cancelled: bool,
    /// The peer's FIN (or an error) ended receiving for good.
    pub(crate) peer_done: bool,
    /// The connection is closing (with an I/O error or not): waiting for the last
    /// completions before the descriptor is closed.
    pub(crate) doomed: Option<bool>,
    /// Its socket is in the ring's fixed-file table at its slab index, so requests name
    /// it by slot and the kernel skips the descriptor lookup (`fget`/`fput`) per send.
    pub(crate) fixed: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recv {
    #[default]
    Idle,
    Armed,
    Cancelling,
}

impl InFlight {
    pub(crate) fn is_quiet(&self) -> bool {
        self.recv == Recv::Idle && self.send.is_none()
    }
}
