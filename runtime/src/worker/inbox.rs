//! The worker's side of its inbox (see `backend/processes/inbox.rs` for the
//! leader's): the leader's memfd, opened through `/proc/<pid>/fd/<n>`,
//! mapped read-only, its descriptor closed at once. Payloads are read
//! straight from the mapping, which is bounds-checked against the memfd's
//! size, so a payload's decode can claim no more than the mapping holds.

use crate::Error;
use crate::protocol::wire::{InboxFile, InboxPlace};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// The leader's inbox, mapped.
pub(super) struct InboxMap {
    map: NonNull<u8>,
    size: usize,
}

impl InboxMap {
    /// Opens and maps the inbox the leader offers.
    fn open(file: &InboxFile) -> Result<InboxMap, Error> {
        let path = format!("/proc/{}/fd/{}", file.pid, file.fd);
        let failed = |e: std::io::Error| {
            Error::Protocol(format!(
                "could not open the leader's shared memory {path}: {e}"
            ))
        };
        let opened = std::fs::File::open(&path).map_err(failed)?;
        let size = opened.metadata().map_err(failed)?.len();
        if size != file.size || size == 0 {
            return Err(Error::Protocol(format!(
                "the leader's shared memory {path} holds {size} bytes, not {}",
                file.size
            )));
        }
        let size =
            usize::try_from(size).map_err(|_| Error::Protocol("shared memory too large".into()))?;
        // SAFETY: maps `size` bytes, the file's own size, read-only and
        // shared; the result is checked. The mapping is owned by the returned
        // value and outlives the descriptor, which closes at the end of scope.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ,
                libc::MAP_SHARED,
                opened.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(failed(std::io::Error::last_os_error()));
        }
        Ok(InboxMap {
            map: NonNull::new(map.cast()).expect("mmap never maps address 0 here"),
            size,
        })
    }

    /// The bytes of a payload, opening (or replacing) the mapping first if
    /// the leader says so.
    pub(super) fn payload<'a>(
        inbox: &'a mut Option<InboxMap>,
        shared: &InboxPlace,
    ) -> Result<&'a [u8], Error> {
        if let Some(file) = &shared.open {
            *inbox = None;
            *inbox = Some(InboxMap::open(file)?);
        }
        let Some(map) = inbox.as_ref() else {
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
        // SAFETY: the range lies inside the mapping (checked above), which
        // lives as long as `inbox` is borrowed. The leader writes it only
        // while this worker runs no task, and this worker reads it only for
        // the task whose frames named it (the protocol's invariant, see
        // `backend/processes/inbox.rs`), so the bytes do not change while
        // the slice is alive.
        Ok(unsafe {
            std::slice::from_raw_parts(
                map.map.as_ptr().add(shared.offset as usize),
                shared.len as usize,
            )
        })
    }
}

impl Drop for InboxMap {
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
            InboxMap::payload(&mut inbox, &at(0, 1, None)).is_err(),
            "nothing offered"
        );
        assert_eq!(
            InboxMap::payload(&mut inbox, &at(2, 3, Some(file.clone()))).unwrap(),
            b"234"
        );
        drop(f);
        // The mapping outlives the descriptor.
        assert_eq!(
            InboxMap::payload(&mut inbox, &at(8, 2, None)).unwrap(),
            b"89"
        );
        assert!(InboxMap::payload(&mut inbox, &at(8, 3, None)).is_err());
        assert!(InboxMap::payload(&mut inbox, &at(u64::MAX, 2, None)).is_err());
        let wrong = InboxFile { size: 11, ..file };
        assert!(InboxMap::payload(&mut inbox, &at(0, 1, Some(wrong))).is_err());
    }
}
