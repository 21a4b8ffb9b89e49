//! Linux namespaces: deciding which to create or join, and joining them.
//!
//! How a container's namespaces come to be (the plan's invariant):
//! - Namespaces to *create* are created by the `clone3` that makes the init,
//!   all at once, so they are owned by the new user namespace when there is
//!   one (the kernel creates the user namespace first).
//! - Namespaces to *join* are opened (and their type checked) by the parent
//!   before cloning, so a bad path fails before anything exists; the init
//!   `setns`es into them, user namespace first.
//! - A pid namespace to join is entered by the parent for the clone only
//!   (`pid_for_children`), then the parent returns to its own.
//! - When the user namespace is joined by path, the other new namespaces must
//!   be created after joining it, so the init `unshare`s them; a new pid
//!   namespace then needs one more fork (the only case with an intermediate
//!   process).
//! - A new cgroup namespace is unshared by the init after the parent has
//!   placed it in the container's cgroups, so its root is that cgroup.
//! - The time namespace is always unshared by the init itself: its offsets
//!   can only be written before any process lives in it, and `execve` moves
//!   the init into it.

pub mod netdev;
pub mod sysctl;
pub mod userns;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxNamespaceType, LinuxTimeOffset, Spec};

use crate::error::{Error, Result};

/// What to do about one namespace type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Not listed: the container shares the runtime's namespace.
    Host,
    New,
    Join(PathBuf),
}

#[derive(Debug, Clone)]
pub struct NamespacePlan {
    pub user: Disposition,
    pub pid: Disposition,
    pub mount: Disposition,
    pub network: Disposition,
    pub ipc: Disposition,
    pub uts: Disposition,
    pub cgroup: Disposition,
    pub time: Disposition,
    /// (clock id, seconds, nanoseconds) for a new time namespace.
    pub time_offsets: Vec<(libc::clockid_t, i64, u32)>,
}

/// All types in the order the init joins them: user first (it decides the
/// privileges for the rest), mount last (joining it changes what paths mean).
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

pub fn type_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The CLONE_NEW* flag of a type.
pub fn clone_flag(t: LinuxNamespaceType) -> u64 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS as u64,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP as u64,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS as u64,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC as u64,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER as u64,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID as u64,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET as u64,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME as u64,
    }
}

impl NamespacePlan {
    pub fn from_spec(spec: &Spec) -> Result<Self> {
        let mut plan = NamespacePlan {
            user: Disposition::Host,
            pid: Disposition::Host,
            mount: Disposition::Host,
            network: Disposition::Host,
            ipc: Disposition::Host,
            uts: Disposition::Host,
            cgroup: Disposition::Host,
            time: Disposition::Host,
            time_offsets: Vec::new(),
        };
        let linux = spec.linux().as_ref();
        let namespaces = linux.and_then(|l| l.namespaces().as_ref());
        for (i, ns) in namespaces.into_iter().flatten().enumerate() {
            let field = format!("linux.namespaces[{i}]");
            let slot = plan.slot_mut(ns.typ());
            if *slot != Disposition::Host {
                return Err(Error::config(
                    field,
                    format!("namespace type {:?} listed twice", type_name(ns.typ())),
                ));
            }
            *slot = match ns.path() {
                Some(p) if p.as_os_str().is_empty() => Disposition::New,
                Some(p) if !p.is_absolute() => {
                    return Err(Error::config(
                        format!("{field}.path"),
                        format!("{} is not an absolute path", p.display()),
                    ))
                }
                Some(p) => Disposition::Join(p.clone()),
                None => Disposition::New,
            };
        }
        if let Some(offsets) = linux.and_then(|l| l.time_offsets().as_ref()) {
            if plan.time != Disposition::New {
                return Err(Error::config(
                    "linux.timeOffsets",
                    "requires a new time namespace in linux.namespaces",
                ));
            }
            plan.time_offsets = parse_time_offsets(offsets)?;
        }
        Ok(plan)
    }

    fn slot_mut(&mut self, t: LinuxNamespaceType) -> &mut Disposition {
        match t {
            LinuxNamespaceType::Mount => &mut self.mount,
            LinuxNamespaceType::Cgroup => &mut self.cgroup,
            LinuxNamespaceType::Uts => &mut self.uts,
            LinuxNamespaceType::Ipc => &mut self.ipc,
            LinuxNamespaceType::User => &mut self.user,
            LinuxNamespaceType::Pid => &mut self.pid,
            LinuxNamespaceType::Network => &mut self.network,
            LinuxNamespaceType::Time => &mut self.time,
        }
    }

    pub fn get(&self, t: LinuxNamespaceType) -> &Disposition {
        match t {
            LinuxNamespaceType::Mount => &self.mount,
            LinuxNamespaceType::Cgroup => &self.cgroup,
            LinuxNamespaceType::Uts => &self.uts,
            LinuxNamespaceType::Ipc => &self.ipc,
            LinuxNamespaceType::User => &self.user,
            LinuxNamespaceType::Pid => &self.pid,
            LinuxNamespaceType::Network => &self.network,
            LinuxNamespaceType::Time => &self.time,
        }
    }

