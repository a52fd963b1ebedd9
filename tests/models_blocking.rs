//! Tests of what only the fork and pool models promise: no zombie children, no orphan
//! after SIGTERM, and a bounded queue in front of a fixed set of workers. Servers run
//! as child processes (`echolab serve`); nothing here forks inside the test process.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use echolab_proto::Reply;
use support::*;

/// The pids of `parent`'s children, each with its state letter (`Z` for a zombie).
fn children_of(parent: u32) -> Vec<(u32, char)> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces or parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|s| s.parse::<u32>().ok());
        if let (Some(state), Some(ppid)) = (state, ppid) {
            if ppid == parent {
                children.push((pid, state));
            }
        }
    }
    children
}

fn zombies_of(parent: u32) -> usize {
    children_of(parent)
        .iter()
        .filter(|(_, state)| *state == 'Z')
        .count()
}

#[test]
fn fork_leaves_no_zombies_and_no_orphans() {
    let mut server = ServerGuard::start("fork", &[]);
    for i in 0..200u32 {
        let mut stream = server.connect();
        let payload = format!("short {i}");
        stream
            .write_all(&frames(&[payload.as_bytes()]))
            .expect("write");
        assert_eq!(
            expect_frame(&read_replies(&mut stream, 1)[0]),
            payload.as_bytes()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let zombies = zombies_of(server.pid());
        if zombies == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{zombies} zombie children 3 s after 200 short connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Two clients stay connected through SIGTERM: their processes must be gone after.
    let mut held: Vec<_> = (0..2).map(|_| server.connect()).collect();
    for stream in &mut held {
        stream.write_all(&frames(&[b"held"])).expect("write");
        assert_eq!(expect_frame(&read_replies(stream, 1)[0]), b"held");
    }
    let live: Vec<u32> = children_of(server.pid())
        .into_iter()
        .filter(|(_, state)| *state != 'Z')
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(live.len(), 2, "one process per held client: {live:?}");
    let (status, _, stats) = server.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    for stream in &mut held {
        let (_, end) = read_until_close(stream);
        end.expect("clean close at shutdown");
    }
    for pid in live {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} outlived the server"
        );
    }
    let stats = stats.expect("JSON stats line on exit");
    assert_eq!(stats["frames"].as_u64(), Some(202), "{stats}");
    assert_eq!(stats["accepted"].as_u64(), Some(202), "{stats}");
}

#[test]
fn pool_third_client_waits_for_a_free_worker() {
    let server = ServerGuard::start("pool", &["--workers", "2"]);
    let mut a = server.client();
    let mut b = server.client();
    assert_eq!(a.echo(b"a").expect("a served"), b"a");
    assert_eq!(b.echo(b"b").expect("b served"), b"b");
    let mut c = server.connect();
    c.write_all(&frames(&[b"c"])).expect("write");
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let waited = c.read(&mut byte);
    assert!(
        waited.is_err(),
        "both workers are busy, yet the third client was answered: {waited:?}"
    );
    drop(a);
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    assert_eq!(expect_frame(&read_replies(&mut c, 1)[0]), b"c");
    assert_eq!(b.echo(b"b2").expect("b still served"), b"b2");
}

#[test]
fn pool_queue_is_bounded_by_max_conns() {
    let server = ServerGuard::start("pool", &["--workers", "1", "--max-conns", "2"]);
    let mut first = server.client();
    assert_eq!(first.echo(b"first").expect("first served"), b"first");
    let mut second = server.connect();
    second.write_all(&frames(&[b"second"])).expect("write");
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let waited = second.read(&mut byte);
    assert!(waited.is_err(), "second should be queued: {waited:?}");
    let mut third = server.connect();
    let (replies, _) = read_until_close(&mut third);
    assert!(
        matches!(&replies[..], [Reply::Notice(t)] if t == "server busy"),
        "{replies:?}"
    );
    drop(first);
    second.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    assert_eq!(expect_frame(&read_replies(&mut second, 1)[0]), b"second");
}
