//! The container's root filesystem: `root`, `mounts`, `/dev`, masked and
//! read-only paths, rootfs propagation (runtime-spec config.md and
//! config-linux.md).
//!
//! # Order of operations
//!
//! [`RootfsPlan::from_spec`] decides everything from the config (pure,
//! apart from locating the rootfs). The container init, already in its
//! own mount namespace (and user namespace, if any), then calls:
//!
//! 1. [`prepare`], before the createContainer hooks:
//!    1. "/" gets `MS_SLAVE|MS_REC` (or the requested `rootfsPropagation`)
//!       so nothing mounted below propagates back to the host. When that
//!       leaves the rootfs's parent mount shared, it is made private, since
//!       pivot_root refuses shared parents.
//!    2. the rootfs is bind-mounted onto itself (`MS_BIND|MS_REC`): it must
//!       be a mount point for pivot_root and MS_MOVE, and it is the mount
//!       every later step builds on. Only then is the rootfs opened
//!       (`O_PATH`), so the fd names the new mount.
//!    3. every `mounts` entry, in order: the first mount(2), then for binds
//!       the `MS_BIND|MS_REMOUNT` call for per-mount flags, then one
//!       mount(2) per propagation option, then mount_setattr(2) with
//!       `AT_RECURSIVE` for the recursive options (rro, rnosuid, ...).
//!    4. /dev, unless /dev is a bind mount from the host: the default
//!       devices and `linux.devices` (mknod, or a bind of the host node when
//!       a user namespace forbids mknod), the /dev/fd and /dev/std*
//!       symlinks, and /dev/ptmx -> pts/ptmx when /dev/pts is a devpts.
//! 2. [`enter`]: pivot_root(".", ".") then a detached unmount of the old
//!    root (made rslave first so the unmount does not reach the host), or
//!    with `no_pivot`, MS_MOVE of the rootfs onto "/" and chroot(".").
//!    The working directory is "/" afterwards.
//! 3. [`finish`], after the console is set up: `linux.maskedPaths`,
//!    `linux.readonlyPaths`, `root.readonly`, and last the requested
//!    `rootfsPropagation` of "/".
//!
//! # Path resolution invariant
//!
//! Before [`enter`], the rootfs is an ordinary directory of the host and
//! its image is untrusted: a symlink such as `rootfs/evil -> /etc` or
//! `rootfs/a -> ../../..` must not redirect any mount, mkdir, mknod or file
//! creation to the host. So no path inside the rootfs is ever handed to
//! the kernel as a string below the rootfs: every destination is resolved
//! with openat2(2) and `RESOLVE_IN_ROOT` from the rootfs fd (symlinks and
//! ".." then resolve as if the rootfs were "/"), missing components are
//! created one at a time with mkdirat/mknodat relative to a directory fd
//! that was itself resolved that way, and the mount(2) target is the
//! opened fd, named through "/proc/self/fd/N" (the host's /proc is still
//! visible). The fd's path is checked to lie under the rootfs before
//! mounting, as a second line of defense. After [`enter`] the root
//! directory is the rootfs, so plain paths can no longer leave it.

mod cgroup;
mod devices;
mod idmap;
mod mounts;
pub(crate) mod options;
mod paths;
pub mod procfs;

pub use paths::openat2;

pub use idmap::{idmap_supported, DetachedMounts};

/// Whether every option in `opts` is one skiff knows (none of them goes to
/// the filesystem as data); errors as for a mount's options.
pub fn parse_mount_options(opts: &[String]) -> Result<bool> {
    let o = options::parse(opts, "options")?;
    Ok(o.data.is_empty())
}
pub use procfs::{open_proc_file, open_proc_root, verify_cwd_inside_root, write_proc_file};

#[cfg(test)]
mod tests;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use self::devices::DevicePlan;
use self::mounts::{sys_mount, MountKind, MountPlan};
use self::options::*;
use self::paths::ContainerPath;
use crate::error::{Context, ErrnoText, Error, Result};