    /// A user namespace is in use (new or joined).
    pub fn in_userns(&self) -> bool {
        self.user != Disposition::Host
    }

    /// Flags for the clone3 that makes the init.
    pub fn clone_flags(&self) -> u64 {
        if matches!(self.user, Disposition::Join(_)) {
            return 0;
        }
        self.new_types_created_early()
            .fold(0, |acc, t| acc | clone_flag(t))
    }

    /// Flags the init must `unshare` itself after joining a user namespace by path
    /// (pid excluded: it needs the extra fork, see `needs_intermediate`).
    pub fn unshare_flags_after_join(&self) -> u64 {
        if !matches!(self.user, Disposition::Join(_)) {
            return 0;
        }
        self.new_types_created_early()
            .filter(|t| *t != LinuxNamespaceType::Pid && *t != LinuxNamespaceType::User)
            .fold(0, |acc, t| acc | clone_flag(t))
    }

    /// A new pid namespace that must be owned by a user namespace joined by path.
    pub fn needs_intermediate(&self) -> bool {
        matches!(self.user, Disposition::Join(_)) && self.pid == Disposition::New
    }

    /// New namespaces but time and cgroup: time is unshared by the init
    /// (see the module comment), cgroup by the init once it sits in the
    /// container's cgroups, so that the namespace is rooted there.
    fn new_types_created_early(&self) -> impl Iterator<Item = LinuxNamespaceType> + '_ {
        JOIN_ORDER.into_iter().filter(|t| {
            *t != LinuxNamespaceType::Time
                && *t != LinuxNamespaceType::Cgroup
                && *self.get(*t) == Disposition::New
        })
    }

    /// Namespaces to join by path, in join order.
    pub fn joins(&self) -> Vec<(LinuxNamespaceType, &Path)> {
        JOIN_ORDER
            .into_iter()
            .filter_map(|t| match self.get(t) {
                Disposition::Join(p) => Some((t, p.as_path())),
                _ => None,
            })
            .collect()
    }
}

fn parse_time_offsets(
    offsets: &HashMap<String, LinuxTimeOffset>,
) -> Result<Vec<(libc::clockid_t, i64, u32)>> {
    let mut out = Vec::new();
    // Sorted so the order of writes does not depend on hash order.
    let mut names: Vec<&String> = offsets.keys().collect();
    names.sort();
    for name in names {
        let clock = match name.as_str() {
            "monotonic" => libc::CLOCK_MONOTONIC,
            "boottime" => libc::CLOCK_BOOTTIME,
            other => {
                return Err(Error::config(
                    format!("linux.timeOffsets.{other}"),
                    "unknown clock (expected \"monotonic\" or \"boottime\")",
                ))
            }
        };
        let off = &offsets[name];
        let secs = off.secs().unwrap_or(0);
        let nanos = off.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            return Err(Error::config(
                format!("linux.timeOffsets.{name}.nanosecs"),
                "must be below 1000000000",
            ));
        }
        out.push((clock, secs, nanos));
    }
    Ok(out)
}

/// An opened namespace file, checked to be of the expected type.
pub struct NamespaceFile {
    pub typ: LinuxNamespaceType,
    pub fd: OwnedFd,
    pub path: PathBuf,
}

const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3)

/// Open every namespace path of the plan, checking each is a namespace of
/// the listed type. Done before cloning so errors leave nothing behind.
pub fn open_joins(plan: &NamespacePlan) -> Result<Vec<NamespaceFile>> {
    plan.joins()
        .into_iter()
        .map(|(typ, path)| open_namespace(typ, path))
        .collect()
}

fn open_namespace(typ: LinuxNamespaceType, path: &Path) -> Result<NamespaceFile> {
    let op = format!("open {} namespace", type_name(typ));
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys_path(op.clone(), path, e))?;
    // SAFETY: `open` just returned this fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind < 0 {
        return Err(Error::config(
            "linux.namespaces",
            format!(
                "{}: not a namespace file ({})",
                path.display(),
                crate::error::ErrnoText(Errno::last())
            ),
        ));
    }
    if kind as u64 != clone_flag(typ) {
        return Err(Error::config(
            "linux.namespaces",
            format!("{}: not a {} namespace", path.display(), type_name(typ)),
        ));
    }
    Ok(NamespaceFile {
        typ,
        fd,
        path: path.to_path_buf(),
    })
}

/// setns(2) into an opened namespace.
pub fn join(ns: &NamespaceFile) -> Result<()> {
    join_fd(ns.fd.as_fd(), ns.typ, &ns.path)
}

pub fn join_fd(fd: BorrowedFd<'_>, typ: LinuxNamespaceType, path: &Path) -> Result<()> {
    // SAFETY: setns only reads the fd; the nstype argument restricts it to the expected type.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), clone_flag(typ) as libc::c_int) };
    if rc < 0 {
        return Err(Error::sys_path(
            format!("setns {} namespace", type_name(typ)),
            path,
            Errno::last(),
        ));
    }
    Ok(())
}

