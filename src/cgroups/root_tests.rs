//! Real cgroups on this host (root only; skipped otherwise). Each test uses
//! its own "skiff-test-<pid>-<name>" cgroup and destroys it, also on failure.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::super::*;

fn root_ok(need: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new(need).exists() {
        eprintln!("skipped: needs root and {need}");
        return false;
    }
    true
}

/// Destroys the cgroup when dropped, whatever happened.
struct Guard(Option<CgroupHandle>);
impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            let _ = h.kill_all(Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(20));
            let _ = h.destroy();
        }
    }
}

/// Fork a child that waits for a byte on a pipe, then runs `f` and exits
/// with its result.
fn spawn(f: fn() -> i32) -> (i32, i32) {
    let mut p = [0; 2];
    // SAFETY: p is a valid 2-int array.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only calls async-signal-safe functions and f, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut b = 0u8;
        // SAFETY: reading one byte into a local.
        unsafe {
            libc::close(p[1]);
            libc::read(p[0], &mut b as *mut u8 as *mut libc::c_void, 1);
            libc::_exit(f());
        }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(p[0]) };
    (pid, p[1])
}

fn go(w: i32) {
    // SAFETY: writing one byte to our pipe end, then closing it.
    unsafe {
        libc::write(w, b"g".as_ptr() as *const libc::c_void, 1);
        libc::close(w);
    }
}

fn wait(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    st
}

fn plan(path: &str, res: serde_json::Value) -> CgroupPlan {
    let mut v: serde_json::Value =
        serde_json::from_str(r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"}}"#).unwrap();
    v["linux"] = serde_json::json!({"cgroupsPath": path, "resources": res});
    CgroupPlan::from_spec(&serde_json::from_value(v).unwrap(), "t").unwrap()
}

fn fork_bomb() -> i32 {
    let mut n = 0;
    for _ in 0..32 {
        // SAFETY: the grandchild sleeps and exits.
        let c = unsafe { libc::fork() };
        if c == 0 {
            unsafe {
                libc::sleep(5);
                libc::_exit(0)
            };
        }
        if c > 0 {
            n += 1;
        }
    }
    n
}

fn hog() -> i32 {
    let sz = 256 << 20;
    // SAFETY: anonymous private mapping, touched page by page.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            sz,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut u8;
        if p as *mut libc::c_void == libc::MAP_FAILED {
            return 2;
        }
        let mut i = 0;
        while i < sz {
            *p.add(i) = 1;
            i += 4096;
        }
    }
    0
}

fn spin() -> i32 {
    // SAFETY: sleep only.
    unsafe { libc::sleep(10) };
    0
}

#[test]
fn v1_limits_pids_oom_freeze_destroy() {
    if !root_ok("/sys/fs/cgroup/memory/memory.limit_in_bytes") {
        return;
    }
    let host = HostCgroups::probe().unwrap();
    let limits = HostLimits::probe().unwrap();
    let path = format!("/skiff-test-{}-v1", std::process::id());
    let p = plan(
        &path,
        serde_json::json!({
            "memory": {"limit": 33554432, "swap": 33554432},
            "pids": {"limit": 8},
            "cpu": {"shares": 256, "quota": 50000, "period": 100000, "cpus": "0"}
        }),
    );
    let h = create(&host, &limits, &p).unwrap();
    let mut g = Guard(Some(h.clone()));
    let mem = &h.dir_for("memory").unwrap().dir;
    assert_eq!(
        std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        "33554432"
    );
    assert_eq!(
        std::fs::read_to_string(h.dir_for("pids").unwrap().dir.join("pids.max"))
            .unwrap()
            .trim(),
        "8"
    );
    assert_eq!(
        std::fs::read_to_string(h.dir_for("cpu").unwrap().dir.join("cpu.cfs_quota_us"))
            .unwrap()
            .trim(),
        "50000"
    );
    assert_eq!(
        std::fs::read_to_string(h.dir_for("cpuset").unwrap().dir.join("cpuset.cpus"))
            .unwrap()
            .trim(),
        "0"
    );

    // pids.max stops forks: the child plus at most 7 grandchildren.
    let (pid, w) = spawn(fork_bomb);
    h.add_pid(pid).unwrap();
    let e = create(&host, &limits, &p).unwrap_err().to_string();
    assert!(e.contains("already has processes"), "{e}");
    go(w);
    let st = wait(pid);
    assert!(libc::WIFEXITED(st));
    assert_eq!(libc::WEXITSTATUS(st), 7);
    h.kill_all(Signal::SIGKILL).unwrap();

    // Freeze/thaw.
    let (pid, w) = spawn(spin);
    h.add_pid(pid).unwrap();
    go(w);
    h.freeze().unwrap();
    assert!(h.is_frozen().unwrap());
    assert!(h.pids().unwrap().contains(&pid));
    h.thaw().unwrap();
    assert!(!h.is_frozen().unwrap());
    h.kill_all(Signal::SIGKILL).unwrap();
    let st = wait(pid);
    assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL);

    // The memory hog is OOM-killed and the event is seen.
    let mut oom = h.oom_watcher().unwrap().unwrap();
    let (pid, w) = spawn(hog);
    h.add_pid(pid).unwrap();
    go(w);
    let st = wait(pid);
    assert!(
        libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL,
        "status {st:#x}"
    );
    assert!(oom.wait(Some(Duration::from_secs(2))).unwrap() >= 1);
    let s = h.stats().unwrap();
    // memory.failcnt is not reliably bumped by v1 on this kernel; the
    // OOM event above is the evidence.
    assert!(s.memory.usage.max > 0);
    assert_eq!(s.memory.usage.limit, 33554432);
    assert_eq!(s.pids.limit, 8);

    // update: a lower pids limit.
    let r: oci_spec::runtime::LinuxResources =
        serde_json::from_value(serde_json::json!({"pids": {"limit": 4}})).unwrap();
    h.update(&host, &limits, r).unwrap();
    assert_eq!(
        std::fs::read_to_string(h.dir_for("pids").unwrap().dir.join("pids.max"))
            .unwrap()
            .trim(),
        "4"
    );

    std::thread::sleep(Duration::from_millis(20));
    h.destroy().unwrap();
    g.0 = None;
    for d in &h.dirs {
        assert!(!d.dir.exists(), "{}", d.dir.display());
    }
}