/// Everything decided from the config; applying it needs no more parsing.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    rootfs: PathBuf,
    rootfs_c: CString,
    readonly: bool,
    no_pivot: bool,
    in_userns: bool,
    /// No mount namespace of its own (the spec allows it: missing namespaces are inherited):
    /// the container's mounts go into our table under the rootfs, "/" keeps its propagation,
    /// chroot instead of pivot_root, and `delete` unmounts them all.
    host_mount_ns: bool,
    /// Flags for "/" in step 1.
    root_propagation: u64,
    /// The requested rootfsPropagation, applied again at the end.
    final_propagation: Option<u64>,
    /// Step 1 may leave the rootfs's parent mount shared.
    parent_private: bool,
    mounts: Vec<MountPlan>,
    /// Empty when /dev is a bind mount from the host.
    devices: Vec<DevicePlan>,
    setup_dev: bool,
    /// /dev was asked read-only: mounted writable, made read-only once /dev/pts, /dev/shm,
    /// the devices and the links are in place.
    dev_readonly: bool,
    ptmx_symlink: bool,
    masked: Vec<ContainerPath>,
    readonly_paths: Vec<ContainerPath>,
    /// The container's (uid_map, gid_map) texts, for idmapped mounts that
    /// use the container's mapping; None without a new user namespace.
    container_maps: Option<(String, String)>,
    /// The user namespace the container joins by path, if any.
    userns_path: Option<PathBuf>,
}

fn propagation_flags(s: &str) -> Option<u64> {
    Some(match s {
        "private" => MS_PRIVATE,
        "rprivate" => MS_PRIVATE | MS_REC,
        "slave" => MS_SLAVE,
        "rslave" => MS_SLAVE | MS_REC,
        "shared" => MS_SHARED,
        "rshared" => MS_SHARED | MS_REC,
        "unbindable" => MS_UNBINDABLE,
        "runbindable" => MS_UNBINDABLE | MS_REC,
        _ => return None,
    })
}

