//! Host probing: which hierarchy serves which controller.
//!
//! Pure parsers over the text of /proc/self/mountinfo, /proc/self/cgroup and
//! the unified hierarchy's cgroup.controllers, so v1, v2 and hybrid layouts
//! are unit-tested from fixtures; `HostCgroups::probe()` only reads the files.

use crate::sys::mountinfo::unescape;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Controllers skiff knows how to drive.
pub const KNOWN_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "rdma",
    "perf_event",
    "misc",
    "io",
];

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Mount {
    /// Where it is mounted, e.g. /sys/fs/cgroup/memory.
    pub mount: PathBuf,
    /// The mount's root inside the hierarchy (mountinfo field 4): "/" on a
    /// host, a sub-path when mounted from inside a cgroup namespace.
    pub root: String,
    /// The controllers bound to it (e.g. ["cpu", "cpuacct"]).
    pub controllers: Vec<String>,
    /// The caller's own cgroup in this hierarchy (from /proc/self/cgroup).
    pub own: String,
}

/// The mounted cgroup2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Mount {
    pub mount: PathBuf,
    pub root: String,
    /// Controllers listed in the root's cgroup.controllers.
    pub controllers: Vec<String>,
    pub own: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// Only cgroup2 (mounted at the cgroup root).
    Unified,
    /// v1 controllers plus a cgroup2 hierarchy (usually .../unified).
    Hybrid,
}

/// Where one controller lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend<'a> {
    V1(&'a V1Mount),
    V2(&'a V2Mount),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCgroups {
    pub v1: Vec<V1Mount>,
    pub v2: Option<V2Mount>,
}

/// Split a mountinfo line into (root, mountpoint, fstype, super options).
fn mountinfo_fields(line: &str) -> Option<(&str, &str, &str, &str)> {
    let (pre, post) = line.split_once(" - ")?;
    let mut pre = pre.split(' ');
    let root = pre.nth(3)?;
    let mountpoint = pre.next()?;
    let mut post = post.split(' ');
    let fstype = post.next()?;
    let _source = post.next()?;
    let opts = post.next().unwrap_or("");
    Some((root, mountpoint, fstype, opts))
}

impl HostCgroups {
    /// Build from the texts of /proc/self/mountinfo, /proc/self/cgroup and
    /// the cgroup2 root's cgroup.controllers (None if unreadable/absent).
    pub fn parse(mountinfo: &str, proc_cgroup: &str, v2_controllers: Option<&str>) -> Result<Self> {
        let mut own_v1: Vec<(Vec<&str>, &str)> = Vec::new();
        let mut own_v2 = None;
        for line in proc_cgroup.lines().filter(|l| !l.is_empty()) {
            let mut it = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
                return Err(Error::msg(format!(
                    "/proc/self/cgroup: malformed line {line:?}"
                )));
            };
            if ctrls.is_empty() {
                own_v2 = Some(path);
            } else {
                own_v1.push((ctrls.split(',').collect(), path));
            }
        }
        let mut v1: Vec<V1Mount> = Vec::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((root, mp, fstype, opts)) = mountinfo_fields(line) else {
                continue;
            };
            match fstype {
                "cgroup" => {
                    let mut controllers: Vec<String> = opts
                        .split(',')
                        .filter(|o| KNOWN_CONTROLLERS.contains(o))
                        .map(str::to_string)
                        .collect();
                    // A named hierarchy (name=systemd) carries no controller, but the
                    // container gets its place in it too (as with runc), so that its view of
                    // the hierarchy shows its own cgroup, not the host's root.
                    if controllers.is_empty() {
                        match opts.split(',').find(|o| o.starts_with("name=")) {
                            Some(name) => controllers.push(name.to_string()),
                            None => continue,
                        }
                    }
                    // A hierarchy mounted twice: the first mount wins.
                    if v1.iter().any(|m| m.controllers == controllers) {
                        continue;
                    }
                    let own = own_v1
                        .iter()
                        .find(|(c, _)| controllers.iter().all(|x| c.contains(&x.as_str())))
                        .map(|(_, p)| p.to_string())
                        .unwrap_or_else(|| "/".to_string());
                    v1.push(V1Mount {
                        mount: PathBuf::from(unescape(mp)),
                        root: unescape(root),
                        controllers,
                        own,
                    });
                }
                "cgroup2" if v2.is_none() => {
                    v2 = Some(V2Mount {
                        mount: PathBuf::from(unescape(mp)),
                        root: unescape(root),
                        controllers: v2_controllers
                            .unwrap_or("")
                            .split_whitespace()
                            .map(str::to_string)
                            .collect(),
                        own: own_v2.unwrap_or("/").to_string(),
                    });
                }
                _ => {}
            }
        }
        if v1.is_empty() && v2.is_none() {
            return Err(Error::msg("no cgroup hierarchy is mounted on this host"));
        }
        Ok(HostCgroups { v1, v2 })
    }

    /// Read this host's layout.
    pub fn probe() -> Result<Self> {
        let mi = crate::sys::mountinfo::read_own()?;
        Self::probe_with_mountinfo(&mi)
    }

    /// [`probe`](Self::probe) with this process's mount table already read.
    pub fn probe_with_mountinfo(mi: &str) -> Result<Self> {
        let cg = crate::sys::fsio::read_to_string("/proc/self/cgroup")
            .map_err(|e| Error::io("read", "/proc/self/cgroup", e))?;
        let first = Self::parse(mi, &cg, None)?;
        let Some(v2) = &first.v2 else {
            return Ok(first);
        };
        let ctl = crate::sys::fsio::read_to_string(v2.mount.join("cgroup.controllers")).ok();
        Self::parse(mi, &cg, ctl.as_deref())
    }

    pub fn mode(&self) -> Mode {
        match (self.v1.is_empty(), self.v2.is_some()) {
            (true, _) => Mode::Unified,
            (false, true) => Mode::Hybrid,
            (false, false) => Mode::Legacy,
        }
    }

    /// Which hierarchy serves `controller`: a v1 hierarchy that has it
    /// mounted wins (on hybrid hosts a controller is bound to one hierarchy
    /// only); else cgroup2 if it lists it. `devices` and `freezer` are
    /// implicit on cgroup2 (BPF and cgroup.freeze), but on hybrid hosts they
    /// only count when no v1 hierarchy has them.
    pub fn backend(&self, controller: &str) -> Option<Backend<'_>> {
        if let Some(m) = self
            .v1
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == controller))
        {
            return Some(Backend::V1(m));
        }
        let v2 = self.v2.as_ref()?;
        let implicit = matches!(controller, "devices" | "freezer");
        if implicit || v2.controllers.iter().any(|c| c == controller) {
            return Some(Backend::V2(v2));
        }
        None
    }

    /// Whether any controller at all is served by cgroup2.
    pub fn v2_serves_anything(&self) -> bool {
        KNOWN_CONTROLLERS
            .iter()
            .any(|c| matches!(self.backend(c), Some(Backend::V2(_))))
    }
}

