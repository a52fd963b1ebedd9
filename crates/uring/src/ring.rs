//! Opening the ring: the kernel checks, the setup flags, the opcode probe and the
//! fixed-file table, all before the listener is bound.

use io_uring::{opcode, IoUring};

use crate::{error, UringError, RING_ENTRIES};

/// Checks the kernel, sets up the ring and probes for every request the loop makes.
pub(crate) fn open_ring() -> Result<IoUring, UringError> {
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        error::check_release(release.trim(), (6, 0), "6.0", "multishot receive")?;
    }
    // Only this thread submits, and completions are finished when it enters the kernel
    // rather than by interrupting it (`COOP_TASKRUN`, Linux 5.19). `DEFER_TASKRUN`
    // (6.1), which defers that work further, to the wait, is left off: it cost more CPU
    // per response here, not less (the runs: docs/benchmarking.md, "uring against the C multishot
    // io_uring server").
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_cqsize(RING_ENTRIES * 4)
        .build(RING_ENTRIES)
        .map_err(UringError::setup)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(UringError::Unsupported {
            feature: "IORING_FEAT_EXT_ARG (a timeout on the wait)",
            since: "5.11",
        });
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|source| UringError::Refused {
            what: "the opcode probe",
            since: "5.6",
            source,
        })?;
    let needed = [
        (opcode::AcceptMulti::CODE, "IORING_OP_ACCEPT", "5.5"),
        (opcode::RecvMulti::CODE, "IORING_OP_RECV", "5.6"),
        (opcode::Send::CODE, "IORING_OP_SEND", "5.6"),
        (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL", "5.5"),
        (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD", "5.1"),
    ];
    for (code, feature, since) in needed {
        if !probe.is_supported(code) {
            return Err(UringError::Unsupported { feature, since });
        }
    }
    Ok(ring)
}

/// A sparse fixed-file table of one slot per possible connection (at most 65,536; the
/// kernel also caps it at the descriptor limit), or none when the kernel refuses it:
/// then requests name plain descriptors, which works the same at the cost of a lookup
/// per request.
pub(crate) fn register_fixed_table(ring: &IoUring, max_conns: usize) -> u32 {
    let mut slots = u32::try_from(max_conns).unwrap_or(u32::MAX).min(1 << 16);
    while slots >= 64 {
        if ring.submitter().register_files_sparse(slots).is_ok() {
            return slots;
        }
        slots /= 2;
    }
    0
}
