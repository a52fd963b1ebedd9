//! Many clients waiting at once, read without blocking: for cases where some clients
//! are served now and others only later (out of descriptors, out of threads, a full
//! server), and the test must see which, without one waiting client stalling the rest.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use echolab_proto::{Reply, ReplyDecoder};

/// One client that has sent its request and waits for the answer.
pub struct PendingClient {
    pub stream: TcpStream,
    pub expected: Vec<u8>,
    decoder: ReplyDecoder,
    pub replies: Vec<Reply>,
    /// The server closed the connection (EOF or a reset).
    pub closed: bool,
}

/// What has happened to a pending client so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing yet.
    Waiting,
    /// Its payload came back.
    Served,
    /// It got the `server busy` notice and a close.
    Refused,
    /// Anything else: a wrong reply, another notice, a close with nothing.
    Broken(String),
}

impl PendingClient {
    /// `stream` has already sent a frame of `expected`; reads on it no longer block.
    pub fn new(stream: TcpStream, expected: Vec<u8>) -> PendingClient {
        stream.set_nonblocking(true).expect("nonblocking");
        PendingClient {
            stream,
            expected,
            decoder: ReplyDecoder::new(u32::MAX >> 1),
            replies: Vec::new(),
            closed: false,
        }
    }

    /// Takes in whatever has arrived, without waiting.
    pub fn pump(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        while !self.closed {
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.decoder.feed(&buf[..n]);
                    while let Some(reply) = self.decoder.next_reply().expect("valid replies") {
                        self.replies.push(reply);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    pub fn outcome(&self) -> Outcome {
        match (&self.replies[..], self.closed) {
            ([], false) => Outcome::Waiting,
            ([Reply::Frame(p)], _) if *p == self.expected => Outcome::Served,
            ([Reply::Notice(t)], true) if t == "server busy" => Outcome::Refused,
            ([Reply::Notice(t)], false) if t == "server busy" => Outcome::Waiting,
            (replies, closed) => Outcome::Broken(format!(
                "replies {replies:?}, closed by the server: {closed}"
            )),
        }
    }
}

/// Pumps every client in `clients` every 5 ms until `done` holds for the outcomes or
/// `limit` passes; returns whether `done` held.
pub fn pump_until(
    clients: &mut [PendingClient],
    limit: Duration,
    mut done: impl FnMut(&[PendingClient]) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        for client in clients.iter_mut() {
            client.pump();
        }
        if done(clients) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How many of `clients` have `outcome`.
pub fn count(clients: &[PendingClient], outcome: &Outcome) -> usize {
    clients.iter().filter(|c| &c.outcome() == outcome).count()
}

/// Panics on the first client whose outcome is broken.
pub fn assert_none_broken(clients: &[PendingClient], what: &str) {
    for (i, client) in clients.iter().enumerate() {
        if let Outcome::Broken(how) = client.outcome() {
            panic!("{what}: client {i}: {how}");
        }
    }
}

/// Lets `clients` be served in waves, as a full server frees up: the served clients
/// leave, and within `within` of their leaving at least as many of the waiting ones
/// (or all of them, if fewer wait) must be served. Panics on a broken outcome, a wave
/// that comes late, or no progress; returns the number of waves and the slowest.
pub fn serve_in_waves(
    mut clients: Vec<PendingClient>,
    within: Duration,
    what: &str,
) -> (usize, Duration) {
    let limit = clients.len();
    let started = Instant::now();
    let mut waves = 0;
    let mut slowest = Duration::ZERO;
    loop {
        let (served, waiting): (Vec<_>, Vec<_>) = clients
            .into_iter()
            .partition(|c| c.outcome() == Outcome::Served);
        clients = waiting;
        if clients.is_empty() {
            return (waves, slowest);
        }
        assert!(
            !served.is_empty(),
            "{what}: {} clients wait and none is served",
            clients.len()
        );
        assert!(
            waves < limit && started.elapsed() < Duration::from_secs(40),
            "{what}: {} clients still waiting after {waves} waves",
            clients.len()
        );
        let freed = served.len();
        drop(served);
        let freed_at = Instant::now();
        let due = freed.min(clients.len());
        let ok = pump_until(&mut clients, within, |clients| {
            count(clients, &Outcome::Served) >= due
        });
        assert_none_broken(&clients, what);
        assert!(
            ok,
            "{what}: wave {waves}: {} of {due} waiting clients served within {within:?} of \
             {freed} clients leaving",
            count(&clients, &Outcome::Served)
        );
        slowest = slowest.max(freed_at.elapsed());
        waves += 1;
    }
}
