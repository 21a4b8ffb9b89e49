//! The `mounts` entries: planning (pure) and performing them.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Mount;

use super::cgroup::{self, Layout};
use super::options::{self, *};
use super::paths::{self, ContainerPath, Kind, ProcFd};
use crate::error::{Context, Error, Result};
use crate::sys::mount_api::{self, MountAttr, OPEN_TREE_CLONE};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// bind/rbind (MS_REC in `flags` for rbind) of a host path.
    Bind { source: CString },
    /// A filesystem mounted by type (proc, tmpfs, ...).
    Fs { fstype: CString, source: CString },
    /// Type "cgroup": cgroup2 or a tmpfs of per-hierarchy mounts, decided
    /// from the host's layout when mounting. With a cgroup namespace the
    /// v1 hierarchies are mounted afresh (so they show the namespace's
    /// root); without one, the process's own cgroup directories are bound.
    Cgroup { cgroupns: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub index: usize,
    /// "tmpfs on /dev/shm", for errors.
    pub label: String,
    pub dest: ContainerPath,
    pub kind: MountKind,
    /// mount(2) flags; for binds those beyond MS_BIND|MS_REC need a remount.
    pub flags: u64,
    pub data: Option<CString>,
    pub propagation: Vec<u64>,
    pub rec: RecAttr,
    /// A sysfs that the kernel may refuse in a user namespace: bind the
    /// host's /sys then.
    pub sysfs_fallback: bool,
    /// An id-mapped bind mount (made detached by the runtime process, see
    /// `rootfs::IdmappedMounts`).
    pub idmap: Option<IdmapPlan>,
}

/// `idmap`/`ridmap` and the mount's own `uidMappings`/`gidMappings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmapPlan {
    /// `ridmap`: the mapping applies to every mount of an rbind's tree.
    pub recursive: bool,
    /// (uid_map, gid_map) texts of the mount's own mappings; None: the
    /// container's user namespace mapping.
    pub maps: Option<(String, String)>,
}

impl MountPlan {
    pub fn is_bind(&self) -> bool {
        matches!(self.kind, MountKind::Bind { .. })
    }
}

/// The container's namespaces that change how mounts are done.
#[derive(Debug, Clone, Copy, Default)]
pub struct Namespaces {
    /// A network namespace of its own (new or joined): without one, sysfs
    /// cannot be mounted from a user namespace.
    pub net: bool,
    /// A cgroup namespace of its own.
    pub cgroup: bool,
}

/// Decide how to perform `mounts[index]`.
pub fn plan(
    m: &Mount,
    index: usize,
    bundle: &Path,
    in_userns: bool,
    ns: Namespaces,
) -> Result<MountPlan> {
    let field = |f: &str| format!("mounts[{index}].{f}");
    let dest = ContainerPath::parse(m.destination(), &field("destination"))?;
    if dest.is_root() {
        return Err(Error::config(field("destination"), "cannot mount over /"));
    }
    let mut opts = options::parse(m.options().as_deref().unwrap_or(&[]), &field("options"))?;
    let typ = m.typ().as_deref().unwrap_or("");
    let idmap = plan_idmap(m, index, opts.idmap, typ == "bind" || opts.bind, in_userns)?;
    if opts.tmpcopyup {
        log::warn!("mounts[{index}]: option tmpcopyup is not supported, ignored");
    }
    let bind = typ == "bind" || opts.bind;
    if bind {
        opts.flags |= MS_BIND;
    }
    let shown = if typ.is_empty() || (bind && typ == "none") {
        "bind"
    } else {
        typ
    };
    let label = format!("{shown} on {}", dest.display());
    let data = if opts.data.is_empty() || bind {
        None
    } else {
        Some(
            CString::new(opts.data)
                .map_err(|_| Error::config(field("options"), "contains a NUL byte"))?,
        )
    };
    let mut sysfs_fallback = false;
    let kind = if bind {
        let Some(src) = m.source() else {
            return Err(Error::config(field("source"), "required for a bind mount"));
        };
        MountKind::Bind {
            source: paths::cstring(&paths::host_path(bundle, src), &field("source"))?,
        }
    } else if typ.is_empty() {
        return Err(Error::config(
            field("type"),
            "required unless options hold bind or rbind",
        ));
    } else if typ == "cgroup" {
        MountKind::Cgroup {
            cgroupns: ns.cgroup,
        }
    } else if typ == "sysfs" && in_userns && !ns.net {
        opts.flags |= MS_BIND | MS_REC;
        MountKind::Bind {
            source: c"/sys".to_owned(),
        }
    } else {
        sysfs_fallback = typ == "sysfs" && in_userns;
        let source = match m.source() {
            Some(s) => paths::cstring(s, &field("source"))?,
            None => CString::new(typ)
                .map_err(|_| Error::config(field("type"), "contains a NUL byte"))?,
        };
        MountKind::Fs {
            fstype: CString::new(typ)
                .map_err(|_| Error::config(field("type"), "contains a NUL byte"))?,
            source,
        }
    };
    Ok(MountPlan {
        index,
        label,
        dest,
        kind,
        flags: opts.flags,
        data,
        propagation: opts.propagation,
        rec: opts.rec,
        sysfs_fallback,
        idmap,
    })
}

