//! A local worker's inbox: shared memory that carries large payloads
//! (captures, a call's `KeepCaptures`, a chunk's elements) instead of the pipe.
//!
//! The leader creates the inbox on the first payload of at least
//! [`SHARED_FROM`] bytes for that worker: a memfd (no name in any file
//! system, close-on-exec), mapped read-write here. The frame that first
//! uses it carries the leader's pid and the memfd's descriptor number; the
//! worker opens `/proc/<pid>/fd/<n>`, maps it read-only and closes its
//! descriptor, and the leader closes its own once the task is answered.
//! From then on both hold only a mapping: nothing is left behind when either
//! ends, however it ends (a SIGKILLed leader or worker unmaps with its
//! death, and the pages go with the last mapping). A larger payload gets a
//! new, larger memfd; the old one is unmapped on both sides.
//!
//! The pages stay between tasks, so that the next large payload is a plain
//! copy into memory already there (creating 100 MB of shared pages costs more
//! than sending them through a pipe). [`Inbox::release_if_idle`] gives them
//! back once the inbox was not used for [`KEEP_PAGES_FOR`].
//!
//! Invariant: the leader writes the inbox only in `dispatch`, while the
//! worker runs no task, and the worker reads it only while running the task
//! whose frames named it (it answers after it decoded the payload, and
//! copies a `KeepCaptures` payload out when it arrives). So the two never touch it at once.

use crate::protocol::wire::{InboxFile, InboxPlace};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Payloads from this size on go through the inbox.
pub(super) const SHARED_FROM: usize = 1 << 20;

/// How long an unused inbox keeps its pages.
pub(super) const KEEP_PAGES_FOR: Duration = Duration::from_secs(2);

/// Payloads in one dispatch start at multiples of this.
const ALIGN: usize = 64;

/// One worker's inbox, on the leader's side.
pub(super) struct Inbox {
    map: NonNull<u8>,
    size: usize,
    /// The memfd, until the worker has opened it.
    fd: Option<OwnedFd>,
    /// Bytes written since the pages were last given back.
    touched: usize,
    last_used: Instant,
}

// SAFETY: the inbox owns its mapping (nothing else in this process points
// into it), and every access goes through `&mut self`, so moving it to
// another thread is as safe as moving a `Vec<u8>`.
unsafe impl Send for Inbox {}

impl Inbox {
    /// A new inbox of at least `size` bytes, or why not.
    fn create(size: usize) -> std::io::Result<Inbox> {
        let size = size.next_multiple_of(1 << 21);
        // SAFETY: a plain system call with a valid C string; its result is
        // checked before use.
        let raw = unsafe { libc::memfd_create(c"futurize-inbox".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor that memfd_create just opened for us.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        std::fs::File::from(fd.try_clone()?).set_len(size as u64)?;
        // SAFETY: maps `size` bytes of a file of that size; the result is
        // checked, and the mapping is owned by the returned inbox.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Inbox {
            map: NonNull::new(map.cast()).expect("mmap never maps address 0 here"),
            size,
            fd: Some(fd),
            touched: 0,
            last_used: Instant::now(),
        })
    }

    /// Makes room for `needed` bytes in `inbox`, replacing it with a larger
    /// one if it is too small; `None` when shared memory cannot be had (the
    /// payload then goes through the pipe).
    pub(super) fn with_room(inbox: &mut Option<Inbox>, needed: usize) -> Option<&mut Inbox> {
        if inbox.as_ref().is_none_or(|i| i.size < needed) {
            if !others_may_open_our_fds() {
                return None;
            }
            *inbox = None;
            *inbox = Inbox::create(needed).ok();
        }
        inbox.as_mut()
    }