impl RootfsPlan {
    /// Validate and decide. `bundle` is the absolute bundle directory;
    /// root.path is relative to it (or absolute). `no_pivot` = runc's
    /// --no-pivot. `in_userns` = a user namespace is in use (new or joined):
    /// devices are then bind-mounted from the host instead of mknod.
    pub fn from_spec(
        spec: &Spec,
        bundle: &Path,
        no_pivot: bool,
        in_userns: bool,
    ) -> Result<RootfsPlan> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::config("root", "required"))?;
        let given = paths::host_path(bundle, root.path());
        // The one syscall of planning: the rootfs must exist, and its
        // canonical path is what the kernel reports for fds below it.
        let rootfs = std::fs::canonicalize(&given).map_err(|e| {
            let errno = e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO);
            Error::config(
                "root.path",
                format!("{}: {}", given.display(), ErrnoText(errno)),
            )
        })?;
        if !rootfs.is_dir() {
            return Err(Error::config(
                "root.path",
                format!("{}: {}", given.display(), ErrnoText(Errno::ENOTDIR)),
            ));
        }
        let rootfs_c = paths::cstring(&rootfs, "root.path")?;

        let linux = spec.linux().as_ref();
        let has_ns = |t: LinuxNamespaceType| {
            linux
                .and_then(|l| l.namespaces().as_ref())
                .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
        };
        let ns = mounts::Namespaces {
            net: has_ns(LinuxNamespaceType::Network),
            cgroup: has_ns(LinuxNamespaceType::Cgroup),
        };
        let host_mount_ns = !has_ns(LinuxNamespaceType::Mount);

        let final_propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            None | Some("") => None,
            Some(s) => Some(propagation_flags(s).ok_or_else(|| {
                Error::config(
                    "linux.rootfsPropagation",
                    format!("{s:?}: must be one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable"),
                )
            })?),
        };
        // Step 1 sets "/" to the requested propagation, except unbindable: the rootfs
        // bind onto itself must be allowed first (binding an unbindable mount is EINVAL),
        // so unbindable is applied at the end only; until then runc's default, rslave.
        let root_propagation = match final_propagation {
            Some(p) if p & MS_UNBINDABLE == 0 => p,
            _ => MS_SLAVE | MS_REC,
        };
        // The mount the rootfs lies on must not be shared (pivot_root refuses a new root
        // whose parent mount is shared, and the rootfs bind would propagate to the host).
        // Only a recursive non-shared change of "/" is sure to have covered it.
        let parent_private = root_propagation & MS_REC == 0 || root_propagation & MS_SHARED != 0;

        let specs = spec.mounts().as_deref().unwrap_or(&[]);
        let mut mounts = Vec::with_capacity(specs.len());
        for (i, m) in specs.iter().enumerate() {
            mounts.push(mounts::plan(m, i, bundle, in_userns, ns)?);
        }
        let dev_is_host_bind = mounts
            .iter()
            .any(|m| m.dest.abs.as_bytes() == b"/dev" && m.is_bind());
        let mut dev_readonly = false;
        for m in mounts.iter_mut() {
            if m.dest.abs.as_bytes() == b"/dev" && !m.is_bind() && m.flags & MS_RDONLY != 0 {
                m.flags &= !MS_RDONLY;
                dev_readonly = true;
            }
        }
        let setup_dev = !dev_is_host_bind;
        let devices = if setup_dev {
            devices::plan(linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]))?
        } else {
            Vec::new()
        };
        let ptmx_symlink = setup_dev && mounts.iter().any(|m| {
            m.dest.abs.as_bytes() == b"/dev/pts"
                && matches!(&m.kind, MountKind::Fs { fstype, .. } if fstype.as_bytes() == b"devpts")
        });

        let container_paths =
            |list: Option<&Vec<String>>, name: &str| -> Result<Vec<ContainerPath>> {
                list.map(|v| v.as_slice())
                    .unwrap_or(&[])
                    .iter()
                    .enumerate()
                    .map(|(i, p)| ContainerPath::parse(Path::new(p), &format!("linux.{name}[{i}]")))
                    .collect()
            };
        let masked = container_paths(linux.and_then(|l| l.masked_paths().as_ref()), "maskedPaths")?;
        let readonly_paths = container_paths(
            linux.and_then(|l| l.readonly_paths().as_ref()),
            "readonlyPaths",
        )?;

        let user_ns = linux
            .and_then(|l| l.namespaces().as_ref())
            .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::User));
        let userns_path = user_ns.and_then(|n| n.path().clone());
        let container_maps = match (user_ns, linux) {
            (Some(n), Some(l)) if n.path().is_none() => Some((
                crate::namespaces::userns::render_map(l.uid_mappings().as_deref().unwrap_or(&[])),
                crate::namespaces::userns::render_map(l.gid_mappings().as_deref().unwrap_or(&[])),
            )),
            _ => None,
        };

        Ok(RootfsPlan {
            rootfs,
            rootfs_c,
            readonly: root.readonly().unwrap_or(false),
            no_pivot,
            in_userns,
            host_mount_ns,
            root_propagation,
            final_propagation,
            parent_private,
            mounts,
            devices,
            setup_dev,
            dev_readonly,
            ptmx_symlink,
            masked,
            readonly_paths,
            container_maps,
            userns_path,
        })
    }

    /// Absolute (canonical) host path of the root filesystem.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The container's mounts go into the runtime's own mount table (no mount namespace).
    pub fn in_host_mount_ns(&self) -> bool {
        self.host_mount_ns
    }
}

/// Restores the umask on every exit path of [`prepare`].
struct UmaskGuard(libc::mode_t);

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(self.0) };
    }
}

/// Make private the mount that holds the rootfs, if it is shared: the mount the rootfs
/// path itself lies on, which is the rootfs when it is a mount point of its own (an overlay
/// set up by an engine), as runc does. Its parent directory's mount is the wrong one then:
/// left shared, it makes pivot_root fail with EINVAL.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let text = crate::sys::mountinfo::read_own()?;
    let all = cgroup::parse_mountinfo(&text);
    if let Some(m) = cgroup::containing_mount(&all, rootfs) {
        if m.optional.split(' ').any(|f| f.starts_with("shared:")) {
            let mp = CString::new(m.mount_point.as_bytes())
                .map_err(|_| Error::msg("NUL in mount point"))?;
            sys_mount(None, &mp, None, MS_PRIVATE, None)
                .map_err(|e| Error::sys_path("make private", &m.mount_point, e))?;
        }
    }
    Ok(())
}

