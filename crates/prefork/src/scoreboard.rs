//! The scoreboard: counters every worker process reads and writes, in one shared
//! anonymous mapping made before the first fork (Apache's prefork keeps one too). It
//! holds how many connections are served right now across all workers — what
//! `--max-conns` is checked against, since each child's own counters know only itself
//! — the most ever served at once, and which workers hold a seat, so that the parent can
//! give back the seat of a worker that died mid-connection.

use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

const BUSY: usize = 0;
const PEAK: usize = 1;
/// Worker `i`'s "holds a seat" flag is word `SEATED + i`.
const SEATED: usize = 2;

/// Counters shared by the parent and every worker it forks.
#[derive(Debug)]
pub(crate) struct Scoreboard {
    words: NonNull<AtomicU64>,
    len: usize,
}

/// A worker's claim on one of the `--max-conns` seats; given back on drop.
#[derive(Debug)]
pub(crate) struct Seat<'a> {
    board: &'a Scoreboard,
    worker: usize,
}

impl Scoreboard {
    /// A scoreboard for `workers` worker processes, all counters zero.
    pub(crate) fn new(workers: usize) -> io::Result<Scoreboard> {
        let len = SEATED + workers;
        let bytes = NonZeroUsize::new(len * std::mem::size_of::<AtomicU64>())
            .ok_or_else(|| io::Error::other("empty scoreboard"))?;
        // SAFETY: a fresh anonymous mapping, placed by the kernel; no existing memory
        // is touched. MAP_SHARED makes the children's writes visible to every process
        // that inherited it.
        let mapped = unsafe {
            mmap_anonymous(
                None,
                bytes,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .map_err(|errno| io::Error::from_raw_os_error(errno as i32))?;
        Ok(Scoreboard {
            words: mapped.cast(),
            len,
        })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping holds `len` words, is page-aligned (so aligned for
        // `AtomicU64`), was zero-filled by the kernel (a valid `AtomicU64` is any bit
        // pattern), and stays mapped until `drop`, which needs `&mut self`. It is only
        // ever accessed through atomics, which are coherent across processes sharing
        // the page.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr(), self.len) }
    }

    /// Worker `worker` takes a seat if fewer than `max` connections are served now.
    pub(crate) fn try_seat(&self, worker: usize, max: usize) -> Option<Seat<'_>> {
        let words = self.words();
        let now = words[BUSY].fetch_add(1, Ordering::AcqRel) + 1;
        if now > max as u64 {
            words[BUSY].fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        words[PEAK].fetch_max(now, Ordering::Relaxed);
        if let Some(flag) = words.get(SEATED + worker) {
            flag.store(1, Ordering::Release);
        }
        Some(Seat {
            board: self,
            worker,
        })
    }

    /// The parent, after reaping worker `worker`: a seat it died holding is given back,
    /// or `--max-conns` would shrink by one for every worker that crashed mid-client.
    pub(crate) fn release_dead(&self, worker: usize) {
        let words = self.words();
        if let Some(flag) = words.get(SEATED + worker) {
            if flag.swap(0, Ordering::AcqRel) == 1 {
                words[BUSY].fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Most connections served at once so far, across all workers.
    pub(crate) fn peak(&self) -> u64 {
        self.words()[PEAK].load(Ordering::Relaxed)
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let words = self.board.words();
        if let Some(flag) = words.get(SEATED + self.worker) {
            flag.store(0, Ordering::Release);
        }
        words[BUSY].fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and nothing borrows it
        // any more (`drop` has `&mut self`; a `Seat` borrows the scoreboard). A child
        // never gets here: it leaves through `_exit`.
        let _ = unsafe {
            munmap(
                self.words.cast(),
                self.len * std::mem::size_of::<AtomicU64>(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_stop_at_max_and_come_back() {
        let board = Scoreboard::new(3).unwrap();
        let a = board.try_seat(0, 2).unwrap();
        let b = board.try_seat(1, 2).unwrap();
        assert!(board.try_seat(2, 2).is_none());
        drop(a);
        let c = board.try_seat(2, 2).unwrap();
        assert_eq!(board.peak(), 2);
        drop((b, c));
        assert!(board.try_seat(0, 2).is_some());
    }

    #[test]
    fn a_dead_workers_seat_is_given_back_once() {
        let board = Scoreboard::new(2).unwrap();
        // As if worker 0 died while serving: its seat is never dropped.
        std::mem::forget(board.try_seat(0, 1).unwrap());
        assert!(board.try_seat(1, 1).is_none());
        board.release_dead(0);
        board.release_dead(0);
        let seat = board.try_seat(1, 1).unwrap();
        assert!(board.try_seat(0, 1).is_none(), "given back twice");
        drop(seat);
    }

    #[test]
    fn a_forked_child_writes_where_the_parent_reads() {
        // A child process takes a seat and exits holding it; the parent sees it taken.
        let board = Scoreboard::new(1).unwrap();
        // SAFETY: the child only does atomic stores and `_exit`s: nothing that could
        // need a lock held by another thread of the test harness.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                std::mem::forget(board.try_seat(0, 5));
                // SAFETY: ends the child at once; no pointers.
                unsafe { nix::libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
        assert_eq!(board.peak(), 1);
        board.release_dead(0);
        assert!(board.try_seat(0, 1).is_some());
    }
}
