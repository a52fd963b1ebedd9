//! One generator thread's connections and their lives: connect, send, fail, time out,
//! and in churn close and reconnect after a pause. What needs only one connection's
//! state is done by `conn`, `connect` and `send`; what is measured goes to the
//! thread's `Tally`. The reading side (`receive`) drives it from above.

use std::io;
use std::time::Instant;

use mio::{Registry, Token};

use super::config::{LoadConfig, Mode, Phases};
use super::conn::Conn;
use super::connect::{self, RETRY_PAUSE};
use super::schedule::Schedule;
use super::send;
use super::tally::Tally;
use super::wakeups::{Wakeups, TICK};
use crate::failure::FailureKind;

pub(super) struct Worker<'a> {
    config: &'a LoadConfig,
    mode: Mode,
    phases: &'a Phases,
    registry: Registry,
    pub(super) conns: Vec<Conn>,
    pub(super) tally: Tally,
    /// Reply timeouts are seconds long: scanning every connection for them once per
    /// tick is enough, rather than after every batch of events.
    next_timeout_check: Instant,
    /// Open-loop sends and churn retries, by time.
    wakeups: Wakeups,
}

impl<'a> Worker<'a> {
    /// A worker with no connections yet, its sockets registered with `registry`.
    pub(super) fn new(
        config: &'a LoadConfig,
        phases: &'a Phases,
        registry: &Registry,
        start: Instant,
    ) -> io::Result<Worker<'a>> {
        Ok(Worker {
            config,
            mode: config.mode(),
            phases,
            registry: registry.try_clone()?,
            conns: Vec::new(),
            tally: Tally::new(matches!(config.mode(), Mode::Open(_))),
            next_timeout_check: start,
            wakeups: Wakeups::new(registry)?,
        })
    }

    /// Adds the run's connection `id` and connects it.
    pub(super) fn add(&mut self, id: u32, start: Instant) -> io::Result<()> {
        let schedule = match self.mode {
            Mode::Open(rate) => {
                let phase = id as f64 / self.config.conns as f64;
                Some(Schedule::new(start, rate, phase))
            }
            _ => None,
        };
        let awaiting_nonce = self.config.auth_key.is_some();
        self.conns.push(Conn::new(id, awaiting_nonce, schedule));
        self.connect(self.conns.len() - 1)
    }

    /// When the loop must wake next for the clock's sake.
    pub(super) fn next_wake(&mut self, now: Instant) -> io::Result<Instant> {
        self.wakeups.next_wake(now, self.phases.end)
    }

    /// What the clock says at `now`: reply timeouts, due sends, due reconnects.
    pub(super) fn on_clock(&mut self, now: Instant) {
        // After the end, what is unanswered is censored by `Tally::settle`, not counted
        // as a timeout.
        if now >= self.next_timeout_check && now < self.phases.end {
            self.check_timeouts(now);
            self.next_timeout_check = now + TICK;
        }
        self.on_due(now);
    }

    /// Replies on slot `conn` were verified at `now`. `false`: that was a churn cycle's
    /// one echo, and the slot now holds a new connection; otherwise the next messages
    /// are sent.
    pub(super) fn on_replies(&mut self, conn: usize, now: Instant) -> bool {
        if self.mode == Mode::Churn {
            self.recycle(conn);
            return false;
        }
        self.fill_pipeline(conn, now);
        true
    }

    /// Whether no open connection is waiting for a reply (the run may close them all
    /// without resetting one that the server is still answering).
    pub(super) fn nothing_owed(&self) -> bool {
        self.conns.iter().all(|c| !c.open || c.in_flight.is_empty())
    }

    /// The run is over: what the thread measured.
    pub(super) fn finish(mut self) -> Tally {
        self.tally
            .settle(&self.conns, self.phases.end, self.phases.measure_from);
        self.tally
    }

    /// Opens slot `conn`'s connection and queues its first messages. A failed connect
    /// is counted; only failing to register with the poller is fatal.
    fn connect(&mut self, conn: usize) -> io::Result<()> {
        let ready = self.config.connected.take(self.conns[conn].id);
        let Some(stream) = connect::open(self.config.addr, ready, &self.registry, Token(conn))?
        else {
            self.tally.failures.add(FailureKind::Connect);
            if self.mode == Mode::Churn {
                self.retry_later(conn);
            }
            return Ok(());
        };
        let c = &mut self.conns[conn];
        c.stream = Some(stream);
        c.open = true;
        let now = Instant::now();
        c.connected_at = now;
        if !c.awaiting_nonce {
            self.fill_pipeline(conn, now);
        }
        Ok(())
    }

    /// Drops slot `conn`'s stream (closing it) and forgets its I/O state.
    fn close(&mut self, conn: usize) {
        let awaiting_nonce = self.config.auth_key.is_some();
        let c = &mut self.conns[conn];
        if let Some(mut stream) = c.stream.take() {
            let _ = self.registry.deregister(&mut stream);
        }
        c.open = false;
        c.reset(awaiting_nonce);
    }

    /// A churn cycle is done: close, and reconnect at once (unless the run is over).
    fn recycle(&mut self, conn: usize) {
        self.close(conn);
        // A registration failure leaves the slot to retry after the pause.
        if Instant::now() < self.phases.end && self.connect(conn).is_err() {
            self.tally.failures.add(FailureKind::Io);
            self.retry_later(conn);
        }
    }

    /// Schedules slot `conn`'s reconnect after the pause.
    fn retry_later(&mut self, conn: usize) {
        let at = Instant::now() + RETRY_PAUSE;
        self.conns[conn].retry_at = Some(at);
        self.wakeups.at(at, conn);
    }

    /// Reconnects churn slot `conn` if its pause is over (a slot that reconnected
    /// and failed again since has a later time and waits for that one).
    fn retry_if_due(&mut self, conn: usize, now: Instant) {
        if self.conns[conn].retry_at.is_some_and(|at| at <= now) {
            self.conns[conn].retry_at = None;
            self.recycle(conn);
        }
    }

    /// Counts a failure and ends the connection (in churn, closes it and schedules a
    /// reconnect after a short pause).
    pub(super) fn fail(&mut self, conn: usize, kind: FailureKind) {
        let c = &mut self.conns[conn];
        if c.open {
            c.open = false;
            if let Some(stream) = &c.stream {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            self.tally.failures.add(kind);
            if self.mode == Mode::Churn {
                self.close(conn);
                self.retry_later(conn);
            }
        }
    }

    /// Queues what slot `conn` should send now and writes it; nothing once the run is
    /// over.
    pub(super) fn fill_pipeline(&mut self, conn: usize, now: Instant) {
        if now >= self.phases.end {
            return;
        }
        let depth = match self.mode {
            Mode::Churn => 1,
            _ => self.config.depth,
        };
        let c = &mut self.conns[conn];
        let end = self.phases.end;
        if let Some(at) = send::fill(c, self.config, depth, now, end, &mut self.tally) {
            self.wakeups.at(at, conn);
        }
        self.flush(conn);
    }

    /// Writes what slot `conn` has queued, as far as the socket takes it.
    pub(super) fn flush(&mut self, conn: usize) {
        if let Err(kind) = self.conns[conn].write_out() {
            self.fail(conn, kind);
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        for conn in 0..self.conns.len() {
            let c = &self.conns[conn];
            if c.open && c.overdue(now, self.config.reply_timeout) {
                // The wait is the server's to answer for: keep it in the percentiles, as
                // a wait cut short.
                if now >= self.phases.measure_from {
                    self.tally
                        .censor_waits(&c.in_flight, now, self.phases.measure_from);
                }
                self.fail(conn, FailureKind::Timeout);
            }
        }
    }

    /// The connections now due: sends (open loop) and reconnects (churn).
    fn on_due(&mut self, now: Instant) {
        while let Some(conn) = self.wakeups.pop_due(now) {
            match self.mode {
                Mode::Open(_) => {
                    let c = &mut self.conns[conn];
                    c.wake_queued = false;
                    // A connection that failed sends no more; one still in its handshake
                    // is queued again once the challenge is answered.
                    if c.open && !c.awaiting_nonce {
                        self.fill_pipeline(conn, now);
                    }
                }
                Mode::Churn => self.retry_if_due(conn, now),
                Mode::Closed => {}
            }
        }
    }
}