/// Step 1: propagation of "/", the rootfs self-bind, `mounts`, /dev.
/// For a plan without id-mapped mounts.
pub fn prepare(plan: &RootfsPlan) -> Result<()> {
    prepare_with(plan, &DetachedMounts::default(), None)
}

/// Step 1 with the id-mapped mounts the runtime process prepared before
/// the init was cloned ([`DetachedMounts::prepare`]), and the host's mount
/// table as that process read it (`/proc/self/mountinfo`), where the cgroup
/// mount finds the host's hierarchies; `None`: read it here.
pub fn prepare_with(
    plan: &RootfsPlan,
    idmapped: &DetachedMounts,
    host_mountinfo: Option<&str>,
) -> Result<()> {
    if !plan.host_mount_ns {
        sys_mount(None, c"/", None, plan.root_propagation, None)
            .map_err(|e| Error::sys_path("set propagation of", "/", e))?;
        if plan.parent_private {
            make_parent_private(&plan.rootfs)?;
        }
    }
    // pivot_root needs the rootfs to be a mount; in the host's mount namespace only a
    // read-only root does (its own mount, made read-only at the end; delete removes it).
    if !plan.host_mount_ns || plan.readonly {
        sys_mount(
            Some(&plan.rootfs_c),
            &plan.rootfs_c,
            None,
            MS_BIND | MS_REC,
            None,
        )
        .map_err(|e| Error::sys_path("bind mount rootfs onto itself", &plan.rootfs, e))?;
    }
    // SAFETY: NUL-terminated path; the result is checked before use.
    let fd = unsafe {
        libc::open(
            plan.rootfs_c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::sys_path("open", &plan.rootfs, Errno::last()));
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let root = unsafe { OwnedFd::from_raw_fd(fd) };
    // Modes of created directories, files and nodes must be exactly those asked for.
    // SAFETY: umask cannot fail.
    let _umask = UmaskGuard(unsafe { libc::umask(0) });

    let rootfs = plan.rootfs_c.as_bytes();
    for m in &plan.mounts {
        let prepared = idmapped.tree(m.index);
        if m.idmap.is_some() && prepared.is_none() {
            return Err(Error::msg(format!(
                "mounts[{}] ({}): the id-mapped mount was not prepared",
                m.index, m.label
            )));
        }
        mounts::mount(root.as_fd(), rootfs, m, prepared, host_mountinfo)?;
    }
    if plan.setup_dev {
        let mut parents = devices::ParentDirs::default();
        for d in &plan.devices {
            devices::create(root.as_fd(), &mut parents, d, plan.in_userns)
                .with_context(|| format!("create device {}", d.path.display()))?;
        }
        devices::symlinks(root.as_fd(), plan.ptmx_symlink)?;
    }
    if plan.dev_readonly {
        let dev = paths::open_in_root(root.as_fd(), c"dev", libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| Error::sys_path("open", "/dev", e))?;
        let attr = crate::sys::mount_api::MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        crate::sys::mount_api::setattr(dev.as_fd(), false, &attr)
            .map_err(|e| Error::sys_path("make read-only (mount_setattr)", "/dev", e))?;
    }
    Ok(())
}

fn open_dir(path: &std::ffi::CStr) -> Result<OwnedFd> {
    // SAFETY: NUL-terminated path; the result is checked before use.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::sys_path(
            "open",
            path.to_string_lossy().as_ref(),
            Errno::last(),
        ));
    }
    // SAFETY: just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(r: libc::c_int, op: &str, path: &str) -> Result<()> {
    if r < 0 {
        return Err(Error::sys_path(op.to_string(), path, Errno::last()));
    }
    Ok(())
}

