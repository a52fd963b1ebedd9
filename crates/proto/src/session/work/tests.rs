use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::session::tests::replies;
use crate::{encode_frame, Protocol, Reply, SessionConfig, NONCE_LEN};

/// A handler that records every payload it is given.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Vec<u8>>>);

impl Handler for Recorder {
    fn handle(&self, payload: &[u8]) {
        self.0.lock().unwrap().push(payload.to_vec());
    }
}

impl Recorder {
    fn seen(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
}

fn offload(high_water: usize) -> SessionConfig {
    SessionConfig {
        work: WorkMode::Offload,
        high_water,
        ..SessionConfig::default()
    }
}

fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in payloads {
        encode_frame(p, &mut wire).unwrap();
    }
    wire
}

/// Writes everything the session has to send, as a driver would.
fn write_all(session: &mut Session, wire: &mut Vec<u8>, now: Instant) {
    let n = session.output().len();
    wire.extend_from_slice(session.output());
    session.consume_output(n, now);
}

/// Takes and completes every job the session has, writing replies as they come.
fn work_all(session: &mut Session, wire: &mut Vec<u8>, now: Instant) -> usize {
    let mut done = 0;
    while let Some(job) = session.take_job() {
        session.complete_job(job, now);
        write_all(session, wire, now);
        done += 1;
    }
    done
}

#[test]
fn inline_handler_sees_each_payload_once_in_one_piece() {
    let recorder = Arc::new(Recorder::default());
    let config = SessionConfig {
        work: WorkMode::Inline(recorder.clone()),
        ..SessionConfig::default()
    };
    let big = vec![3u8; 10_000];
    let payloads: [&[u8]; 4] = [b"hello", b"", &big, b"feng"];
    let wire = frames(&payloads);
    let now = Instant::now();
    let mut session = Session::new(&config, now, [0; NONCE_LEN]);
    let mut echoed = Vec::new();
    // Chunks that split headers and payloads, and write only now and then, so frames
    // complete both with output queued and without.
    for (i, chunk) in wire.chunks(777).enumerate() {
        session.handle_input(chunk, now);
        if i % 3 == 0 {
            write_all(&mut session, &mut echoed, now);
        }
    }
    write_all(&mut session, &mut echoed, now);
    assert_eq!(echoed, wire, "the work never alters the bytes");
    assert_eq!(recorder.seen(), payloads.map(<[u8]>::to_vec));
    assert!(!session.wants_job(), "inline work hands out no jobs");
    assert_eq!(session.stats().frames, 4);
}

#[test]
fn offloaded_frames_wait_and_come_back_in_order_across_connections() {
    let now = Instant::now();
    let config = offload(1 << 20);
    let mut a = Session::new(&config, now, [0; NONCE_LEN]);
    let mut b = Session::new(&config, now, [0; NONCE_LEN]);
    let wire_a = frames(&[b"a1", b"a2", b"a3"]);
    let wire_b = frames(&[b"b1", b"b2"]);
    a.handle_input(&wire_a, now);
    b.handle_input(&wire_b, now);
    assert!(a.output().is_empty(), "no reply before its work is done");
    assert_eq!(a.stats().frames, 0);

    let a1 = a.take_job().unwrap();
    assert_eq!(a1.payload(), b"a1");
    assert!(
        !a.wants_job() && a.take_job().is_none(),
        "one job out per connection"
    );
    let b1 = b.take_job().unwrap();
    // The pool finishes them in the other order: each connection still sees its own.
    b.complete_job(b1, now);
    let b2 = b.take_job().unwrap();
    assert_eq!(b2.payload(), b"b2");
    a.complete_job(a1, now);
    b.complete_job(b2, now);
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    write_all(&mut a, &mut out_a, now);
    assert_eq!(work_all(&mut a, &mut out_a, now), 2);
    write_all(&mut b, &mut out_b, now);
    assert_eq!(out_a, wire_a);
    assert_eq!(out_b, wire_b);
    assert_eq!((a.stats().frames, b.stats().frames), (3, 2));
    assert!(!a.wants_job() && a.take_job().is_none());
}

