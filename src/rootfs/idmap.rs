//! Id-mapped bind mounts (`idmap`, `ridmap`, a mount's `uidMappings` and
//! `gidMappings`).
//!
//! MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN in the user namespace that owns
//! the source's filesystem (the host's, for ext4 or tmpfs) and a mount that
//! was never attached. A container init in a new user namespace has
//! neither, so the runtime process, still privileged on the host, makes
//! every id-mapped mount *before* cloning the init:
//!
//! 1. open_tree(source, OPEN_TREE_CLONE [| AT_RECURSIVE for rbind]): a
//!    detached copy of the source;
//! 2. mount_setattr(MOUNT_ATTR_IDMAP [, AT_RECURSIVE for ridmap]) with a
//!    user namespace fd that holds the mapping;
//! 3. the init inherits the fds (the clone is fork-like) and, inside its
//!    mount namespace, attaches each one with move_mount onto the
//!    destination it resolved in the rootfs.
//!
//! Which user namespace lends its mapping:
//! - the mount's own uidMappings/gidMappings: a namespace made for it
//!   ([`crate::namespaces::userns::mapping_namespace`]: a short-lived child unshares
//!   CLONE_NEWUSER, its maps are written, its ns/user is opened and the
//!   child is killed; the fd keeps the namespace);
//! - no mappings and a new container user namespace: the container's
//!   mapping, in a namespace made the same way (the container's own does
//!   not exist yet, and only its mapping matters);
//! - no mappings and a joined user namespace: that namespace's file.
//!
//! Namespaces are shared between mounts with the same mapping. Mapping
//! semantics are those of user namespaces: with the line "c h s", a file
//! owned by id c on disk appears owned by host id h, so a container whose
//! namespace maps 0 to 100000 sees root-owned host files as its root.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use super::mounts::MountKind;
use super::options::MS_REC;
use super::RootfsPlan;
use crate::error::{Context, Error, Result};
use crate::sys::mount_api::{self, MountAttr, MOUNT_ATTR_IDMAP, OPEN_TREE_CLONE};

/// Detached bind trees the runtime process made, by mount index: every id-mapped bind, and,
/// where the runtime may mount, every other bind too. Dropping it closes the fds; a tree that
/// was never attached then disappears.
///
/// Plain binds are made here for what runc does the same way: their sources are opened by
/// the runtime, as host root in the host's mount namespace, before the container's init enters
/// a user namespace that could not reach them (a source only host root can traverse).
#[derive(Debug, Default)]
pub struct DetachedMounts {
    trees: Vec<(usize, OwnedFd)>,
}