/// The mount points to detach before a chroot, deepest first: every mount of our namespace
/// that is neither the rootfs (or below it) nor one of the mounts the rootfs lies on (those
/// cannot go without it). What stays is hidden under the moved rootfs.
fn mounts_outside(mounts: &[crate::sys::mountinfo::MountInfo], rootfs: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mounts
        .iter()
        .map(|m| PathBuf::from(&m.mount_point))
        .filter(|mp| !rootfs.starts_with(mp) && !mp.starts_with(rootfs))
        .collect();
    // Children before parents (deeper paths first); duplicates (stacked mounts) once.
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// --no-pivot: chroot leaves the old root's mounts in the namespace, out of sight but not out
/// of reach (a full host procfs or sysfs there lets a nested user namespace mount a fresh,
/// unmasked one). Detach them all first, each made a slave so nothing propagates to the host.
fn detach_mounts_outside(rootfs: &Path) -> Result<()> {
    let text = crate::sys::mountinfo::read_own()?;
    for mp in mounts_outside(&crate::sys::mountinfo::parse(&text), rootfs) {
        let c = paths::cstring(&mp, "mount point")?;
        let _ = sys_mount(None, &c, None, MS_SLAVE | MS_REC, None);
        match nix::mount::umount2(mp.as_path(), nix::mount::MntFlags::MNT_DETACH) {
            // Gone with a parent detached before it, or not a mount point any more.
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys_path("detach (--no-pivot)", &mp, e)),
        }
    }
    Ok(())
}

/// Unmount every mount at or below `rootfs` in our mount table, deepest first: what a
/// container without a mount namespace of its own made there (`delete`, a failed create).
pub fn unmount_under(rootfs: &Path) -> Result<()> {
    let text = crate::sys::mountinfo::read_own()?;
    let mut points: Vec<PathBuf> = crate::sys::mountinfo::parse(&text)
        .into_iter()
        .map(|m| PathBuf::from(m.mount_point))
        .filter(|mp| mp.starts_with(rootfs))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for mp in points {
        match nix::mount::umount2(mp.as_path(), nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys_path("unmount", &mp, e)),
        }
    }
    Ok(())
}

/// Step 2: make the rootfs "/" (pivot_root, or MS_MOVE + chroot).
pub fn enter(plan: &RootfsPlan) -> Result<()> {
    let rootfs = plan.rootfs.display().to_string();
    // SAFETY: NUL-terminated path.
    check(
        unsafe { libc::chdir(plan.rootfs_c.as_ptr()) },
        "chdir",
        &rootfs,
    )?;
    if plan.host_mount_ns {
        // SAFETY: NUL-terminated path.
        check(unsafe { libc::chroot(c".".as_ptr()) }, "chroot", &rootfs)?;
    } else if plan.no_pivot {
        detach_mounts_outside(&plan.rootfs)?;
        sys_mount(Some(c"."), c"/", None, MS_MOVE_FLAG, None)
            .map_err(|e| Error::sys_path("move mount", &rootfs, e))?;
        // SAFETY: NUL-terminated path.
        check(unsafe { libc::chroot(c".".as_ptr()) }, "chroot", &rootfs)?;
    } else {
        let old_root = open_dir(c"/")?;
        // SAFETY: NUL-terminated paths; pivot_root has no libc wrapper.
        let r = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
        if r < 0 {
            return Err(Error::sys_path("pivot_root", &rootfs, Errno::last()));
        }
        // The old root now sits on top of the new one at "/"; reach it
        // through the fd to detach it.
        // SAFETY: `old_root` is an open directory fd.
        check(
            unsafe { libc::fchdir(old_root.as_raw_fd()) },
            "fchdir",
            "old root",
        )?;
        sys_mount(None, c".", None, MS_SLAVE | MS_REC, None)
            .map_err(|e| Error::sys_path("make old root rslave", "/", e))?;
        // SAFETY: NUL-terminated path.
        check(
            unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) },
            "unmount old root",
            "/",
        )?;
    }
    // SAFETY: NUL-terminated path.
    check(unsafe { libc::chdir(c"/".as_ptr()) }, "chdir", "/")
}

const MS_MOVE_FLAG: u64 = libc::MS_MOVE;

