//! The "do" half: create the container's cgroups, apply a plan, place
//! pids, freeze/thaw, signal, update and destroy.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::devices::{attach_program, load_program};
use super::plan::{CgroupPlan, HostLimits, Op, Write};
use super::probe::{hierarchy_dir, Backend, HostCgroups};
use crate::error::{Context, Error, Result};

/// One directory of the container's cgroup, in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    /// true for the cgroup2 hierarchy.
    pub v2: bool,
    /// Controllers this directory serves (v1: the hierarchy's; v2: the ones
    /// this host serves from cgroup2, plus the implicit devices/freezer).
    pub controllers: Vec<String>,
    pub dir: PathBuf,
}

/// Everything later commands (delete, pause, kill --all, update, events,
/// ps) need: store it in the state file as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupHandle {
    /// The in-hierarchy path that was asked for (cleaned).
    pub path: String,
    pub dirs: Vec<CgroupDir>,
}

fn io_err(op: &str, p: &Path, e: std::io::Error) -> Error {
    Error::io(op, p, e)
}

fn write_raw(path: &Path, value: &str) -> std::io::Result<()> {
    // No O_CREAT/O_TRUNC: cgroup files exist or the write is wrong.
    crate::sys::fsio::write_existing(path, value.as_bytes())
}

fn write_file(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|e| io_err(&format!("write {value:?} to"), path, e))
}

fn read_file(path: &Path) -> Result<String> {
    crate::sys::fsio::read_to_string(path).map_err(|e| io_err("read", path, e))
}

impl CgroupHandle {
    /// Resolve the plan's path in every hierarchy this host has. Relative
    /// paths are joined under the caller's own cgroup like runc: in v1 under
    /// the own cgroup of each hierarchy, in v2 under its parent (the own
    /// cgroup holds processes, so it could not delegate controllers).
    pub fn resolve(host: &HostCgroups, path: &str) -> CgroupHandle {
        let abs = path.starts_with('/');
        let mut dirs = Vec::new();
        for m in &host.v1 {
            let inner = if abs {
                path.to_string()
            } else {
                format!("{}/{path}", m.own)
            };
            dirs.push(CgroupDir {
                v2: false,
                controllers: m.controllers.clone(),
                dir: hierarchy_dir(&m.mount, &m.root, &inner),
            });
        }
        if let Some(v2) = &host.v2 {
            // On hybrid hosts cgroup2 only matters when it serves something.
            if host.v1.is_empty() || host.v2_serves_anything() {
                let inner = if abs {
                    path.to_string()
                } else {
                    let parent = Path::new(&v2.own)
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "/".into());
                    format!("{parent}/{path}")
                };
                let mut controllers: Vec<String> = super::probe::KNOWN_CONTROLLERS
                    .iter()
                    .filter(|c| matches!(host.backend(c), Some(Backend::V2(_))))
                    .map(|c| c.to_string())
                    .collect();
                controllers.sort();
                dirs.push(CgroupDir {
                    v2: true,
                    controllers,
                    dir: hierarchy_dir(&v2.mount, &v2.root, &inner),
                });
            }
        }
        CgroupHandle {
            path: path.to_string(),
            dirs,
        }
    }

    /// The directory serving `controller` (for v2 also the core files).
    pub fn dir_for(&self, controller: &str) -> Option<&CgroupDir> {
        if controller == "unified" || controller == "io" {
            return self.dirs.iter().find(|d| d.v2);
        }
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
    }

    /// The same cgroup in the hierarchies of one creation step only.
    pub fn part(&self, part: Part) -> CgroupHandle {
        CgroupHandle {
            path: self.path.clone(),
            dirs: self
                .dirs
                .iter()
                .filter(|d| part.covers(d))
                .cloned()
                .collect(),
        }
    }

    pub fn v2_dir(&self) -> Option<&Path> {
        self.dirs.iter().find(|d| d.v2).map(|d| d.dir.as_path())
    }

    /// The directory whose cgroup.procs lists the container's processes.
    fn primary(&self) -> Result<&CgroupDir> {
        self.dir_for("freezer")
            .or_else(|| self.dirs.iter().find(|d| d.v2))
            .or_else(|| self.dirs.first())
            .ok_or_else(|| Error::msg("the container has no cgroup"))
    }
}