impl DetachedMounts {
    /// Make the detached mounts of `plan`: the id-mapped ones always, the other binds too
    /// with `binds` (the runtime is privileged and the container's mount namespace is a copy
    /// of ours, not one joined by path, where sources would be looked up instead). Runs in the
    /// runtime process, before the init is cloned. Cheap when there are none.
    pub fn prepare(plan: &RootfsPlan, binds: bool) -> Result<DetachedMounts> {
        let mut out = DetachedMounts::default();
        if binds {
            for m in plan.mounts.iter().filter(|m| m.idmap.is_none()) {
                if let MountKind::Bind { source } = &m.kind {
                    let shown =
                        std::path::Path::new(std::ffi::OsStr::from_bytes(source.as_bytes()));
                    let tree = super::mounts::bind_tree(source, m.flags & MS_REC != 0)
                        .map_err(|e| Error::sys_path("bind mount (open_tree)", shown, e))
                        .with_context(|| format!("mounts[{}] ({})", m.index, m.label))?;
                    out.trees.push((m.index, tree));
                }
            }
        }
        // (uid_map, gid_map) -> user namespace fd
        let mut namespaces: Vec<((String, String), OwnedFd)> = Vec::new();
        let mut joined: Option<OwnedFd> = None;
        for m in &plan.mounts {
            let Some(idm) = &m.idmap else { continue };
            let MountKind::Bind { source } = &m.kind else {
                return Err(Error::msg(format!(
                    "mounts[{}]: id-mapped mounts are supported for bind mounts only",
                    m.index
                )));
            };
            let r = (|| -> Result<OwnedFd> {
                let maps = match (&idm.maps, &plan.container_maps, &plan.userns_path) {
                    (Some(maps), _, _) => Some(maps.clone()),
                    (None, Some(maps), _) => Some(maps.clone()),
                    (None, None, Some(_)) => None,
                    (None, None, None) => {
                        return Err(Error::config(
                            format!("mounts[{}].options", m.index),
                            "idmap without uidMappings and gidMappings needs a user namespace",
                        ))
                    }
                };
                let userns: BorrowedFd<'_> = match maps {
                    Some(maps) => {
                        let i = match namespaces.iter().position(|(k, _)| *k == maps) {
                            Some(i) => i,
                            None => {
                                let fd =
                                    crate::namespaces::userns::mapping_namespace(&maps.0, &maps.1)
                                        .context("make a user namespace for the mapping")?;
                                namespaces.push((maps, fd));
                                namespaces.len() - 1
                            }
                        };
                        namespaces[i].1.as_fd()
                    }
                    None => {
                        if joined.is_none() {
                            let p = plan
                                .userns_path
                                .as_deref()
                                .unwrap_or(std::path::Path::new(""));
                            let f = std::fs::File::open(p).map_err(|e| Error::io("open", p, e))?;
                            joined = Some(OwnedFd::from(f));
                        }
                        match &joined {
                            Some(fd) => fd.as_fd(),
                            None => return Err(Error::msg("user namespace file missing")),
                        }
                    }
                };
                make_tree(source, m.flags & MS_REC != 0, idm.recursive, userns)
            })();
            let tree =
                r.with_context(|| format!("mounts[{}] ({}, id-mapped)", m.index, m.label))?;
            out.trees.push((m.index, tree));
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }

    /// The prepared tree of `mounts[index]`.
    /// The fds of the prepared trees (a child keeps them until it has attached them).
    pub fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.trees.iter().map(|(_, fd)| fd.as_raw_fd()).collect()
    }

    pub fn tree(&self, index: usize) -> Option<BorrowedFd<'_>> {
        self.trees
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, fd)| fd.as_fd())
    }
}

fn make_tree(
    source: &CString,
    clone_recursive: bool,
    idmap_recursive: bool,
    userns: BorrowedFd<'_>,
) -> Result<OwnedFd> {
    let shown = std::path::Path::new(std::ffi::OsStr::from_bytes(source.as_bytes()));
    let mut flags = OPEN_TREE_CLONE;
    if clone_recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    let tree = mount_api::open_tree(libc::AT_FDCWD, source, flags)
        .map_err(|e| Error::sys_path("open_tree", shown, e))?;
    set_idmap(tree.as_fd(), idmap_recursive && clone_recursive, userns).map_err(|e| {
        let hint = match e {
            Errno::EINVAL => " (does the source's filesystem support id-mapped mounts?)",
            Errno::EPERM => " (needs CAP_SYS_ADMIN on the host)",
            _ => "",
        };
        Error::Context {
            context: format!("id-mapped mount{hint}"),
            source: Box::new(Error::sys_path("mount_setattr MOUNT_ATTR_IDMAP", shown, e)),
        }
    })?;
    Ok(tree)
}

fn set_idmap(
    tree: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> std::result::Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_api::setattr(tree, recursive, &attr)
}

/// Whether this kernel and this process can make id-mapped mounts: tried
/// for real on a detached copy of "/" and on a new detached tmpfs (nothing
/// is attached anywhere). False when not root.
pub fn idmap_supported() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let Ok(userns) = crate::namespaces::userns::mapping_namespace("0 100000 1\n", "0 100000 1\n")
    else {
        return false;
    };
    let try_tree = |tree: std::result::Result<OwnedFd, Errno>| {
        tree.and_then(|t| set_idmap(t.as_fd(), false, userns.as_fd()))
            .is_ok()
    };
    try_tree(mount_api::open_tree(libc::AT_FDCWD, c"/", OPEN_TREE_CLONE))
        || try_tree(mount_api::new_fs(c"tmpfs", &[], 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_supports_idmapped_mounts_as_root() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            assert!(!idmap_supported());
            return;
        }
        // This host (kernel 6.x, ext4 root) supports them.
        assert!(idmap_supported());
    }
}
