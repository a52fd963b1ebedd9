//! The server side of one connection, as a state machine with no IO.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::frame::{encode_notice, Header, HEADER_LEN};
use crate::{AuthKey, Protocol, SessionConfig, MAC_LEN, NONCE_LEN};

mod work;

use work::Work;
pub use work::{Handler, Job, WorkMode};

/// Buffers that grew past this (to hold a large frame) are released once they empty,
/// so one big frame does not pin a megabyte to an otherwise idle connection.
const RETAIN_CAPACITY: usize = 64 * 1024;

/// How long a closing connection may take to accept its last bytes (replies, a notice)
/// when no idle timeout is configured, before the server gives up on it.
const DEFAULT_LINGER: Duration = Duration::from_secs(10);

/// A shutting-down server waits at most this long for a peer to accept its last bytes.
const SHUTDOWN_LINGER: Duration = Duration::from_secs(2);

/// After the server has sent its last byte and its FIN, it keeps reading (and discarding)
/// for at most this long or [`DRAIN_LIMIT`] bytes, waiting for the peer's FIN. Closing a
/// socket with unread input makes the kernel send a reset, and a reset can destroy the
/// replies and the notice still in flight to the peer: "lingering close".
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_LIMIT: u64 = 256 * 1024;

/// Why a session ended (or is ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer closed its side cleanly, between frames.
    PeerClosed,
    /// The peer closed its side in the middle of a header, a frame or the handshake.
    Truncated,
    /// A header announced more than the limit (or had the top bit set).
    Oversize,
    /// The handshake answer was wrong.
    AuthFailed,
    /// The handshake answer did not arrive in time.
    HandshakeTimeout,
    /// No bytes moved in either direction for the idle timeout.
    IdleTimeout,
    /// A frame was not complete by its deadline (slowloris).
    FrameTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The peer stopped accepting our output while we were closing.
    Abandoned,
}

impl CloseReason {
    /// Every reason, for tables of counters.
    pub const ALL: [CloseReason; 9] = [
        CloseReason::PeerClosed,
        CloseReason::Truncated,
        CloseReason::Oversize,
        CloseReason::AuthFailed,
        CloseReason::HandshakeTimeout,
        CloseReason::IdleTimeout,
        CloseReason::FrameTimeout,
        CloseReason::Shutdown,
        CloseReason::Abandoned,
    ];

    /// A short snake_case name, used in stats output.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::Truncated => "truncated",
            CloseReason::Oversize => "oversize",
            CloseReason::AuthFailed => "auth_failed",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::FrameTimeout => "frame_timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Abandoned => "abandoned",
        }
    }

    /// Whether this ending is an error (anything but a clean close or a shutdown).
    pub fn is_error(self) -> bool {
        !matches!(self, CloseReason::PeerClosed | CloseReason::Shutdown)
    }
}

/// Counters for one session, folded into the server's totals when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Frames whose reply was queued (framed mode): with offloaded work, once their
    /// job came back.
    pub frames: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes the driver reported written.
    pub bytes_out: u64,
}

#[derive(Debug)]
struct Handshake {
    key: Arc<AuthKey>,
    nonce: [u8; NONCE_LEN],
    answer: Vec<u8>,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Header,
    /// Bytes of the payload still to come (below 2^31: the frame limit's bound).
    Payload {
        remaining: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Sending what is still owed; reading has stopped.
    Closing {
        reason: CloseReason,
        /// When closing began: the linger deadline counts from here (or from the last
        /// byte moved, if later).
        since: Instant,
    },
    /// Everything owed is written and the write side should be shut down; discarding
    /// input until the peer's FIN (see [`DRAIN_TIME`]).
    Draining {
        reason: CloseReason,
        until: Instant,
        discarded: u32,
    },
    Closed(CloseReason),
}

/// A timeout in whole milliseconds, 0 for none: 4 bytes where `Option<Duration>` takes
/// 16 (up to 49 days; longer ones are cut to that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Millis(u32);

impl Millis {
    fn from(timeout: Option<Duration>) -> Millis {
        Millis(timeout.map_or(0, |t| {
            u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1)
        }))
    }