/// Create the container's cgroups and apply `plan`. Every value is checked
/// before the first mkdir; on any error, what was created is removed.
pub fn create(host: &HostCgroups, limits: &HostLimits, plan: &CgroupPlan) -> Result<CgroupHandle> {
    create_part(host, limits, plan, Part::All)
}

/// Which of a container's cgroup directories a creation step makes and
/// writes the limits of (see [`create_part`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Every hierarchy.
    All,
    /// Only the cgroup2 directory: the one the init is cloned into.
    V2,
    /// Only the v1 hierarchies, which the init joins by itself: they can be
    /// made while it is already running (and waiting).
    V1,
}

impl Part {
    fn covers(self, d: &CgroupDir) -> bool {
        match self {
            Part::All => true,
            Part::V2 => d.v2,
            Part::V1 => !d.v2,
        }
    }
}

/// [`create`] in two steps: `Part::V2` then `Part::V1` together do what
/// `Part::All` does. Each step validates the whole plan (so the first one
/// reports any error in it); a failed step removes what it made, and the
/// caller removes the rest with [`CgroupHandle::destroy`]. The handle
/// returned names every directory, made yet or not.
pub fn create_part(
    host: &HostCgroups,
    limits: &HostLimits,
    plan: &CgroupPlan,
    part: Part,
) -> Result<CgroupHandle> {
    let ops = plan.ops(host)?;
    plan.check_host(limits)?;
    let devices = plan.device_state()?;
    let handle = CgroupHandle::resolve(host, &plan.path);
    if part != Part::V1 {
        // The first of the two steps refuses a cgroup that is in use in any
        // hierarchy, before anything is made or anyone cloned.
        if part == Part::V2 {
            for d in handle.dirs.iter().filter(|d| !d.v2) {
                refuse_busy(d)?;
            }
        }
        // A frozen cgroup (or one under a frozen parent) would freeze the init the moment it
        // joins: create would wait forever for a process that cannot run.
        refuse_frozen(&handle)?;
    }
    let mut created: Vec<PathBuf> = Vec::new();
    let r = (|| -> Result<()> {
        for d in handle.dirs.iter().filter(|d| part.covers(d)) {
            make_dir(host, d, &mut created)?;
        }
        apply_ops(&handle, &ops, part)?;
        if let Some(state) = &devices {
            if let Some(d) = handle.dir_for("devices").filter(|d| part.covers(d)) {
                if d.v2 {
                    let dir = open_dir(&d.dir)?;
                    let prog = load_program(&state.bpf_program())?;
                    attach_program(&dir, &prog).with_context(|| format!("{}", d.dir.display()))?;
                } else {
                    // The kernel parses one rule per write(2): keep each of the
                    // two files open across its rules instead of one open per rule.
                    let mut open: Vec<(&str, std::fs::File)> = Vec::new();
                    for (file, line) in state.v1_writes() {
                        let path = d.dir.join(file);
                        let idx = match open.iter().position(|(f, _)| *f == file) {
                            Some(i) => i,
                            None => {
                                let f = std::fs::OpenOptions::new()
                                    .write(true)
                                    .custom_flags(libc::O_CLOEXEC)
                                    .open(&path)
                                    .map_err(|e| io_err("open", &path, e))
                                    .context("linux.resources.devices")?;
                                open.push((file, f));
                                open.len() - 1
                            }
                        };
                        open[idx]
                            .1
                            .write_all(line.as_bytes())
                            .map_err(|e| io_err(&format!("write {line:?} to"), &path, e))
                            .context("linux.resources.devices")?;
                    }
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        for p in created.iter().rev() {
            let _ = rmdir_retry(p);
        }
        return Err(e);
    }
    Ok(handle)
}

/// `create` for a possibly rootless runtime (runc's `--rootless`): when
/// `rootless` and the cgroup cannot be created for lack of permission, the
/// container runs without a cgroup of its own (an empty handle, see
/// [`CgroupHandle::is_empty`]) — unless the config asks for resource
/// limits, which then fail with an error saying so.
pub fn create_for(
    host: &HostCgroups,
    limits: &HostLimits,
    plan: &CgroupPlan,
    rootless: bool,
) -> Result<CgroupHandle> {
    match create(host, limits, plan) {
        Err(e) if rootless && is_permission_error(&e) => {
            if let Some(field) = plan.limits_asked() {
                return Err(Error::Context {
                    context: format!(
                        "rootless container: {field} needs a cgroup, and this user may not \
                         create one (delegate a writable cgroup, or remove the limits)"
                    ),
                    source: Box::new(e),
                });
            }
            log::debug!("rootless: running without a cgroup: {e}");
            Ok(CgroupHandle {
                path: plan.path.clone(),
                dirs: Vec::new(),
            })
        }
        r => r,
    }
}

fn is_permission_error(e: &Error) -> bool {
    matches!(e.errno(), Some(Errno::EACCES | Errno::EPERM | Errno::EROFS))
}

impl CgroupHandle {
    /// No directory at all: a rootless container that runs without a
    /// cgroup (record `None` in the state then).
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| io_err("open", p, e))?;
    Ok(f.into())
}

fn has_procs(dir: &Path) -> Result<bool> {
    match crate::sys::fsio::read_to_string(dir.join("cgroup.procs")) {
        Ok(s) => Ok(!s.trim().is_empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("read", &dir.join("cgroup.procs"), e)),
    }
}

/// A container never shares its cgroup with processes already there.
impl CgroupHandle {
    /// The handle of existing sub-cgroups, for `exec --cgroup`: each entry is
    /// `[CONTROLLER[,...]:]PATH`, PATH relative to the container's cgroup; one without
    /// controllers applies to every hierarchy, one with controllers to the hierarchies that
    /// serve them (runc's format). Hierarchies no entry names keep the container's cgroup.
    pub fn sub_cgroups(&self, specs: &[String]) -> Result<CgroupHandle> {
        let mut parsed: Vec<(Option<Vec<&str>>, &str)> = Vec::new();
        for spec in specs {
            let (ctrls, path) = match spec.split_once(':') {
                Some((c, p)) => (Some(c.split(',').collect::<Vec<_>>()), p),
                None => (None, spec.as_str()),
            };
            let rel = path.trim_start_matches('/');
            let bad = rel.is_empty()
                || std::path::Path::new(rel)
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)));
            if bad {
                return Err(Error::config(
                    "--cgroup",
                    format!("{spec:?}: the path must name a sub-cgroup (no \"..\", not empty)"),
                ));
            }
            parsed.push((ctrls, rel));
        }
        let mut out = self.clone();
        for d in out.dirs.iter_mut() {
            let pick = parsed
                .iter()
                .find(|(c, _)| {
                    c.as_ref()
                        .is_some_and(|c| c.iter().any(|x| d.controllers.iter().any(|y| y == x)))
                })
                .or_else(|| parsed.iter().find(|(c, _)| c.is_none()));
            if let Some((_, rel)) = pick {
                let sub = d.dir.join(rel);
                if !sub.is_dir() {
                    return Err(Error::config(
                        "--cgroup",
                        format!(
                            "{} does not exist (create the sub-cgroup first)",
                            sub.display()
                        ),
                    ));
                }
                // Made with a plain mkdir, a v1 cpuset sub-cgroup has no cpus or mems yet.
                if !d.v2 && d.controllers.iter().any(|c| c == "cpuset") {
                    inherit_cpuset(&sub)?;
                }
                d.dir = sub;
            }
        }
        for (c, _) in &parsed {
            if let Some(c) = c {
                for x in c {
                    if !self
                        .dirs
                        .iter()
                        .any(|d| d.controllers.iter().any(|y| y == x))
                    {
                        return Err(Error::config(
                            "--cgroup",
                            format!("the container has no {x} cgroup"),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }
}

fn refuse_frozen(handle: &CgroupHandle) -> Result<()> {
    for d in &handle.dirs {
        let freezes = d.v2 || d.controllers.iter().any(|c| c == "freezer");
        if !freezes {
            continue;
        }
        // The cgroup itself, or the nearest ancestor that exists (a new cgroup starts
        // frozen under a frozen parent).
        let Some(existing) = d.dir.ancestors().find(|p| p.is_dir()) else {
            continue;
        };
        let frozen = if d.v2 {
            crate::sys::fsio::read_to_string(existing.join("cgroup.events"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "frozen 1"))
        } else {
            crate::sys::fsio::read_to_string(existing.join("freezer.state"))
                .is_ok_and(|t| t.trim() != "THAWED")
        };
        if frozen {
            return Err(Error::config(
                "linux.cgroupsPath",
                format!(
                    "{} is frozen: a container there could not run (thaw it first)",
                    existing.display()
                ),
            ));
        }
    }
    Ok(())
}

fn refuse_busy(d: &CgroupDir) -> Result<()> {
    if d.dir.is_dir() && has_procs(&d.dir)? {
        return Err(Error::msg(format!(
            "cgroup {} already has processes",
            d.dir.display()
        )));
    }
    Ok(())
}

fn make_dir(host: &HostCgroups, d: &CgroupDir, created: &mut Vec<PathBuf>) -> Result<()> {
    // v1, where a create makes one directory in each of ~10 hierarchies:
    // when the parent already exists (the common case) one mkdir says so,
    // without a stat of each level first.
    if !d.v2 {
        match std::fs::create_dir(&d.dir) {
            Ok(()) => {
                created.push(d.dir.clone());
                if d.controllers.iter().any(|c| c == "cpuset") {
                    inherit_cpuset(&d.dir)?;
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("mkdir", &d.dir, e)),
        }
    }
    refuse_busy(d)?;
    // Find the first missing ancestor, then create top-down so that v1
    // cpuset levels get their cpus/mems and v2 levels their controllers.
    let mut missing = Vec::new();
    let mut p = d.dir.as_path();
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(q) => p = q,
            None => break,
        }
    }
    for dir in missing.iter().rev() {
        if d.v2 {
            if let Some(parent) = dir.parent() {
                enable_v2_controllers(host, parent)?;
            }
        }
        match std::fs::create_dir(dir) {
            Ok(()) => created.push(dir.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("mkdir", dir, e)),
        }
        if !d.v2 && d.controllers.iter().any(|c| c == "cpuset") {
            inherit_cpuset(dir)?;
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpus/mems, where no task may join: copy the
/// parent's. A parent someone else made with a plain mkdir is empty too: every empty level
/// is filled, top down, from the nearest ancestor that has values (as runc does).
fn inherit_cpuset(dir: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = dir.join(f);
        let Ok(cur) = crate::sys::fsio::read_to_string(&mine) else {
            continue;
        };
        if !cur.trim().is_empty() {
            continue;
        }
        // The empty levels from `dir` up, until one that has a value (or the root).
        let mut empty = vec![dir];
        let mut value = String::new();
        for level in dir.ancestors().skip(1) {
            let Ok(v) = crate::sys::fsio::read_to_string(level.join(f)) else {
                break; // above the hierarchy's root
            };
            if !v.trim().is_empty() {
                value = v.trim().to_string();
                break;
            }
            empty.push(level);
        }
        if value.is_empty() {
            continue; // nothing to copy: the join will say why
        }
        for level in empty.iter().rev() {
            write_file(&level.join(f), &value)?;
        }
    }
    Ok(())
}

/// Make the controllers cgroup2 serves available to children of `parent`.
fn enable_v2_controllers(host: &HostCgroups, parent: &Path) -> Result<()> {
    let Some(v2) = &host.v2 else { return Ok(()) };
    if v2.controllers.is_empty() {
        return Ok(());
    }
    let avail = match crate::sys::fsio::read_to_string(parent.join("cgroup.controllers")) {
        Ok(s) => s,
        Err(_) => return Ok(()),
    };
    let enabled =
        crate::sys::fsio::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
    let want: Vec<String> = avail
        .split_whitespace()
        .filter(|c| {
            v2.controllers.iter().any(|x| x == c) && !enabled.split_whitespace().any(|e| e == *c)
        })
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    write_file(&parent.join("cgroup.subtree_control"), &want.join(" "))
}

/// A resource this host cannot apply: runc's phrase first (engines and scripts look for it),
/// then the field and why.
pub(crate) fn cannot_honour(field: &str, reason: String) -> Error {
    Error::msg(format!("invalid configuration: {field}: {reason}"))
}

fn apply_write(handle: &CgroupHandle, w: &Write, part: Part) -> Result<()> {
    let d = handle.dir_for(w.controller).ok_or_else(|| {
        cannot_honour(
            &w.field,
            format!(
                "the {} controller is not available on this host",
                w.controller
            ),
        )
    })?;
    if !part.covers(d) {
        return Ok(());
    }
    let p = d.dir.join(&w.file);
    let (path, value) = if p.exists() {
        (p, w.value.as_str())
    } else if let Some((f, v)) = &w.alt {
        (d.dir.join(f), v.as_str())
    } else {
        (p, w.value.as_str())
    };
    match write_raw(&path, value) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && w.optional => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(cannot_honour(
            &w.field,
            format!(
                "{} does not exist (not supported by this kernel or cgroup)",
                path.display()
            ),
        )),
        Err(e) => Err(io_err(&format!("write {value:?} to"), &path, e)).context(w.field.clone()),
    }
}

fn apply_ops(handle: &CgroupHandle, ops: &[Op], part: Part) -> Result<()> {
    for op in ops {
        match op {
            Op::Write(w) => apply_write(handle, w, part)?,
            Op::MemoryPair { limit, swap } => {
                if let Err(e) = apply_write(handle, limit, part) {
                    if e.errno() != Some(Errno::EINVAL) {
                        return Err(e);
                    }
                    apply_write(handle, swap, part)?;
                    apply_write(handle, limit, part)?;
                } else {
                    apply_write(handle, swap, part)?;
                }
            }
            Op::CheckUsage {
                controller,
                usage_file,
                limit,
            } => {
                let Some(d) = handle.dir_for(controller).filter(|d| part.covers(d)) else {
                    continue;
                };
                let p = d.dir.join(usage_file);
                let usage: i64 = read_file(&p)?.trim().parse().unwrap_or(0);
                if usage > *limit {
                    return Err(Error::config(
                        "linux.resources.memory.limit",
                        format!("rejecting memory limit {limit} below the current usage {usage}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// rmdir, retrying a few times on EBUSY (tasks still exiting); a missing
/// directory is fine.
fn rmdir_retry(p: &Path) -> Result<()> {
    let mut delay = Duration::from_millis(1);
    let mut tries = 0;
    loop {
        let errno = match std::fs::remove_dir(p) {
            Ok(()) => return Ok(()),
            Err(e) => Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        match errno {
            Errno::ENOENT => return Ok(()),
            Errno::EBUSY if tries < 10 => {
                tries += 1;
                std::thread::sleep(delay);
                delay *= 2;
            }
            e => return Err(Error::sys_path("rmdir", p, e)),
        }
    }
}

fn remove_tree(p: &Path) -> Result<()> {
    // A container's cgroup rarely has sub-cgroups: try the rmdir first and
    // list the directory only when the kernel says it is still in use.
    match std::fs::remove_dir(p) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let rd = match std::fs::read_dir(p) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", p, e)),
    };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&e.path())?;
        }
    }
    rmdir_retry(p)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    match crate::sys::fsio::read_to_string(dir.join("cgroup.procs")) {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read", &dir.join("cgroup.procs"), e)),
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), out)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn poll_until<F: FnMut() -> Result<bool>>(timeout: Duration, mut f: F) -> Result<bool> {
    let start = Instant::now();
    let mut delay = Duration::from_micros(100);
    loop {
        if f()? {
            return Ok(true);
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

impl CgroupHandle {
    /// Move `pid` into every hierarchy (cgroup.procs).
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        self.add_pid_where(pid, |_| true)
    }

    /// Move `pid` into the v2 hierarchy only (the v1 ones it joins itself).
    pub fn add_pid_v2(&self, pid: i32) -> Result<()> {
        self.add_pid_where(pid, |d| d.v2)
    }

    /// Move `pid` into the v1 hierarchies only: after clone3 with
    /// CLONE_INTO_CGROUP put it in the v2 one already.
    pub fn add_pid_v1(&self, pid: i32) -> Result<()> {
        self.add_pid_where(pid, |d| !d.v2)
    }

    /// Move the calling (single-threaded) process into the v1 hierarchies
    /// by writing "0" to each `tasks` file.
    ///
    /// Why not `add_pid` from the parent: migrating another process takes
    /// the kernel's global threadgroup rwsem for writing, which waits for an
    /// RCU grace period (5-20 ms measured here, per create). A thread moving
    /// itself through `tasks` skips that lock (cgroup_procs_write_start), and
    /// for a single-threaded process that moves the whole process.
    pub fn join_self_v1(&self) -> Result<()> {
        for d in self.dirs.iter().filter(|d| !d.v2) {
            let p = d.dir.join("tasks");
            write_raw(&p, "0").map_err(|e| io_err("join cgroup: write 0 to", &p, e))?;
        }
        Ok(())
    }

    /// Whether the container has v1 directories (joined by pid or by itself).
    pub fn has_v1(&self) -> bool {
        self.dirs.iter().any(|d| !d.v2)
    }

    fn add_pid_where(&self, pid: i32, f: impl Fn(&CgroupDir) -> bool) -> Result<()> {
        let s = pid.to_string();
        for d in self.dirs.iter().filter(|d| f(d)) {
            let p = d.dir.join("cgroup.procs");
            let mut tries = 0;
            loop {
                match write_raw(&p, &s) {
                    Ok(()) => break,
                    // A task still in TASK_NEW is refused with EINVAL.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) && tries < 5 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(io_err(&format!("write pid {pid} to"), &p, e)),
                }
            }
        }
        Ok(())
    }

    /// An fd of the v2 directory for clone3's `cgroup` field with
    /// CLONE_INTO_CGROUP; None when the container has no v2 directory.
    pub fn v2_dir_fd(&self) -> Result<Option<OwnedFd>> {
        self.v2_dir().map(open_dir).transpose()
    }

    /// All pids in the container's cgroup and its sub-cgroups.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        collect_pids(&self.primary()?.dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn freezer(&self) -> Result<&CgroupDir> {
        self.dir_for("freezer")
            .ok_or_else(|| Error::msg("the freezer controller is not available on this host"))
    }

    pub fn freeze(&self) -> Result<()> {
        let d = self.freezer()?;
        let ok = if d.v2 {
            write_file(&d.dir.join("cgroup.freeze"), "1")?;
            let ev = d.dir.join("cgroup.events");
            poll_until(Duration::from_secs(5), || {
                Ok(read_file(&ev)?.lines().any(|l| l == "frozen 1"))
            })?
        } else {
            let st = d.dir.join("freezer.state");
            // Re-writing FROZEN retries tasks that could not be frozen yet.
            poll_until(Duration::from_secs(5), || {
                write_file(&st, "FROZEN")?;
                Ok(read_file(&st)?.trim() == "FROZEN")
            })?
        };
        if !ok {
            let _ = self.thaw();
            return Err(Error::msg(format!(
                "freezing {} timed out",
                d.dir.display()
            )));
        }
        Ok(())
    }

    pub fn thaw(&self) -> Result<()> {
        let d = self.freezer()?;
        if d.v2 {
            write_file(&d.dir.join("cgroup.freeze"), "0")
        } else {
            write_file(&d.dir.join("freezer.state"), "THAWED")
        }
    }

    pub fn is_frozen(&self) -> Result<bool> {
        let d = self.freezer()?;
        if d.v2 {
            match crate::sys::fsio::read_to_string(d.dir.join("cgroup.freeze")) {
                Ok(s) => Ok(s.trim() == "1"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_err("read", &d.dir.join("cgroup.freeze"), e)),
            }
        } else {
            match crate::sys::fsio::read_to_string(d.dir.join("freezer.state")) {
                // FREEZING counts as paused, as in runc.
                Ok(s) => Ok(s.trim() != "THAWED"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_err("read", &d.dir.join("freezer.state"), e)),
            }
        }
    }

    /// Signal every process of the container. SIGKILL on v2 uses
    /// cgroup.kill when the kernel has it; otherwise the cgroup is frozen
    /// so no new process escapes, each pid is signalled, and it is thawed.
    pub fn kill_all(&self, sig: Signal) -> Result<()> {
        if sig == Signal::SIGKILL {
            if let Some(v2) = self.v2_dir() {
                let k = v2.join("cgroup.kill");
                if k.exists() {
                    return write_file(&k, "1");
                }
            }
        }
        let frozen = self.dir_for("freezer").is_some() && self.freeze().is_ok();
        let mut res = Ok(());
        for pid in self.pids()? {
            match kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => {
                    res = Err(Error::sys(format!("kill {pid} with {sig}"), e));
                }
            }
        }
        if frozen {
            self.thaw()?;
        }
        res
    }

    /// Remove every directory, sub-cgroups first. Missing dirs are fine.
    pub fn destroy(&self) -> Result<()> {
        let mut first = None;
        for d in &self.dirs {
            if let Err(e) = remove_tree(&d.dir) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// `update`: the same validation and writes as create, without devices.
    pub fn update(
        &self,
        host: &HostCgroups,
        limits: &HostLimits,
        resources: LinuxResources,
    ) -> Result<()> {
        let plan = CgroupPlan::from_resources(self.path.clone(), resources)?;
        let ops = plan.ops(host)?;
        plan.check_host(limits)?;
        apply_ops(self, &ops, Part::All)
    }
}
