use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::{encode_frame, FrameLimit, Reply, ReplyDecoder, DEFAULT_MAX_FRAME};

fn framed() -> SessionConfig {
    SessionConfig::default()
}

/// Feeds `chunks` one by one, writing all output after each, and returns the output.
fn run(config: &SessionConfig, chunks: &[&[u8]]) -> (Vec<u8>, Session) {
    let now = Instant::now();
    let mut session = Session::new(config, now, [9; NONCE_LEN]);
    let mut wire = Vec::new();
    for chunk in chunks {
        session.handle_input(chunk, now);
        drain(&mut session, &mut wire);
    }
    (wire, session)
}

fn drain(session: &mut Session, wire: &mut Vec<u8>) {
    let n = session.output().len();
    wire.extend_from_slice(session.output());
    session.consume_output(n, Instant::now());
}

/// Every reply in `wire`, which must end on a reply's boundary (the work tests use it too).
pub(super) fn replies(wire: &[u8]) -> Vec<Reply> {
    let mut decoder = ReplyDecoder::new(u32::MAX >> 1);
    decoder.feed(wire);
    let mut out = Vec::new();
    while let Some(reply) = decoder.next_reply().unwrap() {
        out.push(reply);
    }
    assert_eq!(decoder.buffered(), 0, "trailing partial reply");
    out
}

fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in payloads {
        encode_frame(p, &mut wire).unwrap();
    }
    wire
}

#[test]
fn sticky_packets_stay_two_frames() {
    let wire = frames(&[b"hello", b"feng"]);
    let (out, session) = run(&framed(), &[&wire]);
    assert_eq!(out, wire);
    assert_eq!(session.stats().frames, 2);
    assert!(session.wants_read());
}

#[test]
fn partial_frame_is_held_not_echoed() {
    let wire = frames(&[b"hello"]);
    let (out, mut session) = run(&framed(), &[&wire[..6]]);
    assert!(out.is_empty());
    session.handle_eof(Instant::now());
    assert_eq!(session.close_reason(), Some(CloseReason::Truncated));
    assert!(session.is_closed());
    assert!(session.output().is_empty());
}

#[test]
fn oversize_header_echoes_earlier_frames_then_notice_then_closes() {
    let mut wire = frames(&[b"one", b"two"]);
    wire.extend_from_slice(&(DEFAULT_MAX_FRAME + 1).to_be_bytes());
    wire.extend_from_slice(b"ignored");
    let (out, session) = run(&framed(), &[&wire]);
    let got = replies(&out);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], Reply::Frame(b"one".to_vec()));
    assert_eq!(got[1], Reply::Frame(b"two".to_vec()));
    assert!(matches!(&got[2], Reply::Notice(text) if text.contains("exceeds")));
    assert!(session.is_write_finished(), "FIN is due after the notice");
    assert!(
        session.wants_read(),
        "draining the peer's input before close"
    );
    assert!(!session.is_closed());
    assert_eq!(session.close_reason(), Some(CloseReason::Oversize));
}

#[test]
fn all_ones_header_is_oversize_and_allocates_nothing_big() {
    let (out, session) = run(&framed(), &[&[0xff; 4]]);
    assert!(matches!(replies(&out)[..], [Reply::Notice(_)]));
    assert!(session.buffered_capacity() < 64 * 1024);
}

#[test]
fn raw_mode_echoes_bytes_as_they_arrive() {
    let config = SessionConfig {
        protocol: Protocol::Raw,
        ..framed()
    };
    let (out, session) = run(&config, &[b"he", b"llo\n", &[0xff, 0x00]]);
    assert_eq!(out, b"hello\n\xff\x00");
    assert!(!session.is_closed());
}

#[test]
fn half_close_after_frames_echoes_them_then_closes() {
    let wire = frames(&[b"a", b"b", b"c"]);
    let now = Instant::now();
    let mut session = Session::new(&framed(), now, [0; NONCE_LEN]);
    session.handle_input(&wire, now);
    session.handle_eof(now);
    assert!(!session.is_closed(), "replies still owed");
    assert!(!session.wants_read());
    let mut out = Vec::new();
    drain(&mut session, &mut out);
    assert_eq!(out, wire);
    assert!(session.is_closed());
    assert_eq!(session.close_reason(), Some(CloseReason::PeerClosed));
}

#[test]
fn backpressure_stops_reading_above_high_water() {
    let config = SessionConfig {
        high_water: 1000,
        ..framed()
    };
    let now = Instant::now();
    let mut session = Session::new(&config, now, [0; NONCE_LEN]);
    session.handle_input(&frames(&[&[1; 600]]), now);
    assert!(session.wants_read());
    session.handle_input(&frames(&[&[2; 600]]), now);
    assert!(!session.wants_read());
    session.consume_output(700, now);
    assert!(session.wants_read());
    assert!(session.wants_write());
}