    fn get(self) -> Option<Duration> {
        (self.0 > 0).then(|| Duration::from_millis(u64::from(self.0)))
    }
}

/// One connection's protocol state. See the crate docs for how a driver uses it.
#[derive(Debug)]
pub struct Session {
    protocol: Protocol,
    max_frame: u32,
    // The config's limits, kept compact: an idle server holds thousands of sessions, and
    // every byte here is a byte per connection (the figure `conn-memory.sh` measures).
    high_water: u32,
    idle_timeout: Millis,
    frame_timeout: Millis,
    /// Boxed: only authenticated connections have one, and then only until it is done.
    handshake: Option<Box<Handshake>>,
    framing: Framing,
    /// Bytes of the frame being received; echoed only when the frame is complete.
    held: Vec<u8>,
    frame_deadline: Option<Instant>,
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes handed out by [`Session::take_transmit`] whose send has not completed yet.
    in_flight: usize,
    /// Whether the driver has been told to send its FIN ([`Session::take_fin`]).
    fin_taken: bool,
    last_activity: Instant,
    phase: Phase,
    stats: SessionStats,
    /// What happens to a complete frame before its reply is queued.
    work: Work,
}

impl Session {
    /// Starts a session at `now`. When the config carries a key, `nonce` is the challenge
    /// (the caller draws it from a secure random source; the session has no IO) and it is
    /// the first output; otherwise `nonce` is unused.
    pub fn new(config: &SessionConfig, now: Instant, nonce: [u8; NONCE_LEN]) -> Session {
        let mut out = Vec::new();
        let handshake = config.auth_key.as_ref().map(|key| {
            out.extend_from_slice(&nonce);
            Box::new(Handshake {
                key: Arc::clone(key),
                nonce,
                answer: Vec::with_capacity(MAC_LEN),
                deadline: now + config.handshake_timeout,
            })
        });
        Session {
            protocol: config.protocol,
            max_frame: config.max_frame.get(),
            high_water: u32::try_from(config.high_water).unwrap_or(u32::MAX),
            idle_timeout: Millis::from(config.idle_timeout),
            frame_timeout: Millis::from(config.frame_timeout),
            handshake,
            framing: Framing::Header,
            held: Vec::new(),
            frame_deadline: None,
            out,
            out_pos: 0,
            in_flight: 0,
            fin_taken: false,
            last_activity: now,
            phase: Phase::Open,
            stats: SessionStats::default(),
            // Raw TCP has no messages to work on.
            work: match config.protocol {
                Protocol::Framed => Work::new(&config.work),
                Protocol::Raw => Work::new(&WorkMode::None),
            },
        }
    }

