//! The provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): a pool of
//! receive buffers the kernel picks from when data arrives, so a connection waiting to
//! receive holds no buffer of its own.
//!
//! Two anonymous mappings: the ring of `{addr, len, bid}` entries, shared with the
//! kernel (it advances the head as it takes buffers, we advance the tail as we give
//! them back), and the buffers themselves. A buffer the kernel filled is ours from the
//! completion that names it until [`BufRing::give_back`]; the model copies its bytes
//! into the session and gives it back in the same turn, so the pool is a per-turn
//! budget, not per-connection memory.

use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

/// The buffer group id the receives name.
pub(crate) const GROUP: u16 = 0;

/// `struct io_uring_buf` from `<linux/io_uring.h>`; the `resv` field of entry 0 is the
/// ring's tail.
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// `struct io_uring_buf_status` from `<linux/io_uring.h>`.
#[repr(C)]
#[derive(Default)]
struct BufStatus {
    buf_group: u32,
    head: u32,
    resv: [u32; 8],
}

/// `IORING_REGISTER_PBUF_STATUS` (not wrapped by the io-uring crate).
const REGISTER_PBUF_STATUS: libc::c_uint = 26;

/// The kernel's head of the buffer ring: where it will take the next buffer.
fn kernel_head(uring: &IoUring) -> io::Result<u16> {
    use std::os::fd::AsRawFd;
    let mut status = BufStatus {
        buf_group: u32::from(GROUP),
        ..BufStatus::default()
    };
    // SAFETY: `status` is a live, writable `io_uring_buf_status` for the length of the
    // call, which is all the kernel reads and writes; the ring descriptor is valid.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            uring.as_raw_fd(),
            REGISTER_PBUF_STATUS,
            ptr::addr_of_mut!(status),
            1,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // The head is a free-running 16-bit counter, like the tail.
    Ok(status.head as u16)
}

/// An anonymous private mapping, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// `len` bytes of zeroed, page-aligned memory; pages are only backed once touched.
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping aliases nothing; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned 0"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned, unmapped once; whoever
        // owns the mapping made sure the kernel no longer uses it (see `BufRing::close`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A registered ring of `count` buffers of `size` bytes each.
#[derive(Debug)]
pub(crate) struct BufRing {
    ring: Mapping,
    buffers: Mapping,
    count: u16,
    size: u32,
    /// Our copy of the tail; published to the kernel after every change.
    tail: u16,
    /// Buffers the kernel filled and handed to us that we have not given back.
    lent: u64,
}

impl BufRing {
    /// Maps the ring and the buffers, registers the ring with `ring` as [`GROUP`] and
    /// hands every buffer to the kernel. `count` must be a power of two.
    pub(crate) fn register(uring: &IoUring, count: u16, size: u32) -> io::Result<BufRing> {
        debug_assert!(count.is_power_of_two());
        let ring = Mapping::new(usize::from(count) * std::mem::size_of::<RingEntry>())?;
        let buffers = Mapping::new(usize::from(count) * size as usize)?;
        // SAFETY: the ring mapping is page-aligned, holds `count` entries and lives in
        // `self` until `close`, which the owner calls only after unregistering it (or
        // leaks it when it cannot).
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                ring.ptr.as_ptr() as u64,
                count,
                GROUP,
                0,
            )?;
        }
        let mut bufs = BufRing {
            ring,
            buffers,
            count,
            size,
            tail: 0,
            lent: 0,
        };
        for bid in 0..count {
            bufs.push(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    /// The `len` bytes the kernel received into buffer `bid`, as this completion says.
    /// Borrowed until [`BufRing::give_back`], which needs `&mut self`.
    pub(crate) fn filled(&mut self, bid: u16, len: usize) -> io::Result<&[u8]> {
        if bid >= self.count || len > self.size as usize {
            return Err(io::Error::other(format!(
                "completion names buffer {bid} with {len} bytes; the ring has {} of {} bytes",
                self.count, self.size
            )));
        }
        self.lent += 1;
        let offset = usize::from(bid) * self.size as usize;
        // SAFETY: buffer `bid` lies inside the mapping (checked above); the kernel wrote
        // `len` bytes into it and, having named it in a completion, does not touch it
        // again until `give_back` puts it back in the ring, which `&mut self` orders
        // after the last use of this slice.
        Ok(unsafe { std::slice::from_raw_parts(self.buffers.ptr.as_ptr().add(offset), len) })
    }

    /// Returns buffer `bid` to the kernel.
    pub(crate) fn give_back(&mut self, bid: u16) {
        if bid >= self.count {
            return;
        }
        self.lent = self.lent.saturating_sub(1);
        self.push(bid);
        self.publish();
    }

    /// Buffers not in the ring: taken by the kernel and not yet given back, whether or
    /// not a completion has named them yet. Zero between turns once nothing is
    /// receiving. Read from the kernel's head (`IORING_REGISTER_PBUF_STATUS`, Linux 6.8)
    /// where it can tell; otherwise our own count of buffers named and not given back.
    pub(crate) fn missing(&self, uring: &IoUring) -> u64 {
        match kernel_head(uring) {
            Ok(head) => u64::from(self.count - self.tail.wrapping_sub(head).min(self.count)),
            Err(_) => self.lent,
        }
    }

    /// Writes buffer `bid` into the ring slot at our tail (not yet visible).
    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.buffers.ptr.as_ptr() as u64 + u64::from(bid) * u64::from(self.size);
        let entry: *mut RingEntry = self.ring.ptr.as_ptr().cast::<RingEntry>();
        // SAFETY: `slot < count`, inside the ring mapping. The kernel reads only slots
        // between its head and the published tail, and this slot is at or past the
        // published tail, so nobody reads it while we write. `resv` is left alone: in
        // slot 0 it is the tail, which only `publish` writes, atomically.
        unsafe {
            let entry = entry.add(slot);
            ptr::addr_of_mut!((*entry).addr).write(addr);
            ptr::addr_of_mut!((*entry).len).write(self.size);
            ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every pushed entry visible to the kernel (a release store of the tail).
    fn publish(&self) {
        let entry: *mut RingEntry = self.ring.ptr.as_ptr().cast::<RingEntry>();
        // SAFETY: the tail is the `resv` field of entry 0, a 2-aligned u16 inside the
        // mapping that the kernel only reads; an atomic store is how liburing writes it.
        let tail = unsafe { AtomicU16::from_ptr(ptr::addr_of_mut!((*entry).resv)) };
        tail.store(self.tail, Ordering::Release);
    }

    /// Unregisters the ring and frees its memory, once no receive can use it. With
    /// receives possibly still in the kernel (the loop failed), the memory is leaked
    /// instead: the process is about to exit, and freed memory the kernel writes into
    /// would be far worse.
    pub(crate) fn close(self, uring: &IoUring, receives_done: bool) {
        if receives_done && uring.submitter().unregister_buf_ring(GROUP).is_ok() {
            drop(self);
        } else {
            std::mem::forget(self);
        }
    }
}
