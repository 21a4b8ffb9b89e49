//! `linux.intelRdt`: Intel RDT through the resctrl filesystem.
//!
//! The runtime's parent does this, like a cgroup: after the clone (it needs
//! the init's pid) and before the init runs anything of the user's.
//! `resctrl_root()` should be called before the clone so that a host
//! without resctrl fails before anything exists. On delete,
//! `remove(&cleanup)` undoes what `apply` created (the cleanup record is
//! serialisable, to be kept in the container's state).
//!
//! Rules (runtime-spec 1.3):
//! - the group is the `closID` directory, "/" meaning the root (default
//!   CLOS); without `closID`, a new group named after the container;
//! - an existing `closID` group with schemata given must already carry
//!   them; a missing one is created; with no schemata given it must exist;
//! - schemata are written L3 first, then MB, then `schemata` lines;
//! - `enableMonitoring` makes a MON group `mon_groups/<container id>`;
//! - only what the runtime created is removed on delete.

use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::LinuxIntelRdt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FIELD: &str = "linux.intelRdt";
pub const DEFAULT_ROOT: &str = "/sys/fs/resctrl";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdtPlan {
    /// Group directory under the resctrl root; empty for the root group.
    pub group: String,
    /// The group came from `closID`: it is not ours to remove.
    pub clos_id_given: bool,
    /// (config field, schemata line) in the order they are written.
    pub schemata: Vec<(String, String)>,
    /// Name of the MON group to create, when monitoring is asked for.
    pub mon_group: Option<String>,
}

impl RdtPlan {
    pub fn from_spec(rdt: Option<&LinuxIntelRdt>, container_id: &str) -> Result<Option<Self>> {
        let Some(rdt) = rdt else {
            return Ok(None);
        };
        let (group, clos_id_given) = match rdt.clos_id().as_deref() {
            None => (container_id.to_string(), false),
            Some("/") => (String::new(), true),
            Some(c) => {
                let bad =
                    |why: &str| Error::config(format!("{FIELD}.closID"), format!("{c:?}: {why}"));
                if c.is_empty() || c == "." || c == ".." || c.contains(['/', '\0', '\n']) {
                    return Err(bad("not a valid resctrl group name (one path component, or \"/\" for the default group)"));
                }
                if matches!(c, "info" | "mon_groups" | "mon_data") {
                    return Err(bad("reserved name in the resctrl root"));
                }
                (c.to_string(), true)
            }
        };
        let mut schemata = Vec::new();
        let line_ok = |field: &str, v: &str| -> Result<()> {
            if v.contains(['\n', '\r']) {
                return Err(Error::config(field, "must not contain newlines"));
            }
            if v.trim().is_empty() {
                return Err(Error::config(field, "empty schema line"));
            }
            Ok(())
        };
        if let Some(l3) = rdt.l3_cache_schema() {
            let f = format!("{FIELD}.l3CacheSchema");
            line_ok(&f, l3)?;
            schemata.push((f, l3.clone()));
        }
        if let Some(mb) = rdt.mem_bw_schema() {
            let f = format!("{FIELD}.memBwSchema");
            line_ok(&f, mb)?;
            if !mb.starts_with("MB:") {
                return Err(Error::config(f, format!("{mb:?} must start with \"MB:\"")));
            }
            schemata.push((f, mb.clone()));
        }
        for (i, line) in rdt.schemata().iter().flatten().enumerate() {
            let f = format!("{FIELD}.schemata[{i}]");
            line_ok(&f, line)?;
            schemata.push((f, line.clone()));
        }
        // enableCMT/enableMBM (runtime-spec 1.1 to 1.2) asked for the same MON group.
        #[allow(deprecated)]
        let monitoring = rdt.enable_monitoring().unwrap_or(false)
            || rdt.enable_cmt().unwrap_or(false)
            || rdt.enable_mbm().unwrap_or(false);
        Ok(Some(RdtPlan {
            group,
            clos_id_given,
            schemata,
            mon_group: monitoring.then(|| container_id.to_string()),
        }))
    }
}