    /// Writes each payload at its own place and says where it is; the first
    /// says how to open the inbox, if the worker has not yet.
    pub(super) fn place(&mut self, payloads: &[&[u8]]) -> Vec<InboxPlace> {
        let mut offset = 0;
        let mut placed = Vec::with_capacity(payloads.len());
        for bytes in payloads {
            assert!(offset + bytes.len() <= self.size, "room was made first");
            // SAFETY: `offset..offset + len` lies inside the mapping (checked
            // above), which this inbox owns and which the worker does not
            // read while it runs no task (the module's invariant); `bytes`
            // lives in this process's own memory, so the two do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.map.as_ptr().add(offset),
                    bytes.len(),
                );
            }
            placed.push(InboxPlace {
                offset: offset as u64,
                len: bytes.len() as u64,
                open: None,
            });
            offset = (offset + bytes.len()).next_multiple_of(ALIGN);
        }
        if let (Some(first), Some(fd)) = (placed.first_mut(), &self.fd) {
            first.open = Some(InboxFile {
                pid: std::process::id(),
                fd: fd.as_raw_fd(),
                size: self.size as u64,
            });
        }
        self.touched = self.touched.max(offset);
        self.last_used = Instant::now();
        placed
    }

    /// The worker answered a task, so it has opened the inbox if it was
    /// offered: the descriptor is no longer needed.
    pub(super) fn answered(&mut self) {
        self.fd = None;
    }

    /// Gives the pages back when the inbox has not been used for a while.
    /// Call only while the worker runs no task.
    pub(super) fn release_if_idle(&mut self) {
        if self.touched == 0 || self.last_used.elapsed() < KEEP_PAGES_FOR {
            return;
        }
        let len = self.touched.next_multiple_of(4096).min(self.size);
        // SAFETY: the range lies inside this inbox's own shared mapping.
        // MADV_REMOVE frees the memfd's pages there (for the worker's
        // mapping too, which reads them only during a task, and none runs);
        // later reads see zeros, later writes get new pages.
        unsafe {
            libc::madvise(self.map.as_ptr().cast(), len, libc::MADV_REMOVE);
        }
        self.touched = 0;
    }

    /// The bytes of memory it holds now, for tests.
    #[cfg(test)]
    fn touched(&self) -> usize {
        self.touched
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this inbox created and owns; no
        // reference into it outlives `&mut self`.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.size);
        }
    }
}

/// Whether a process of the same user may open this process's descriptors
/// through `/proc/<pid>/fd` (not when this process is not dumpable, as after
/// a change of identity).
fn others_may_open_our_fds() -> bool {
    // SAFETY: PR_GET_DUMPABLE takes no pointer and only reads a flag.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_placed_apart_and_the_first_offers_the_file() {
        let mut inbox = None;
        let a = vec![1u8; 100];
        let b = vec![2u8; 3 << 20];
        let room = 100usize.next_multiple_of(ALIGN) + b.len();
        let inbox = Inbox::with_room(&mut inbox, room).expect("memfd works here");
        let placed = inbox.place(&[&a, &b]);
        assert_eq!((placed[0].offset, placed[0].len), (0, 100));
        assert_eq!((placed[1].offset, placed[1].len), (128, 3 << 20));
        let file = placed[0].open.as_ref().expect("first use offers the file");
        assert_eq!(file.pid, std::process::id());
        assert!(placed[1].open.is_none());
        // What a worker would see, through /proc.
        let seen = std::fs::read(format!("/proc/self/fd/{}", file.fd)).unwrap();
        assert_eq!(&seen[..100], &a[..]);
        assert_eq!(&seen[128..128 + b.len()], &b[..]);
        inbox.answered();
        assert!(inbox.place(&[&a])[0].open.is_none(), "offered once");
    }

    #[test]
    fn a_larger_payload_gets_a_new_inbox_and_idle_pages_go_back() {
        let mut slot = None;
        let size = Inbox::with_room(&mut slot, 10).unwrap().size;
        Inbox::with_room(&mut slot, size + 1).unwrap();
        assert!(slot.as_ref().unwrap().size > size);
        let inbox = slot.as_mut().unwrap();
        inbox.place(&[&[5u8; 5000]]);
        inbox.release_if_idle();
        assert_eq!(inbox.touched(), 5056, "kept while recently used");
        inbox.last_used -= KEEP_PAGES_FOR;
        inbox.release_if_idle();
        assert_eq!(inbox.touched(), 0);
    }
}