#[test]
fn waiting_frames_and_the_job_out_count_against_the_high_water_mark() {
    let now = Instant::now();
    let mut session = Session::new(&offload(1000), now, [0; NONCE_LEN]);
    session.handle_input(&frames(&[&[1; 600]]), now);
    assert!(session.wants_read(), "604 bytes owed, below 1000");
    session.handle_input(&frames(&[&[2; 600]]), now);
    assert!(!session.wants_read(), "two waiting frames are above it");
    let job = session.take_job().unwrap();
    assert!(!session.wants_read(), "the job out still counts");
    session.complete_job(job, now);
    assert!(!session.wants_read(), "its reply is owed output now");
    session.consume_output(604, now);
    assert!(session.wants_read(), "only the second frame is owed");
    assert!(session.buffered_capacity() < 4 * 1024);
}

#[test]
fn shutdown_with_work_outstanding_sends_every_reply_then_the_notice() {
    let now = Instant::now();
    let mut session = Session::new(&offload(1 << 20), now, [0; NONCE_LEN]);
    let wire = frames(&[b"one", b"two", b"three"]);
    session.handle_input(&wire, now);
    let first = session.take_job().unwrap();
    session.begin_shutdown(now);
    assert!(
        session.output().is_empty(),
        "the notice waits behind the replies"
    );
    assert!(!session.wants_read());
    assert!(!session.is_write_finished() && !session.take_fin());
    assert_eq!(
        session.poll_timeout(),
        None,
        "no linger while the server works"
    );
    session.complete_job(first, now);
    let mut out = Vec::new();
    write_all(&mut session, &mut out, now);
    assert_eq!(work_all(&mut session, &mut out, now), 2);
    let got = replies(&out);
    assert_eq!(got.len(), 4);
    assert_eq!(got[2], Reply::Frame(b"three".to_vec()));
    assert!(matches!(&got[3], Reply::Notice(t) if t == "server shutting down"));
    assert!(session.take_fin(), "FIN after the notice");
    assert_eq!(session.close_reason(), Some(CloseReason::Shutdown));
}

#[test]
fn shutdown_with_no_work_outstanding_sends_the_notice_at_once() {
    let now = Instant::now();
    let mut session = Session::new(&offload(1 << 20), now, [0; NONCE_LEN]);
    session.begin_shutdown(now);
    assert!(matches!(&replies(session.output())[..], [Reply::Notice(_)]));
}

#[test]
fn oversize_header_behind_offloaded_frames_gets_its_notice_last() {
    let now = Instant::now();
    let mut session = Session::new(&offload(1 << 20), now, [0; NONCE_LEN]);
    let mut wire = frames(&[b"x", b"y"]);
    wire.extend_from_slice(&u32::MAX.to_be_bytes());
    session.handle_input(&wire, now);
    assert!(session.output().is_empty());
    let mut out = Vec::new();
    assert_eq!(work_all(&mut session, &mut out, now), 2);
    let got = replies(&out);
    assert_eq!(
        got[..2],
        [Reply::Frame(b"x".to_vec()), Reply::Frame(b"y".to_vec())]
    );
    assert!(matches!(&got[2], Reply::Notice(t) if t.contains("exceeds")));
    assert_eq!(got.len(), 3);
}

#[test]
fn peer_eof_with_work_outstanding_still_gets_every_whole_frame_back() {
    let now = Instant::now();
    let mut session = Session::new(&offload(1 << 20), now, [0; NONCE_LEN]);
    let whole = frames(&[b"keep", b"me"]);
    let mut wire = whole.clone();
    wire.extend_from_slice(&frames(&[b"partial"])[..6]);
    session.handle_input(&wire, now);
    let job = session.take_job().unwrap();
    session.handle_eof(now);
    assert_eq!(session.close_reason(), Some(CloseReason::Truncated));
    assert!(!session.is_closed(), "a job is out and a frame waits");
    assert!(!session.wants_job(), "one job out at a time, even closing");
    session.complete_job(job, now);
    let mut out = Vec::new();
    write_all(&mut session, &mut out, now);
    assert!(!session.is_closed(), "the second frame waits");
    work_all(&mut session, &mut out, now);
    assert_eq!(
        out, whole,
        "whole frames only, no notice after a peer's FIN"
    );
    assert!(session.is_closed());
}