/// What `apply` created, to remove on delete (innermost first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdtCleanup {
    pub remove: Vec<PathBuf>,
}

/// Where resctrl is mounted in our mount namespace.
pub fn resctrl_root() -> Result<PathBuf> {
    let text = crate::sys::mountinfo::read_own()?;
    find_resctrl(&text).ok_or_else(|| {
        Error::config(
            FIELD,
            format!("resctrl is not mounted on this host ({DEFAULT_ROOT})"),
        )
    })
}

fn find_resctrl(mountinfo: &str) -> Option<PathBuf> {
    crate::sys::mountinfo::parse(mountinfo)
        .into_iter()
        .find(|m| m.fstype == "resctrl")
        .map(|m| PathBuf::from(m.mount_point))
}

/// Put `pid` into the plan's group on the mounted resctrl.
pub fn apply(plan: &RdtPlan, pid: libc::pid_t) -> Result<RdtCleanup> {
    apply_at(&resctrl_root()?, plan, pid)
}

/// As `apply`, on the resctrl tree at `root`. On error, removes what it
/// created.
pub fn apply_at(root: &Path, plan: &RdtPlan, pid: libc::pid_t) -> Result<RdtCleanup> {
    let mut made = RdtCleanup::default();
    let r = apply_inner(root, plan, pid, &mut made);
    if r.is_err() {
        let _ = remove(&made);
        return r.map(|_| made);
    }
    Ok(made)
}

fn apply_inner(root: &Path, plan: &RdtPlan, pid: libc::pid_t, made: &mut RdtCleanup) -> Result<()> {
    let dir = if plan.group.is_empty() {
        root.to_path_buf()
    } else {
        root.join(&plan.group)
    };
    let exists = dir.is_dir();
    let group_text = if plan.group.is_empty() {
        "/"
    } else {
        &plan.group
    };
    if !plan.clos_id_given {
        mkdir(
            &dir,
            &format!("create resctrl group {group_text:?} for the container"),
        )?;
        made.remove.insert(0, dir.clone());
        write_schemata(root, &dir, &plan.schemata)?;
    } else if exists && !plan.schemata.is_empty() {
        let path = dir.join("schemata");
        let have = std::fs::read_to_string(&path)
            .map_err(|e| Error::io("read resctrl schemata", &path, e))?;
        for (field, line) in &plan.schemata {
            if !schemata_match(&have, line) {
                return Err(Error::config(
                    field,
                    format!(
                        "resctrl group {group_text:?} exists with other schemata: wants {line:?}, has {:?}",
                        have.trim()
                    ),
                ));
            }
        }
    } else if exists {
        // A pre-configured group, used as it is.
    } else if !plan.schemata.is_empty() {
        mkdir(&dir, &format!("create resctrl group {group_text:?}"))?;
        // closID was given: the group outlives the container.
        write_schemata(root, &dir, &plan.schemata).inspect_err(|_| {
            let _ = std::fs::remove_dir(&dir);
        })?;
    } else {
        return Err(Error::config(
            format!("{FIELD}.closID"),
            format!(
                "resctrl group {group_text:?} does not exist in {} (and no schemata are given to create it)",
                root.display()
            ),
        ));
    }

    let tasks_dir = match &plan.mon_group {
        Some(m) => {
            let mdir = dir.join("mon_groups").join(m);
            mkdir(
                &mdir,
                &format!("{FIELD}.enableMonitoring: create MON group"),
            )?;
            made.remove.insert(0, mdir.clone());
            mdir
        }
        None => dir,
    };
    let tasks = tasks_dir.join("tasks");
    write_file(&tasks, pid.to_string().as_bytes())
        .map_err(|e| Error::sys_path(format!("{FIELD}: add pid {pid} to"), &tasks, e))
}

