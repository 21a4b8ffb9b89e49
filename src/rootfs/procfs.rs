//! Checks that a file is what it claims to be before skiff writes to it or
//! mounts on it: procfs is a real procfs (not a tmpfs or bind mount an
//! image or a racing container planted over /proc), device and console
//! targets are not inside procfs or sysfs, and the working directory lies
//! inside the container's root (the CVE-2024-21626 class).

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{Error, Result};

pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
pub const SYSFS_MAGIC: i64 = 0x6265_6572;
pub const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
/// The inode number of every procfs root directory.
const PROC_ROOT_INO: u64 = 1;

/// The filesystem type (statfs f_type) of what `fd` names.
pub fn fs_type(fd: BorrowedFd<'_>) -> std::result::Result<i64, Errno> {
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the call, `st` writable.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(Errno::last());
    }
    Ok(st.f_type as i64)
}

pub fn fstat(fd: BorrowedFd<'_>) -> std::result::Result<libc::stat, Errno> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the call, `st` writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(Errno::last());
    }
    Ok(st)
}

/// Whether a container path may legitimately lie on procfs or sysfs.
pub fn may_be_kernel_fs(container_path: &[u8]) -> bool {
    let under = |p: &[u8]| {
        container_path.starts_with(p)
            && (container_path.len() == p.len() || container_path[p.len()] == b'/')
    };
    under(b"/proc") || under(b"/sys")
}

/// Refuse `fd` (the resolved `what`) when it is on procfs or sysfs while
/// its path says it should not be: a symlink such as /dev ->
/// /proc/sys/kernel would otherwise turn a device node, a console bind or a
/// mount into a write to a kernel knob.
pub fn refuse_kernel_fs(fd: BorrowedFd<'_>, what: &[u8]) -> Result<()> {
    if may_be_kernel_fs(what) {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(what);
    let t = fs_type(fd).map_err(|e| Error::sys_path("statfs", shown.as_ref(), e))?;
    if t == PROC_SUPER_MAGIC || t == SYSFS_MAGIC {
        return Err(Error::msg(format!(
            "{shown}: resolves into {} (a symlink in the root filesystem?): refused",
            if t == PROC_SUPER_MAGIC {
                "procfs"
            } else {
                "sysfs"
            }
        )));
    }
    Ok(())
}

use super::paths::openat2;

/// An fd of "/proc" after checking it is the root of a real procfs.
pub fn open_proc_root() -> Result<OwnedFd> {
    let fd = openat2(
        libc::AT_FDCWD,
        c"/proc",
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
        libc::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| Error::sys_path("open", "/proc", e))?;
    let b = std::os::fd::AsFd::as_fd(&fd);
    let t = fs_type(b).map_err(|e| Error::sys_path("statfs", "/proc", e))?;
    let st = fstat(b).map_err(|e| Error::sys_path("stat", "/proc", e))?;
    if t != PROC_SUPER_MAGIC || st.st_ino != PROC_ROOT_INO {
        return Err(Error::msg(
            "/proc is not the root of a procfs: refusing to write to it",
        ));
    }
    Ok(fd)
}

/// Open a file below /proc for reading or writing (`flags`: O_RDONLY,
/// O_WRONLY, ...), making sure that it is a file of a real procfs: /proc
/// itself is a procfs root, the walk below it stays on that one mount (no
/// bind mount or symlink can redirect it, only procfs's own "self" and
/// "thread-self" links are followed), and the opened file is on procfs.
pub fn open_proc_file(path: &str, flags: i32) -> Result<File> {
    let rel = path
        .strip_prefix("/proc/")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::msg(format!("{path}: not a path below /proc")))?;
    let root = open_proc_root()?;
    let c = std::ffi::CString::new(rel).map_err(|_| Error::msg(format!("{path:?}: NUL byte")))?;
    let fd = openat2(
        root.as_raw_fd(),
        &c,
        flags | libc::O_NOFOLLOW | libc::O_NOCTTY,
        0,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV,
    )
    .map_err(|e| Error::sys_path("open", path, e))?;
    let t =
        fs_type(std::os::fd::AsFd::as_fd(&fd)).map_err(|e| Error::sys_path("statfs", path, e))?;
    if t != PROC_SUPER_MAGIC {
        return Err(Error::msg(format!(
            "{path}: not a procfs file: refusing to use it"
        )));
    }
    Ok(File::from(fd))
}

/// Write `value` to a procfs file in one write(2) (the kernel parses a
/// single write), through [`open_proc_file`].
pub fn write_proc_file(path: &str, value: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = open_proc_file(path, libc::O_WRONLY)?;
    f.write_all(value).map_err(|e| {
        Error::io(
            format!("write {:?} to", String::from_utf8_lossy(value)),
            path,
            e,
        )
    })
}

/// Whether a getcwd(2) answer names a directory reachable from our root:
/// the kernel prefixes unreachable ones with "(unreachable)".
pub fn cwd_is_reachable(answer: &[u8]) -> bool {
    answer.first() == Some(&b'/')
}

