//! The fds a process of the container holds: the sweep before exec (only stdio and the
//! preserved fds reach the program) and the early close in the runtime's children (nothing
//! of the host's for a container with CAP_SYS_PTRACE to find through /proc/PID/fd).

use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use crate::error::{Error, Result};

/// Leaves fds 0..3+preserve_fds open across exec and marks every higher fd
/// close-on-exec, so nothing of the runtime leaks into the container.
pub fn prepare_fds(preserve_fds: u32) -> Result<()> {
    let first = preserve_fds
        .checked_add(3)
        .ok_or_else(|| Error::config("preserve-fds", format!("{preserve_fds} is too large")))?;
    // SAFETY: close_range only changes fd flags; the raw syscall avoids
    // depending on a glibc new enough to wrap it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        let errno = Errno::last();
        if errno != Errno::ENOSYS && errno != Errno::EINVAL {
            return Err(Error::sys("close_range CLOSE_RANGE_CLOEXEC", errno));
        }
        cloexec_from_proc(first)?;
    }
    for fd in 3..first {
        let fd = fd as libc::c_int;
        // SAFETY: F_SETFD on an fd number only changes its flags; a number
        // that is not open gives EBADF, which is fine: nothing to preserve.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 && Errno::last() != Errno::EBADF {
            return Err(Error::sys(format!("fcntl F_SETFD fd {fd}"), Errno::last()));
        }
    }
    Ok(())
}

/// Fallback for kernels before 5.11 without CLOSE_RANGE_CLOEXEC.
fn cloexec_from_proc(first: u32) -> Result<()> {
    const FD_DIR: &str = "/proc/self/fd";
    let dir = std::fs::read_dir(FD_DIR).map_err(|e| Error::io("read dir", FD_DIR, e))?;
    for entry in dir {
        let entry = entry.map_err(|e| Error::io("read dir", FD_DIR, e))?;
        let Some(fd) = std::str::from_utf8(entry.file_name().as_bytes())
            .ok()
            .and_then(|s| s.parse::<libc::c_int>().ok())
        else {
            continue;
        };
        if fd < 0 || (fd as u32) < first {
            continue;
        }
        // SAFETY: only sets a flag; the directory's own fd (already closed
        // by the time it matters, or CLOEXEC anyway) may give EBADF.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0
            && Errno::last() != Errno::EBADF
        {
            return Err(Error::sys(format!("fcntl F_SETFD fd {fd}"), Errno::last()));
        }
    }
    Ok(())
}

/// Close every fd numbered `first` or above, except those in `keep`. A process that the
/// container can see must hold nothing of the runtime's or of its caller's beyond what the
/// container is given: with CAP_SYS_PTRACE a container reaches a process's fds through
/// /proc/PID/fd, and a directory fd of the host (the state directory, a cgroup) leads to the
/// host's whole tree through "..".
pub fn close_fds_from(first: RawFd, keep: &[RawFd]) -> Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&fd| fd >= first)
        .map(|&fd| fd as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut low = first.max(0) as u32;
    for k in keep {
        if k > low {
            close_range(low, k - 1)?;
        }
        low = k + 1;
    }
    close_range(low, u32::MAX)
}

/// close_range(low, high, 0); on kernels before 5.9, one close per open fd in the range.
fn close_range(low: u32, high: u32) -> Result<()> {
    // SAFETY: close_range closes fds of this process only; none of them is used by Rust
    // objects still alive (callers keep what they use in `keep`).
    let r = unsafe { libc::syscall(libc::SYS_close_range, low, high, 0) };
    if r == 0 {
        return Ok(());
    }
    let e = Errno::last();
    if e != Errno::ENOSYS {
        return Err(Error::sys(format!("close_range {low}..{high}"), e));
    }
    let open: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::io("read dir", "/proc/self/fd", e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| (low..=high).contains(fd))
        .collect();
    for fd in open {
        // SAFETY: as above; EBADF (the listing's own fd, already closed) is harmless.
        unsafe { libc::close(fd as i32) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::in_child_exit_code as in_child;

    fn cloexec(fd: i32) -> Option<bool> {
        // SAFETY: F_GETFD only reads flags.
        let r = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        (r >= 0).then_some(r & libc::FD_CLOEXEC != 0)
    }

    #[test]
    fn prepare_fds_in_child() {
        let code = in_child(|| {
            // Make fds 3..=9 exist (cloexec or not), then ask to keep 3 and 4.
            for fd in 3..10 {
                // SAFETY: dup3 onto a chosen number in our own forked child.
                unsafe { libc::dup3(0, fd, libc::O_CLOEXEC) };
            }
            // SAFETY: as above, a non-cloexec fd above the preserved range.
            unsafe { libc::dup2(0, 7) };
            if prepare_fds(2).is_err() {
                return 2;
            }
            if cloexec(3) != Some(false) || cloexec(4) != Some(false) {
                return 3;
            }
            if (5..10).any(|fd| cloexec(fd) != Some(true)) {
                return 4;
            }
            if cloexec(0) != Some(false) {
                return 5;
            }
            // The /proc walk gives the same result.
            // SAFETY: clearing a flag in our own child.
            unsafe { libc::fcntl(7, libc::F_SETFD, 0) };
            if cloexec_from_proc(5).is_err() || cloexec(7) != Some(true) {
                return 6;
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn close_fds_from_keeps_only_what_is_asked() {
        let code = in_child(|| {
            for fd in 10..20 {
                // SAFETY: dup onto chosen numbers in our own forked child.
                unsafe { libc::dup2(0, fd) };
            }
            if close_fds_from(12, &[14, 17, 3]).is_err() {
                return 2;
            }
            // SAFETY: F_GETFD only reads flags.
            let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
            let want: Vec<i32> = vec![10, 11, 14, 17];
            let got: Vec<i32> = (10..20).filter(|&fd| open(fd)).collect();
            if got != want {
                return 3;
            }
            0
        });
        assert_eq!(code, 0);
    }
}