fn mkdir(dir: &Path, what: &str) -> Result<()> {
    std::fs::create_dir(dir).map_err(|e| {
        let errno = e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO);
        let hint = match errno {
            Errno::ENOSPC => " (no free CLOSID/RMID left)",
            _ => "",
        };
        Error::sys_path(format!("{what}{hint}"), dir, errno)
    })
}

fn write_file(path: &Path, data: &[u8]) -> std::result::Result<(), Errno> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO))?;
    f.write_all(data)
        .map_err(|e| e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO))
}

/// One write per line through one open file, in order, so that an error
/// names the field of the line the kernel refused, with its reason.
fn write_schemata(root: &Path, dir: &Path, lines: &[(String, String)]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let path = dir.join("schemata");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("{FIELD}: open"), &path, e))?;
    for (field, line) in lines {
        let mut l = line.clone();
        l.push('\n');
        if let Err(e) = f.write_all(l.as_bytes()) {
            let status = std::fs::read_to_string(root.join("info/last_cmd_status"))
                .map(|s| format!(" ({})", s.trim()))
                .unwrap_or_default();
            return Err(Error::io(
                format!("write {field} {line:?}{status} to"),
                &path,
                e,
            ));
        }
    }
    Ok(())
}

/// Does the schemata file text `have` carry `want` ("L3:0=7f0;1=1f")?
/// Only the domains `want` names are compared; the kernel prints bitmasks
/// zero-padded and lines indented, so values are compared as numbers.
fn schemata_match(have: &str, want: &str) -> bool {
    let Some((res, doms)) = want.split_once(':') else {
        return false;
    };
    let res = res.trim();
    let Some(line) = have.lines().find_map(|l| {
        let (r, d) = l.trim().split_once(':')?;
        (r.trim() == res).then_some(d)
    }) else {
        return false;
    };
    let radix = if res.starts_with("MB") { 10 } else { 16 };
    let value = |v: &str| u64::from_str_radix(v.trim(), radix).ok();
    let have_doms: Vec<(&str, &str)> = line
        .split(';')
        .filter_map(|d| d.split_once('='))
        .map(|(a, b)| (a.trim(), b.trim()))
        .collect();
    doms.split(';').filter(|d| !d.trim().is_empty()).all(|d| {
        let Some((id, v)) = d.split_once('=') else {
            return false;
        };
        have_doms.iter().any(|(hid, hv)| {
            *hid == id.trim()
                && match (value(v), value(hv)) {
                    (Some(a), Some(b)) => a == b,
                    _ => v.trim() == *hv,
                }
        })
    })
}

