//! The "cgroup" mount type: what the host's layout asks for (pure, from the
//! texts of /proc/self/mountinfo and /proc/self/cgroup) and doing it.

use std::path::{Path, PathBuf};

pub use crate::sys::mountinfo::{parse as parse_mountinfo, MountInfo};

/// The mount that contains `path` (the last, i.e. topmost, with the
/// longest mount point that is a prefix of it).
pub fn containing_mount<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        let mp = Path::new(&m.mount_point);
        if path.starts_with(mp) && best.is_none_or(|b| mp.as_os_str().len() >= b.mount_point.len())
        {
            best = Some(m);
        }
    }
    best
}

/// One hierarchy of the calling process: "4:memory:/a/b".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    pub controllers: String,
    pub path: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let controllers = it.next()?.to_string();
            let path = it.next()?.to_string();
            Some(ProcCgroup { controllers, path })
        })
        .collect()
}

/// What a "cgroup" mount becomes on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The host is cgroup v2 only: mount a cgroup2 fs. `own` is the host
    /// directory of the process's cgroup, the fallback to bind when the
    /// cgroup2 mount is refused (user namespace without cgroup namespace).
    V2 { own: PathBuf },
    /// v1 or hybrid: a tmpfs with one bind per hierarchy.
    V1 { binds: Vec<CgroupBind> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupBind {
    /// Host directory of the process's cgroup in this hierarchy.
    pub host_dir: PathBuf,
    /// Directory name under the destination ("memory", "cpu,cpuacct", "unified").
    pub name: String,
    /// The hierarchy's controllers as mount data ("cpu,cpuacct",
    /// "name=systemd"); empty for the cgroup2 one.
    pub controllers: String,
}

fn join_cgroup(m: &MountInfo, path: &str) -> PathBuf {
    // The mount may show only a subtree (its root): the process's path is
    // relative to that root.
    let rel = if m.root == "/" {
        path
    } else {
        path.strip_prefix(m.root.as_str()).unwrap_or(path)
    };
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        PathBuf::from(&m.mount_point)
    } else {
        Path::new(&m.mount_point).join(rel)
    }
}

pub fn layout(mounts: &[MountInfo], cgroups: &[ProcCgroup]) -> Layout {
    let v2_path = cgroups
        .iter()
        .find(|c| c.controllers.is_empty())
        .map(|c| c.path.as_str());
    if let Some(m) = mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == "/sys/fs/cgroup")
    {
        if m.fstype == "cgroup2" {
            return Layout::V2 {
                own: join_cgroup(m, v2_path.unwrap_or("/")),
            };
        }
    }
    let mut binds = Vec::new();
    for cg in cgroups {
        let mount = if cg.controllers.is_empty() {
            mounts.iter().find(|m| m.fstype == "cgroup2")
        } else {
            mounts.iter().find(|m| {
                m.fstype == "cgroup"
                    && cg
                        .controllers
                        .split(',')
                        .all(|c| m.super_options.split(',').any(|o| o == c))
            })
        };
        let Some(m) = mount else { continue };
        let Some(name) = Path::new(&m.mount_point).file_name() else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        if binds.iter().any(|b: &CgroupBind| b.name == name) {
            continue;
        }
        binds.push(CgroupBind {
            host_dir: join_cgroup(m, &cg.path),
            name,
            controllers: cg.controllers.clone(),
        });
    }
    Layout::V1 { binds }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 27 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_fields() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 6);
        assert_eq!(m[1].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(m[1].optional, "shared:5");
        assert_eq!(m[3].super_options, "rw,xattr,name=systemd");
        assert_eq!(m[5].mount_point, "/mnt/with space");
        let c = containing_mount(&m, Path::new("/sys/fs/cgroup/memory/x")).unwrap();
        assert_eq!(c.mount_point, "/sys/fs/cgroup/memory");
        assert!(containing_mount(&m, Path::new("/etc")).is_none());
    }

    #[test]
    fn hybrid_layout() {
        let cg = parse_proc_cgroup(
            "5:name=systemd:/user\n4:memory:/a/b\n2:cpu,cpuacct:/\n1:freezer:/\n0::/u\n",
        );
        let l = layout(&parse_mountinfo(HYBRID), &cg);
        assert_eq!(
            l,
            Layout::V1 {
                binds: vec![
                    CgroupBind {
                        host_dir: "/sys/fs/cgroup/systemd/user".into(),
                        name: "systemd".into(),
                        controllers: "name=systemd".into(),
                    },
                    CgroupBind {
                        host_dir: "/sys/fs/cgroup/memory/a/b".into(),
                        name: "memory".into(),
                        controllers: "memory".into(),
                    },
                    CgroupBind {
                        host_dir: "/sys/fs/cgroup/cpu,cpuacct".into(),
                        name: "cpu,cpuacct".into(),
                        controllers: "cpu,cpuacct".into(),
                    },
                    CgroupBind {
                        host_dir: "/sys/fs/cgroup/unified/u".into(),
                        name: "unified".into(),
                        controllers: "".into(),
                    },
                ]
            }
        );
    }

    #[test]
    fn v2_layout_and_subtree_roots() {
        let mi = "30 23 0:26 /ctr /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let l = layout(&parse_mountinfo(mi), &parse_proc_cgroup("0::/ctr/sub\n"));
        assert_eq!(
            l,
            Layout::V2 {
                own: "/sys/fs/cgroup/sub".into()
            }
        );
    }
}