/// Validate a mount's id mapping (config.md "Mounts": idmap, ridmap,
/// uidMappings, gidMappings).
fn plan_idmap(
    m: &Mount,
    index: usize,
    option: Option<bool>,
    bind: bool,
    in_userns: bool,
) -> Result<Option<IdmapPlan>> {
    let field = |f: &str| format!("mounts[{index}].{f}");
    let (uids, gids) = (m.uid_mappings(), m.gid_mappings());
    if option.is_none() && uids.is_none() && gids.is_none() {
        return Ok(None);
    }
    if !bind {
        return Err(Error::config(
            field("options"),
            "id-mapped mounts are supported for bind mounts only",
        ));
    }
    let maps = match (uids, gids) {
        (None, None) => {
            if !in_userns {
                return Err(Error::config(
                    field("options"),
                    "idmap without uidMappings and gidMappings needs the container \
                     to have a user namespace",
                ));
            }
            None
        }
        (Some(u), Some(g)) => {
            for (maps, f) in [(u, "uidMappings"), (g, "gidMappings")] {
                if maps.is_empty() {
                    return Err(Error::config(field(f), "must not be empty"));
                }
                if let Some(i) = maps.iter().position(|x| x.size() == 0) {
                    return Err(Error::config(
                        format!("{}[{i}].size", field(f)),
                        "must not be zero",
                    ));
                }
            }
            Some((
                crate::namespaces::userns::render_map(u),
                crate::namespaces::userns::render_map(g),
            ))
        }
        (Some(_), None) => {
            return Err(Error::config(
                field("gidMappings"),
                "required along with uidMappings",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::config(
                field("uidMappings"),
                "required along with gidMappings",
            ))
        }
    };
    Ok(Some(IdmapPlan {
        recursive: option.unwrap_or(false),
        maps,
    }))
}

// ---- doing ----

pub fn sys_mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> std::result::Result<(), Errno> {
    let p = |c: Option<&CStr>| c.map(|c| c.as_ptr()).unwrap_or(std::ptr::null());
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    let r = unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast()) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Change the per-mount flags of the mount at `target` (MS_BIND|MS_REMOUNT).
/// In a user namespace the kernel refuses to drop flags that a more
/// privileged namespace set; retry once keeping those.
pub fn remount_keep_locked(target: &CStr, flags: u64) -> std::result::Result<(), Errno> {
    let flags = flags | MS_BIND | MS_REMOUNT;
    match sys_mount(None, target, None, flags, None) {
        Err(Errno::EPERM) => {
            // SAFETY: an all-zero statvfs is a valid value to be overwritten.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: `target` is NUL-terminated, `st` is writable.
            if unsafe { libc::statvfs(target.as_ptr(), &mut st) } < 0 {
                return Err(Errno::EPERM);
            }
            let retry = merge_locked(flags, locked_flags_from_statvfs(st.f_flag));
            if retry == flags {
                return Err(Errno::EPERM);
            }
            sys_mount(None, target, None, retry, None)
        }
        r => r,
    }
}

/// The mount_setattr(2) attributes that make a mount's per-mount flags exactly `flags` (MS_*
/// bits), as a bind remount (MS_BIND|MS_REMOUNT) does: flags not given are cleared, the atime
/// mode defaults to relatime.
pub fn replace_attrs(flags: u64) -> MountAttr {
    let mut set = 0;
    for (ms, attr) in [
        (MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MS_NODEV, MOUNT_ATTR_NODEV),
        (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if flags & ms != 0 {
            set |= attr;
        }
    }
    set |= if flags & MS_NOATIME != 0 {
        MOUNT_ATTR_NOATIME
    } else if flags & MS_STRICTATIME != 0 {
        MOUNT_ATTR_STRICTATIME
    } else {
        MOUNT_ATTR_RELATIME
    };
    let settable = MOUNT_ATTR_RDONLY
        | MOUNT_ATTR_NOSUID
        | MOUNT_ATTR_NODEV
        | MOUNT_ATTR_NOEXEC
        | MOUNT_ATTR_NODIRATIME
        | MOUNT_ATTR_NOSYMFOLLOW;
    MountAttr {
        attr_set: set,
        attr_clr: (settable & !set) | MOUNT_ATTR__ATIME,
        propagation: 0,
        userns_fd: 0,
    }
}

/// Give the mount `fd` names exactly the per-mount flags `flags`, on the fd (never by path: a
/// path can be swapped under us in a directory the container shares). In a user namespace
/// the kernel refuses to drop flags that a more privileged namespace locked; retry once
/// keeping those.
fn set_flags_keep_locked(fd: BorrowedFd<'_>, flags: u64) -> std::result::Result<(), Errno> {
    match mount_api::setattr(fd, false, &replace_attrs(flags)) {
        Err(Errno::EPERM) => {
            let st = nix::sys::statvfs::fstatvfs(fd).map_err(|_| Errno::EPERM)?;
            let retry = merge_locked(flags, locked_flags_from_statvfs(st.flags().bits()));
            if retry == flags {
                return Err(Errno::EPERM);
            }
            mount_api::setattr(fd, false, &replace_attrs(retry))
        }
        r => r,
    }
}

/// Propagation changes and recursive attributes of a mount, on its fd.
fn settle(fd: BorrowedFd<'_>, propagation: &[u64], rec: RecAttr) -> Result<()> {
    for &p in propagation {
        let attr = MountAttr {
            attr_set: 0,
            attr_clr: 0,
            propagation: p & !MS_REC,
            userns_fd: 0,
        };
        mount_api::setattr(fd, p & MS_REC != 0, &attr)
            .map_err(|e| Error::sys("mount propagation (mount_setattr)", e))?;
    }
    if !rec.is_empty() {
        let attr = MountAttr {
            attr_set: rec.set,
            attr_clr: rec.clr,
            propagation: 0,
            userns_fd: 0,
        };
        mount_api::setattr(fd, true, &attr).map_err(|e| Error::sys("mount_setattr", e))?;
    }
    Ok(())
}

/// Flags of a bind that need the second, remounting call.
fn bind_remount_flags(flags: u64) -> u64 {
    flags & !(MS_BIND | MS_REC | MS_REMOUNT)
}

fn target(
    root: BorrowedFd<'_>,
    rootfs: &[u8],
    dest: &ContainerPath,
    kind: Kind,
) -> Result<OwnedFd> {
    let fd = paths::ensure(root, &dest.rel, kind)?;
    paths::verify_inside(fd.as_fd(), rootfs, dest.as_path())?;
    super::procfs::refuse_kernel_fs(fd.as_fd(), dest.abs.as_bytes())?;
    Ok(fd)
}

/// A detached copy of `source` (with every mount below it for `recursive`): a bind mount
/// that exists only as an fd until it is attached.
pub fn bind_tree(source: &CStr, recursive: bool) -> std::result::Result<OwnedFd, Errno> {
    let mut flags = OPEN_TREE_CLONE;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    mount_api::open_tree(libc::AT_FDCWD, source, flags)
}

/// A bind mount: the detached tree `prepared` by the runtime process, or one made here from
/// `source`. Its flags are set while it is still detached (it is never seen writable), then
/// it is attached on the destination's fd, and its propagation and recursive attributes are
/// set on its own fd: no path is resolved a second time.
fn bind(
    root: BorrowedFd<'_>,
    rootfs: &[u8],
    m: &MountPlan,
    source: &CStr,
    flags: u64,
    prepared: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let shown = || Path::new(std::ffi::OsStr::from_bytes(source.to_bytes())).to_path_buf();
    let own;
    let tree = match prepared {
        Some(t) => t,
        None => {
            own = bind_tree(source, flags & MS_REC != 0)
                .map_err(|e| Error::sys_path("bind mount (open_tree)", shown(), e))?;
            own.as_fd()
        }
    };
    let st = super::procfs::fstat(tree).map_err(|e| Error::sys_path("stat", shown(), e))?;
    let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Kind::Dir
    } else {
        Kind::File
    };
    let remount = bind_remount_flags(flags);
    if remount != 0 {
        set_flags_keep_locked(tree, remount).map_err(|e| Error::sys("remount", e))?;
    }
    let t = target(root, rootfs, &m.dest, kind)?;
    mount_api::move_onto(tree, t.as_fd()).map_err(|e| Error::sys("move_mount", e))?;
    settle(tree, &m.propagation, m.rec)
}

/// A new detached filesystem from mount(2)-style arguments: `data` becomes fsconfig
/// parameters, superblock flags become flags, per-mount flags mount attributes.
fn fs_tree(
    fstype: &CStr,
    source: &CStr,
    flags: u64,
    data: Option<&CStr>,
) -> std::result::Result<OwnedFd, Errno> {
    let data = data.map(|d| d.to_bytes()).unwrap_or_default();
    let mut owned: Vec<(CString, Option<CString>)> = Vec::new();
    for item in data.split(|b| *b == b',').filter(|i| !i.is_empty()) {
        let (k, v) = match item.iter().position(|b| *b == b'=') {
            Some(i) => (&item[..i], Some(&item[i + 1..])),
            None => (item, None),
        };
        let k = CString::new(k).map_err(|_| Errno::EINVAL)?;
        let v = v.map(CString::new).transpose().map_err(|_| Errno::EINVAL)?;
        owned.push((k, v));
    }
    for (ms, name) in [
        (MS_RDONLY, c"ro"),
        (MS_SYNCHRONOUS, c"sync"),
        (MS_DIRSYNC, c"dirsync"),
        (MS_LAZYTIME, c"lazytime"),
        (MS_MANDLOCK, c"mand"),
    ] {
        if flags & ms != 0 {
            owned.push((name.to_owned(), None));
        }
    }
    let mut params = vec![mount_api::FsParam::String(c"source", source)];
    for (k, v) in &owned {
        params.push(match v {
            Some(v) => mount_api::FsParam::String(k, v),
            None => mount_api::FsParam::Flag(k),
        });
    }
    mount_api::new_fs_with(fstype, &params, replace_attrs(flags).attr_set)
}

/// A filesystem by type. Without propagation or recursive attributes to apply afterwards,
/// one mount(2) call sets everything at once; with them, the mount is made detached
/// (fsopen/fsmount) so they can be applied on its fd.
fn fs_mount(
    t: BorrowedFd<'_>,
    m: &MountPlan,
    fstype: &CStr,
    source: &CStr,
) -> std::result::Result<(), (Errno, &'static str)> {
    if m.propagation.is_empty() && m.rec.is_empty() {
        return sys_mount(
            Some(source),
            ProcFd::new(t).as_cstr(),
            Some(fstype),
            m.flags,
            m.data.as_deref(),
        )
        .map_err(|e| (e, "mount"));
    }
    let tree = fs_tree(fstype, source, m.flags, m.data.as_deref()).map_err(|e| (e, "fsmount"))?;
    mount_api::move_onto(tree.as_fd(), t).map_err(|e| (e, "move_mount"))?;
    settle(tree.as_fd(), &m.propagation, m.rec)
        .map_err(|e| (e.errno().unwrap_or(Errno::EIO), "mount_setattr"))
}

/// proc and sysfs (and whatever goes on /proc or /sys) only on an ordinary directory: never
/// through a symlink of the image's, even one that stays inside the root (/proc -> / would make
/// the root a procfs, and every masked or read-only path under /proc miss its target).
fn refuse_symlinked_kernel_fs(root: BorrowedFd<'_>, m: &MountPlan) -> Result<()> {
    let kernel_fs = matches!(&m.kind, MountKind::Fs { fstype, .. }
        if matches!(fstype.to_bytes(), b"proc" | b"sysfs"))
        || matches!(m.dest.abs.as_bytes(), b"/proc" | b"/sys");
    if !kernel_fs {
        return Ok(());
    }
    let field = || format!("mounts[{}].destination", m.index);
    match paths::openat2(
        root.as_raw_fd(),
        &m.dest.rel,
        libc::O_PATH,
        0,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(_) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::ELOOP) => Err(Error::config(
            field(),
            format!(
                "{} is a symlink in the root filesystem: {} must be mounted on an ordinary directory",
                m.dest.display(),
                m.label.split(' ').next().unwrap_or("it")
            ),
        )),
        Err(e) => Err(Error::sys_path("open", m.dest.as_path(), e)).with_context(field),
    }
}

