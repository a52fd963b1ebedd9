//! `echolab serve uring` on a kernel that refuses io_uring: a clear `io_uring
//! unavailable: ...` error and a non-zero exit before anything is bound, never a crash.
//! The refusal is made with `strace --inject` (the syscall fails with the errno a
//! disabled io_uring, a seccomp filter or an old kernel gives), so the test needs no
//! change to the machine; without strace it is ignored, with the reason.

mod support;

use std::process::Command;

use support::suite::{self, test, Test};

const TESTS: &[Test] = &[
    test("uring::setup_not_permitted", setup_not_permitted).needs(strace),
    test("uring::setup_not_implemented", setup_not_implemented).needs(strace),
];

fn main() {
    suite::run_once(TESTS)
}

fn strace() -> Result<(), String> {
    let found = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        Ok(())
    } else {
        Err("needs strace (it injects the refusal)".to_string())
    }
}

fn setup_not_permitted() {
    refused(
        "io_uring_setup",
        "EPERM",
        "io_uring unavailable: io_uring_setup failed",
    );
}

fn setup_not_implemented() {
    refused(
        "io_uring_setup",
        "ENOSYS",
        "io_uring unavailable: io_uring_setup failed",
    );
}

fn refused(syscall: &str, errno: &str, expected: &str) {
    let output = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:error={errno}"))
        .args([
            env!("CARGO_BIN_EXE_echolab"),
            "serve",
            "uring",
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run echolab serve uring under strace");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{syscall} -> {errno}: exit {:?}, stderr {stderr}",
        output.status
    );
    assert!(stderr.contains(expected), "{syscall} -> {errno}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "{syscall} -> {errno}: {stderr}"
    );
    assert!(
        !stdout.contains("listening on"),
        "{syscall} -> {errno}: announced before failing: {stdout}"
    );
}
