//! Shared memory between a leader and a local worker, for payloads of
//! [`SHARED_FROM`] bytes or more: captures, a call's `KeepCaptures` and a
//! chunk's elements on their way to a worker (the worker's inbox, written
//! by the leader), and values on their way back (the worker's outbox,
//! written by the worker). The writing side owns [`SharedPages`]; the
//! reading side maps them as [`PeerPages`].
//!
//! The writer creates its pages on the first payload of at least
//! [`SHARED_FROM`] bytes: a memfd (no name in any file system,
//! close-on-exec), mapped read-write there. The frame that first uses it
//! carries the writer's pid and the memfd's descriptor number; the reader
//! opens `/proc/<pid>/fd/<n>`, maps it read-only and closes its descriptor,
//! and the writer closes its own once it knows the reader has opened it.
//! From then on both hold only a mapping: nothing is left behind when either
//! ends, however it ends (a SIGKILLed leader or worker unmaps with its
//! death, and the pages go with the last mapping). A larger payload gets a
//! new, larger memfd; the old one is unmapped on both sides.
//!
//! The pages stay between tasks, so that the next large payload is a plain
//! copy into memory already there (creating 100 MB of shared pages costs more
//! than sending them through a pipe). [`SharedPages::release_if_idle`] gives
//! them back once they were not used for [`KEEP_PAGES_FOR`].
//!
//! Invariant, the inbox: the leader writes it only in `dispatch`, while the
//! worker runs no task, and the worker reads it only while running the task
//! whose frames named it (it answers after it decoded the payload, and
//! copies a `KeepCaptures` payload out when it arrives). The outbox: the
//! worker writes it only while answering a task, and the leader's reader
//! copies the answer out before it frees the worker, so before the worker
//! can get another task to answer. So the two sides never touch the same
//! pages at once. A reader never trusts what it is told: every payload is
//! read within the bounds of the mapping.

use crate::Error;
use crate::protocol::wire::{InboxFile, InboxPlace};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// The memfd names, as `/proc/<pid>/maps` shows them.
pub(crate) const INBOX_NAME: &CStr = c"futurize-inbox";
pub(crate) const OUTBOX_NAME: &CStr = c"futurize-outbox";

/// Payloads from this size on go through shared memory.
pub(crate) const SHARED_FROM: usize = 1 << 20;

/// How long unused shared pages are kept.
pub(crate) const KEEP_PAGES_FOR: Duration = Duration::from_secs(2);

/// Payloads in one dispatch start at multiples of this.
const ALIGN: usize = 64;

/// Shared pages on their writer's side: a worker's inbox in the leader,
/// its outbox in the worker.
pub(crate) struct SharedPages {
    map: NonNull<u8>,
    size: usize,
    /// The memfd, until the reader has opened it.
    fd: Option<OwnedFd>,
    /// Bytes written since the pages were last given back.
    touched: usize,
    last_used: Instant,
}

// SAFETY: the pages own their mapping (nothing else in this process points
// into it), and every access goes through `&mut self`, so moving it to
// another thread is as safe as moving a `Vec<u8>`.
unsafe impl Send for SharedPages {}

