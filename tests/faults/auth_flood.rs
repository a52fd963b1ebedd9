//! Case 14 of issue 6, the parts `auth_abuse` leaves out: data sent before the
//! answer, 1,000 handshakes with no repeated nonce, and a flood of unauthenticated
//! connections at once — capped by `--max-conns`, each admitted one dropped at the
//! handshake deadline. `iterative` admits one connection at a time, so its flood is 3
//! connections, each dropped at its own deadline in turn; nobody is refused. Worker
//! processes (`prefork`, 16 here) admit one each, fewer than `--max-conns 20`: nobody
//! is refused either, and the flood is challenged and dropped 16 at a time while the
//! rest wait in the backlog.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use echolab_proto::{Reply, ReplyDecoder, NONCE_LEN};
use echolab_registry::Model;

use super::{start, KEY};
use crate::support::{assert_elapsed_within, frames, read_until_close, KeyFile};

const MAX_CONNS: usize = 20;

/// How one unauthenticated connection ended.
enum Ended {
    /// Got the challenge, then the `handshake timeout` notice and a close, this long
    /// after the challenge arrived.
    DroppedAtDeadline(Duration),
    /// Got `server busy` and a close, no challenge.
    Refused,
}

/// Reads one silent connection to its end and says how it ended.
fn silent_connection(mut stream: std::net::TcpStream, model: &str) -> Ended {
    let mut nonce = [0u8; NONCE_LEN];
    let mut got = 0;
    let mut challenged_at = None;
    let mut rest = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{model}: silent connection: {e}"));
        if n == 0 {
            break;
        }
        let take = (NONCE_LEN - got).min(n);
        nonce[got..got + take].copy_from_slice(&buf[..take]);
        got += take;
        if got == NONCE_LEN && challenged_at.is_none() {
            challenged_at = Some(Instant::now());
        }
        rest.extend_from_slice(&buf[take..n]);
    }
    let decode = |bytes: &[u8]| {
        let mut decoder = ReplyDecoder::new(1 << 20);
        decoder.feed(bytes);
        let mut replies = Vec::new();
        while let Ok(Some(reply)) = decoder.next_reply() {
            replies.push(reply);
        }
        replies
    };
    match challenged_at {
        Some(at) => {
            let replies = decode(&rest);
            assert!(
                matches!(&replies[..], [Reply::Notice(t)] if t.contains("handshake")),
                "{model}: after the challenge: {replies:?}"
            );
            Ended::DroppedAtDeadline(at.elapsed())
        }
        None => {
            let replies = decode(&nonce[..got]);
            assert!(
                matches!(&replies[..], [Reply::Notice(t)] if t == "server busy"),
                "{model}: neither a challenge nor server busy: {replies:?}"
            );
            Ended::Refused
        }
    }
}

pub(crate) fn unauthenticated_flood_capped_and_dropped(model: &Model) {
    let key = KeyFile::new(KEY);
    let max_conns = MAX_CONNS.to_string();
    let auth = [
        "--auth-key-file",
        key.path_str(),
        "--handshake-timeout",
        "1",
    ];
    let server = start(model, &[&auth[..], &["--max-conns", &max_conns]].concat());

    // The flood first, while no slot is taken: every connection at once, none says a
    // word.
    let flood = if model.concurrent() { 50 } else { 3 };
    let streams: Vec<_> = (0..flood).map(|_| server.connect()).collect();
    let started = Instant::now();
    let endings: Vec<Ended> = std::thread::scope(|scope| {
        let readers: Vec<_> = streams
            .into_iter()
            .map(|s| scope.spawn(move || silent_connection(s, model.name)))
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("reader"))
            .collect()
    });
    let refused = endings
        .iter()
        .filter(|e| matches!(e, Ended::Refused))
        .count();
    // Only a model that accepts beyond what it serves at once refuses (see the module
    // doc).
    let expected_refused = if !model.accepts_when_free {
        flood - MAX_CONNS
    } else {
        0
    };
    eprintln!(
        "{}: flood of {flood}: {} challenged and dropped, {refused} refused, in {:?}",
        model.name,
        flood - refused,
        started.elapsed()
    );
    assert_eq!(refused, expected_refused, "{}: refused", model.name);
    for ended in &endings {
        if let Ended::DroppedAtDeadline(after) = ended {
            assert_elapsed_within(
                *after,
                Duration::from_millis(800),
                Duration::from_millis(2500),
            );
        }
    }

    // Data before the answer: a frame sent before the challenge is read is taken as
    // the answer (its first 32 bytes), and fails.
    {
        let mut stream = server.connect();
        stream
            .write_all(&frames(&[&[0x42; 60]]))
            .expect("write before the challenge");
        let mut nonce = [0u8; NONCE_LEN];
        stream.read_exact(&mut nonce).expect("challenge");
        let (replies, _) = read_until_close(&mut stream);
        assert!(
            matches!(&replies[..], [Reply::Notice(t)] if t == "authentication failed"),
            "{}: data before the answer: {replies:?}",
            model.name
        );
    }

    // 1,000 handshakes (sequential, so the cap never bites), 1,000 different nonces.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let mut stream = server.connect();
        let mut nonce = [0u8; NONCE_LEN];
        stream.read_exact(&mut nonce).expect("nonce");
        seen.insert(nonce);
        // Answer, so the server frees the slot at once instead of at the deadline.
        let mut wire = key.key.respond(&nonce).to_vec();
        wire.extend_from_slice(&frames(&[b"ok"]));
        stream.write_all(&wire).expect("answer");
        let mut echo = [0u8; 6];
        stream
            .read_exact(&mut echo)
            .expect("echo after the handshake");
    }
    assert_eq!(seen.len(), 1000, "{}: a nonce repeated", model.name);
}
