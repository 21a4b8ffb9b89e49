//! Whole-file reads and writes of the small files a runtime lives on
//! (procfs, cgroupfs, state and config files), with fewer syscalls than
//! `std::fs`: procfs reports a size of 0, so `read_to_end` starts from a
//! 32-byte probe and doubles, one read(2) per step (8 for a mountinfo), and
//! std asks fstat(2) for a size hint first; musl's open(2) adds an fcntl(2)
//! for O_CLOEXEC. Here: openat(2) with O_CLOEXEC, reads into 8 KiB, close.
//! Errors are `std::io::Error`s, so callers keep their `NotFound` checks.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// First buffer size: every procfs/cgroupfs file skiff reads fits (a
/// mountinfo of ~60 mounts); larger files grow it.
const FIRST_READ: usize = 8192;

/// A syscall that returns -1 and sets errno on failure, retried while it is
/// interrupted by a signal.
fn retry(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    crate::error::retry_eintr(|| nix::errno::Errno::result(call()))
        .map(|n| n as usize)
        .map_err(io::Error::from)
}

fn open(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is NUL-terminated; openat only reads it.
    let fd = retry(|| unsafe {
        libc::openat(libc::AT_FDCWD, c.as_ptr(), flags | libc::O_CLOEXEC) as isize
    })?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// The whole content of `path`.
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let fd = open(path.as_ref(), libc::O_RDONLY)?;
    let mut buf: Vec<u8> = Vec::with_capacity(FIRST_READ);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let spare = buf.spare_capacity_mut();
        // SAFETY: the kernel writes at most `spare.len()` bytes into the
        // vector's spare capacity, which is valid for writes.
        let n = retry(|| unsafe {
            libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len())
        })?;
        if n == 0 {
            return Ok(buf);
        }
        // SAFETY: the kernel initialised the next `n` bytes.
        unsafe { buf.set_len(buf.len() + n) };
    }
}

/// The whole content of the regular file `path`, at most `max` bytes, never blocking: opened
/// O_NONBLOCK (a FIFO does not wait for a writer) and refused unless it is a regular file, so
/// a file someone else controls (a container's /etc/passwd, a bundle's config.json) cannot
/// hang the runtime or make it read forever.
pub fn read_regular(path: impl AsRef<Path>, max: usize) -> io::Result<Vec<u8>> {
    let fd = open(path.as_ref(), libc::O_RDONLY | libc::O_NONBLOCK)?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if st.st_size as u64 > max as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    let mut buf: Vec<u8> = Vec::with_capacity((st.st_size as usize).min(max) + 1);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("larger than {max} bytes"),
                ));
            }
            buf.reserve(buf.capacity().max(FIRST_READ));
        }
        let spare = buf.spare_capacity_mut();
        // SAFETY: the kernel writes at most `spare.len()` bytes into the vector's spare
        // capacity, which is valid for writes.
        let n = retry(|| unsafe {
            libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len())
        })?;
        if n == 0 {
            if buf.len() > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("larger than {max} bytes"),
                ));
            }
            return Ok(buf);
        }
        // SAFETY: the kernel initialised the next `n` bytes.
        unsafe { buf.set_len(buf.len() + n) };
    }
}

/// The whole content of `path` as UTF-8 (`InvalidData` otherwise).
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Write `data` to the existing file `path` (no O_CREAT, no O_TRUNC: the
/// kernel files this is for exist, and take each write(2) as one value).
pub fn write_existing(path: impl AsRef<Path>, data: &[u8]) -> io::Result<()> {
    let fd = open(path.as_ref(), libc::O_WRONLY)?;
    let mut rest = data;
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for reads of its length.
        let n = retry(|| unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        rest = &rest[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_procfs_and_large_files_whole() {
        let mi = read_to_string("/proc/self/mountinfo").unwrap();
        assert!(mi.lines().count() > 1 && mi.ends_with('\n'), "{mi}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let big: Vec<u8> = (0..3 * FIRST_READ + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &big).unwrap();
        assert_eq!(read(&p).unwrap(), big);
        std::fs::write(&p, b"").unwrap();
        assert_eq!(read(&p).unwrap(), b"");
    }

    #[test]
    fn errors_keep_their_kind_and_writes_need_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing");
        assert_eq!(read(&p).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            write_existing(&p, b"x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::write(&p, b"old value").unwrap();
        write_existing(&p, b"new").unwrap();
        // No truncation: a kernel file takes the write as a whole; a plain file keeps the rest.
        assert_eq!(std::fs::read(&p).unwrap(), b"new value");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_to_string(&p).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