impl SharedPages {
    /// New pages, at least `size` bytes of them, or why not.
    fn create(size: usize, name: &CStr) -> std::io::Result<SharedPages> {
        let size = size.next_multiple_of(1 << 21);
        let fd = sized_memfd(name, size)?;
        // SAFETY: maps `size` bytes of a file of that size; the result is
        // checked, and the mapping is owned by the returned pages.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SharedPages {
            map: NonNull::new(map.cast()).expect("mmap never maps address 0 here"),
            size,
            fd: Some(fd),
            touched: 0,
            last_used: Instant::now(),
        })
    }

    /// Makes room for `needed` bytes in `pages`, replacing them with larger
    /// ones if they are too small; `None` when shared memory cannot be had (the
    /// payload then goes through the pipe).
    pub(crate) fn with_room<'p>(
        pages: &'p mut Option<SharedPages>,
        needed: usize,
        name: &CStr,
    ) -> Option<&'p mut SharedPages> {
        if pages.as_ref().is_none_or(|i| i.size < needed) {
            if !others_may_open_our_fds() {
                return None;
            }
            *pages = None;
            *pages = SharedPages::create(needed, name).ok();
        }
        pages.as_mut()
    }

    /// Writes each payload at its own place and says where it is; the first
    /// says how to open the pages, if the reader has not yet.
    pub(crate) fn place(&mut self, payloads: &[&[u8]]) -> Vec<InboxPlace> {
        let mut offset = 0;
        let mut placed = Vec::with_capacity(payloads.len());
        for bytes in payloads {
            assert!(offset + bytes.len() <= self.size, "room was made first");
            // SAFETY: `offset..offset + len` lies inside the mapping (checked
            // above), which these pages own and which the reader does not
            // read meanwhile (the module's invariant); `bytes`
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

    /// The reader has opened the pages if they were offered (a worker
    /// answered the task, the leader took the answer): the descriptor is no
    /// longer needed.
    pub(crate) fn answered(&mut self) {
        self.fd = None;
    }

    /// Gives the pages back when they have not been used for a while. Call
    /// only while the reader reads none of them.
    pub(crate) fn release_if_idle(&mut self) {
        if self.touched == 0 || self.last_used.elapsed() < KEEP_PAGES_FOR {
            return;
        }
        let len = self.touched.next_multiple_of(4096).min(self.size);
        // SAFETY: the range lies inside these pages' own shared mapping.
        // MADV_REMOVE frees the memfd's pages there (for the reader's
        // mapping too, which reads none now, by the caller's promise);
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

impl Drop for SharedPages {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping these pages created and own; no
        // reference into it outlives `&mut self`.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.size);
        }
    }
}

/// A new memfd named `name` of exactly `len` bytes (no pages yet).
pub(crate) fn sized_memfd(name: &CStr, len: usize) -> std::io::Result<OwnedFd> {
    // SAFETY: a plain system call with a valid C string; its result is
    // checked before use.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor that memfd_create just opened for us.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    std::fs::File::from(fd.try_clone()?).set_len(len as u64)?;
    Ok(fd)
}

/// Whether a process of the same user may open this process's descriptors
/// through `/proc/<pid>/fd` (not when this process is not dumpable, as after
/// a change of identity).
pub(crate) fn others_may_open_our_fds() -> bool {
    // SAFETY: PR_GET_DUMPABLE takes no pointer and only reads a flag.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) == 1 }
}

/// The other side's shared pages, mapped: read-only, or read-write for the
/// leader's view of a worker's outbox, whose pages it gives back itself
/// ([`PeerPages::release_if_idle`]) as it does those of the worker's inbox.
pub(crate) struct PeerPages {
    map: NonNull<u8>,
    size: usize,
    writable: bool,
    /// Bytes read since the pages were last given back.
    touched: usize,
    last_used: Instant,
}

// SAFETY: the value owns its mapping (nothing else in this process points
// into it), and every access goes through `&self` or `&mut self` of a value
// that `payload` borrows for as long as the slice it returns.
unsafe impl Send for PeerPages {}

impl PeerPages {
    /// Opens and maps the pages the other side offers.
    fn open(file: &InboxFile, writable: bool) -> Result<PeerPages, Error> {
        let path = format!("/proc/{}/fd/{}", file.pid, file.fd);
        let failed = |e: std::io::Error| {
            Error::Protocol(format!("could not open the shared memory {path}: {e}"))
        };
        let opened = std::fs::File::options()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(failed)?;
        let size = opened.metadata().map_err(failed)?.len();
        if size != file.size || size == 0 {
            return Err(Error::Protocol(format!(
                "the shared memory {path} holds {size} bytes, not {}",
                file.size
            )));
        }
        let size =
            usize::try_from(size).map_err(|_| Error::Protocol("shared memory too large".into()))?;
        let protection = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: maps `size` bytes, the file's own size, shared; the result
        // is checked. The mapping is owned by the returned value and
        // outlives the descriptor, which closes at the end of scope. Nothing
        // in this process writes through it: a writable one is only given
        // back (`release_if_idle`).
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                protection,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                opened.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(failed(std::io::Error::last_os_error()));
        }
        Ok(PeerPages {
            map: NonNull::new(map.cast()).expect("mmap never maps address 0 here"),
            size,
            writable,
            touched: 0,
            last_used: Instant::now(),
        })
    }

    /// The bytes of a payload, opening (or replacing) the mapping first if
    /// the other side says so; `writable` maps new pages read-write.
    pub(crate) fn payload<'a>(
        pages: &'a mut Option<PeerPages>,
        shared: &InboxPlace,
        writable: bool,
    ) -> Result<&'a [u8], Error> {
        if let Some(file) = &shared.open {
            *pages = None;
            *pages = Some(PeerPages::open(file, writable)?);
        }
        let Some(map) = pages.as_mut() else {
            return Err(Error::Protocol(
                "a payload in shared memory, but no shared memory was offered".into(),
            ));
        };
        let end = shared.offset.checked_add(shared.len);
        if end.is_none_or(|end| end > map.size as u64) {
            return Err(Error::Protocol(format!(
                "a payload at {}..+{} lies outside the shared memory of {} bytes",
                shared.offset, shared.len, map.size
            )));
        }
        map.touched = map.touched.max((shared.offset + shared.len) as usize);
        map.last_used = Instant::now();
        // SAFETY: the range lies inside the mapping (checked above), which
        // lives as long as `pages` is borrowed. The writer does not write
        // these bytes while the reader reads them (the module's invariant),
        // so they do not change while the slice is alive.
        Ok(unsafe {
            std::slice::from_raw_parts(
                map.map.as_ptr().add(shared.offset as usize),
                shared.len as usize,
            )
        })
    }

    /// Gives the pages back when they have not been used for a while (a
    /// writable mapping only). Call only while the writer writes none of
    /// them (a worker's outbox: while it runs no task).
    pub(crate) fn release_if_idle(&mut self) {
        if !self.writable || self.touched == 0 || self.last_used.elapsed() < KEEP_PAGES_FOR {
            return;
        }
        let len = self.touched.next_multiple_of(4096).min(self.size);
        // SAFETY: the range lies inside this value's own shared, writable
        // mapping. MADV_REMOVE frees the memfd's pages there (for the
        // writer's mapping too, which writes none now, by the caller's
        // promise); later reads see zeros, later writes get new pages.
        unsafe {
            libc::madvise(self.map.as_ptr().cast(), len, libc::MADV_REMOVE);
        }
        self.touched = 0;
    }
}

