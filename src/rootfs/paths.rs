//! Container paths: validation (pure) and resolution inside the rootfs
//! (openat2 with RESOLVE_IN_ROOT, so that no symlink in the image can send a
//! mkdir, mknod, file creation or mount outside of it).

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// An absolute, normalized path inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPath {
    /// "/dev/shm": for messages and the plain-path calls made after pivot_root.
    pub abs: CString,
    /// "dev/shm": relative to the rootfs fd; "." for the root itself.
    pub rel: CString,
}

impl ContainerPath {
    /// Validate `p` (from config field `field`): absolute, no "..". "." and
    /// repeated slashes are dropped.
    pub fn parse(p: &Path, field: &str) -> Result<ContainerPath> {
        let bytes = p.as_os_str().as_bytes();
        if bytes.first() != Some(&b'/') {
            return Err(Error::config(
                field,
                format!("{}: must be absolute", p.display()),
            ));
        }
        if bytes.contains(&0) {
            return Err(Error::config(
                field,
                format!("{:?}: contains a NUL byte", p),
            ));
        }
        let mut rel: Vec<u8> = Vec::with_capacity(bytes.len() + 1);
        for comp in bytes.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    return Err(Error::config(
                        field,
                        format!("{}: must not contain \"..\"", p.display()),
                    ))
                }
                c => {
                    if !rel.is_empty() {
                        rel.push(b'/');
                    }
                    rel.extend_from_slice(c);
                }
            }
        }
        let mut abs = Vec::with_capacity(rel.len() + 1);
        abs.push(b'/');
        abs.extend_from_slice(&rel);
        if rel.is_empty() {
            rel.push(b'.');
        }
        // No NUL inside: checked above.
        Ok(ContainerPath {
            abs: CString::new(abs).map_err(|_| Error::config(field, "contains a NUL byte"))?,
            rel: CString::new(rel).map_err(|_| Error::config(field, "contains a NUL byte"))?,
        })
    }

    pub fn is_root(&self) -> bool {
        self.rel.as_bytes() == b"."
    }

    pub fn display(&self) -> std::borrow::Cow<'_, str> {
        self.abs.to_string_lossy()
    }

    /// The path as a `Path` (for error messages).
    pub fn as_path(&self) -> &Path {
        Path::new(std::ffi::OsStr::from_bytes(self.abs.as_bytes()))
    }

    /// Split into (parent, last component); None for the root.
    pub fn split_last(&self) -> Option<(&[u8], &[u8])> {
        if self.is_root() {
            return None;
        }
        let rel = self.rel.as_bytes();
        Some(match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&b"."[..], rel),
        })
    }
}

/// Turn an optional host path into an absolute one: relative paths are
/// relative to the bundle.
pub fn host_path(bundle: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        bundle.join(p)
    }
}

pub fn cstring(p: &Path, field: &str) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::config(field, format!("{:?}: contains a NUL byte", p)))
}

/// "/proc/self/fd/N" without allocating.
pub struct ProcFd {
    buf: [u8; 32],
}

impl ProcFd {
    pub fn new(fd: BorrowedFd<'_>) -> ProcFd {
        const PREFIX: &[u8] = b"/proc/self/fd/";
        let mut buf = [0u8; 32];
        buf[..PREFIX.len()].copy_from_slice(PREFIX);
        let mut n = fd.as_raw_fd() as u32;
        let mut digits = [0u8; 10];
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[PREFIX.len() + i] = digits[len - 1 - i];
        }
        ProcFd { buf }
    }

    pub fn as_cstr(&self) -> &CStr {
        // The buffer always holds a NUL after the digits (32 > 14 + 10).
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"/proc/self/fd")
    }
}

/// struct open_how of openat2(2) (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2): `path` opened from `dir` (an fd or AT_FDCWD) with `flags`
/// (O_CLOEXEC added), `mode` for O_CREAT, and the RESOLVE_* flags in
/// `resolve`. Retried on EINTR, and a few times on EAGAIN, which openat2
/// returns when a concurrent rename could have let ".." escape (the
/// documented answer is to try again).
pub fn openat2(
    dir: RawFd,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> std::result::Result<OwnedFd, Errno> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    let mut eagain = 0;
    loop {
        // SAFETY: `how` is a valid open_how of the size passed, `path` is
        // NUL-terminated, `dir` is an open fd or AT_FDCWD for the duration
        // of the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel just returned this fd; nobody else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as i32) });
        }
        match Errno::last() {
            Errno::EINTR => {}
            Errno::EAGAIN if eagain < 32 => eagain += 1,
            e => return Err(e),
        }
    }
}