/// Perform one planned mount. `root` is an O_PATH fd of the rootfs (after
/// its self-bind), `rootfs` its host path; `prepared` a bind's detached tree made by the
/// runtime process (`rootfs::DetachedMounts`); `host_mountinfo` see
/// [`super::prepare_with`].
pub fn mount(
    root: BorrowedFd<'_>,
    rootfs: &[u8],
    m: &MountPlan,
    prepared: Option<BorrowedFd<'_>>,
    host_mountinfo: Option<&str>,
) -> Result<()> {
    refuse_symlinked_kernel_fs(root, m)?;
    let r = match &m.kind {
        MountKind::Bind { source } => bind(root, rootfs, m, source, m.flags, prepared),
        MountKind::Fs { fstype, source } => {
            let t = target(root, rootfs, &m.dest, Kind::Dir)?;
            match fs_mount(t.as_fd(), m, fstype, source) {
                Ok(()) => Ok(()),
                Err((Errno::EPERM, _)) if m.sysfs_fallback => {
                    drop(t);
                    bind(root, rootfs, m, c"/sys", m.flags | MS_BIND | MS_REC, None)
                }
                Err((e, op)) => Err(Error::sys(op, e)),
            }
        }
        MountKind::Cgroup { cgroupns } => mount_cgroup(root, rootfs, m, *cgroupns, host_mountinfo),
    };
    let what = if m.idmap.is_some() { ", id-mapped" } else { "" };
    r.with_context(|| format!("mounts[{}] ({}{what})", m.index, m.label))
}

