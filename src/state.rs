//! The state store: one directory per container under the runtime root.
//!
//! `<root>/<id>/state.json` is written atomically (temp file + rename), so a
//! reader sees either the old or the new file, never half of one. Commands
//! that change a container (create, start, pause, resume, update, delete)
//! serialise on an exclusive flock of `<root>/<id>/` itself; exec holds it
//! shared while its process is set up; state, list, ps and kill take none.
//! The status is never stored: it is derived from the kernel on every read
//! (see `status`).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spawn;

pub const STATE_FILE: &str = "state.json";
/// The unix socket the waiting init accepts `start` on; present while `created`.
pub const START_SOCKET: &str = "start.sock";

/// What skiff records about a container. The status is not in here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    /// Host pid of the init.
    pub pid: i32,
    /// /proc/PID/stat starttime of the init, to tell it from a process that reuses its pid.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub poststart_hooks: Vec<Hook>,
    #[serde(default)]
    pub poststop_hooks: Vec<Hook>,
    /// config.json's process: the defaults for `exec`.
    #[serde(default)]
    pub process: Option<oci_spec::runtime::Process>,
    /// linux.seccomp: `exec`'d processes get the container's filter.
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// linux.memoryPolicy and linux.personality: `exec`'d processes get them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<oci_spec::runtime::LinuxMemoryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    /// What create made under /sys/fs/resctrl, removed by delete.
    #[serde(default)]
    pub rdt: Option<crate::rdt::RdtCleanup>,
    /// Written while `create` is still at work (so that a create killed
    /// half-way leaves a state `delete --force` can clean up): who is
    /// creating it, as (pid, start time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<(i32, u64)>,
    /// The container's cgroup directories, resolved at create.
    #[serde(default)]
    pub cgroup: Option<crate::cgroups::CgroupHandle>,
    /// The init has its own pid namespace (so signalling "all" is killing the init).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// No mount namespace of its own: its mounts are in the host's table under `rootfs`, and
    /// `delete` unmounts them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_mounts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Container ids as runc accepts them: `[A-Za-z0-9_+.-]+`, not "." or "..".
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// The runtime root directory (`--root`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An flock held on a container directory; released on drop.
pub struct Lock {
    _fd: OwnedFd,
}