/// Parse a cgroup path: `Some(abs)` for absolute, Err for systemd-style.
pub fn check_cgroups_path(path: &str) -> Result<()> {
    if path.contains(':') && !path.starts_with('/') {
        return Err(Error::config(
            "linux.cgroupsPath",
            format!("{path:?} is a systemd slice:prefix:name path, but the systemd cgroup driver is not available on this host"),
        ));
    }
    if path.contains('\0') {
        return Err(Error::config("linux.cgroupsPath", "contains a NUL byte"));
    }
    Ok(())
}

/// Lexically clean a path the way runc's CleanPath does: resolve "." and
/// "..", never climbing above the start (so "../../x" stays inside).
pub fn clean(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if abs {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Join a hierarchy mount with an in-hierarchy path (`inner` is absolute
/// in the hierarchy; `root` is the mount's root inside it).
pub fn hierarchy_dir(mount: &Path, root: &str, inner: &str) -> PathBuf {
    let inner = clean(inner);
    let rel = inner
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(&inner);
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

#[cfg(test)]
pub(crate) fn tests_fixture() -> &'static str {
    tests::HYBRID_MOUNTINFO
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_with_hugetlb_on_v2() {
        let h = HostCgroups::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP, Some("hugetlb\n")).unwrap();
        assert_eq!(h.mode(), Mode::Hybrid);
        // Seven controllers' hierarchies and name=systemd.
        assert_eq!(h.v1.len(), 8 + 1);
        assert!(h.v1.iter().any(|m| m.controllers == ["name=systemd"]));
        match h.backend("memory") {
            Some(Backend::V1(m)) => {
                assert_eq!(m.mount, PathBuf::from("/sys/fs/cgroup/memory"));
                assert_eq!(m.own, "/process_api/abc");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(h.backend("hugetlb"), Some(Backend::V2(_))));
        assert!(matches!(h.backend("devices"), Some(Backend::V1(_))));
        assert!(matches!(h.backend("freezer"), Some(Backend::V1(_))));
        assert!(h.backend("net_cls").is_none());
        assert!(h.v2_serves_anything());
        let none = HostCgroups::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP, Some("")).unwrap();
        assert!(!none.v2_serves_anything());
    }

    #[test]
    fn pure_v2() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = HostCgroups::parse(
            mi,
            "0::/user.slice/s.scope\n",
            Some("cpuset cpu io memory hugetlb pids rdma misc"),
        )
        .unwrap();
        assert_eq!(h.mode(), Mode::Unified);
        for c in [
            "memory", "pids", "devices", "freezer", "cpu", "hugetlb", "rdma",
        ] {
            assert!(matches!(h.backend(c), Some(Backend::V2(_))), "{c}");
        }
        assert!(h.backend("blkio").is_none());
        assert_eq!(h.v2.as_ref().unwrap().own, "/user.slice/s.scope");
    }

    #[test]
    fn pure_v1_with_comounts_and_ns_root() {
        let mi = "\
32 31 0:29 /ctr /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /ctr /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
";
        let cg = "3:cpu,cpuacct:/ctr/a\n2:memory:/ctr\n1:net_cls,net_prio:/\n";
        let h = HostCgroups::parse(mi, cg, None).unwrap();
        assert_eq!(h.mode(), Mode::Legacy);
        let Some(Backend::V1(m)) = h.backend("cpuacct") else {
            panic!()
        };
        assert_eq!(m.controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m.own, "/ctr/a");
        assert_eq!(
            hierarchy_dir(&m.mount, &m.root, "/ctr/a/x"),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a/x")
        );
        assert!(matches!(h.backend("net_prio"), Some(Backend::V1(_))));
        assert!(h.backend("devices").is_none());
    }

    #[test]
    fn systemd_paths_and_cleaning() {
        let e = check_cgroups_path("system.slice:skiff:abc")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("systemd cgroup driver is not available on this host"),
            "{e}"
        );
        check_cgroups_path("/a/b").unwrap();
        assert_eq!(clean("/../../a/./b/../c"), "/a/c");
        assert_eq!(clean("a/../../b"), "b");
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
