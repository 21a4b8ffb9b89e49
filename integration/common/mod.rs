//! The harness: one `Ctx` per test, owning a temp dir with a bundle, a state root and the ids it
//! created. Dropping it force-deletes every container and then checks that nothing was left behind
//! on the host (state dirs, mounts, processes, cgroups), also when the test failed.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Longest time any single runtime invocation may take before the test gives up on it.
const CMD_TIMEOUT: Duration = Duration::from_secs(30);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The runtime under test: `$SKIFF_TEST_RUNTIME` (e.g. /usr/sbin/runc) or the freshly built skiff.
pub fn runtime() -> PathBuf {
    match std::env::var_os("SKIFF_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_skiff")),
    }
}

fn runtime_name() -> String {
    runtime()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn is_runc() -> bool {
    runtime_name().contains("runc")
}

pub fn is_crun() -> bool {
    runtime_name().contains("crun")
}

/// True when the runtime under test is skiff itself (the default).
pub fn is_skiff() -> bool {
    !is_runc() && !is_crun()
}

/// Return early from a test when the runtime under test is not skiff: for the few behaviours
/// where skiff deliberately goes beyond (or differs from) the runc we validate the suite with.
#[macro_export]
macro_rules! skiff_only {
    ($why:expr) => {
        if !$crate::common::is_skiff() {
            eprintln!(
                "skipped for {}: {}",
                $crate::common::runtime().display(),
                $why
            );
            return;
        }
    };
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The busybox rootfs fixture, built once per test binary by hack/mkrootfs.sh if missing.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = match std::env::var_os("SKIFF_TEST_ROOTFS") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => repo().join("fixtures/busybox-rootfs"),
        };
        if !dir.join("bin/busybox").exists() {
            let st = Command::new(repo().join("hack/mkrootfs.sh"))
                .arg(&dir)
                .status()
                .expect("running hack/mkrootfs.sh");
            assert!(st.success(), "hack/mkrootfs.sh {} failed", dir.display());
        }
        dir
    })
}

/// The generated base config (`<runtime> spec`), made once and cloned per test.
fn base_spec() -> Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("skiff-spec-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new(runtime())
            .arg("spec")
            .arg("--bundle")
            .arg(dir.path())
            .output()
            .expect("running <runtime> spec");
        assert!(
            out.status.success(),
            "{} spec failed: {}",
            runtime().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = fs::read_to_string(dir.path().join("config.json")).expect("read config.json");
        serde_json::from_str(&text).expect("spec output is JSON")
    })
    .clone()
}

/// What one runtime invocation did.
#[derive(Debug, Clone)]
pub struct Out {
    pub what: String,
    pub code: i32,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(what: String, st: ExitStatus, stdout: String, stderr: String) -> Out {
        use std::os::unix::process::ExitStatusExt;
        Out {
            what,
            code: st.code().unwrap_or(-1),
            signal: st.signal(),
            stdout,
            stderr,
        }
    }

