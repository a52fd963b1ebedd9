//! The instants every generator thread runs by.

use std::time::Instant;

/// The instants every thread runs by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Phases {
    pub(super) start: Instant,
    pub(super) measure_from: Instant,
    pub(super) end: Instant,
}

impl Phases {
    pub(super) fn measured(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.end
    }
}