/// The container's /dev/null, opened without following a final symlink
/// and checked to be the null device (1:3): masking with anything else
/// would expose what an image (or a racing process sharing the rootfs)
/// planted there (the CVE-2025-31133 class). Masks are cloned from this
/// fd, so the checked file is the one used.
fn open_dev_null(root: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    let fd = paths::open_in_root(root, c"dev/null", libc::O_PATH | libc::O_NOFOLLOW)
        .map_err(|e| Error::sys_path("open", "/dev/null", e))?;
    let st = procfs::fstat(fd.as_fd()).map_err(|e| Error::sys_path("stat", "/dev/null", e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || libc::major(st.st_rdev) != 1
        || libc::minor(st.st_rdev) != 3
    {
        return Err(Error::msg(
            "/dev/null is not the null device (1:3): cannot mask paths with it",
        ));
    }
    Ok(fd)
}

/// Resolve a masked or read-only path inside the (new) root; None when it
/// does not exist.
fn open_target(root: std::os::fd::BorrowedFd<'_>, p: &ContainerPath) -> Result<Option<OwnedFd>> {
    match paths::open_in_root(root, &p.rel, libc::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::sys_path("open", p.as_path(), e)),
    }
}

fn mask(
    root: std::os::fd::BorrowedFd<'_>,
    null: std::os::fd::BorrowedFd<'_>,
    p: &ContainerPath,
) -> Result<()> {
    let Some(t) = open_target(root, p)? else {
        return Ok(());
    };
    let st = procfs::fstat(t.as_fd()).map_err(|e| Error::sys_path("stat", p.as_path(), e))?;
    let tree = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        // Directories get an empty read-only tmpfs.
        crate::sys::mount_api::new_fs(
            c"tmpfs",
            &[],
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        )
        .map_err(|e| Error::sys_path("mask with tmpfs", p.as_path(), e))?
    } else {
        crate::sys::mount_api::clone_of(null, false)
            .map_err(|e| Error::sys_path("mask with /dev/null (open_tree)", p.as_path(), e))?
    };
    crate::sys::mount_api::move_onto(tree.as_fd(), t.as_fd())
        .map_err(|e| Error::sys_path("mask (move_mount)", p.as_path(), e))
}

fn make_readonly(root: std::os::fd::BorrowedFd<'_>, p: &ContainerPath) -> Result<()> {
    let Some(t) = open_target(root, p)? else {
        return Ok(());
    };
    let tree = crate::sys::mount_api::clone_of(t.as_fd(), true)
        .map_err(|e| Error::sys_path("bind mount (open_tree)", p.as_path(), e))?;
    // Setting flags is allowed even where clearing locked ones is not.
    let attr = crate::sys::mount_api::MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    crate::sys::mount_api::setattr(tree.as_fd(), true, &attr)
        .map_err(|e| Error::sys_path("make read-only (mount_setattr)", p.as_path(), e))?;
    crate::sys::mount_api::move_onto(tree.as_fd(), t.as_fd())
        .map_err(|e| Error::sys_path("bind mount (move_mount)", p.as_path(), e))
}