fn open_devs() -> i32 {
    let null = c"/dev/null";
    // SAFETY: open/close of constant paths.
    unsafe {
        let fd = libc::open(null.as_ptr(), libc::O_RDWR);
        if fd < 0 {
            return 1;
        }
        libc::close(fd);
        // /dev/kmsg (1:11) is not in the allowed set.
        let fd = libc::open(c"/dev/kmsg".as_ptr(), libc::O_RDONLY);
        if fd >= 0 {
            return 2;
        }
        if *libc::__errno_location() != libc::EPERM {
            return 3;
        }
    }
    0
}

/// The cgroup2 hierarchy of this hybrid host, seen as a pure v2 host: the
/// BPF device program, cgroup.freeze and cgroup.kill for real.
#[test]
fn v2_devices_bpf_freeze_kill() {
    if !root_ok("/sys/fs/cgroup/unified/cgroup.procs") {
        return;
    }
    let mi = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    let ctl = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap();
    let host = HostCgroups::parse(mi, "0::/\n", Some(&ctl)).unwrap();
    let limits = HostLimits::probe().unwrap();
    let path = format!("/skiff-test-{}-v2", std::process::id());

    // A unified key naming a file that does not exist: error, nothing left.
    let bad = plan(
        &path,
        serde_json::json!({"unified": {"cgroup.nonexistent": "1"}}),
    );
    let e = create(&host, &limits, &bad).unwrap_err().to_string();
    assert!(e.contains("unified[\"cgroup.nonexistent\"]"), "{e}");
    assert!(!Path::new("/sys/fs/cgroup/unified")
        .join(&path[1..])
        .exists());

    let p = plan(
        &path,
        serde_json::json!({"unified": {"cgroup.max.descendants": "5"}}),
    );
    let h = create(&host, &limits, &p).unwrap();
    let _g = Guard(Some(h.clone()));
    let dir = h.v2_dir().unwrap().to_path_buf();
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.max.descendants"))
            .unwrap()
            .trim(),
        "5"
    );
    assert!(h.v2_dir_fd().unwrap().is_some());

    let (pid, w) = spawn(open_devs);
    h.add_pid(pid).unwrap();
    go(w);
    let st = wait(pid);
    assert!(libc::WIFEXITED(st));
    assert_eq!(
        libc::WEXITSTATUS(st),
        0,
        "device program: 1=null denied 2=kmsg allowed 3=wrong errno"
    );

    let (pid, w) = spawn(spin);
    h.add_pid(pid).unwrap();
    go(w);
    h.freeze().unwrap();
    assert!(h.is_frozen().unwrap());
    h.thaw().unwrap();
    assert!(!h.is_frozen().unwrap());
    assert_eq!(h.pids().unwrap(), vec![pid]);
    h.kill_all(Signal::SIGKILL).unwrap();
    let st = wait(pid);
    assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(20));
    h.destroy().unwrap();
    assert!(!dir.exists());
}
