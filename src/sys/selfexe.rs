//! The runtime's own binary, as a container can reach it (the CVE-2019-5736 class).
//!
//! skiff's init and exec children are clones of the runtime: until they exec the container's
//! program, their `/proc/PID/exe` is the binary skiff runs from, and a `#!/proc/self/exe`
//! script makes the kernel run that binary as a container process. Whoever can open that
//! link (the container's own process, or one with CAP_SYS_PTRACE) gets a handle on the file
//! which it can reopen for writing once the binary is no longer running: the next skiff on
//! the host runs the attacker's code.
//!
//! So before `create`, `run` or `exec` makes any process the container can see or become,
//! the runtime makes sure its executable cannot be opened for writing through the path the
//! kernel knows it by: it re-executes itself from a detached read-only bind mount of its own
//! binary (open_tree + mount_setattr + execveat: the same file, the same page cache, no copy).
//! Where it may not make mounts (an unprivileged user), it re-executes from a sealed memfd
//! copy instead. A binary already on a read-only mount, or already sealed, is left as is:
//! that is also how the re-executed runtime knows it is done.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::rootfs::options::{MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY};
use crate::sys::mount_api::{self, MountAttr, OPEN_TREE_CLONE};

const SELF_EXE: &std::ffi::CStr = c"/proc/self/exe";

/// Seals that make a memfd's contents immutable for good.
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether the running binary can be opened for writing through `/proc/self/exe`.
pub fn is_protected() -> bool {
    match nix::sys::statvfs::statvfs(SELF_EXE) {
        Ok(st) if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) => return true,
        // No /proc: there is no magic link for a container to use either.
        Err(Errno::ENOENT) => return true,
        _ => {}
    }
    // A sealed memfd (the fallback below).
    let Ok(fd) = nix::fcntl::open(
        SELF_EXE,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) else {
        return false;
    };
    // SAFETY: open returned a new fd that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: F_GET_SEALS only reads the seals of an open fd.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-execute this process from a copy of its binary that cannot be written through
/// `/proc/PID/exe`, unless it already runs from one. Returns only when nothing had to be
/// done; otherwise execveat replaces the process (same arguments, same environment).
pub fn ensure_protected() -> Result<()> {
    if is_protected() {
        return Ok(());
    }
    let exe = match read_only_mount() {
        Ok(fd) => fd,
        Err(Errno::EPERM) | Err(Errno::EACCES) => sealed_copy()?,
        Err(e) => {
            return Err(Error::sys(
                "open_tree /proc/self/exe (a read-only view of skiff)",
                e,
            ))
        }
    };
    Err(reexec(exe.as_fd()))
}

/// A detached bind mount of the binary, read-only. Only the fd refers to it: it is in no
/// mount table, and goes away with the last process that runs from it.
fn read_only_mount() -> std::result::Result<OwnedFd, Errno> {
    let tree = mount_api::open_tree(libc::AT_FDCWD, SELF_EXE, OPEN_TREE_CLONE)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    mount_api::setattr(tree.as_fd(), false, &attr)?;
    Ok(tree)
}

/// A sealed in-memory copy of the binary (for users who may not mount).
fn sealed_copy() -> Result<OwnedFd> {
    // SAFETY: NUL-terminated name; the flags are plain integers.
    let fd = unsafe {
        libc::memfd_create(
            c"skiff".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(Error::sys(
            "memfd_create for a sealed copy of skiff",
            Errno::last(),
        ));
    }
    // SAFETY: memfd_create returned a new fd that we own.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut src = std::fs::File::open("/proc/self/exe")
        .map_err(|e| Error::io("open", "/proc/self/exe", e))?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).map_err(|e| Error::io("copy skiff into", "memfd", e))?;
    let memfd = OwnedFd::from(dst);
    // SAFETY: F_ADD_SEALS on our own memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(Error::sys("seal the copy of skiff", Errno::last()));
    }
    Ok(memfd)
}

/// execveat(exe, "", argv, environ, AT_EMPTY_PATH): returns only on failure.
fn reexec(exe: BorrowedFd<'_>) -> Error {
    let args: Vec<OsString> = std::env::args_os().collect();
    let args: Vec<CString> = match args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
    {
        Ok(v) => v,
        Err(_) => return Error::msg("re-execute skiff: an argument contains a NUL byte"),
    };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: argv is NULL-terminated and points into `args`, alive for the call; environ is
    // the C library's NULL-terminated environment; the path is an empty C string with
    // AT_EMPTY_PATH, so the fd itself is executed.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            exe.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            environ,
            libc::AT_EMPTY_PATH,
        )
    };
    Error::sys(
        "re-execute skiff from a read-only view of its binary",
        Errno::last(),
    )
}