/// Remove what `apply` created (missing directories are fine: already gone).
pub fn remove(cleanup: &RdtCleanup) -> Result<()> {
    for d in &cleanup.remove {
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("{FIELD}: remove resctrl group"), d, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str, id: &str) -> Result<Option<RdtPlan>> {
        let r: LinuxIntelRdt = serde_json::from_str(json).expect("test json");
        RdtPlan::from_spec(Some(&r), id)
    }

    #[test]
    fn plan_orders_schemata_and_names_groups() {
        let p = plan(
            r#"{"closID":"guaranteed_group","l3CacheSchema":"L3:0=7f0;1=1f","memBwSchema":"MB:0=20;1=70",
                "schemata":["L2:0=f;1=f","MB:0=30"],"enableMonitoring":true}"#,
            "ctr",
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.group, "guaranteed_group");
        assert!(p.clos_id_given);
        let lines: Vec<&str> = p.schemata.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            lines,
            ["L3:0=7f0;1=1f", "MB:0=20;1=70", "L2:0=f;1=f", "MB:0=30"]
        );
        assert_eq!(p.schemata[3].0, "linux.intelRdt.schemata[1]");
        assert_eq!(p.mon_group.as_deref(), Some("ctr"));

        let p = plan(r#"{}"#, "ctr").unwrap().unwrap();
        assert_eq!((p.group.as_str(), p.clos_id_given), ("ctr", false));
        assert!(p.mon_group.is_none());
        let p = plan(r#"{"closID":"/"}"#, "ctr").unwrap().unwrap();
        assert_eq!(p.group, "");
        assert!(RdtPlan::from_spec(None, "ctr").unwrap().is_none());
    }

    #[test]
    fn plan_errors_name_the_field() {
        let cases = [
            (r#"{"closID":"a/b"}"#, "linux.intelRdt.closID:"),
            (r#"{"closID":".."}"#, "linux.intelRdt.closID:"),
            (r#"{"closID":""}"#, "linux.intelRdt.closID:"),
            (r#"{"closID":"info"}"#, "linux.intelRdt.closID:"),
            (r#"{"memBwSchema":"L3:0=1"}"#, "linux.intelRdt.memBwSchema:"),
            (
                r#"{"memBwSchema":"MB:0=1\nL3:0=f"}"#,
                "linux.intelRdt.memBwSchema:",
            ),
            (
                r#"{"l3CacheSchema":"L3:0=f\n"}"#,
                "linux.intelRdt.l3CacheSchema:",
            ),
            (
                r#"{"schemata":["L3:0=f","x\ny"]}"#,
                "linux.intelRdt.schemata[1]:",
            ),
        ];
        for (json, want) in cases {
            let e = plan(json, "c").unwrap_err().to_string();
            assert!(e.starts_with(want), "{json}: {e}");
        }
    }

    #[test]
    fn this_host_without_resctrl_gets_a_clear_error() {
        assert!(find_resctrl("22 1 0:20 / /proc rw - proc proc rw\n").is_none());
        let p = find_resctrl(
            "22 1 0:20 / /proc rw - proc proc rw\n40 22 0:35 / /sys/fs/res\\040ctrl rw shared:9 - resctrl resctrl rw\n",
        );
        assert_eq!(p, Some(PathBuf::from("/sys/fs/res ctrl")));
        if !Path::new(DEFAULT_ROOT).exists() {
            let e = resctrl_root().unwrap_err().to_string();
            assert_eq!(
                e,
                "linux.intelRdt: resctrl is not mounted on this host (/sys/fs/resctrl)"
            );
            let p = plan(r#"{"closID":"x"}"#, "c").unwrap().unwrap();
            assert_eq!(apply(&p, 1).unwrap_err().to_string(), e);
        }
    }

    #[test]
    fn schemata_comparison() {
        let have = "    L3:0=007f0;1=0001f\n    MB:0= 20;1= 70\n";
        assert!(schemata_match(have, "L3:0=7f0;1=1f"));
        assert!(schemata_match(have, "L3:1=1F"));
        assert!(schemata_match(have, "MB:0=20;1=70"));
        assert!(!schemata_match(have, "MB:0=30"));
        assert!(!schemata_match(have, "L3:0=ff"));
        assert!(!schemata_match(have, "L2:0=f"));
        assert!(!schemata_match(have, "L3:2=f"));
    }

    /// A fake resctrl root: a temp dir with info/ and the root's files.
    fn fake_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("info")).unwrap();
        std::fs::create_dir_all(t.path().join("mon_groups")).unwrap();
        std::fs::write(
            t.path().join("schemata"),
            "    L3:0=fff;1=fff\n    MB:0=100;1=100\n",
        )
        .unwrap();
        std::fs::write(t.path().join("tasks"), "").unwrap();
        t
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn fake_tree_new_group_for_the_container_with_monitoring() {
        let t = fake_root();
        let root = t.path();
        let p = plan(
            r#"{"l3CacheSchema":"L3:0=7f0","memBwSchema":"MB:0=20","schemata":["L2:0=f"],"enableMonitoring":true}"#,
            "ctr1",
        )
        .unwrap()
        .unwrap();
        let g = root.join("ctr1");
        // The kernel creates mon_groups in each new group, the fake does
        // not: the MON group fails, the error names the step, and the group
        // made for the container is removed again.
        let mon_only = plan(r#"{"enableMonitoring":true}"#, "ctr1")
            .unwrap()
            .unwrap();
        let err = apply_at(root, &mon_only, 4242).unwrap_err().to_string();
        assert!(
            err.contains("linux.intelRdt.enableMonitoring: create MON group"),
            "{err}"
        );
        assert!(!g.exists());

        let p_nomon = RdtPlan {
            mon_group: None,
            ..p.clone()
        };
        let c = apply_at(root, &p_nomon, 4242).unwrap();
        assert_eq!(read(g.join("schemata")), "L3:0=7f0\nMB:0=20\nL2:0=f\n");
        assert_eq!(read(g.join("tasks")), "4242");
        assert_eq!(c.remove, vec![g.clone()]);
        std::fs::remove_file(g.join("schemata")).unwrap();
        std::fs::remove_file(g.join("tasks")).unwrap();
        remove(&c).unwrap();
        assert!(!g.exists());
    }

    #[test]
    fn fake_tree_monitoring_group_under_an_existing_clos() {
        let t = fake_root();
        let root = t.path();
        let g = root.join("gold");
        std::fs::create_dir_all(g.join("mon_groups")).unwrap();
        std::fs::write(g.join("schemata"), "    L3:0=00f0\n    MB:0= 50\n").unwrap();
        let p = plan(
            r#"{"closID":"gold","l3CacheSchema":"L3:0=f0","enableMonitoring":true}"#,
            "ctr2",
        )
        .unwrap()
        .unwrap();
        let c = apply_at(root, &p, 77).unwrap();
        let m = g.join("mon_groups/ctr2");
        assert_eq!(read(m.join("tasks")), "77");
        // The closID group is not ours; only the MON group is removed.
        assert_eq!(c.remove, vec![m.clone()]);
        std::fs::remove_file(m.join("tasks")).unwrap();
        remove(&c).unwrap();
        assert!(!m.exists() && g.exists());

        // Same group, other schemata: refused, naming the field.
        let p = plan(r#"{"closID":"gold","memBwSchema":"MB:0=60"}"#, "c3")
            .unwrap()
            .unwrap();
        let e = apply_at(root, &p, 1).unwrap_err().to_string();
        assert!(
            e.starts_with("linux.intelRdt.memBwSchema: resctrl group \"gold\" exists"),
            "{e}"
        );
    }

    #[test]
    fn fake_tree_clos_rules() {
        let t = fake_root();
        let root = t.path();
        // closID without schemata: must exist.
        let p = plan(r#"{"closID":"silver"}"#, "c").unwrap().unwrap();
        let e = apply_at(root, &p, 1).unwrap_err().to_string();
        assert!(
            e.starts_with("linux.intelRdt.closID: resctrl group \"silver\" does not exist"),
            "{e}"
        );
        // closID with schemata: created, written, kept on delete.
        let p = plan(r#"{"closID":"silver","schemata":["L3:0=3"]}"#, "c")
            .unwrap()
            .unwrap();
        let c = apply_at(root, &p, 5).unwrap();
        assert!(c.remove.is_empty());
        assert_eq!(read(root.join("silver/schemata")), "L3:0=3\n");
        assert_eq!(read(root.join("silver/tasks")), "5");
        // Pre-configured group without schemata: just joined.
        let p = plan(r#"{"closID":"silver"}"#, "c").unwrap().unwrap();
        apply_at(root, &p, 6).unwrap();
        assert_eq!(read(root.join("silver/tasks")), "6");
        // "/" is the default group.
        let p = plan(r#"{"closID":"/","l3CacheSchema":"L3:1=fff"}"#, "c")
            .unwrap()
            .unwrap();
        apply_at(root, &p, 8).unwrap();
        assert_eq!(read(root.join("tasks")), "8");
        // The container's own group must be new.
        std::fs::create_dir(root.join("taken")).unwrap();
        let p = plan(r#"{}"#, "taken").unwrap().unwrap();
        let e = apply_at(root, &p, 1).unwrap_err().to_string();
        assert!(
            e.contains("create resctrl group \"taken\"") && e.contains("file exists"),
            "{e}"
        );
    }
}