impl Lock {
    pub fn raw_fd(&self) -> i32 {
        self._fd.as_raw_fd()
    }
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Make the container's directory; fails if the id is taken.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
        {
            return Err(Error::io("mkdir", &self.root, e));
        }
        let dir = self.dir(id);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => Err(Error::io("mkdir", &dir, e)),
        }
    }

    /// Lock a container's directory exclusively (waiting for other commands).
    pub fn lock(&self, id: &str) -> Result<Lock> {
        self.lock_as(id, libc::LOCK_EX)
    }

    /// Lock a container's directory shared: with other shared holders, but not while an
    /// exclusive holder works (and the other way round).
    pub fn lock_shared(&self, id: &str) -> Result<Lock> {
        self.lock_as(id, libc::LOCK_SH)
    }

    /// The exclusive lock if it is free now; `Ok(None)` when someone holds it.
    pub fn try_lock(&self, id: &str) -> Result<Option<Lock>> {
        match self.lock_as(id, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.errno() == Some(Errno::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn lock_as(&self, id: &str, how: libc::c_int) -> Result<Lock> {
        validate_id(id)?;
        let dir = self.dir(id);
        let fd = match nix::fcntl::open(
            &dir,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {
                return Err(Error::NotExist(id.to_string()))
            }
            Err(e) => return Err(Error::sys_path("open", &dir, e)),
        };
        // SAFETY: open just returned this fd and nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: flock on an fd we own.
        crate::error::retry_eintr(|| Errno::result(unsafe { libc::flock(fd.as_raw_fd(), how) }))
            .map_err(|e| Error::sys_path("lock", &dir, e))?;
        Ok(Lock { _fd: fd })
    }

    pub fn save(&self, state: &ContainerState) -> Result<()> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| Error::msg(format!("encode state of {}: {e}", state.id)))?;
        write_atomic(&self.dir(&state.id).join(STATE_FILE), &bytes, 0o600)
    }

    pub fn load(&self, id: &str) -> Result<ContainerState> {
        validate_id(id)?;
        let path = self.dir(id).join(STATE_FILE);
        let bytes = match crate::sys::fsio::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist(id.to_string()))
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::msg(format!("{}: corrupt state: {e}", path.display())))
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &dir, e)),
        }
    }

    /// Every container id under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read directory", &self.root, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The status of a container, from the kernel's view of its init.
    pub fn status(&self, state: &ContainerState) -> Status {
        if let Some((pid, start)) = state.creator {
            let creator_alive = spawn::stat_start_time(pid)
                .is_some_and(|(t, st)| t == start && st != 'Z' && st != 'X');
            // A create that died half-way: nothing of it runs (delete kills
            // whatever the cgroup still holds).
            return if creator_alive {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !init_alive(state) {
            return Status::Stopped;
        }
        // A frozen container is paused whether or not it was started
        // (resume returns a created one to `created`).
        if state
            .cgroup
            .as_ref()
            .is_some_and(|cg| cg.is_frozen().unwrap_or(false))
        {
            return Status::Paused;
        }
        if self.dir(&state.id).join(START_SOCKET).exists() {
            return Status::Created;
        }
        Status::Running
    }
}

/// The recorded init still runs: same pid, same start time, not a zombie.
pub fn init_alive(state: &ContainerState) -> bool {
    if state.pid <= 0 {
        return false;
    }
    match spawn::stat_start_time(state.pid) {
        Some((start, st)) => start == state.pid_start_time && st != 'Z' && st != 'X',
        None => false,
    }
}

/// Open a pidfd for the init and check that it is still the same process:
/// after pidfd_open the pid cannot be reused, so the check is race-free.
pub fn open_init(state: &ContainerState) -> Result<OwnedFd> {
    let fd = spawn::pidfd_open(state.pid).map_err(|_| Error::NotRunning(state.id.clone()))?;
    if !init_alive(state) {
        return Err(Error::NotRunning(state.id.clone()));
    }
    Ok(fd)
}

/// Write a file atomically: temp file in the same directory, fsync-free
/// (state survives process crashes, which is what matters; /run is tmpfs), rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Current time as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    rfc3339(ts.tv_sec, ts.tv_nsec as u32)
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc() {
        for ok in ["a", "abc-1", "A_b+c.d", "x..y"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "ü"] {
            let e = validate_id(bad).unwrap_err().to_string();
            assert!(e.contains("invalid container ID format"), "{bad}: {e}");
        }
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }

    #[test]
    fn shared_locks_coexist_and_hold_off_the_exclusive_one() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("root"));
        store.create_dir("c").unwrap();
        let a = store.lock_shared("c").unwrap();
        let b = store.lock_shared("c").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = store.clone();
        let waiter = std::thread::spawn(move || {
            let l = s2.lock("c").unwrap();
            tx.send(()).unwrap();
            drop(l);
        });
        // Not a timing check: the exclusive lock must not be granted while either shared
        // one is held; 200 ms is only how long we look.
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(a);
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(b);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("exclusive lock after the shared ones went");
        waiter.join().unwrap();
        assert!(matches!(store.lock_shared("nope"), Err(Error::NotExist(_))));
    }

    #[test]
    fn store_round_trip_duplicate_and_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("root"));
        store.create_dir("c1").unwrap();
        assert!(matches!(
            store.create_dir("c1"),
            Err(Error::AlreadyExists(_))
        ));
        assert!(matches!(store.load("c1"), Err(Error::NotExist(_))));
        assert!(matches!(store.lock("nope"), Err(Error::NotExist(_))));
        let st = ContainerState {
            oci_version: "1.3.0".into(),
            id: "c1".into(),
            pid: std::process::id() as i32,
            pid_start_time: spawn::stat_start_time(std::process::id() as i32).unwrap().0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            owner: "root".into(),
            annotations: HashMap::new(),
            poststart_hooks: vec![],
            poststop_hooks: vec![],
            own_pid_ns: true,
            process: None,
            seccomp: None,
            host_mounts: false,
            memory_policy: None,
            personality: None,
            rdt: None,
            creator: None,
            cgroup: None,
        };
        let _l = store.lock("c1").unwrap();
        store.save(&st).unwrap();
        let back = store.load("c1").unwrap();
        assert_eq!(back.pid, st.pid);
        assert_eq!(store.status(&back), Status::Running);
        let mut gone = back.clone();
        gone.pid_start_time += 1;
        assert_eq!(store.status(&gone), Status::Stopped);
        assert_eq!(store.ids().unwrap(), vec!["c1".to_string()]);
        store.remove("c1").unwrap();
        assert!(store.ids().unwrap().is_empty());
    }
}