impl Drop for PeerPages {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `open` made; no slice into it
        // outlives the borrow of this value.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn payloads_are_placed_apart_and_the_first_offers_the_file() {
        let mut inbox = None;
        let a = vec![1u8; 100];
        let b = vec![2u8; 3 << 20];
        let room = 100usize.next_multiple_of(ALIGN) + b.len();
        let inbox = SharedPages::with_room(&mut inbox, room, INBOX_NAME).expect("memfd works here");
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
        let size = SharedPages::with_room(&mut slot, 10, INBOX_NAME)
            .unwrap()
            .size;
        SharedPages::with_room(&mut slot, size + 1, INBOX_NAME).unwrap();
        assert!(slot.as_ref().unwrap().size > size);
        let inbox = slot.as_mut().unwrap();
        inbox.place(&[&[5u8; 5000]]);
        inbox.release_if_idle();
        assert_eq!(inbox.touched(), 5056, "kept while recently used");
        inbox.last_used -= KEEP_PAGES_FOR;
        inbox.release_if_idle();
        assert_eq!(inbox.touched(), 0);
    }

    fn memfd(bytes: &[u8]) -> std::fs::File {
        // SAFETY: a plain system call with a valid C string; checked below.
        let fd = unsafe { libc::memfd_create(c"test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: `fd` was just opened for this test and is owned by the File.
        let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn payloads_are_read_from_the_offered_file_and_checked_against_it() {
        let f = memfd(b"0123456789");
        let file = InboxFile {
            pid: std::process::id(),
            fd: f.as_raw_fd(),
            size: 10,
        };
        let mut inbox = None;
        let at = |offset, len, open: Option<InboxFile>| InboxPlace { offset, len, open };
        assert!(
            PeerPages::payload(&mut inbox, &at(0, 1, None), false).is_err(),
            "nothing offered"
        );
        assert_eq!(
            PeerPages::payload(&mut inbox, &at(2, 3, Some(file.clone())), false).unwrap(),
            b"234"
        );
        drop(f);
        // The mapping outlives the descriptor.
        assert_eq!(
            PeerPages::payload(&mut inbox, &at(8, 2, None), false).unwrap(),
            b"89"
        );
        assert!(PeerPages::payload(&mut inbox, &at(8, 3, None), false).is_err());
        assert!(PeerPages::payload(&mut inbox, &at(u64::MAX, 2, None), false).is_err());
        let wrong = InboxFile { size: 11, ..file };
        assert!(PeerPages::payload(&mut inbox, &at(0, 1, Some(wrong)), false).is_err());
    }
}
