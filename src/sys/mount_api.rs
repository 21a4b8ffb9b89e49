//! The fd-based mount API (open_tree, move_mount, mount_setattr, fsopen,
//! fsmount): mounts are made detached and attached to an already opened
//! target fd, so no path string is resolved between check and use, and
//! nothing depends on /proc being mounted.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

pub const OPEN_TREE_CLONE: u32 = 1;
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSOPEN_CLOEXEC: u32 = 1;
const FSMOUNT_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;

#[repr(C)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

fn fd_result(r: libc::c_long) -> Result<OwnedFd, Errno> {
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this new fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// open_tree(2): a detached copy of the mount at `path` relative to
/// `dir` (`AT_EMPTY_PATH` with an empty path: the mount of `dir` itself).
pub fn open_tree(dir: i32, path: &CStr, flags: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: NUL-terminated path; `dir` is an open fd or AT_FDCWD.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir,
            path.as_ptr(),
            flags | OPEN_TREE_CLOEXEC,
        )
    })
}

/// A detached copy of the mount that `fd` names (recursive with `recursive`).
pub fn clone_of(fd: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    open_tree(fd.as_raw_fd(), c"", flags)
}

/// Attach the detached mount `tree` on top of what `target` names.
pub fn move_onto(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: both fds are open for the call, the paths are empty C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// mount_setattr(2) on the mount `fd` names.
pub fn setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `attr` is a valid mount_attr of the size passed, the empty
    // path is NUL-terminated, `fd` is open for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// One fsconfig(2) parameter: `key=value`, or a bare flag.
pub enum FsParam<'a> {
    String(&'a CStr, &'a CStr),
    Flag(&'a CStr),
}

/// A new detached filesystem (fsopen + fsconfig + fsmount) with mount
/// attributes `attrs` (MOUNT_ATTR_*).
pub fn new_fs(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: u64) -> Result<OwnedFd, Errno> {
    let params: Vec<FsParam<'_>> = options.iter().map(|(k, v)| FsParam::String(k, v)).collect();
    new_fs_with(fstype, &params, attrs)
}

/// [`new_fs`] with any mix of string and flag parameters.
pub fn new_fs_with(fstype: &CStr, params: &[FsParam<'_>], attrs: u64) -> Result<OwnedFd, Errno> {
    // SAFETY: NUL-terminated type name.
    let fs =
        fd_result(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    for param in params {
        let (cmd, key, value) = match param {
            FsParam::String(k, v) => (FSCONFIG_SET_STRING, *k, v.as_ptr()),
            FsParam::Flag(k) => (FSCONFIG_SET_FLAG, *k, std::ptr::null()),
        };
        // SAFETY: NUL-terminated key, a NUL-terminated value or null for a flag, `fs` is an
        // fs context fd.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                key.as_ptr(),
                value,
                0,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
    }
    // SAFETY: null key/value are what FSCONFIG_CMD_CREATE takes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fs` is a created fs context fd; flags and attrs are plain integers.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    })
}