/// openat2(root, path, flags) with every path component, symlinks and ".."
/// included, resolved as if `root` were "/".
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
) -> std::result::Result<OwnedFd, Errno> {
    openat2(
        root.as_raw_fd(),
        path,
        flags,
        0,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

fn display_of(bytes: &[u8]) -> String {
    if bytes == b"." {
        return "/".to_string();
    }
    format!("/{}", String::from_utf8_lossy(bytes))
}

/// Open `rel` inside the rootfs as O_PATH, creating it (and its missing
/// parents as directories) when missing. Every component is created with
/// mkdirat/mknodat relative to a directory fd that was itself resolved inside
/// the root, so a symlink can redirect the walk only to somewhere else in
/// the root. A dangling symlink is followed by creating its target, again
/// inside the root (images often ship e.g. /etc/resolv.conf pointing into
/// an empty /run).
pub fn ensure(root: BorrowedFd<'_>, rel: &CStr, kind: Kind) -> Result<OwnedFd> {
    match open_in_root(root, rel, libc::O_PATH) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => ensure_walk(root, rel.to_bytes(), kind, 0, true),
        Err(e) => Err(Error::sys_path("open", display_of(rel.to_bytes()), e)),
    }
}

/// Like the kernel's limit on nested symlinks.
const MAX_SYMLINKS: u32 = 40;

/// `leaf_missing`: the whole path was just found missing, so the walk goes
/// straight to creating its last component (a race that creates it first
/// ends in EEXIST, handled like any existing entry).
fn ensure_walk(
    root: BorrowedFd<'_>,
    bytes: &[u8],
    kind: Kind,
    depth: u32,
    leaf_missing: bool,
) -> Result<OwnedFd> {
    if depth > MAX_SYMLINKS {
        return Err(Error::sys_path("open", display_of(bytes), Errno::ELOOP));
    }
    let mut buf: Vec<u8> = Vec::with_capacity(bytes.len() + 1);
    let mut dir: Option<OwnedFd> = None;
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .map(|i| start + i)
            .unwrap_or(bytes.len());
        let last = end == bytes.len();
        let name_start = start;
        let name = &bytes[start..end];
        start = end + 1;
        if name.is_empty() || name == b"." {
            continue;
        }
        buf.clear();
        buf.extend_from_slice(&bytes[..end]);
        buf.push(0);
        let prefix =
            CStr::from_bytes_with_nul(&buf).map_err(|_| Error::msg("path contains a NUL byte"))?;
        let oflags = if last {
            libc::O_PATH
        } else {
            libc::O_PATH | libc::O_DIRECTORY
        };
        let opened = if last && leaf_missing {
            Err(Errno::ENOENT)
        } else {
            open_in_root(root, prefix, oflags)
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let parent = dir
                    .as_ref()
                    .map(|d| d.as_raw_fd())
                    .unwrap_or(root.as_raw_fd());
                let cname =
                    CString::new(name).map_err(|_| Error::msg("path contains a NUL byte"))?;
                let as_file = last && kind == Kind::File;
                // SAFETY: `parent` is an open directory fd and `cname` is
                // NUL-terminated; mkdirat/mknodat never follow a final symlink.
                let r = unsafe {
                    if as_file {
                        libc::mknodat(parent, cname.as_ptr(), libc::S_IFREG | 0o644, 0)
                    } else {
                        libc::mkdirat(parent, cname.as_ptr(), 0o755)
                    }
                };
                if r < 0 {
                    let e = Errno::last();
                    if e != Errno::EEXIST {
                        let op = if as_file { "create" } else { "mkdir" };
                        return Err(Error::sys_path(op, display_of(&bytes[..end]), e));
                    }
                }
                match open_in_root(root, prefix, oflags) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) if r < 0 => {
                        // EEXIST then ENOENT: a dangling symlink. Create
                        // what it points to, resolved inside the root.
                        let target = readlink_at(parent, &cname).map_err(|e| {
                            Error::sys_path("readlink", display_of(&bytes[..end]), e)
                        })?;
                        let mut next: Vec<u8> = Vec::with_capacity(bytes.len() + target.len() + 1);
                        if target.first() != Some(&b'/') {
                            next.extend_from_slice(&bytes[..name_start]);
                        }
                        next.extend_from_slice(&target);
                        if !last {
                            next.push(b'/');
                            next.extend_from_slice(&bytes[end + 1..]);
                        }
                        let trimmed: &[u8] = {
                            let i = next.iter().position(|&b| b != b'/').unwrap_or(next.len());
                            &next[i..]
                        };
                        let trimmed = if trimmed.is_empty() {
                            &b"."[..]
                        } else {
                            trimmed
                        };
                        return ensure_walk(root, trimmed, kind, depth + 1, false);
                    }
                    Err(e) => return Err(Error::sys_path("open", display_of(&bytes[..end]), e)),
                }
            }
            Err(e) => return Err(Error::sys_path("open", display_of(&bytes[..end]), e)),
        };
        dir = Some(fd);
    }
    match dir {
        Some(fd) => Ok(fd),
        // Only "." components: the root itself.
        None => open_in_root(root, c".", libc::O_PATH).map_err(|e| Error::sys_path("open", "/", e)),
    }
}