    /// Assert success; returns self for chaining.
    #[track_caller]
    pub fn ok(&self) -> &Out {
        assert!(
            self.code == 0,
            "`{}` failed with {} (signal {:?})\nstdout: {}\nstderr: {}",
            self.what,
            self.code,
            self.signal,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Assert failure (non-zero exit, not killed by a signal).
    #[track_caller]
    pub fn fails(&self) -> &Out {
        assert!(
            self.code > 0,
            "`{}` should have failed but exited {} (signal {:?})\nstdout: {}\nstderr: {}",
            self.what,
            self.code,
            self.signal,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Assert failure whose stderr names `skiff_text`. The text is checked for skiff only,
    /// unless `other` gives what runc/crun say instead.
    #[track_caller]
    pub fn fails_with(&self, skiff_text: &str, other: Option<&str>) -> &Out {
        self.fails();
        let want = if is_skiff() { Some(skiff_text) } else { other };
        if let Some(want) = want {
            assert!(
                self.stderr.contains(want),
                "`{}` failed as expected, but stderr lacks {:?}:\n{}",
                self.what,
                want,
                self.stderr
            );
        }
        self
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Poll `f` every few milliseconds until it returns Some, or panic after `timeout`.
#[track_caller]
/// Copy `src` to `dst` with mode 0755 from a forked child. Copied by this multi-threaded test
/// process, the open fd of `dst` could be inherited by a child that another test thread forks
/// at that moment (to run the runtime) and keeps until its exec; a container executing `dst` in
/// that window fails with ETXTBSY. The forked child has no other threads to leak the fd to.
pub fn copy_executable(src: &Path, dst: &Path) {
    // SAFETY: the child only copies a file (glibc's malloc is fork-safe) and _exit()s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = fs::copy(src, dst).is_ok()
            && fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).is_ok();
        // SAFETY: ends the forked child without running the harness's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "copy {} to {} failed (status {status:#x})",
        src.display(),
        dst.display()
    );
}

pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Wait for a child with a deadline (a hung runtime fails the test instead of hanging it).
fn wait_child(child: &mut std::process::Child, what: &str, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(500);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st,
            Ok(None) => {}
            Err(e) => panic!("waiting for `{what}`: {e}"),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {timeout:?}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Start time (clock ticks since boot) of a pid, to tell a process from a later one reusing its pid.
pub fn proc_starttime(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Process state letter (R, S, Z, ...) or None when gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.chars().next()
}

/// Whether (pid, starttime) still names a live (non-zombie) process.
pub fn proc_alive(pid: i32, start: u64) -> bool {
    proc_starttime(pid) == Some(start) && !matches!(proc_state(pid), Some('Z') | Some('X') | None)
}

/// A `Field:` line of /proc/PID/status, value only, whitespace-normalised.
pub fn proc_status(pid: &str, field: &str) -> Option<String> {
    let st = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The field of a `Field:` line in a /proc/PID/status text.
pub fn status_field(text: &str, field: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// One parsed /proc/self/mountinfo line.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub mount_point: String,
    pub root: String,
    pub options: Vec<String>,
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: Vec<String>,
}

impl MountInfo {
    pub fn has_opt(&self, o: &str) -> bool {
        self.options.iter().any(|x| x == o) || self.super_options.iter().any(|x| x == o)
    }
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let unescape = |s: &str| {
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\134", "\\")
    };
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let g: Vec<&str> = post.split(' ').collect();
            if f.len() < 6 || g.len() < 3 {
                return None;
            }
            Some(MountInfo {
                root: unescape(f[3]),
                mount_point: unescape(f[4]),
                options: f[5].split(',').map(String::from).collect(),
                optional: f[6..].iter().map(|s| s.to_string()).collect(),
                fstype: g[0].to_string(),
                source: g[1].to_string(),
                super_options: g[2].split(',').map(String::from).collect(),
            })
        })
        .collect()
}

/// The last mount on `point` (the visible one).
pub fn find_mount<'a>(mounts: &'a [MountInfo], point: &str) -> Option<&'a MountInfo> {
    mounts.iter().rev().find(|m| m.mount_point == point)
}

/// A per-test world: temp dir, bundle, state root, config being edited, ids to clean up.
pub struct Ctx {
    pub name: String,
    pub tmp: tempfile::TempDir,
    pub bundle: PathBuf,
    pub root: PathBuf,
    /// The main container id of this test.
    pub id: String,
    /// config.json being edited; written by every create/run.
    pub spec: Value,
    ids: Mutex<Vec<String>>,
    pids: Mutex<Vec<(i32, u64)>>,
    host_mounts: Mutex<Vec<PathBuf>>,
    no_auto_checks: bool,
}

impl Ctx {
    /// A fresh bundle with a private copy of the rootfs (tests may write into it).
    pub fn new(name: &str) -> Ctx {
        let fixture = rootfs();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("skiff-it-{name}-"))
            .tempdir()
            .expect("tempdir");
        // Mapped users (user namespace tests) must be able to traverse down to the rootfs.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod tmp");
        let bundle = tmp.path().join("bundle");
        fs::create_dir(&bundle).expect("mkdir bundle");
        let st = Command::new("cp")
            .arg("-a")
            .arg(fixture)
            .arg(bundle.join("rootfs"))
            .status()
            .expect("cp -a rootfs");
        assert!(st.success(), "copying the rootfs fixture failed");
        let mut spec = base_spec();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(["true"]);
        spec["root"] = json!({"path": "rootfs", "readonly": false});
        let id = Self::fresh_id(name);
        Ctx {
            name: name.to_string(),
            root: tmp.path().join("state"),
            bundle,
            tmp,
            id,
            spec,
            ids: Mutex::new(Vec::new()),
            pids: Mutex::new(Vec::new()),
            host_mounts: Mutex::new(Vec::new()),
            no_auto_checks: false,
        }
    }

    pub fn fresh_id(name: &str) -> String {
        format!(
            "{}-{}-{}",
            name.replace('_', "-"),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Another id in this test's world, cleaned up like the main one.
    pub fn new_id(&self) -> String {
        Self::fresh_id(&self.name)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn rootfs_path(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    pub fn pid_file(&self, id: &str) -> PathBuf {
        self.tmp.path().join(format!("{id}.pid"))
    }

    /// Where a created container's stdout/stderr go (they are the runtime's own stdio).
    pub fn out_file(&self, id: &str) -> PathBuf {
        self.tmp.path().join(format!("{id}.out"))
    }

    pub fn err_file(&self, id: &str) -> PathBuf {
        self.tmp.path().join(format!("{id}.err"))
    }

    pub fn track(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    pub fn track_pid(&self, pid: i32) {
        if let Some(st) = proc_starttime(pid) {
            self.pids.lock().unwrap().push((pid, st));
        }
    }

    /// A host mount the test itself made under its temp dir; unmounted before the checks.
    pub fn track_host_mount(&self, p: &Path) {
        self.host_mounts.lock().unwrap().push(p.to_path_buf());
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.spec["process"]["args"] = json!(args);
    }

    pub fn sh_args(&mut self, script: &str) {
        self.set_args(&["sh", "-c", script]);
    }

    pub fn add_mount(&mut self, m: Value) {
        self.spec["mounts"]
            .as_array_mut()
            .expect("mounts array")
            .push(m);
    }

    /// Remove a namespace entry of `kind` if present.
    pub fn remove_namespace(&mut self, kind: &str) {
        if let Some(ns) = self.spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != kind);
        }
    }

    /// Add (or replace) a namespace entry, with an optional path to join.
    pub fn set_namespace(&mut self, kind: &str, path: Option<&str>) {
        self.remove_namespace(kind);
        let mut n = json!({ "type": kind });
        if let Some(p) = path {
            n["path"] = json!(p);
        }
        self.spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces array")
            .push(n);
    }

    pub fn write_spec(&self) {
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&self.spec).expect("serialize"),
        )
        .expect("write config.json");
    }

    /// A runtime command with this test's `--root`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime());
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run the runtime; stdout/stderr go to the given files (never pipes: a container started by
    /// `create`/`run -d` inherits them and would keep a pipe open).
    pub fn exec_cmd(&self, mut c: Command, out: &Path, err: &Path) -> Out {
        let what = format!("{:?}", c).replace('"', "");
        c.stdout(fs::File::create(out).expect("stdout file"));
        c.stderr(fs::File::create(err).expect("stderr file"));
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let st = wait_child(&mut child, &what, CMD_TIMEOUT);
        Out::from(
            what,
            st,
            fs::read_to_string(out).unwrap_or_default(),
            fs::read_to_string(err).unwrap_or_default(),
        )
    }

    fn scratch(&self) -> (PathBuf, PathBuf) {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        (
            self.tmp.path().join(format!("cmd{n}.out")),
            self.tmp.path().join(format!("cmd{n}.err")),
        )
    }

    /// Run `<runtime> --root R ARGS...` and capture its output.
    pub fn rt(&self, args: &[&str]) -> Out {
        let (o, e) = self.scratch();
        self.exec_cmd(self.command(args), &o, &e)
    }

    /// Like `rt`, letting the caller adjust the command (env, fds, stdin).
    pub fn rt_with(&self, args: &[&str], f: impl FnOnce(&mut Command)) -> Out {
        let (o, e) = self.scratch();
        let mut c = self.command(args);
        f(&mut c);
        self.exec_cmd(c, &o, &e)
    }

    /// `create --bundle B --pid-file P ID` with the current spec. The container's stdio is
    /// `out_file(id)`/`err_file(id)`.
    pub fn create_id(&self, id: &str, extra: &[&str]) -> Out {
        self.write_spec();
        self.track(id);
        let pid_file = self.pid_file(id);
        let bundle = self.bundle.to_str().unwrap();
        let mut args = vec![
            "create",
            "--bundle",
            bundle,
            "--pid-file",
            pid_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(id);
        let out = self.exec_cmd(self.command(&args), &self.out_file(id), &self.err_file(id));
        if out.code == 0 {
            if let Some(pid) = self.read_pid_file(id) {
                self.track_pid(pid);
            }
        }
        out
    }

    pub fn create(&self) -> Out {
        self.create_id(&self.id, &[])
    }

    /// Create the main container and return its init pid.
    #[track_caller]
    pub fn create_ok(&self) -> i32 {
        self.create().ok();
        self.read_pid_file(&self.id).expect("pid file after create")
    }

    pub fn read_pid_file(&self, id: &str) -> Option<i32> {
        fs::read_to_string(self.pid_file(id))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn start_id(&self, id: &str) -> Out {
        self.rt(&["start", id])
    }

    pub fn start(&self) -> Out {
        self.start_id(&self.id)
    }

    pub fn state_id(&self, id: &str) -> Out {
        self.rt(&["state", id])
    }

    /// `state ID` parsed; panics on failure.
    #[track_caller]
    pub fn state_json(&self, id: &str) -> Value {
        let out = self.state_id(id);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {}", out.stdout))
    }

    pub fn status(&self, id: &str) -> String {
        self.state_json(id)["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        wait_for(
            Duration::from_secs(10),
            &format!("{id} to be {want}"),
            || (self.status(id) == want).then_some(()),
        )
    }

    pub fn kill_id(&self, id: &str, sig: &str) -> Out {
        self.rt(&["kill", id, sig])
    }

    pub fn delete_id(&self, id: &str, force: bool) -> Out {
        if force {
            self.rt(&["delete", "--force", id])
        } else {
            self.rt(&["delete", id])
        }
    }

    /// `run --bundle B ID` in the foreground with the current spec.
    pub fn run_id(&self, id: &str, extra: &[&str]) -> Out {
        self.run_with(id, extra, |_| {})
    }

    pub fn run_with(&self, id: &str, extra: &[&str], f: impl FnOnce(&mut Command)) -> Out {
        self.write_spec();
        self.track(id);
        let bundle = self.bundle.to_str().unwrap();
        let mut args = vec!["run", "--bundle", bundle];
        args.extend_from_slice(extra);
        args.push(id);
        let (o, e) = self.scratch();
        let mut c = self.command(&args);
        f(&mut c);
        self.exec_cmd(c, &o, &e)
    }

    /// Run `sh -c SCRIPT` in a fresh container (main id) and return the result.
    pub fn run_sh(&mut self, script: &str) -> Out {
        self.sh_args(script);
        let id = self.id.clone();
        self.run_id(&id, &[])
    }

    /// Run `sh -c SCRIPT`, assert success, return stdout.
    #[track_caller]
    pub fn sh_ok(&mut self, script: &str) -> String {
        let out = self.run_sh(script);
        out.ok();
        out.stdout
    }

    /// Wait until the created+started container `id` has written `needle` to its stdout.
    #[track_caller]
    pub fn wait_output(&self, id: &str, needle: &str) -> String {
        let f = self.out_file(id);
        wait_for(
            Duration::from_secs(10),
            &format!("{needle:?} in {}", f.display()),
            || {
                let s = fs::read_to_string(&f).ok()?;
                s.contains(needle).then_some(s)
            },
        )
    }

    /// Skip the leftover checks (for tests that check them themselves mid-way).
    pub fn no_auto_checks(&mut self) {
        self.no_auto_checks = true;
    }

    /// Everything this test may have left on the host. Empty means clean.
    pub fn leftovers(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        for id in self.ids.lock().unwrap().iter() {
            let d = self.root.join(id);
            if d.exists() {
                problems.push(format!("state dir {} still exists", d.display()));
            }
            for cg in cgroup_dirs_named(id) {
                problems.push(format!("cgroup {} still exists", cg.display()));
            }
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in parse_mountinfo(&mounts) {
            if inside(&m.mount_point, &tmp) {
                problems.push(format!("host mount left at {}", m.mount_point));
            }
        }
        // Processes: the inits we saw, and anything whose root or cwd lies in our temp dir.
        let deadline = Instant::now() + Duration::from_secs(3);
        for &(pid, start) in self.pids.lock().unwrap().iter() {
            while proc_alive(pid, start) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if proc_alive(pid, start) {
                problems.push(format!("container process {pid} still running"));
            }
        }
        loop {
            let stray = processes_rooted_in(&tmp);
            if stray.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                problems.push(format!(
                    "processes rooted in {tmp} still running: {stray:?}"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        problems
    }

    /// Assert `leftovers()` is empty for one id mid-test (e.g. after a failed create).
    #[track_caller]
    pub fn assert_clean(&self) {
        let p = self.leftovers();
        assert!(p.is_empty(), "left behind:\n  {}", p.join("\n  "));
    }
}

/// Cgroup directories named `id` directly under each hierarchy root, or under our own cgroup:
/// where runtimes put a container with an empty or relative cgroupsPath.
fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(hier) = fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in hier.flatten() {
        let p = h.path().join(id);
        if p.is_dir() {
            found.push(p);
        }
    }
    if Path::new("/sys/fs/cgroup").join(id).is_dir() {
        found.push(Path::new("/sys/fs/cgroup").join(id));
    }
    found
}

/// `p` is `dir` or below it.
pub fn inside(p: &str, dir: &str) -> bool {
    p == dir || (p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// Pids whose root or cwd is inside `dir` (container processes that outlived their container).
pub fn processes_rooted_in(dir: &str) -> Vec<i32> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if matches!(proc_state(pid), Some('Z') | Some('X') | None) {
            continue;
        }
        for link in ["root", "cwd"] {
            if let Ok(t) = fs::read_link(format!("/proc/{pid}/{link}")) {
                if inside(&t.to_string_lossy(), dir) {
                    v.push(pid);
                    break;
                }
            }
        }
    }
    v
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let ids: Vec<String> = self.ids.lock().unwrap().clone();
        for id in &ids {
            let _ = self.rt(&["delete", "--force", id]);
        }
        for m in self.host_mounts.lock().unwrap().iter().rev() {
            if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
                // SAFETY: c is a valid NUL-terminated path; umount2 does not retain it.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let problems = if self.no_auto_checks && !std::thread::panicking() {
            Vec::new()
        } else {
            self.leftovers()
        };
        // Never let TempDir's recursive delete walk through a leaked mount into the host.
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in parse_mountinfo(&mounts).iter().rev() {
            if inside(&m.mount_point, &tmp) {
                if let Ok(c) = std::ffi::CString::new(m.mount_point.clone()) {
                    // SAFETY: c is a valid NUL-terminated path; umount2 does not retain it.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
        if !problems.is_empty() {
            let msg = format!(
                "test {} left behind:\n  {}",
                self.name,
                problems.join("\n  ")
            );
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// Make fd `from` appear as fd `to` (without CLOEXEC) in a child about to exec.
pub fn pass_fd(c: &mut Command, from: i32, to: i32) {
    // SAFETY: the closure only calls async-signal-safe dup2/fcntl between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if from == to {
                let fl = libc::fcntl(to, libc::F_GETFD);
                if fl < 0 || libc::fcntl(to, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(from, to) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Readlink of /proc/PID/ns/KIND, e.g. "net:[4026531840]".
pub fn ns_link(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Existing directories for the in-hierarchy cgroup path `path` (e.g. "/skiff/ID"), one per
/// hierarchy mounted under /sys/fs/cgroup (v1 controllers, name=systemd, unified).
pub fn cgroup_dirs_at(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut found = Vec::new();
    let Ok(hier) = fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in hier.flatten() {
        let p = h.path().join(rel);
        if !rel.is_empty() && p.is_dir() {
            found.push(p);
        }
    }
    found.sort();
    found
}

/// The cgroup directories of a live process on this host, from /proc/PID/cgroup: for each line
/// (hierarchy name or controllers, path) the directory under /sys/fs/cgroup, e.g.
/// "4:memory:/a" -> /sys/fs/cgroup/memory/a, "0::/a" -> /sys/fs/cgroup/unified/a.
pub fn proc_cgroup_dirs(pid: i32) -> Vec<(String, PathBuf)> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let unified_at_root = !Path::new("/sys/fs/cgroup/unified").is_dir();
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            let hier = if ctrl.is_empty() {
                if unified_at_root {
                    String::new()
                } else {
                    "unified".to_string()
                }
            } else {
                ctrl.strip_prefix("name=").unwrap_or(ctrl).to_string()
            };
            let base = Path::new("/sys/fs/cgroup").join(&hier);
            let rel = path.trim_start_matches('/');
            let dir = if rel.is_empty() { base } else { base.join(rel) };
            Some((ctrl.to_string(), dir))
        })
        .collect()
}

/// The fields of /proc/PID/stat after the command name: index 0 is the state (field 3 of
/// proc(5)), so proc(5)'s field N is at index N-3 (nice 19 -> 16, rt_priority 40 -> 37,
/// policy 41 -> 38).
pub fn proc_stat_fields(pid: i32) -> Vec<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_text_fields(&stat)
}

/// Like `proc_stat_fields`, for a stat line read elsewhere (e.g. printed from inside).
pub fn stat_text_fields(stat: &str) -> Vec<String> {
    match stat.rfind(')') {
        Some(i) => stat[i + 1..].split_whitespace().map(String::from).collect(),
        None => Vec::new(),
    }
}

/// Run a host command (not the runtime), capturing its output.
pub fn host_cmd(prog: &str, args: &[&str]) -> Out {
    let what = format!("{prog} {}", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    Out::from(
        what,
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A host network device made by a test (`ip link add ...`); deleted on drop if it still
/// exists in the host namespace (deleting one end of a veth pair removes both).
pub struct HostLink {
    pub name: String,
}

impl HostLink {
    /// A unique, valid (at most 15 bytes) interface name for this test process.
    pub fn fresh_name(tag: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("sk{tag}{}x{n}", std::process::id() % 100_000);
        assert!(name.len() <= 15, "interface name {name} too long");
        name
    }

    pub fn exists(name: &str) -> bool {
        Path::new("/sys/class/net").join(name).exists()
    }

    /// A veth pair `a` <-> `b`, both down, no addresses.
    #[track_caller]
    pub fn veth(a: &str, b: &str) -> (HostLink, HostLink) {
        host_cmd("ip", &["link", "add", a, "type", "veth", "peer", "name", b]).ok();
        (
            HostLink {
                name: a.to_string(),
            },
            HostLink {
                name: b.to_string(),
            },
        )
    }

    /// A fresh veth pair named after `tag`: (the end to use, its peer).
    #[track_caller]
    pub fn fresh_veth(tag: &str) -> (HostLink, HostLink) {
        let a = Self::fresh_name(tag);
        let b = Self::fresh_name("p");
        Self::veth(&a, &b)
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        if Self::exists(&self.name) {
            let _ = host_cmd("ip", &["link", "del", &self.name]);
        }
    }
}
