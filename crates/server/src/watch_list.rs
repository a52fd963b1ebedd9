//! The interest set of a waiter whose kernel call keeps none (select, poll, a busy
//! loop): the program must hand the whole set over on every call, so it keeps it
//! dense, with O(1) add, change and remove.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::{Interest, Ready, Source, Waiter};

/// One watched descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// What it is.
    pub source: Source,
    /// The descriptor; open for as long as it is in the list (the loop removes a
    /// source before closing it).
    pub fd: RawFd,
    /// What it is watched for.
    pub interest: Interest,
}

/// A dense list of watched descriptors plus each source's position in it. Removal
/// swaps the last entry into the hole instead of shifting the tail, so closing one of
/// 10,000 connections does not move 10,000 entries. A waiter that keeps an array in
/// step with the list (`poll`'s `pollfd`s) mirrors each change at
/// [`WatchList::position`].
#[derive(Debug, Default)]
pub struct WatchList {
    entries: Vec<Watched>,
    listener: Option<usize>,
    waker: Option<usize>,
    offload: Option<usize>,
    /// Position of connection `i` at `conns[i]`, `usize::MAX` when not watched.
    conns: Vec<usize>,
}

impl WatchList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `source` (replacing any entry it had).
    pub fn add(&mut self, source: Source, fd: BorrowedFd<'_>, interest: Interest) {
        self.remove(source);
        let watched = Watched {
            source,
            fd: fd.as_raw_fd(),
            interest,
        };
        self.set_position(source, Some(self.entries.len()));
        self.entries.push(watched);
    }

    /// Changes what `source` is watched for (nothing if it is not watched).
    pub fn set_interest(&mut self, source: Source, interest: Interest) {
        if let Some(watched) = self.get_mut(source) {
            watched.interest = interest;
        }
    }

    /// The entry of `source`, if watched.
    pub fn get_mut(&mut self, source: Source) -> Option<&mut Watched> {
        let at = self.position(source)?;
        self.entries.get_mut(at)
    }

    /// Stops watching `source`.
    pub fn remove(&mut self, source: Source) -> Option<Watched> {
        let at = self.position(source)?;
        self.set_position(source, None);
        let removed = self.entries.swap_remove(at);
        if let Some(moved) = self.entries.get(at) {
            self.set_position(moved.source, Some(at));
        }
        Some(removed)
    }

    /// Every entry, in list order.
    pub fn entries(&self) -> &[Watched] {
        &self.entries
    }

    /// How many descriptors are watched.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where `source` sits in [`WatchList::entries`] (an array a waiter keeps in step
    /// with the list mirrors each removal with a `swap_remove` at the same position).
    pub fn position(&self, source: Source) -> Option<usize> {
        match source {
            Source::Listener => self.listener,
            Source::Waker => self.waker,
            Source::Offload => self.offload,
            Source::Conn(index) => self.conns.get(index).copied().filter(|&p| p != usize::MAX),
        }
    }

    fn set_position(&mut self, source: Source, at: Option<usize>) {
        match source {
            Source::Listener => self.listener = at,
            Source::Waker => self.waker = at,
            Source::Offload => self.offload = at,
            Source::Conn(index) => {
                if index >= self.conns.len() {
                    self.conns.resize(index + 1, usize::MAX);
                }
                self.conns[index] = at.unwrap_or(usize::MAX);
            }
        }
    }
}

/// A waiter whose whole interest set is the [`WatchList`] it keeps (select, a busy
/// loop): it says only how it waits; adding, changing and removing sources is the
/// list's, once, for every such waiter.
pub trait ListWaiter {
    /// The list of what is watched.
    fn list(&mut self) -> &mut WatchList;
    /// As [`Waiter::can_watch`].
    fn can_watch(&self, _fd: BorrowedFd<'_>) -> bool {
        true
    }
    /// As [`Waiter::wait`], over [`ListWaiter::list`].
    fn wait(
        &mut self,
        timeout: Option<Duration>,
        idle: bool,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()>;
}

impl<T: ListWaiter> Waiter for T {
    fn can_watch(&self, fd: BorrowedFd<'_>) -> bool {
        ListWaiter::can_watch(self, fd)
    }

    fn add(&mut self, source: Source, fd: BorrowedFd<'_>, interest: Interest) -> io::Result<()> {
        if !ListWaiter::can_watch(self, fd) {
            return Err(io::Error::other("this waiter cannot watch that descriptor"));
        }
        self.list().add(source, fd, interest);
        Ok(())
    }

    fn modify(&mut self, source: Source, _: BorrowedFd<'_>, interest: Interest) -> io::Result<()> {
        self.list().set_interest(source, interest);
        Ok(())
    }

    fn remove(&mut self, source: Source, _: BorrowedFd<'_>) {
        self.list().remove(source);
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        idle: bool,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        ListWaiter::wait(self, timeout, idle, ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn removal_swaps_the_last_entry_in_and_keeps_positions_right() {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let mut list = WatchList::new();
        for i in 0..5 {
            list.add(Source::Conn(i), fd, Interest::READ);
        }
        list.add(Source::Listener, fd, Interest::READ);
        assert_eq!(
            list.remove(Source::Conn(1)).map(|w| w.source),
            Some(Source::Conn(1))
        );
        assert_eq!(list.len(), 5);
        // The listener moved into the hole; every source still finds its own entry.
        for source in [
            Source::Conn(0),
            Source::Conn(2),
            Source::Conn(3),
            Source::Conn(4),
            Source::Listener,
        ] {
            let entry = list.get_mut(source).expect("still watched");
            assert_eq!(entry.source, source);
        }
        assert_eq!(list.position(Source::Listener), Some(1));
        assert!(list.get_mut(Source::Conn(1)).is_none());
        assert!(list.remove(Source::Conn(1)).is_none(), "removed once");
        assert!(list.get_mut(Source::Conn(17)).is_none());
    }
}