    /// Feeds bytes received from the peer. "Not a whole frame yet" is a normal state:
    /// the bytes are held until the frame completes. Input after the session started
    /// closing is discarded.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if let Phase::Draining {
            reason, discarded, ..
        } = &mut self.phase
        {
            *discarded = discarded.saturating_add(u32::try_from(data.len()).unwrap_or(u32::MAX));
            if u64::from(*discarded) > DRAIN_LIMIT {
                self.phase = Phase::Closed(*reason);
            }
            return;
        }
        if self.phase != Phase::Open {
            return;
        }
        self.stats.bytes_in += data.len() as u64;
        self.last_activity = now;
        let mut data = data;
        if let Some(handshake) = &mut self.handshake {
            let take = (MAC_LEN - handshake.answer.len()).min(data.len());
            handshake.answer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if handshake.answer.len() < MAC_LEN {
                return;
            }
            if !handshake.key.verify(&handshake.nonce, &handshake.answer) {
                self.close_with(CloseReason::AuthFailed, "authentication failed", now);
                return;
            }
            self.handshake = None;
        }
        match self.protocol {
            Protocol::Raw => self.out.extend_from_slice(data),
            Protocol::Framed => self.handle_frames(data, now),
        }
    }

    fn handle_frames(&mut self, mut data: &[u8], now: Instant) {
        while !data.is_empty() {
            match self.framing {
                Framing::Header => {
                    if self.held.is_empty() {
                        self.frame_deadline = self.frame_timeout.get().map(|t| now + t);
                    }
                    let take = (HEADER_LEN - self.held.len()).min(data.len());
                    self.held.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let Some(header) = Header::peek(&self.held) else {
                        return;
                    };
                    // A client has no business sending a notice: its top bit makes the
                    // word larger than any limit, and it is refused like one.
                    let len = match header {
                        Header::Frame(len) if len <= self.max_frame => len,
                        _ => {
                            let text = format!(
                                "frame of {} bytes exceeds the limit of {} bytes",
                                header.word(),
                                self.max_frame
                            );
                            self.close_with(CloseReason::Oversize, &text, now);
                            return;
                        }
                    };
                    // `len <= max_frame: u32`, so it fits in usize on every target we build.
                    self.framing = Framing::Payload { remaining: len };
                    if len == 0 {
                        self.complete_frame(&[]);
                    }
                }
                Framing::Payload { remaining } => {
                    // `remaining` < 2^31 fits usize on every target we build.
                    let remaining = remaining as usize;
                    let take = remaining.min(data.len());
                    if take == remaining {
                        self.complete_frame(&data[..take]);
                    } else {
                        self.held.extend_from_slice(&data[..take]);
                        self.framing = Framing::Payload {
                            remaining: (remaining - take) as u32,
                        };
                    }
                    data = &data[take..];
                }
            }
        }
    }

    /// Moves the held part of a frame plus its `tail` to the output, after its work
    /// (or to the offload queue).
    fn complete_frame(&mut self, tail: &[u8]) {
        self.framing = Framing::Header;
        self.frame_deadline = None;
        if self.work_on_frame(tail) {
            release_if_large(&mut self.held);
            return;
        }
        // Inline work appended the tail to `held` already.
        let tail: &[u8] = if self.work.is_inline() { &[] } else { tail };
        if self.queued_output() == 0 {
            // Nothing is waiting to be written: hand the held buffer over instead of
            // copying a possibly megabyte-sized frame. The empty output buffer is not
            // kept as the next `held`: a connection between messages holds no buffer.
            self.out = std::mem::take(&mut self.held);
            self.out_pos = 0;
        } else {
            self.out.extend_from_slice(&self.held);
            self.held.clear();
        }
        self.out.extend_from_slice(tail);
        release_if_large(&mut self.held);
        self.stats.frames += 1;
    }

    /// The peer closed its sending side (`recv` returned 0). Complete frames already
    /// received are still echoed; a partial frame is dropped.
    pub fn handle_eof(&mut self, now: Instant) {
        if let Phase::Draining { reason, .. } = self.phase {
            self.phase = Phase::Closed(reason);
            return;
        }
        if self.phase != Phase::Open {
            return;
        }
        let partial = !self.held.is_empty() || self.handshake.is_some();
        let reason = if partial {
            CloseReason::Truncated
        } else {
            CloseReason::PeerClosed
        };
        self.begin_close(reason, now);
    }

    /// The server is shutting down: stop reading, send what is already owed, then close.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.phase == Phase::Open {
            self.close_with(CloseReason::Shutdown, "server shutting down", now);
        }
    }

    /// Applies every deadline that has passed at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Open => {
                if self.handshake.as_ref().is_some_and(|h| now >= h.deadline) {
                    self.close_with(CloseReason::HandshakeTimeout, "handshake timeout", now);
                } else if self.frame_deadline.is_some_and(|d| now >= d) {
                    self.close_with(
                        CloseReason::FrameTimeout,
                        "frame not completed in time",
                        now,
                    );
                } else if self.idle_deadline().is_some_and(|d| now >= d) {
                    self.close_with(CloseReason::IdleTimeout, "idle timeout", now);
                }
            }
            Phase::Closing { .. } => {
                if self.linger_deadline().is_some_and(|d| now >= d) {
                    self.abandon();
                }
            }
            Phase::Draining { reason, until, .. } => {
                if now >= until {
                    self.phase = Phase::Closed(reason);
                }
            }
            Phase::Closed(_) => {}
        }
    }

    /// None while work is outstanding: waiting for the server is not being idle.
    fn idle_deadline(&self) -> Option<Instant> {
        if self.work.is_outstanding() {
            return None;
        }
        self.idle_timeout.get().map(|t| self.last_activity + t)
    }

    /// None while work is outstanding: the replies are not the peer's to accept yet.
    fn linger_deadline(&self) -> Option<Instant> {
        let Phase::Closing { since, .. } = self.phase else {
            return None;
        };
        if self.work.is_outstanding() {
            return None;
        }
        let linger = match self.phase {
            Phase::Closing {
                reason: CloseReason::Shutdown,
                ..
            } => SHUTDOWN_LINGER,
            _ => self.idle_timeout.get().unwrap_or(DEFAULT_LINGER),
        };
        Some(since.max(self.last_activity) + linger)
    }

    /// The earliest instant at which [`Session::handle_timeout`] has work to do. A driver
    /// may call it early; it re-checks and does nothing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open => [
                self.handshake.as_ref().map(|h| h.deadline),
                self.frame_deadline,
                self.idle_deadline(),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Closing { .. } => self.linger_deadline(),
            Phase::Draining { until, .. } => Some(until),
            Phase::Closed(_) => None,
        }
    }

    fn close_with(&mut self, reason: CloseReason, notice: &str, now: Instant) {
        if self.protocol == Protocol::Framed {
            let mut text = Vec::new();
            encode_notice(notice, &mut text);
            // With offloaded work outstanding, the notice follows the replies still owed.
            if let Some(text) = self.work.defer_notice(text) {
                self.out.extend_from_slice(&text);
            }
        }
        self.begin_close(reason, now);
    }

    fn begin_close(&mut self, reason: CloseReason, now: Instant) {
        self.held = Vec::new();
        self.handshake = None;
        self.frame_deadline = None;
        self.phase = Phase::Closing { reason, since: now };
        self.finish_if_flushed(now);
    }

    fn finish_if_flushed(&mut self, now: Instant) {
        let Phase::Closing { reason, .. } = self.phase else {
            return;
        };
        if self.owed_output() > 0 || self.work.is_outstanding() {
            return;
        }
        self.phase = match reason {
            // The peer already sent its FIN: nothing more can arrive, close at once.
            CloseReason::PeerClosed | CloseReason::Truncated | CloseReason::Abandoned => {
                Phase::Closed(reason)
            }
            _ => Phase::Draining {
                reason,
                until: now + DRAIN_TIME,
                discarded: 0,
            },
        };
    }

    /// Bytes waiting to be written, oldest first: the borrowed-slice path, for drivers
    /// that copy into the kernel with `write` (readiness and blocking models). The slice
    /// is valid only until the next call that feeds the session.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Marks the first `n` bytes of [`Session::output`] as written at `now`.
    pub fn consume_output(&mut self, n: usize, now: Instant) {
        let n = n.min(self.queued_output());
        if n == 0 {
            return;
        }
        self.out_pos += n;
        self.record_sent(n, now);
        if self.out_pos == self.out.len() {
            // Written out: free it. An idle connection then holds no buffer at all (ten
            // thousand idle clients would otherwise pin one echo-sized allocation each);
            // the price is one small allocation per message, next to two syscalls.
            self.out = Vec::new();
            self.out_pos = 0;
        } else if self.out_pos >= RETAIN_CAPACITY && self.out_pos * 2 >= self.out.len() {
            // Keep the unsent tail at the front so the buffer does not creep forward.
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        self.finish_if_flushed(now);
    }

    /// Takes every byte now owed as an owned buffer: the path for completion-based
    /// drivers (io_uring), where the kernel reads the buffer after the call returns, so
    /// a slice that [`Session::handle_input`] may reallocate would not do.
    ///
    /// `None` while nothing is owed or a taken buffer is still in flight: one send at a
    /// time keeps the bytes in order. Until [`Session::complete_transmit`] hands the
    /// buffer back, its bytes still count as owed, for backpressure
    /// ([`Session::wants_read`]) and for closing. A driver uses this path or
    /// [`Session::output`], not both.
    pub fn take_transmit(&mut self) -> Option<Vec<u8>> {
        if self.in_flight > 0 || self.queued_output() == 0 {
            return None;
        }
        if self.out_pos > 0 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        let buf = std::mem::take(&mut self.out);
        self.in_flight = buf.len();
        Some(buf)
    }

    /// The send of a buffer from [`Session::take_transmit`] completed at `now` with `sent`
    /// of its bytes written (the kernel may write fewer). The rest goes back in front of
    /// any output produced meanwhile, so nothing is lost, doubled or reordered. An emptied
    /// buffer is kept for output that appends (raw echo, frames completed while output is
    /// queued); a framed reply completed with nothing queued brings its own.
    pub fn complete_transmit(&mut self, mut buf: Vec<u8>, sent: usize, now: Instant) {
        let sent = sent.min(buf.len());
        self.in_flight = 0;
        self.record_sent(sent, now);
        if matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        if sent < buf.len() {
            buf.drain(..sent);
            buf.extend_from_slice(self.output());
            self.out = buf;
            self.out_pos = 0;
        } else if self.queued_output() == 0 && buf.capacity() <= RETAIN_CAPACITY {
            buf.clear();
            self.out = buf;
            self.out_pos = 0;
        }
        self.finish_if_flushed(now);
    }

    fn record_sent(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.stats.bytes_out += n as u64;
            self.last_activity = now;
        }
    }

    /// Output waiting in the session, not yet handed to the kernel.
    fn queued_output(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Output not yet known to be written: queued, or in flight on the owned path.
    fn owed_output(&self) -> usize {
        self.queued_output() + self.in_flight
    }

    /// Whether the driver should read: the session is open and its output (with the
    /// frames whose offloaded work is still to be done) is below the high-water mark
    /// (backpressure), or it is draining the peer's last bytes.
    pub fn wants_read(&self) -> bool {
        match self.phase {
            Phase::Open => self.owed_output() + self.work.owed() < self.high_water as usize,
            Phase::Draining { .. } => true,
            Phase::Closing { .. } | Phase::Closed(_) => false,
        }
    }

    /// Whether the server has written its last byte: the driver should now shut down
    /// the socket's write side (send FIN) if it has not already, and keep reading until
    /// [`Session::is_closed`].
    pub fn is_write_finished(&self) -> bool {
        matches!(self.phase, Phase::Draining { .. } | Phase::Closed(_))
    }

    /// The one-shot form of [`Session::is_write_finished`]: true exactly once, when the
    /// driver should shut down the socket's write side (send its FIN) after the last
    /// reply. Every model asks this after each change instead of keeping its own flag.
    pub fn take_fin(&mut self) -> bool {
        if self.fin_taken || !self.is_write_finished() {
            return false;
        }
        self.fin_taken = true;
        true
    }

    /// Whether there is output to write (for the owned path: to take).
    pub fn wants_write(&self) -> bool {
        self.queued_output() > 0 && self.in_flight == 0
    }

    /// Whether the driver should close the connection now: the session ended, every
    /// byte it owed has been written (or abandoned), and no offloaded job is out (a
    /// worker still holds one: the connection's slot must outlive it).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed(_)) && !self.work.is_job_out()
    }

    /// Why the session ended or is ending, once it is.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.phase {
            Phase::Open => None,
            Phase::Closing { reason, .. }
            | Phase::Draining { reason, .. }
            | Phase::Closed(reason) => Some(reason),
        }
    }

    /// This session's counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Bytes this session holds in memory (buffer capacities), for tests of the bounds.
    pub fn buffered_capacity(&self) -> usize {
        self.held.capacity() + self.out.capacity() + self.work.capacity()
    }
}

fn release_if_large(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > RETAIN_CAPACITY {
        *buf = Vec::new();
    }
}

#[cfg(test)]
mod tests;