/// Step 3: masked paths, read-only paths, read-only root, propagation.
/// Every path is resolved from an fd of the new root and mounted on by fd
/// (no path string is looked up twice, /proc need not be mounted).
pub fn finish(plan: &RootfsPlan) -> Result<()> {
    if !plan.masked.is_empty() || !plan.readonly_paths.is_empty() {
        let root = open_dir(c"/")?;
        if !plan.masked.is_empty() {
            let null = open_dev_null(root.as_fd())?;
            for (i, p) in plan.masked.iter().enumerate() {
                mask(root.as_fd(), null.as_fd(), p)
                    .with_context(|| format!("linux.maskedPaths[{i}]"))?;
            }
        }
        for (i, p) in plan.readonly_paths.iter().enumerate() {
            make_readonly(root.as_fd(), p).with_context(|| format!("linux.readonlyPaths[{i}]"))?;
        }
    }
    if plan.readonly {
        mounts::remount_keep_locked(c"/", MS_RDONLY)
            .map_err(|e| Error::sys_path("remount read-only", "/", e))
            .context("root.readonly")?;
    }
    if let Some(p) = plan.final_propagation.filter(|_| !plan.host_mount_ns) {
        sys_mount(None, c"/", None, p, None)
            .map_err(|e| Error::sys_path("set propagation of", "/", e))
            .context("linux.rootfsPropagation")?;
    }
    Ok(())
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    #[test]
    fn no_pivot_detaches_everything_but_the_rootfs_and_what_holds_it() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 0:5 / /proc rw - proc proc rw\n\
                    3 1 0:6 / /sys rw - sysfs sysfs rw\n\
                    4 3 0:7 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                    5 1 0:8 / /var rw - tmpfs tmpfs rw\n\
                    6 5 8:1 /b /var/lib/c/rootfs rw - ext4 /dev/sda1 rw\n\
                    7 6 0:9 / /var/lib/c/rootfs/proc rw - proc proc rw\n\
                    8 1 0:10 / /var/lib/cx rw - tmpfs tmpfs rw\n";
        let got = mounts_outside(
            &crate::sys::mountinfo::parse(text),
            Path::new("/var/lib/c/rootfs"),
        );
        let got: Vec<&str> = got.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(got, ["/sys/fs/cgroup", "/var/lib/cx", "/proc", "/sys"]);
    }

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    fn bundle() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("rootfs")).unwrap();
        d
    }

    #[test]
    fn rootfs_relative_to_bundle_and_checked() {
        let b = bundle();
        let s = spec(r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"}}"#);
        let p = RootfsPlan::from_spec(&s, b.path(), false, false).unwrap();
        assert_eq!(
            p.rootfs(),
            std::fs::canonicalize(b.path().join("rootfs")).unwrap()
        );
        assert!(!p.readonly);
        assert_eq!(p.root_propagation, MS_SLAVE | MS_REC);
        assert!(!p.parent_private);
        assert_eq!(p.final_propagation, None);
        assert!(p.setup_dev);
        assert_eq!(p.devices.len(), 6);

        let s = spec(r#"{"ociVersion":"1.3.0","root":{"path":"nope"}}"#);
        let e = RootfsPlan::from_spec(&s, b.path(), false, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "root.path: {}/nope: no such file or directory",
                b.path().display()
            )
        );
        let s = spec(r#"{"ociVersion":"1.3.0"}"#);
        assert_eq!(
            RootfsPlan::from_spec(&s, b.path(), false, false)
                .unwrap_err()
                .to_string(),
            "root: required"
        );
    }

    #[test]
    fn propagation_and_dev_decisions() {
        let b = bundle();
        let s = spec(
            r#"{"ociVersion":"1.3.0","root":{"path":"rootfs","readonly":true},
            "mounts":[{"destination":"/dev","type":"bind","source":"/dev","options":["rbind"]},
                      {"destination":"/dev/pts","type":"devpts","source":"devpts"}],
            "linux":{"rootfsPropagation":"shared","maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"]}}"#,
        );
        let p = RootfsPlan::from_spec(&s, b.path(), true, false).unwrap();
        assert!(p.readonly && p.no_pivot);
        assert_eq!(p.final_propagation, Some(MS_SHARED));
        assert!(p.parent_private);
        assert!(!p.setup_dev && p.devices.is_empty());
        assert_eq!(p.masked[0].abs.as_bytes(), b"/proc/kcore");

        let s = spec(
            r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},"linux":{"rootfsPropagation":"bogus"}}"#,
        );
        let e = RootfsPlan::from_spec(&s, b.path(), false, false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.rootfsPropagation: \"bogus\""),
            "{e}"
        );
        let s = spec(
            r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},"linux":{"maskedPaths":["proc/kcore"]}}"#,
        );
        let e = RootfsPlan::from_spec(&s, b.path(), false, false).unwrap_err();
        assert!(e.to_string().starts_with("linux.maskedPaths[0]: "), "{e}");
        let s = spec(
            r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},
            "mounts":[{"destination":"/dev","type":"tmpfs"},{"destination":"/dev/pts","type":"devpts"}],
            "linux":{"rootfsPropagation":"rprivate","devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]}}"#,
        );
        let p = RootfsPlan::from_spec(&s, b.path(), false, true).unwrap();
        assert!(p.setup_dev && p.ptmx_symlink && !p.parent_private && p.in_userns);
        assert_eq!(p.devices.len(), 7);
    }
}
