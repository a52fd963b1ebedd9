//! Per-connection deadlines for a single-threaded readiness loop: a min-heap with lazy
//! invalidation, and the slab of connections whose generations make that safe.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A min-heap of `(deadline, slab index, generation)` with lazy invalidation.
///
/// Each connection remembers the deadline it has in the heap (`scheduled`). Moving a
/// deadline *earlier* pushes a new entry; moving it later pushes nothing — the old
/// entry fires, is found stale, and the connection is rescheduled then. Entries for a
/// closed connection, or for an old occupant of a reused slot, are skipped on expiry.
/// A wakeup therefore costs O(log n) in timers, not a scan of every session.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    // 24 bytes an entry, one entry per connection at rest: index and generation as u32
    // (a loop holds far fewer than 2^32 connections; a generation that wraps could only
    // confuse an entry over four billion connections stale, and a stale entry only
    // costs a spurious timeout check).
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
}

/// A heap entry whose deadline has passed; see [`Expired::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired {
    /// The deadline the entry was pushed with.
    pub(crate) deadline: Instant,
    /// The slab index of the connection it was pushed for.
    pub(crate) index: usize,
    /// The generation of the connection it was pushed for.
    pub(crate) generation: u32,
}

impl Deadlines {
    /// An empty heap.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Makes sure the connection at `index` (of `generation`) is woken by `deadline`.
    ///
    /// `scheduled` is the connection's own record of its entry in the heap. Only an
    /// earlier deadline needs a new entry; a later one (the idle timer moved on) is
    /// found when the old entry fires and the session re-checks.
    pub(crate) fn schedule(
        &mut self,
        index: usize,
        generation: u32,
        deadline: Instant,
        scheduled: &mut Option<Instant>,
    ) {
        if !matches!(*scheduled, Some(s) if s <= deadline) {
            *scheduled = Some(deadline);
            self.heap
                .push(Reverse((deadline, index as u32, generation)));
        }
    }

    /// The earliest deadline in the heap (possibly stale), for the poll timeout.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Removes and returns the next entry due at `now`, stale or not.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Expired> {
        let Reverse((deadline, index, generation)) = *self.heap.peek()?;
        if deadline > now {
            return None;
        }
        self.heap.pop();
        Some(Expired {
            deadline,
            index: index as usize,
            generation,
        })
    }
}

impl Expired {
    /// Whether this entry is the one the connection (of `generation`, whose record is
    /// `scheduled`) is waiting for; if so, clears `scheduled`. An entry is stale when
    /// an earlier one superseded it, or when its slot now holds another connection.
    pub(crate) fn claim(&self, generation: u32, scheduled: &mut Option<Instant>) -> bool {
        if generation != self.generation || *scheduled != Some(self.deadline) {
            return false;
        }
        *scheduled = None;
        true
    }
}

/// The connections of a readiness loop: a `Vec` of slots with a free list, so a
/// connection's index (its poller key) stays put, plus a generation counter that tells
/// a reused slot from the connection a stale [`Deadlines`] entry was meant for.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
    next_generation: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            next_generation: 0,
        }
    }
}

impl<T> Slab<T> {
    /// An empty slab.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Reserves an empty slot and a fresh generation for a new connection. The slot
    /// must then be filled with [`Slab::insert`] or given back with [`Slab::unreserve`].
    pub(crate) fn reserve(&mut self) -> (usize, u32) {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        (index, self.next_generation)
    }

    /// Gives back a reserved slot that was never filled.
    pub(crate) fn unreserve(&mut self, index: usize) {
        self.free.push(index);
    }

    /// Fills a reserved slot.
    pub(crate) fn insert(&mut self, index: usize, value: T) {
        self.slots[index] = Some(value);
    }

    /// The connection at `index`, if the slot is occupied.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.slots.get_mut(index).and_then(Option::as_mut)
    }

    /// Takes the connection out of its slot and frees the slot.
    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        let value = self.slots.get_mut(index).and_then(Option::take)?;
        self.free.push(index);
        Some(value)
    }

    /// One past the highest index ever used: every connection's index is below this.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Whether no slot is occupied (O(1)).
    pub(crate) fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earlier_deadline_supersedes_and_stale_entries_are_skipped() {
        let t0 = Instant::now();
        let (late, early) = (t0 + Duration::from_secs(10), t0 + Duration::from_secs(5));
        let mut deadlines = Deadlines::new();
        let mut scheduled = None;

        deadlines.schedule(3, 7, late, &mut scheduled);
        assert_eq!(scheduled, Some(late));
        // A later deadline pushes nothing; an earlier one supersedes.
        deadlines.schedule(3, 7, t0 + Duration::from_secs(20), &mut scheduled);
        assert_eq!(scheduled, Some(late));
        deadlines.schedule(3, 7, early, &mut scheduled);
        assert_eq!(scheduled, Some(early));
        assert_eq!(deadlines.next_deadline(), Some(early));

        assert_eq!(deadlines.pop_expired(t0), None, "nothing due yet");
        let first = deadlines.pop_expired(late).unwrap();
        assert_eq!((first.deadline, first.index), (early, 3));
        assert!(first.claim(7, &mut scheduled));
        assert_eq!(scheduled, None);

        // The superseded entry fires too, and is stale.
        let second = deadlines.pop_expired(late).unwrap();
        assert_eq!(second.deadline, late);
        assert!(!second.claim(7, &mut scheduled));
        assert_eq!(deadlines.pop_expired(late), None);
        assert_eq!(deadlines.next_deadline(), None);
    }

    #[test]
    fn entry_for_an_old_occupant_of_a_reused_slot_is_stale() {
        let t0 = Instant::now();
        let mut slab = Slab::new();
        let mut deadlines = Deadlines::new();

        let (index, old) = slab.reserve();
        slab.insert(index, None::<Instant>);
        deadlines.schedule(index, old, t0, slab.get_mut(index).unwrap());
        assert!(slab.remove(index).is_some());
        assert!(slab.is_empty());

        let (reused, new) = slab.reserve();
        assert_eq!(reused, index);
        assert_ne!(new, old);
        slab.insert(reused, Some(t0));
        let entry = deadlines.pop_expired(t0).unwrap();
        let scheduled = slab.get_mut(reused).unwrap();
        assert!(!entry.claim(new, scheduled), "pushed for the old occupant");
        assert_eq!(
            *scheduled,
            Some(t0),
            "the new occupant's record is untouched"
        );
    }

    #[test]
    fn slab_reuses_freed_slots() {
        let mut slab = Slab::new();
        let (a, _) = slab.reserve();
        slab.insert(a, 'a');
        let (b, _) = slab.reserve();
        slab.unreserve(b);
        let (b2, _) = slab.reserve();
        assert_eq!(b, b2);
        slab.insert(b2, 'b');
        assert_eq!(slab.capacity(), 2);
        assert_eq!(slab.remove(a), Some('a'));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get_mut(b2), Some(&mut 'b'));
        assert!(!slab.is_empty());
    }
}
