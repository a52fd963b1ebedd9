//! A once-a-second progress line on stderr, only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Prints `elapsed / responses so far` every second until `end` (then clears the line).
/// Does nothing when stderr is not a terminal.
pub(crate) fn report_until(start: Instant, end: Instant, responses: &AtomicU64) {
    let mut stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return;
    }
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_secs(1)));
        let _ = write!(
            stderr,
            "\r{:>6.1} s  {} responses so far",
            start.elapsed().as_secs_f64(),
            responses.load(Ordering::Relaxed)
        );
        let _ = stderr.flush();
    }
    let _ = write!(stderr, "\r\x1b[2K");
    let _ = stderr.flush();
}