fn read_file(path: &str) -> Result<String> {
    crate::sys::fsio::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

fn mount_cgroup(
    root: BorrowedFd<'_>,
    rootfs: &[u8],
    m: &MountPlan,
    cgroupns: bool,
    host_mountinfo: Option<&str>,
) -> Result<()> {
    // Only the host's cgroup hierarchies matter here: the table read before
    // the clone lists the same ones (our mount namespace is a copy of it),
    // and none of the container's own mounts.
    let read;
    let text = match host_mountinfo {
        Some(t) => t,
        None => {
            read = crate::sys::mountinfo::read_own()?;
            &read
        }
    };
    let mounts = cgroup::parse_mountinfo(text);
    let cgroups = cgroup::parse_proc_cgroup(&read_file("/proc/self/cgroup")?);
    let t = target(root, rootfs, &m.dest, Kind::Dir)?;
    match cgroup::layout(&mounts, &cgroups) {
        Layout::V2 { own } => {
            match fs_mount(t.as_fd(), m, c"cgroup2", c"cgroup2") {
                Ok(()) => Ok(()),
                // A user namespace without its own cgroup namespace may not
                // mount cgroup2: show the container its own cgroup instead.
                Err((Errno::EPERM | Errno::EBUSY, _)) => {
                    drop(t);
                    let src = CString::new(own.as_os_str().as_bytes())
                        .map_err(|_| Error::msg("NUL in cgroup path"))?;
                    bind(root, rootfs, m, &src, m.flags | MS_BIND | MS_REC, None)
                }
                Err((e, op)) => Err(Error::sys(format!("{op} cgroup2"), e)),
            }
        }
        Layout::V1 { binds } => {
            let per_mount = m.flags
                & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_ATIME_MASK | MS_NODIRATIME);
            // The tmpfs holding one directory per hierarchy: attached writable, filled through
            // its own fd, made read-only on that fd at the end.
            let tmpfs = mount_api::new_fs(
                c"tmpfs",
                &[(c"mode", c"755")],
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            )
            .map_err(|e| Error::sys("mount tmpfs (fsmount)", e))?;
            mount_api::move_onto(tmpfs.as_fd(), t.as_fd())
                .map_err(|e| Error::sys("mount tmpfs (move_mount)", e))?;
            drop(t);
            let flags = per_mount | MS_NOSUID | MS_NODEV | MS_NOEXEC;
            for b in &binds {
                let sub = CString::new(b.name.as_bytes())
                    .map_err(|_| Error::msg("NUL in cgroup name"))?;
                let fd = paths::ensure(tmpfs.as_fd(), &sub, Kind::Dir)
                    .with_context(|| format!("{}/{}", m.dest.display(), b.name))?;
                if cgroupns {
                    let (fstype, data) = if b.controllers.is_empty() {
                        (c"cgroup2", None)
                    } else {
                        let d = CString::new(b.controllers.as_bytes())
                            .map_err(|_| Error::msg("NUL in cgroup name"))?;
                        (c"cgroup", Some(d))
                    };
                    sys_mount(
                        Some(fstype),
                        ProcFd::new(fd.as_fd()).as_cstr(),
                        Some(fstype),
                        flags,
                        data.as_deref(),
                    )
                    .map_err(|e| Error::sys_path("mount cgroup", &b.name, e))?;
                    continue;
                }
                let src = CString::new(b.host_dir.as_os_str().as_bytes())
                    .map_err(|_| Error::msg("NUL in cgroup path"))?;
                let tree = bind_tree(&src, true)
                    .map_err(|e| Error::sys_path("bind mount (open_tree)", &b.host_dir, e))?;
                set_flags_keep_locked(tree.as_fd(), flags)
                    .map_err(|e| Error::sys_path("remount", &b.host_dir, e))?;
                mount_api::move_onto(tree.as_fd(), fd.as_fd())
                    .map_err(|e| Error::sys_path("bind mount (move_mount)", &b.host_dir, e))?;
            }
            copy_symlinks(Path::new("/sys/fs/cgroup"), tmpfs.as_fd())?;
            if m.flags & MS_RDONLY != 0 {
                set_flags_keep_locked(tmpfs.as_fd(), flags)
                    .map_err(|e| Error::sys_path("remount", m.dest.as_path(), e))?;
            }
            settle(tmpfs.as_fd(), &m.propagation, m.rec)
        }
    }
}