fn readlink_at(dir: i32, name: &CStr) -> std::result::Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `dir` is an open fd, `name` NUL-terminated, `buf` writable for its length.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Defense in depth after resolution: the fd's path, as the kernel names
/// it, must be the rootfs or below it.
pub fn verify_inside(fd: BorrowedFd<'_>, rootfs: &[u8], what: &Path) -> Result<()> {
    let link = ProcFd::new(fd);
    let mut buf = [0u8; libc::PATH_MAX as usize];
    // SAFETY: `link` is NUL-terminated, `buf` is writable for its length.
    let n = unsafe { libc::readlink(link.as_cstr().as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Error::sys_path(
            "readlink",
            link.as_cstr().to_string_lossy().as_ref(),
            Errno::last(),
        ));
    }
    let got = &buf[..n as usize];
    let inside = got.starts_with(rootfs)
        && (got.len() == rootfs.len() || got[rootfs.len()] == b'/' || rootfs == b"/");
    if !inside {
        return Err(Error::msg(format!(
            "{}: resolved to {} outside the root filesystem",
            what.display(),
            String::from_utf8_lossy(got)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        let p = ContainerPath::parse(Path::new("/dev//shm/./"), "mounts[0].destination").unwrap();
        assert_eq!(p.abs.as_bytes(), b"/dev/shm");
        assert_eq!(p.rel.as_bytes(), b"dev/shm");
        assert_eq!(p.split_last(), Some((&b"dev"[..], &b"shm"[..])));
        let p = ContainerPath::parse(Path::new("/proc"), "x").unwrap();
        assert_eq!(p.split_last(), Some((&b"."[..], &b"proc"[..])));
        let p = ContainerPath::parse(Path::new("/"), "x").unwrap();
        assert!(p.is_root());
        assert_eq!(p.rel.as_bytes(), b".");
        assert_eq!(p.split_last(), None);

        let e = ContainerPath::parse(Path::new("dev"), "mounts[3].destination").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mounts[3].destination: dev: must be absolute"
        );
        let e = ContainerPath::parse(Path::new("/a/../b"), "mounts[1].destination").unwrap_err();
        assert!(e.to_string().contains("must not contain \"..\""), "{e}");
    }

    #[test]
    fn proc_fd_path() {
        // SAFETY: fd 0 is not closed while the borrow lives; it is only formatted.
        let fd = unsafe { BorrowedFd::borrow_raw(1234) };
        assert_eq!(ProcFd::new(fd).as_cstr().to_bytes(), b"/proc/self/fd/1234");
        let fd = unsafe { BorrowedFd::borrow_raw(0) };
        assert_eq!(ProcFd::new(fd).as_cstr().to_bytes(), b"/proc/self/fd/0");
    }

    #[test]
    fn host_paths_relative_to_bundle() {
        assert_eq!(
            host_path(Path::new("/b"), Path::new("rootfs")),
            PathBuf::from("/b/rootfs")
        );
        assert_eq!(
            host_path(Path::new("/b"), Path::new("/r")),
            PathBuf::from("/r")
        );
    }

    #[test]
    fn ensure_stays_inside_root_without_privileges() {
        // No mount needed: creation through symlinks must land inside the root.
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let rootfd = std::fs::File::open(&root).unwrap();
        let rfd = rootfd.as_fd_borrow();
        let fd = ensure(rfd, c"evil/sub/file", Kind::File).unwrap();
        drop(fd);
        let fd = ensure(rfd, c"up/x/y", Kind::Dir).unwrap();
        drop(fd);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // The symlinked absolute target was recreated inside the root.
        let inside = root
            .join(outside.strip_prefix("/").unwrap())
            .join("sub/file");
        assert!(inside.is_file(), "{}", inside.display());
        assert!(root.join("x/y").is_dir());
        // A dangling symlink gets its target created, inside the root.
        std::os::unix::fs::symlink("/run/resolve/stub.conf", root.join("dangle")).unwrap();
        drop(ensure(rfd, c"dangle", Kind::File).unwrap());
        assert!(root.join("run/resolve/stub.conf").is_file());
        std::os::unix::fs::symlink("../../../../tmp/x", root.join("dangle2")).unwrap();
        drop(ensure(rfd, c"dangle2/a", Kind::Dir).unwrap());
        assert!(root.join("tmp/x/a").is_dir());
        // A symlink loop ends with ELOOP, not a hang.
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        assert!(ensure(rfd, c"loop1/x", Kind::Dir).is_err());
        verify_inside(
            ensure(rfd, c"x", Kind::Dir).unwrap().as_fd_borrow(),
            root.as_os_str().as_bytes(),
            Path::new("/x"),
        )
        .unwrap();
        let e = verify_inside(rfd, outside.as_os_str().as_bytes(), Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
    }

    trait AsFdBorrow {
        fn as_fd_borrow(&self) -> BorrowedFd<'_>;
    }
    impl<T: std::os::fd::AsFd> AsFdBorrow for T {
        fn as_fd_borrow(&self) -> BorrowedFd<'_> {
            self.as_fd()
        }
    }
}
