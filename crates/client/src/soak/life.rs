//! One connection's life: connect, send a random number of frames in random pieces with
//! a few pipelined, verify every reply as it arrives, close, and account for every byte.
//!
//! The writer runs on its own thread so that a large pipelined frame can never deadlock
//! against its own echo (the server blocks writing the echo until someone reads it).
//! A bounded channel carries each frame's identity from the writer to the reader, which
//! is also what bounds the frames in flight.

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use super::config::SoakConfig;
use super::receive::read_replies;
use super::rng::Rng;
use super::send::{write_frames, Written};
use super::shape;
use super::tally::Tally;
use crate::blocking::{Client, ClientConfig};
use crate::error::ClientError;
use crate::failure::FailureKind;

/// Runs one life of connection `id` and adds its outcome to `tally`.
pub(crate) fn run(
    config: &SoakConfig,
    id: u32,
    rng: &mut Rng,
    stop: &AtomicBool,
    tally: &mut Tally,
) {
    let stream = match connect(config) {
        Ok(stream) => stream,
        Err(err) => {
            tally.error(FailureKind::from_client_error(&err));
            // Do not spin against a server that refuses.
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
    };
    tally.connections += 1;
    let frames = shape::life_frames(rng);
    let window = rng.range(1..=config.depth.max(1));
    let mut writer_rng = rng.fork(1);
    let mut reader_rng = rng.fork(2);
    let (tx, rx) = mpsc::sync_channel(window - 1);
    let outcome = std::thread::scope(|scope| {
        let writer =
            scope.spawn(|| write_frames(config, &stream, id, frames, &mut writer_rng, stop, tx));
        let read = read_replies(config, &stream, id, &mut reader_rng, rx);
        if read.error.is_some() {
            // Unblock a writer stuck on a peer that stopped reading.
            let _ = stream.shutdown(Shutdown::Both);
        }
        let written = writer
            .join()
            .unwrap_or_else(|_| Written::failed(FailureKind::WriterPanic));
        (written, read)
    });
    let (written, read) = outcome;
    tally.messages += read.verified;
    tally.mismatches += read.mismatches;
    tally.bytes_sent += written.checksum.bytes();
    tally.bytes_received += read.checksum.bytes();
    // A writer failure explains the reader's (it shut the socket); count the first cause.
    match (written.error, read.error) {
        (Some(kind), _) | (None, Some(kind)) => tally.error(kind),
        (None, None) => {
            if written.checksum != read.checksum {
                tally.checksum_mismatches += 1;
            }
            if let Err(kind) = close(&stream, rng) {
                tally.error(kind);
            }
        }
    }
}

fn connect(config: &SoakConfig) -> Result<TcpStream, ClientError> {
    let client = Client::connect(&ClientConfig {
        auth_key: config.auth_key.clone(),
        timeout: config.timeout,
        ..ClientConfig::new(config.addr)
    })?;
    client
        .stream()
        .try_clone()
        .map_err(ClientError::io("cloning the socket"))
}

/// Half the lives half-close and wait for the server's EOF (its orderly close path);
/// the others just drop the socket (its EOF-on-read path).
fn close(stream: &TcpStream, rng: &mut Rng) -> Result<(), FailureKind> {
    if rng.percent(50) {
        return Ok(());
    }
    // `shutdown` fails with ENOTCONN on a connection the server already reset.
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| FailureKind::from_io(&e))?;
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Ok(0) => Ok(()),
        Ok(_) => Err(FailureKind::BytesAfterLastReply),
        Err(e) => Err(FailureKind::from_io(&e)),
    }
}