fn auth_config() -> (SessionConfig, Arc<AuthKey>) {
    let key = Arc::new(AuthKey::new(b"0123456789abcdef".to_vec()).unwrap());
    let config = SessionConfig {
        auth_key: Some(Arc::clone(&key)),
        ..framed()
    };
    (config, key)
}

#[test]
fn handshake_sends_nonce_and_accepts_the_right_answer() {
    let (config, key) = auth_config();
    let now = Instant::now();
    let nonce = [42; NONCE_LEN];
    let mut session = Session::new(&config, now, nonce);
    assert_eq!(session.output(), &nonce);
    session.consume_output(NONCE_LEN, now);
    // The answer and the first frame in one write: the frame must not be lost.
    let mut input = key.respond(&nonce).to_vec();
    input.extend(frames(&[b"after auth"]));
    session.handle_input(&input, now);
    assert_eq!(session.output(), frames(&[b"after auth"]).as_slice());
}

#[test]
fn wrong_answer_gets_a_notice_and_closes() {
    let (config, _) = auth_config();
    let now = Instant::now();
    let mut session = Session::new(&config, now, [42; NONCE_LEN]);
    session.consume_output(NONCE_LEN, now);
    session.handle_input(&[0; MAC_LEN], now);
    assert!(
        matches!(&replies(session.output())[..], [Reply::Notice(t)] if t == "authentication failed")
    );
    assert_eq!(session.close_reason(), Some(CloseReason::AuthFailed));
}

#[test]
fn silent_client_is_closed_at_the_handshake_deadline() {
    let (config, _) = auth_config();
    let start = Instant::now();
    let mut session = Session::new(&config, start, [42; NONCE_LEN]);
    session.consume_output(NONCE_LEN, start);
    session.handle_input(&[1; 31], start);
    let deadline = session.poll_timeout().unwrap();
    assert_eq!(deadline, start + config.handshake_timeout);
    session.handle_timeout(deadline - Duration::from_millis(1));
    assert!(session.close_reason().is_none());
    session.handle_timeout(deadline);
    assert_eq!(session.close_reason(), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn trickled_frame_hits_an_absolute_deadline() {
    let config = SessionConfig {
        frame_timeout: Some(Duration::from_secs(2)),
        idle_timeout: Some(Duration::from_secs(60)),
        ..framed()
    };
    let start = Instant::now();
    let mut session = Session::new(&config, start, [0; NONCE_LEN]);
    let wire = frames(&[&[7; 100]]);
    for (i, byte) in wire.iter().take(50).enumerate() {
        let now = start + Duration::from_millis(100 * i as u64);
        session.handle_timeout(now);
        session.handle_input(std::slice::from_ref(byte), now);
    }
    assert_eq!(session.close_reason(), Some(CloseReason::FrameTimeout));
}

#[test]
fn idle_deadline_moves_with_output_progress() {
    let config = SessionConfig {
        idle_timeout: Some(Duration::from_secs(10)),
        ..framed()
    };
    let start = Instant::now();
    let mut session = Session::new(&config, start, [0; NONCE_LEN]);
    session.handle_input(&frames(&[&[1; 100]]), start);
    session.consume_output(50, start + Duration::from_secs(9));
    session.handle_timeout(start + Duration::from_secs(11));
    assert!(session.close_reason().is_none(), "the peer was reading");
    session.handle_timeout(start + Duration::from_secs(19));
    assert_eq!(session.close_reason(), Some(CloseReason::IdleTimeout));
}

#[test]
fn closing_session_gives_up_on_a_peer_that_never_reads() {
    let config = SessionConfig {
        idle_timeout: Some(Duration::from_secs(1)),
        ..framed()
    };
    let start = Instant::now();
    let mut session = Session::new(&config, start, [0; NONCE_LEN]);
    session.handle_input(&frames(&[b"x"]), start);
    session.begin_shutdown(start);
    assert!(!session.is_closed());
    session.handle_timeout(start + Duration::from_secs(2));
    assert!(session.is_closed());
    assert_eq!(session.close_reason(), Some(CloseReason::Abandoned));
}

#[test]
fn shutdown_after_replies_sends_a_notice_in_framed_mode() {
    let now = Instant::now();
    let mut session = Session::new(&framed(), now, [0; NONCE_LEN]);
    session.handle_input(&frames(&[b"x"]), now);
    session.begin_shutdown(now);
    let got = replies(session.output());
    assert_eq!(got[0], Reply::Frame(b"x".to_vec()));
    assert!(matches!(&got[1], Reply::Notice(t) if t.contains("shutting down")));
}

#[test]
fn large_frame_buffers_are_released_after_use() {
    let now = Instant::now();
    let mut session = Session::new(&framed(), now, [0; NONCE_LEN]);
    let wire = frames(&[&vec![5; 1 << 20]]);
    for chunk in wire.chunks(4096) {
        session.handle_input(chunk, now);
    }
    let n = session.output().len();
    assert_eq!(n, wire.len());
    session.consume_output(n, now);
    assert!(session.buffered_capacity() <= 2 * 64 * 1024);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_of_any_frames_gives_the_same_replies(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let wire = frames(&refs);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
        let (out, session) = run(&framed(), &chunks);
        prop_assert_eq!(out, wire);
        prop_assert_eq!(session.stats().frames, payloads.len() as u64);
    }

    #[test]
    fn oversize_headers_always_give_a_notice(
        len in (DEFAULT_MAX_FRAME + 1)..=u32::MAX,
        prefix in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..5),
        split in 0usize..4,
    ) {
        let refs: Vec<&[u8]> = prefix.iter().map(Vec::as_slice).collect();
        let mut wire = frames(&refs);
        let good = wire.len();
        wire.extend_from_slice(&len.to_be_bytes());
        let cut = good + split;
        let (out, session) = run(&framed(), &[&wire[..cut], &wire[cut..]]);
        let got = replies(&out);
        prop_assert_eq!(got.len(), prefix.len() + 1);
        prop_assert!(matches!(got.last(), Some(Reply::Notice(_))));
        prop_assert!(session.is_write_finished());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 0..30),
    ) {
        let config = SessionConfig { max_frame: FrameLimit::new(4096).unwrap(), ..framed() };
        let now = Instant::now();
        let mut session = Session::new(&config, now, [0; NONCE_LEN]);
        for chunk in &chunks {
            session.handle_input(chunk, now);
            prop_assert!(session.buffered_capacity() <= 4 * (4096 + 2000 + 64 * 1024));
            if chunk.len() % 3 == 0 {
                let n = session.output().len();
                session.consume_output(n, now);
            }
        }
        session.handle_eof(now);
    }
}

