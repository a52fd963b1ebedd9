//! The writing half of a life: frames of random sizes, each announced to the reader
//! before it is written, then written in random pieces with random pauses.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use echolab_proto::encode_frame;

use super::checksum::Checksum;
use super::config::SoakConfig;
use super::rng::Rng;
use super::shape;
use crate::failure::FailureKind;
use crate::payload;

/// The identity of a frame in flight: the reader regenerates its payload to compare.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) seq: u64,
    pub(crate) len: usize,
}

pub(crate) struct Written {
    pub(crate) checksum: Checksum,
    pub(crate) error: Option<FailureKind>,
}

impl Written {
    pub(crate) fn failed(kind: FailureKind) -> Written {
        Written {
            checksum: Checksum::default(),
            error: Some(kind),
        }
    }
}

pub(crate) fn write_frames(
    config: &SoakConfig,
    stream: &TcpStream,
    id: u32,
    frames: u64,
    rng: &mut Rng,
    stop: &AtomicBool,
    tx: SyncSender<Sent>,
) -> Written {
    let mut checksum = Checksum::default();
    let mut wire = Vec::new();
    let mut body = Vec::new();
    for seq in 0..frames {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let len = shape::frame_size(rng, config.max_size);
        // Blocks while the window is full: this is the pipelining bound.
        if tx.send(Sent { seq, len }).is_err() {
            // The reader gave up and reported why.
            break;
        }
        body.resize(len, 0);
        payload::fill(&mut body, id, seq ^ config.seed);
        checksum.update(&body);
        wire.clear();
        if encode_frame(&body, &mut wire).is_err() {
            return Written::failed(FailureKind::FrameTooLarge);
        }
        if let Err(err) = write_in_pieces(stream, &wire, rng) {
            let _ = stream.shutdown(Shutdown::Both);
            return Written {
                checksum,
                error: Some(FailureKind::from_io(&err)),
            };
        }
    }
    Written {
        checksum,
        error: None,
    }
}

fn write_in_pieces(stream: &TcpStream, wire: &[u8], rng: &mut Rng) -> io::Result<()> {
    let mut from = 0;
    let cuts = shape::write_cuts(rng, wire.len());
    for to in cuts.into_iter().chain(std::iter::once(wire.len())) {
        (&*stream).write_all(&wire[from..to])?;
        from = to;
        if let Some(pause) = shape::pause(rng) {
            std::thread::sleep(pause);
        }
    }
    Ok(())
}