/// The working directory must be inside the container's root. A cwd that
/// came from an fd of the runtime (e.g. process.cwd "/proc/self/fd/7") or
/// from a directory outside the root is unreachable from "/" (getcwd then
/// fails or answers "(unreachable)/..."): refuse it before exec.
pub fn verify_cwd_inside_root() -> Result<()> {
    let mut buf = [0u8; libc::PATH_MAX as usize];
    // The raw syscall: glibc's wrapper hides the "(unreachable)" answer.
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return Err(Error::sys("getcwd (process.cwd)", Errno::last()));
    }
    let len = (n as usize).min(buf.len());
    let answer = buf[..len].split(|&b| b == 0).next().unwrap_or(&[]);
    if !cwd_is_reachable(answer) {
        return Err(Error::msg(format!(
            "process.cwd: the working directory {} is outside the container's root: refused",
            String::from_utf8_lossy(answer)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::in_child_exit_code as in_child;

    #[test]
    fn kernel_fs_paths() {
        assert!(may_be_kernel_fs(b"/proc"));
        assert!(may_be_kernel_fs(b"/proc/sys/net"));
        assert!(may_be_kernel_fs(b"/sys/fs/cgroup"));
        assert!(!may_be_kernel_fs(b"/procx"));
        assert!(!may_be_kernel_fs(b"/dev/null"));
        assert!(!may_be_kernel_fs(b"/system"));
    }

    #[test]
    fn cwd_answers() {
        assert!(cwd_is_reachable(b"/"));
        assert!(cwd_is_reachable(b"/home/x"));
        assert!(!cwd_is_reachable(b"(unreachable)/tmp"));
        assert!(!cwd_is_reachable(b""));
    }

    #[test]
    fn proc_files_of_the_real_procfs() {
        let mut s = String::new();
        use std::io::Read;
        open_proc_file("/proc/self/status", libc::O_RDONLY)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert!(s.contains("Pid:"));
        open_proc_file("/proc/sys/kernel/ostype", libc::O_RDONLY).unwrap();
        assert!(open_proc_file("/etc/passwd", libc::O_RDONLY).is_err());
        // A magic link is not followed.
        assert!(open_proc_file("/proc/self/root/etc/passwd", libc::O_RDONLY).is_err());
        assert!(open_proc_file("/proc/self/cwd", libc::O_RDONLY).is_err());
    }

    #[test]
    fn refuses_fake_proc_and_mounts_over_proc_files() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let code = in_child(|| {
            // SAFETY: a private mount namespace in a forked child.
            if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
                return 2;
            }
            let none = None::<&str>;
            use nix::mount::{mount, MsFlags};
            if mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).is_err() {
                return 3;
            }
            // A file mounted over a procfs file: the walk must not cross it.
            if mount(
                Some("/etc/hostname"),
                "/proc/sys/kernel/domainname",
                none,
                MsFlags::MS_BIND,
                none,
            )
            .is_err()
            {
                return 4;
            }
            if open_proc_file("/proc/sys/kernel/domainname", libc::O_WRONLY).is_ok() {
                return 5;
            }
            if open_proc_file("/proc/sys/kernel/ostype", libc::O_RDONLY).is_err() {
                return 6;
            }
            // A tmpfs on /proc is not a procfs.
            if mount(
                Some("tmpfs"),
                "/proc",
                Some("tmpfs"),
                MsFlags::empty(),
                none,
            )
            .is_err()
            {
                return 7;
            }
            let _ = std::fs::create_dir_all("/proc/sys/kernel");
            let _ = std::fs::write("/proc/sys/kernel/core_pattern", "x");
            match open_proc_file("/proc/sys/kernel/core_pattern", libc::O_WRONLY) {
                Err(e) if e.to_string().contains("not the root of a procfs") => 0,
                _ => 8,
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn cwd_outside_root_is_refused() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let inner = tmp.path().join("root");
        std::fs::create_dir(&inner).unwrap();
        let code = in_child(|| {
            if verify_cwd_inside_root().is_err() {
                return 2;
            }
            // An fd to a directory outside the new root, like a leaked fd.
            let outside = match std::fs::File::open(tmp.path()) {
                Ok(f) => f,
                Err(_) => return 3,
            };
            if nix::unistd::chroot(&inner).is_err() {
                return 4;
            }
            // SAFETY: fchdir to an fd we own.
            if unsafe { libc::fchdir(outside.as_raw_fd()) } != 0 {
                return 5;
            }
            match verify_cwd_inside_root() {
                Err(e) if e.to_string().contains("outside the container's root") => 0,
                _ => 6,
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn refuses_device_targets_in_procfs() {
        let proc_fd = open_proc_root().unwrap();
        let b = std::os::fd::AsFd::as_fd(&proc_fd);
        assert!(refuse_kernel_fs(b, b"/proc/sys").is_ok());
        let e = refuse_kernel_fs(b, b"/dev").unwrap_err().to_string();
        assert!(e.contains("resolves into procfs"), "{e}");
        let dev = std::fs::File::open("/dev").unwrap();
        assert!(refuse_kernel_fs(std::os::fd::AsFd::as_fd(&dev), b"/dev").is_ok());
    }
}