/// Recreate the host's symlinks (e.g. cpu -> cpu,cpuacct) in the tmpfs.
fn copy_symlinks(host: &Path, dir: BorrowedFd<'_>) -> Result<()> {
    let rd = std::fs::read_dir(host).map_err(|e| Error::io("read directory", host, e))?;
    for entry in rd.flatten() {
        let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
        if !is_link {
            continue;
        }
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let (Ok(t), Ok(n)) = (
            CString::new(target.as_os_str().as_bytes()),
            CString::new(entry.file_name().as_bytes()),
        ) else {
            continue;
        };
        // SAFETY: NUL-terminated strings, `dir` an open directory fd.
        let r = unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) };
        if r < 0 && Errno::last() != Errno::EEXIST {
            return Err(Error::sys_path(
                "symlink",
                PathBuf::from(host).join(entry.file_name()),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_(m: &Mount, i: usize, b: &Path, userns: bool, net: bool) -> Result<MountPlan> {
        plan(m, i, b, userns, Namespaces { net, cgroup: false })
    }

    fn m(json: &str) -> Mount {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plans_binds() {
        let p = plan_(
            &m(r#"{"destination":"/data","type":"bind","source":"vol","options":["ro","nosuid"]}"#),
            1,
            Path::new("/b"),
            false,
            true,
        )
        .unwrap();
        assert_eq!(
            p.kind,
            MountKind::Bind {
                source: c"/b/vol".to_owned()
            }
        );
        assert_eq!(p.flags, MS_BIND | MS_RDONLY | MS_NOSUID);
        assert_eq!(bind_remount_flags(p.flags), MS_RDONLY | MS_NOSUID);
        assert_eq!(p.label, "bind on /data");
        let p = plan_(&m(r#"{"destination":"/d","type":"none","source":"/x","options":["rbind","rro","rprivate","size=1"]}"#), 0, Path::new("/b"), false, true).unwrap();
        assert_eq!(p.flags, MS_BIND | MS_REC);
        assert_eq!(p.data, None);
        assert_eq!(p.propagation, vec![MS_PRIVATE | MS_REC]);
        assert_eq!(p.rec.set, MOUNT_ATTR_RDONLY);
        assert_eq!(p.label, "bind on /d");
        let p = plan_(
            &m(r#"{"destination":"/d","source":"/x","options":["bind"]}"#),
            0,
            Path::new("/b"),
            false,
            true,
        )
        .unwrap();
        assert!(p.is_bind());
        let e = plan_(
            &m(r#"{"destination":"/d","type":"bind"}"#),
            4,
            Path::new("/b"),
            false,
            true,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "mounts[4].source: required for a bind mount");
    }

    #[test]
    fn plans_filesystems() {
        let p = plan_(&m(r#"{"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]}"#), 2, Path::new("/b"), false, false).unwrap();
        assert_eq!(
            p.kind,
            MountKind::Fs {
                fstype: c"tmpfs".to_owned(),
                source: c"shm".to_owned()
            }
        );
        assert_eq!(p.flags, MS_NOSUID | MS_NOEXEC | MS_NODEV);
        assert_eq!(p.data.as_deref(), Some(c"mode=1777,size=65536k"));
        assert_eq!(p.label, "tmpfs on /dev/shm");
        let p = plan_(
            &m(r#"{"destination":"/proc","type":"proc"}"#),
            0,
            Path::new("/b"),
            false,
            false,
        )
        .unwrap();
        assert_eq!(
            p.kind,
            MountKind::Fs {
                fstype: c"proc".to_owned(),
                source: c"proc".to_owned()
            }
        );
        let p = plan_(&m(r#"{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro"]}"#), 0, Path::new("/b"), false, false).unwrap();
        assert_eq!(p.kind, MountKind::Cgroup { cgroupns: false });
        let e = plan_(
            &m(r#"{"destination":"x","type":"tmpfs"}"#),
            3,
            Path::new("/b"),
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "mounts[3].destination: x: must be absolute");
        let e = plan_(
            &m(r#"{"destination":"/","type":"tmpfs"}"#),
            3,
            Path::new("/b"),
            false,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("mounts[3].destination"));
        let e = plan_(
            &m(r#"{"destination":"/x","source":"/y"}"#),
            5,
            Path::new("/b"),
            false,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("mounts[5].type"));
    }

    #[test]
    fn plans_idmapped_binds() {
        let maps = r#""uidMappings":[{"containerID":0,"hostID":1000,"size":10}],"gidMappings":[{"containerID":0,"hostID":2000,"size":5}]"#;
        let p = plan_(&m(&format!(r#"{{"destination":"/x","type":"bind","source":"/y","options":["rbind","ridmap"],{maps}}}"#)), 1, Path::new("/b"), false, false).unwrap();
        assert_eq!(
            p.idmap,
            Some(IdmapPlan {
                recursive: true,
                maps: Some(("0 1000 10\n".into(), "0 2000 5\n".into()))
            })
        );
        // Mappings without the option: still id-mapped (not silently ignored).
        let p = plan_(
            &m(&format!(
                r#"{{"destination":"/x","type":"bind","source":"/y",{maps}}}"#
            )),
            1,
            Path::new("/b"),
            false,
            false,
        )
        .unwrap();
        assert!(!p.idmap.unwrap().recursive);
        // The container's mapping.
        let p = plan_(
            &m(r#"{"destination":"/x","type":"bind","source":"/y","options":["idmap"]}"#),
            0,
            Path::new("/b"),
            true,
            false,
        )
        .unwrap();
        assert_eq!(
            p.idmap,
            Some(IdmapPlan {
                recursive: false,
                maps: None
            })
        );
        let e = plan_(
            &m(r#"{"destination":"/x","type":"bind","source":"/y","options":["idmap"]}"#),
            2,
            Path::new("/b"),
            false,
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("mounts[2].options: idmap without"),
            "{e}"
        );
        let e = plan_(
            &m(r#"{"destination":"/x","type":"tmpfs","options":["idmap"]}"#),
            0,
            Path::new("/b"),
            true,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bind mounts only"), "{e}");
        let e = plan_(&m(r#"{"destination":"/x","type":"bind","source":"/y","uidMappings":[{"containerID":0,"hostID":1,"size":1}]}"#), 3, Path::new("/b"), true, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mounts[3].gidMappings: required along with uidMappings"
        );
        let e = plan_(&m(r#"{"destination":"/x","type":"bind","source":"/y","uidMappings":[{"containerID":0,"hostID":1,"size":0}],"gidMappings":[{"containerID":0,"hostID":1,"size":1}]}"#), 3, Path::new("/b"), true, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mounts[3].uidMappings[0].size: must not be zero"
        );
    }

    #[test]
    fn sysfs_in_user_namespace() {
        let sys = m(
            r#"{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}"#,
        );
        // No network namespace of its own: sysfs cannot work, bind /sys.
        let p = plan_(&sys, 0, Path::new("/b"), true, false).unwrap();
        assert_eq!(
            p.kind,
            MountKind::Bind {
                source: c"/sys".to_owned()
            }
        );
        assert_eq!(
            p.flags,
            MS_BIND | MS_REC | MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY
        );
        assert_eq!(p.label, "sysfs on /sys");
        let p = plan_(&sys, 0, Path::new("/b"), true, true).unwrap();
        assert!(p.sysfs_fallback && !p.is_bind());
        let p = plan_(&sys, 0, Path::new("/b"), false, false).unwrap();
        assert!(!p.sysfs_fallback && !p.is_bind());
    }
}