#[test]
fn drain_ends_at_peer_eof_or_deadline_or_byte_limit() {
    let now = Instant::now();
    let drained = |session: &mut Session| {
        session.handle_input(&[0xff; 4], now);
        let n = session.output().len();
        session.consume_output(n, now);
        assert!(session.is_write_finished() && !session.is_closed());
    };
    let mut by_eof = Session::new(&framed(), now, [0; NONCE_LEN]);
    drained(&mut by_eof);
    by_eof.handle_input(&[1; 1000], now);
    assert!(!by_eof.is_closed());
    by_eof.handle_eof(now);
    assert!(by_eof.is_closed());

    let mut by_time = Session::new(&framed(), now, [0; NONCE_LEN]);
    drained(&mut by_time);
    let deadline = by_time.poll_timeout().unwrap();
    by_time.handle_timeout(deadline);
    assert!(by_time.is_closed());

    let mut by_bytes = Session::new(&framed(), now, [0; NONCE_LEN]);
    drained(&mut by_bytes);
    for _ in 0..300 {
        by_bytes.handle_input(&[1; 1024], now);
    }
    assert!(by_bytes.is_closed());
    assert_eq!(by_bytes.close_reason(), Some(CloseReason::Oversize));
}

#[test]
fn fin_is_due_exactly_once_after_the_last_reply() {
    let now = Instant::now();
    let mut session = Session::new(&framed(), now, [0; NONCE_LEN]);
    session.handle_input(&frames(&[b"last"]), now);
    session.handle_eof(now);
    assert!(!session.take_fin(), "a reply is still owed");
    let n = session.output().len();
    session.consume_output(n, now);
    assert!(session.take_fin());
    assert!(!session.take_fin(), "the FIN is sent once");
}

#[test]
fn bytes_in_flight_hold_back_input_and_the_close() {
    let now = Instant::now();
    let config = SessionConfig {
        high_water: 8,
        ..framed()
    };
    let mut session = Session::new(&config, now, [0; NONCE_LEN]);
    session.handle_input(&frames(&[b"0123456789"]), now);
    let buf = session.take_transmit().unwrap();
    assert!(
        !session.wants_read(),
        "in-flight bytes count against the high-water mark"
    );
    assert!(!session.wants_write(), "one buffer in flight at a time");
    session.begin_shutdown(now);
    assert!(
        !session.is_write_finished(),
        "the notice waits behind the in-flight reply"
    );
    session.complete_transmit(buf, 3, now);
    let rest = session.take_transmit().unwrap();
    assert_eq!(
        rest[..11],
        frames(&[b"0123456789"])[3..],
        "the short send's rest first"
    );
    let len = rest.len();
    session.complete_transmit(rest, len, now);
    assert!(session.is_write_finished());
}