#[test]
fn a_session_abandoned_with_a_job_out_closes_when_the_job_returns() {
    let now = Instant::now();
    let mut session = Session::new(&offload(1 << 20), now, [0; NONCE_LEN]);
    session.handle_input(&frames(&[b"lost", b"also lost"]), now);
    let job = session.take_job().unwrap();
    session.abandon();
    assert!(!session.is_closed(), "a worker still holds the job");
    assert!(!session.wants_job() && !session.wants_read() && !session.wants_write());
    session.complete_job(job, now);
    assert!(session.is_closed());
    assert!(session.output().is_empty(), "the reply is dropped");
    assert_eq!(session.stats().frames, 0);
    assert_eq!(session.close_reason(), Some(CloseReason::Abandoned));

    let mut idle = Session::new(&offload(1 << 20), now, [0; NONCE_LEN]);
    idle.abandon();
    assert!(idle.is_closed(), "with no job out, at once");
}

#[test]
fn idle_and_linger_deadlines_wait_for_the_work_but_the_frame_deadline_does_not() {
    let config = SessionConfig {
        idle_timeout: Some(Duration::from_secs(1)),
        frame_timeout: Some(Duration::from_secs(2)),
        ..offload(1 << 20)
    };
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let mut session = Session::new(&config, start, [0; NONCE_LEN]);
    session.handle_input(&frames(&[b"slow"]), start);
    let job = session.take_job().unwrap();
    assert_eq!(session.poll_timeout(), None);
    session.handle_timeout(at(5));
    assert_eq!(
        session.close_reason(),
        None,
        "waiting for the server is not idling"
    );
    // Half a frame: its absolute deadline runs even while the job is out.
    session.handle_input(&frames(&[b"half"])[..5], at(5));
    assert_eq!(session.poll_timeout(), Some(at(7)));
    session.handle_timeout(at(7));
    assert_eq!(session.close_reason(), Some(CloseReason::FrameTimeout));
    // Closing, a job out, and a peer that never reads: no linger until the reply is
    // queued, then the linger counts from there.
    session.handle_timeout(at(100));
    assert!(!session.is_closed());
    session.complete_job(job, at(100));
    assert_eq!(session.poll_timeout(), Some(at(101)));
    session.handle_timeout(at(101));
    assert!(session.is_closed());
    assert_eq!(session.close_reason(), Some(CloseReason::Abandoned));
}

#[test]
fn raw_sessions_ignore_the_work_mode() {
    let recorder = Arc::new(Recorder::default());
    for work in [WorkMode::Offload, WorkMode::Inline(recorder.clone())] {
        let config = SessionConfig {
            protocol: Protocol::Raw,
            work,
            ..SessionConfig::default()
        };
        let now = Instant::now();
        let mut session = Session::new(&config, now, [0; NONCE_LEN]);
        session.handle_input(b"\x00\x00\x00\x01x", now);
        assert_eq!(session.output(), b"\x00\x00\x00\x01x");
        assert!(!session.wants_job());
    }
    assert!(recorder.seen().is_empty());
}

#[test]
fn owned_transmits_and_offloaded_jobs_interleave_in_order() {
    let now = Instant::now();
    let mut session = Session::new(&offload(1 << 20), now, [0; NONCE_LEN]);
    let wire = frames(&[b"first", b"second"]);
    session.handle_input(&wire, now);
    let job = session.take_job().unwrap();
    session.complete_job(job, now);
    let buf = session.take_transmit().unwrap();
    let job = session.take_job().unwrap();
    session.complete_job(job, now);
    session.complete_transmit(buf, 3, now);
    let rest = session.take_transmit().unwrap();
    let mut out = frames(&[b"first"])[..3].to_vec();
    out.extend_from_slice(&rest);
    assert_eq!(out, wire);
}