/// unshare(2) with the given CLONE_NEW* flags.
pub fn unshare(flags: u64) -> Result<()> {
    if flags == 0 {
        return Ok(());
    }
    // SAFETY: unshare takes plain flags; the process is single-threaded.
    let rc = unsafe { libc::unshare(flags as libc::c_int) };
    if rc < 0 {
        return Err(Error::sys(format!("unshare {flags:#x}"), Errno::last()));
    }
    Ok(())
}

/// Create the time namespace for the init's children-to-be (entered by
/// execve) and write its clock offsets.
pub fn new_time_namespace(offsets: &[(libc::clockid_t, i64, u32)]) -> Result<()> {
    unshare(libc::CLONE_NEWTIME as u64)?;
    if offsets.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for (clock, secs, nanos) in offsets {
        text.push_str(&format!("{clock} {secs} {nanos}\n"));
    }
    std::fs::write("/proc/self/timens_offsets", text.as_bytes())
        .map_err(|e| Error::io("write", "/proc/self/timens_offsets", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns_json: &str, extra: &str) -> Spec {
        let text = format!(r#"{{"ociVersion":"1.3.0","linux":{{"namespaces":{ns_json}{extra}}}}}"#);
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn new_namespaces_go_into_clone_flags() {
        let s = spec(
            r#"[{"type":"mount"},{"type":"pid"},{"type":"network"}]"#,
            "",
        );
        let p = NamespacePlan::from_spec(&s).unwrap();
        assert_eq!(
            p.clone_flags(),
            (libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET) as u64
        );
        assert!(!p.needs_intermediate());
        assert!(p.joins().is_empty());
    }

    #[test]
    fn time_is_never_a_clone_flag() {
        let s = spec(
            r#"[{"type":"mount"},{"type":"time"}]"#,
            r#","timeOffsets":{"monotonic":{"secs":10,"nanosecs":5}}"#,
        );
        let p = NamespacePlan::from_spec(&s).unwrap();
        assert_eq!(p.clone_flags(), libc::CLONE_NEWNS as u64);
        assert_eq!(p.time, Disposition::New);
        assert_eq!(p.time_offsets, vec![(libc::CLOCK_MONOTONIC, 10, 5)]);
    }

    #[test]
    fn joined_user_namespace_moves_creation_into_the_init() {
        let s = spec(
            r#"[{"type":"user","path":"/proc/1/ns/user"},{"type":"mount"},{"type":"pid"},{"type":"ipc"}]"#,
            "",
        );
        let p = NamespacePlan::from_spec(&s).unwrap();
        assert_eq!(p.clone_flags(), 0);
        assert_eq!(
            p.unshare_flags_after_join(),
            (libc::CLONE_NEWNS | libc::CLONE_NEWIPC) as u64
        );
        assert!(p.needs_intermediate());
        assert_eq!(p.joins().len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        let s = spec(r#"[{"type":"mount"},{"type":"mount"}]"#, "");
        let e = NamespacePlan::from_spec(&s).unwrap_err().to_string();
        assert!(e.starts_with("linux.namespaces[1]"), "{e}");

        let s = spec(
            r#"[{"type":"mount"},{"type":"network","path":"rel/x"}]"#,
            "",
        );
        let e = NamespacePlan::from_spec(&s).unwrap_err().to_string();
        assert!(e.starts_with("linux.namespaces[1].path"), "{e}");

        // No mount namespace: allowed (missing namespaces are inherited).
        let s = spec(r#"[{"type":"pid"}]"#, "");
        assert_eq!(
            NamespacePlan::from_spec(&s).unwrap().mount,
            Disposition::Host
        );

        let s = spec(
            r#"[{"type":"mount"}]"#,
            r#","timeOffsets":{"monotonic":{"secs":1}}"#,
        );
        let e = NamespacePlan::from_spec(&s).unwrap_err().to_string();
        assert!(e.starts_with("linux.timeOffsets"), "{e}");

        let s = spec(
            r#"[{"type":"mount"},{"type":"time"}]"#,
            r#","timeOffsets":{"realtime":{"secs":1}}"#,
        );
        let e = NamespacePlan::from_spec(&s).unwrap_err().to_string();
        assert!(e.starts_with("linux.timeOffsets.realtime"), "{e}");
    }

    #[test]
    fn opening_checks_the_namespace_type() {
        let e = open_namespace(LinuxNamespaceType::Network, Path::new("/proc/self/ns/uts"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a network namespace"), "{e}");
        let e = open_namespace(LinuxNamespaceType::Network, Path::new("/etc/hostname"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a namespace file"), "{e}");
        let e = open_namespace(LinuxNamespaceType::Network, Path::new("/nonexistent/ns"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/nonexistent/ns") && e.contains("no such file"),
            "{e}"
        );
        open_namespace(LinuxNamespaceType::Network, Path::new("/proc/self/ns/net")).unwrap();
    }
}
