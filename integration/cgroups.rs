//! cgroups: limits in the host's cgroup files and their effect inside the container (OOM kill,
//! pids.max, device rules, freezer), and the commands around them: pause/resume, update, events,
//! ps, kill --all, delete, features, and the refusals (systemd driver, bad values, busy cgroup).
//!
//! This host is cgroup v1 "hybrid": every controller on its own v1 hierarchy under
//! /sys/fs/cgroup/<controller>, plus an empty cgroup2 at /sys/fs/cgroup/unified. Each test that
//! sets a cgroupsPath uses a unique top-level one (/skiff-it-<id>) through `Cg`, which checks,
//! after the harness has force-deleted the containers, that no directory of it is left in any
//! hierarchy (and removes any it finds, so a failing run does not pollute the host).

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const MB: i64 = 1 << 20;

/// A test world whose main container lives in the cgroup `path` (absolute, unique).
struct Cg {
    c: Option<Ctx>,
    path: String,
}

impl Cg {
    fn new(name: &str) -> Cg {
        let mut c = Ctx::new(name);
        let path = format!("/skiff-it-{}", c.id);
        c.spec["linux"]["cgroupsPath"] = json!(path);
        Cg { c: Some(c), path }
    }

    /// The directories of `path` that exist now, in every hierarchy.
    fn dirs(&self) -> Vec<PathBuf> {
        cgroup_dirs_at(&self.path)
    }

    /// A file of the container's cgroup in one v1 hierarchy, trimmed.
    #[track_caller]
    fn file(&self, hierarchy: &str, file: &str) -> String {
        let p = format!("/sys/fs/cgroup/{hierarchy}{}/{file}", self.path);
        fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("reading {p}: {e}"))
            .trim()
            .to_string()
    }

    /// Merge `r` into linux.resources (keeping the base spec's default device deny-all).
    fn resources(&mut self, r: Value) {
        let res = &mut self.spec["linux"]["resources"];
        if !res.is_object() {
            *res = json!({});
        }
        let obj = res.as_object_mut().expect("resources object");
        for (k, v) in r.as_object().expect("resources patch is an object") {
            obj.insert(k.clone(), v.clone());
        }
    }
}

impl Deref for Cg {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        self.c.as_ref().expect("ctx")
    }
}

impl DerefMut for Cg {
    fn deref_mut(&mut self) -> &mut Ctx {
        self.c.as_mut().expect("ctx")
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        // The Ctx goes first: it force-deletes the containers and runs its own checks.
        let ctx = self.c.take();
        let ctx_result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(ctx)));
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut left = self.dirs();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            left = self.dirs();
        }
        if !left.is_empty() {
            scrub(&left);
        }
        if let Err(p) = ctx_result {
            std::panic::resume_unwind(p);
        }
        if !left.is_empty() {
            let msg = format!("cgroup directories left behind: {left:?}");
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// Last resort after a failed test: thaw what is frozen, SIGKILL the processes still in this
/// test's own (unique) cgroup, and remove the directories, so the host stays clean.
fn scrub(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = fs::write(d.join("freezer.state"), "THAWED");
    }
    for d in dirs {
        for pid in cgroup_procs(d) {
            // SAFETY: plain kill(2) on a pid listed in this test's cgroup (never pid 1: the
            // cgroup is one the test created for its containers).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    for d in dirs {
        while fs::remove_dir(d).is_err() && d.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether hugetlb has a v1 hierarchy (else it sits on cgroup2 on this hybrid host).
fn hugetlb_on_v1() -> bool {
    fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').nth(1) == Some("hugetlb"))
}

/// The blkio weight file a cgroup of this host has (`blkio.weight` with CFQ, `blkio.bfq.weight`
/// with BFQ), or None: kernels without either scheduler have no weight at all (seen on machines
/// of this kind whose disks offer only mq-deadline and kyber). The weight files are not on the
/// root cgroup, so a probe cgroup is made and removed.
fn host_blkio_weight_file() -> Option<&'static str> {
    static FILE: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *FILE.get_or_init(|| {
        let probe = PathBuf::from(format!(
            "/sys/fs/cgroup/blkio/skiff-it-probe-{}",
            std::process::id()
        ));
        fs::create_dir(&probe).ok()?;
        let found = ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| probe.join(f).exists());
        let _ = fs::remove_dir(&probe);
        found
    })
}

/// Whether the cgroup2 hierarchy of this hybrid host serves any controller.
fn cgroup2_serves_controllers() -> bool {
    fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false)
}

/// A background runtime process (events), killed when the test ends however it ends.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// Create and start the main container; returns the init's host pid.
#[track_caller]
fn start_main(c: &Ctx) -> i32 {
    let pid = c.create_ok();
    c.start().ok();
    pid
}

fn cgroup_procs(dir: &std::path::Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn add_caps(c: &mut Ctx, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        let list = c.spec["process"]["capabilities"][set]
            .as_array_mut()
            .expect("capability list");
        for cap in caps {
            list.push(json!(cap));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values in the host's cgroup files

#[test]
fn resources_written_to_host_files() {
    let mut c = Cg::new("cg_files");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({
        "memory": {"limit": 64 * MB, "reservation": 32 * MB, "swap": 128 * MB, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MB}],
    }));
    let weight_file = host_blkio_weight_file();
    if weight_file.is_some() {
        c.resources(json!({"blockIO": {"weight": 300}}));
    }
    let pid = c.create_ok();

    assert_eq!(
        c.file("memory", "memory.limit_in_bytes"),
        (64 * MB).to_string()
    );
    assert_eq!(
        c.file("memory", "memory.soft_limit_in_bytes"),
        (32 * MB).to_string()
    );
    assert_eq!(
        c.file("memory", "memory.memsw.limit_in_bytes"),
        (128 * MB).to_string()
    );
    assert_eq!(c.file("memory", "memory.swappiness"), "10");
    assert_eq!(c.file("cpu", "cpu.shares"), "512");
    assert_eq!(c.file("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(c.file("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(c.file("cpuset", "cpuset.cpus"), "0");
    assert_eq!(c.file("cpuset", "cpuset.mems"), "0");
    assert_eq!(c.file("pids", "pids.max"), "20");
    if let Some(weight_file) = weight_file {
        assert_eq!(c.file("blkio", weight_file), "300");
    }
    // hugetlb has a v1 hierarchy of its own on some hybrid hosts, sits on cgroup2 on others.
    let (hugetlb, limit_file, rsvd_file) = if hugetlb_on_v1() {
        (
            "hugetlb",
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.rsvd.limit_in_bytes",
        )
    } else {
        ("unified", "hugetlb.2MB.max", "hugetlb.2MB.rsvd.max")
    };
    assert_eq!(c.file(hugetlb, limit_file), (4 * MB).to_string());
    if is_skiff() {
        // skiff limits hugetlb reservations the same (runc 1.1 leaves them unlimited).
        assert_eq!(c.file(hugetlb, rsvd_file), (4 * MB).to_string());
    }
    // Devices: the base spec's deny-all plus the defaults every container gets.
    let devs = c.file("devices", "devices.list");
    let devs: Vec<&str> = devs.lines().collect();
    assert!(
        !devs.contains(&"a *:* rwm"),
        "devices not restricted: {devs:?}"
    );
    for want in [
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c *:* m",
        "b *:* m",
    ] {
        assert!(
            devs.contains(&want),
            "devices.list lacks {want:?}: {devs:?}"
        );
    }
    assert!(
        !devs.iter().any(|l| l.starts_with("c 10:229")),
        "fuse allowed without a rule: {devs:?}"
    );

    // The init sits in the container's cgroup in every v1 hierarchy before it is started.
    for (ctrl, dir) in proc_cgroup_dirs(pid) {
        if ctrl.is_empty() || ctrl.starts_with("name=") {
            continue;
        }
        assert!(
            dir.ends_with(c.path.trim_start_matches('/')),
            "init {pid} is in {} for {ctrl}, not in {}",
            dir.display(),
            c.path
        );
        assert_eq!(cgroup_procs(&dir), vec![pid], "{}", dir.display());
    }
    c.start().ok();
}

#[test]
fn cpuset_is_seen_inside() {
    let mut c = Cg::new("cg_cpuset_in");
    c.resources(json!({"cpu": {"cpus": "1"}}));
    let out = c.sh_ok("grep Cpus_allowed_list /proc/self/status");
    assert_eq!(
        out.split_whitespace().last(),
        Some("1"),
        "cpuset not applied inside: {out}"
    );
}

#[test]
fn default_cgroup_path() {
    let mut c = Ctx::new("cg_default");
    c.set_args(&["sleep", "60"]);
    let pid = start_main(&c);
    let dirs: Vec<(String, PathBuf)> = proc_cgroup_dirs(pid)
        .into_iter()
        .filter(|(ctrl, _)| {
            [
                "memory", "pids", "cpu", "cpuset", "freezer", "devices", "blkio",
            ]
            .contains(&ctrl.as_str())
        })
        .collect();
    assert_eq!(dirs.len(), 7, "{dirs:?}");
    for (ctrl, dir) in &dirs {
        assert!(
            cgroup_procs(dir).contains(&pid),
            "{ctrl}: {}",
            dir.display()
        );
        if is_skiff() {
            // skiff's default is the absolute /skiff/<id> (runc's is <id> under its own cgroup).
            assert_eq!(
                dir,
                &PathBuf::from(format!("/sys/fs/cgroup/{ctrl}/skiff/{}", c.id)),
                "default cgroup path"
            );
        }
    }
    c.delete_id(&c.id, true).ok();
    for (_, dir) in &dirs {
        assert!(!dir.exists(), "{} survives delete --force", dir.display());
    }
    if is_skiff() {
        assert!(cgroup_dirs_at(&format!("/skiff/{}", c.id)).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Effects inside the container

#[test]
fn oom_kill_in_foreground_run_exits_137() {
    let mut c = Cg::new("cg_oom_run");
    c.resources(json!({"memory": {"limit": 16 * MB, "swap": 16 * MB}}));
    // busybox tail keeps the last lines of /dev/zero, which has no newline: it grows forever.
    c.set_args(&["tail", "/dev/zero"]);
    let id = c.id.clone();
    let out = c.run_id(&id, &[]);
    assert_eq!(out.code, 137, "memory hog not OOM-killed: {out:?}");
}

#[test]
fn oom_event_reported_by_events() {
    let mut c = Cg::new("cg_oom_events");
    c.resources(json!({"memory": {"limit": 16 * MB, "swap": 16 * MB}}));
    c.sh_args("tail /dev/zero; echo tail-exit-$?; exec sleep 60");
    c.create_ok();
    let ev_out = c.path("events.out");
    let ev = c
        .command(&["events", "--interval", "200ms", &c.id])
        .stdout(fs::File::create(&ev_out).unwrap())
        .stderr(fs::File::create(c.path("events.err")).unwrap())
        .spawn()
        .expect("spawn events");
    let _ev = Bg(ev);
    // The first stats line means events is watching (it arms the OOM watch before it).
    wait_for(Duration::from_secs(10), "first events line", || {
        fs::read_to_string(&ev_out)
            .ok()
            .filter(|s| s.contains('\n'))
    });
    c.start().ok();
    c.wait_output(&c.id, "tail-exit-137");
    let oom = wait_for(Duration::from_secs(10), "an oom event", || {
        let text = fs::read_to_string(&ev_out).ok()?;
        json_lines(&text).into_iter().find(|v| v["type"] == "oom")
    });
    assert_eq!(oom["id"], json!(c.id), "{oom}");
    let ctl = c.file("memory", "memory.oom_control");
    assert!(ctl.contains("oom_kill 1"), "memory.oom_control: {ctl}");
    // The container itself survives its hog.
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn pids_limit_stops_fork_loop() {
    let mut c = Cg::new("cg_pids");
    c.resources(json!({"pids": {"limit": 8}}));
    let out = c.run_sh(
        "n=0; while [ $n -lt 30 ]; do sleep 30 & n=$((n+1)); echo forked-$n; done; echo loop-done",
    );
    let forked: Vec<u32> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("forked-")?.parse().ok())
        .collect();
    let max = forked.iter().copied().max().unwrap_or(0);
    // The shell is one of the 8 tasks: at most 7 sleeps.
    assert!(
        (1..8).contains(&max) && !out.stdout.contains("loop-done"),
        "fork loop not stopped at pids.max=8: {out:?}"
    );
    assert!(
        out.stderr.contains("fork"),
        "no fork failure reported: {out:?}"
    );
}

/// Run a script with CAP_MKNOD and the host's /dev/fuse (10:229, not in the default allow list)
/// bound at /dev/fuse, and return its stdout.
fn device_probe(c: &mut Cg) -> String {
    add_caps(c, &["CAP_MKNOD"]);
    c.add_mount(json!({
        "destination": "/dev/fuse", "type": "bind", "source": "/dev/fuse", "options": ["bind"]
    }));
    c.sh_ok(
        "mknod /tmp/null2 c 1 3 && echo mknod-null-ok || echo mknod-null-denied; \
         mknod /tmp/fuse2 c 10 229 && echo mknod-fuse-ok || echo mknod-fuse-denied; \
         (exec 3<>/dev/fuse) 2>/dev/null && echo open-fuse-ok || echo open-fuse-denied; \
         (exec 3<>/tmp/fuse2) 2>/dev/null && echo open-fuse2-ok || echo open-fuse2-denied; \
         (exec 3<>/dev/null) && echo open-null-ok || echo open-null-denied",
    )
}

#[test]
fn devices_denied_by_default() {
    let mut c = Cg::new("cg_dev_default");
    let out = device_probe(&mut c);
    // The defaults allow mknod of any device ("c *:* m", "b *:* m") but no access to it.
    for want in [
        "mknod-null-ok",
        "mknod-fuse-ok",
        "open-fuse-denied",
        "open-fuse2-denied",
        "open-null-ok",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
}

#[test]
fn devices_allow_rule() {
    let mut c = Cg::new("cg_dev_allow");
    c.resources(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
    ]}));
    let out = device_probe(&mut c);
    for want in ["mknod-fuse-ok", "open-fuse-ok", "open-null-ok"] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
}

#[test]
fn devices_deny_rule_after_allow_all() {
    let mut c = Cg::new("cg_dev_deny");
    c.resources(json!({"devices": [
        {"allow": true, "access": "rwm"},
        {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
    ]}));
    let out = device_probe(&mut c);
    for want in [
        "mknod-fuse-denied",
        "open-fuse-denied",
        "mknod-null-ok",
        "open-null-ok",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
}

#[test]
fn pause_and_resume() {
    let mut c = Cg::new("cg_pause");
    c.sh_args("i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; usleep 10000; done");
    start_main(&c);
    let counter = c.rootfs_path().join("tmp/counter");
    let read = || -> Option<u64> { fs::read_to_string(&counter).ok()?.trim().parse().ok() };
    wait_for(Duration::from_secs(10), "the counter to run", || {
        read().filter(|n| *n >= 3)
    });

    c.rt(&["pause", &c.id]).ok();
    assert_eq!(c.status(&c.id), "paused");
    assert_eq!(c.file("freezer", "freezer.state"), "FROZEN");
    let a = read();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(), a, "the counter advanced while paused");
    c.rt(&["pause", &c.id]).fails();

    c.rt(&["resume", &c.id]).ok();
    assert_eq!(c.status(&c.id), "running");
    assert_eq!(c.file("freezer", "freezer.state"), "THAWED");
    let base = a.unwrap_or(0);
    wait_for(Duration::from_secs(5), "the counter to run again", || {
        read().filter(|n| *n > base + 2)
    });
    c.rt(&["resume", &c.id]).fails();

    // A paused container can be force-deleted, cgroups and all.
    c.rt(&["pause", &c.id]).ok();
    c.delete_id(&c.id, true).ok();
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
}

// ---------------------------------------------------------------------------------------------
// update

#[test]
fn update_with_flags() {
    let mut c = Cg::new("cg_update");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({
        "memory": {"limit": 128 * MB},
        "pids": {"limit": 100},
        "cpu": {"shares": 1024},
    }));
    start_main(&c);
    let id = c.id.clone();

    c.rt(&["update", "--memory", "64m", &id]).ok();
    assert_eq!(
        c.file("memory", "memory.limit_in_bytes"),
        (64 * MB).to_string()
    );
    assert_eq!(
        c.file("pids", "pids.max"),
        "100",
        "pids changed by a memory update"
    );

    c.rt(&["update", "--pids-limit", "42", &id]).ok();
    assert_eq!(c.file("pids", "pids.max"), "42");

    c.rt(&[
        "update",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "50000",
        &id,
    ])
    .ok();
    assert_eq!(c.file("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(c.file("cpu", "cpu.cfs_period_us"), "50000");

    c.rt(&["update", "--cpuset-cpus", "0", &id]).ok();
    assert_eq!(c.file("cpuset", "cpuset.cpus"), "0");

    c.rt(&[
        "update",
        "--cpu-share",
        "256",
        "--memory-reservation",
        "16m",
        &id,
    ])
    .ok();
    assert_eq!(c.file("cpu", "cpu.shares"), "256");
    assert_eq!(
        c.file("memory", "memory.soft_limit_in_bytes"),
        (16 * MB).to_string()
    );

    match host_blkio_weight_file() {
        Some(f) => {
            c.rt(&["update", "--blkio-weight", "200", &id]).ok();
            assert_eq!(c.file("blkio", f), "200");
        }
        // No I/O scheduler with weights: refused, naming the field.
        None => {
            c.rt(&["update", "--blkio-weight", "200", &id])
                .fails_with("linux.resources.blockIO.weight", None);
        }
    }

    // A refused update changes nothing.
    c.rt(&["update", "--cpuset-cpus", "0-99", &id]).fails();
    assert_eq!(c.file("cpuset", "cpuset.cpus"), "0");
    assert_eq!(
        c.file("memory", "memory.limit_in_bytes"),
        (64 * MB).to_string()
    );
    assert_eq!(c.status(&id), "running");
}

#[test]
fn update_from_resources_file_and_stdin() {
    let mut c = Cg::new("cg_update_r");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({"memory": {"limit": 128 * MB}, "pids": {"limit": 100}}));
    start_main(&c);
    let id = c.id.clone();

    let f = c.path("res1.json");
    fs::write(
        &f,
        json!({"memory": {"limit": 96 * MB}, "pids": {"limit": 33}}).to_string(),
    )
    .unwrap();
    c.rt(&["update", "--resources", f.to_str().unwrap(), &id])
        .ok();
    assert_eq!(
        c.file("memory", "memory.limit_in_bytes"),
        (96 * MB).to_string()
    );
    assert_eq!(c.file("pids", "pids.max"), "33");

    let f2 = c.path("res2.json");
    fs::write(
        &f2,
        json!({"cpu": {"quota": 30000, "period": 100000}, "pids": {"limit": 44}}).to_string(),
    )
    .unwrap();
    c.rt_with(&["update", "-r", "-", &id], |cmd| {
        cmd.stdin(fs::File::open(&f2).unwrap());
    })
    .ok();
    assert_eq!(c.file("cpu", "cpu.cfs_quota_us"), "30000");
    assert_eq!(c.file("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(c.file("pids", "pids.max"), "44");
    assert_eq!(
        c.file("memory", "memory.limit_in_bytes"),
        (96 * MB).to_string()
    );
}

#[test]
fn update_stopped_container_fails() {
    let mut c = Cg::new("cg_update_stopped");
    c.set_args(&["true"]);
    c.resources(json!({"pids": {"limit": 100}}));
    start_main(&c);
    c.wait_status(&c.id, "stopped");
    c.rt(&["update", "--pids-limit", "10", &c.id])
        .fails_with("container not running", Some("container not running"));
}

// ---------------------------------------------------------------------------------------------
// events, ps, kill --all

#[test]
fn events_stats_once() {
    let mut c = Cg::new("cg_stats");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({"memory": {"limit": 64 * MB}, "pids": {"limit": 50}}));
    start_main(&c);
    let out = c.rt(&["events", "--stats", &c.id]);
    out.ok();
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    let ev = &lines[0];
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], json!(c.id));
    let d = &ev["data"];
    for k in ["cpu", "memory", "pids"] {
        assert!(d[k].is_object(), "data.{k} missing: {ev}");
    }
    assert!(d["pids"]["current"].as_u64() >= Some(1), "{ev}");
    assert_eq!(d["pids"]["limit"].as_u64(), Some(50), "{ev}");
    assert_eq!(
        d["memory"]["usage"]["limit"].as_i64(),
        Some(64 * MB),
        "{ev}"
    );
    assert!(d["memory"]["usage"]["usage"].as_u64() > Some(0), "{ev}");
    assert!(d["cpu"]["usage"]["total"].as_u64() > Some(0), "{ev}");
}

#[test]
fn events_interval_repeats() {
    let mut c = Cg::new("cg_interval");
    c.set_args(&["sleep", "60"]);
    start_main(&c);
    let ev_out = c.path("events.out");
    let ev = c
        .command(&["events", "--interval", "100ms", &c.id])
        .stdout(fs::File::create(&ev_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn events");
    let ev = Bg(ev);
    std::thread::sleep(Duration::from_millis(550));
    drop(ev);
    let lines = json_lines(&fs::read_to_string(&ev_out).unwrap());
    assert!(
        (3..=8).contains(&lines.len()),
        "{} stats lines in ~0.5s at 100ms: {lines:?}",
        lines.len()
    );
    for l in &lines {
        assert_eq!(l["type"], "stats", "{l}");
        assert_eq!(l["id"], json!(c.id), "{l}");
    }
}

#[test]
fn ps_lists_container_processes() {
    let mut c = Cg::new("cg_ps");
    c.set_args(&["sleep", "61"]);
    let init = start_main(&c);
    let pf = c.path("exec.pid");
    c.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &c.id,
        "sleep",
        "62",
    ])
    .ok();
    let exec_pid: i32 = fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    c.track_pid(exec_pid);
    let want: BTreeSet<i32> = [init, exec_pid].into();

    let out = c.rt(&["ps", "--format", "json", &c.id]);
    out.ok();
    let got: Vec<i32> = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("ps json ({e}): {}", out.stdout));
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        want,
        "{}",
        out.stdout
    );

    let out = c.rt(&["ps", &c.id]);
    out.ok();
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .unwrap_or_else(|| panic!("no PID header: {}", out.stdout));
    let rows: BTreeSet<i32> = lines
        .filter_map(|l| l.split_whitespace().nth(col)?.parse().ok())
        .collect();
    assert_eq!(rows, want, "{}", out.stdout);
}

/// A container sharing the host's pid namespace whose init started a background sleep; returns
/// (init pid, its start time, the sleep's pid, its start time).
fn shared_pidns_container(c: &mut Cg, script: &str) -> (i32, u64, i32, u64) {
    c.remove_namespace("pid");
    c.sh_args(script);
    let init = start_main(c);
    let init_start = proc_starttime(init).unwrap_or(0);
    let out = c.wait_output(&c.id, "bg=");
    let bg: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("bg="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no bg pid in {out:?}"));
    c.track_pid(bg);
    let bg_start = proc_starttime(bg).expect("background sleep alive");
    (init, init_start, bg, bg_start)
}

#[test]
fn kill_all_without_pid_namespace() {
    let mut c = Cg::new("cg_killall");
    let (init, is, bg, bs) = shared_pidns_container(&mut c, "sleep 61 & echo bg=$!; exec sleep 62");
    let ps = c.rt(&["ps", "--format", "json", &c.id]);
    ps.ok();
    let pids: Vec<i32> = serde_json::from_str(ps.stdout.trim()).unwrap();
    assert!(pids.contains(&init) && pids.contains(&bg), "{pids:?}");

    c.rt(&["kill", "--all", &c.id, "KILL"]).ok();
    wait_for(Duration::from_secs(5), "every process to die", || {
        (!proc_alive(init, is) && !proc_alive(bg, bs)).then_some(())
    });
    c.wait_status(&c.id, "stopped");
    c.delete_id(&c.id, false).ok();
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
}

/// runc's delete kills what a container without its own pid namespace left in its cgroup
/// after its init exited; without that the cgroup cannot be removed.
#[test]
fn delete_stopped_kills_leftovers_without_pid_namespace() {
    let mut c = Cg::new("cg_delete_leftover");
    let (_, _, bg, bs) = shared_pidns_container(&mut c, "sleep 61 & echo bg=$!");
    c.wait_status(&c.id, "stopped");
    assert!(
        proc_alive(bg, bs),
        "the background sleep died with the init"
    );
    c.delete_id(&c.id, false).ok();
    assert!(
        !proc_alive(bg, bs),
        "delete left the background sleep running"
    );
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
}

// ---------------------------------------------------------------------------------------------
// delete and failed creates

#[test]
fn delete_force_removes_cgroup_dirs() {
    let mut c = Cg::new("cg_delete");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({"memory": {"limit": 64 * MB}, "pids": {"limit": 50}}));
    start_main(&c);
    let dirs = c.dirs();
    let hugetlb = if hugetlb_on_v1() {
        "hugetlb"
    } else {
        "unified"
    };
    for h in [
        "memory", "pids", "cpu", "cpuacct", "cpuset", "freezer", "devices", "blkio", hugetlb,
    ] {
        assert!(
            dirs.iter()
                .any(|d| d.starts_with(format!("/sys/fs/cgroup/{h}"))),
            "no {h} cgroup: {dirs:?}"
        );
    }
    c.delete_id(&c.id, true).ok();
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
    assert!(!c.root.join(&c.id).exists());
}

#[test]
fn kernel_refused_value_leaves_no_cgroup() {
    // Valid as a value, refused by the kernel (above the parent's 950000): the write fails after
    // the directories exist, so create must remove them again.
    let mut c = Cg::new("cg_rt_refused");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({"cpu": {"realtimeRuntime": 960000, "realtimePeriod": 1000000}}));
    let out = c.create();
    out.fails_with(
        "linux.resources.cpu.realtimeRuntime",
        Some("cpu.rt_runtime_us"),
    );
    if is_skiff() {
        assert!(out.stderr.contains("cpu.rt_runtime_us"), "{}", out.stderr);
    }
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
    c.assert_clean();
}

#[test]
fn failed_create_leaves_no_cgroup() {
    let mut c = Cg::new("cg_create_fails");
    c.set_args(&["/no/such/binary"]);
    c.resources(json!({"pids": {"limit": 50}}));
    c.create().fails();
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
    c.assert_clean();
}

#[test]
fn delete_removes_sub_cgroups() {
    // What a nested runtime or systemd inside the container leaves: cgroups below the
    // container's own, two levels deep, in a v1 hierarchy with a controller and one without.
    let mut c = Cg::new("cg_sub");
    c.set_args(&["sleep", "60"]);
    start_main(&c);
    let mut made = Vec::new();
    for h in ["memory", "pids", "freezer"] {
        let sub = PathBuf::from(format!("/sys/fs/cgroup/{h}{}/sub/deeper", c.path));
        fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("mkdir {}: {e}", sub.display()));
        made.push(sub);
    }
    c.delete_id(&c.id, true).ok();
    for sub in &made {
        assert!(!sub.exists(), "{} left behind", sub.display());
    }
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
}

#[test]
fn busy_cgroup_refused() {
    skiff_only!("runc 1.1 only warns \"container's cgroup is not empty\" and goes on");
    let mut c = Cg::new("cg_busy");
    c.set_args(&["sleep", "60"]);
    let pid = start_main(&c);
    let id2 = c.new_id();
    let out = c.create_id(&id2, &[]);
    out.fails_with("already has processes", None);
    assert!(
        !c.root.join(&id2).exists(),
        "state dir of the refused container"
    );
    // The first container keeps its cgroup and is alone in it.
    assert_eq!(c.status(&c.id), "running");
    let mem = PathBuf::from(format!("/sys/fs/cgroup/memory{}", c.path));
    assert_eq!(cgroup_procs(&mem), vec![pid]);
}

// ---------------------------------------------------------------------------------------------
// features, systemd

#[test]
fn features_document() {
    let c = Ctx::new("cg_features");
    let out = c.rt(&["features"]);
    out.ok();
    let f: Value = serde_json::from_str(&out.stdout).expect("features is JSON");
    assert!(
        f["ociVersionMin"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{f}"
    );
    assert!(
        f["ociVersionMax"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{f}"
    );
    let has = |v: &Value, s: &str| v.as_array().is_some_and(|a| a.iter().any(|x| x == s));
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(has(&f["hooks"], h), "hooks lack {h}: {}", f["hooks"]);
    }
    for o in ["bind", "rbind", "ro", "nosuid", "rro"] {
        assert!(has(&f["mountOptions"], o), "mountOptions lack {o}");
    }
    for n in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(has(&f["linux"]["namespaces"], n), "namespaces lack {n}");
    }
    let cg = &f["linux"]["cgroup"];
    assert_eq!(cg["v1"], true, "{cg}");
    assert!(cg["v2"].is_boolean() && cg["systemd"].is_boolean(), "{cg}");
    if is_skiff() {
        assert_eq!(cg["systemd"], false, "no systemd driver: {cg}");
        assert_eq!(cg["systemdUser"], false, "{cg}");
    }
}

#[test]
fn systemd_cgroup_flag_refused() {
    let c = Cg::new("cg_systemd_flag");
    c.write_spec();
    c.track(&c.id);
    let bundle = c.bundle.to_str().unwrap().to_string();
    let out = c.rt(&["--systemd-cgroup", "create", "--bundle", &bundle, &c.id]);
    out.fails_with("systemd cgroup driver is not available", None);
    assert!(c.dirs().is_empty());
    c.assert_clean();
}

#[test]
fn systemd_slice_path_refused() {
    skiff_only!("runc's cgroupfs driver takes \"slice:prefix:name\" as a relative path");
    let mut c = Cg::new("cg_slice");
    let slice = format!("system.slice:skiff:{}", c.id);
    c.spec["linux"]["cgroupsPath"] = json!(slice);
    let out = c.create();
    out.fails_with("linux.cgroupsPath", None);
    assert!(out.stderr.contains("systemd"), "{}", out.stderr);
    assert!(cgroup_dirs_at(&slice).is_empty());
    c.assert_clean();
}

// ---------------------------------------------------------------------------------------------
// Bad values: a clear error naming the field, and nothing left behind.

#[track_caller]
fn refused(name: &str, res: Value, skiff_texts: &[&str], runc_text: Option<&str>) {
    let mut c = Cg::new(name);
    c.set_args(&["sleep", "60"]);
    c.resources(res);
    let out = c.create();
    out.fails_with(skiff_texts[0], runc_text);
    if is_skiff() {
        for t in &skiff_texts[1..] {
            assert!(out.stderr.contains(t), "stderr lacks {t:?}: {}", out.stderr);
        }
    }
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
    assert!(!c.root.join(&c.id).exists(), "state dir left");
    c.assert_clean();
}

#[test]
fn bad_weight_device_missing() {
    refused(
        "cg_bad_wdev",
        json!({"blockIO": {"weightDevice": [{"major": 250, "minor": 9, "weight": 500}]}}),
        &[
            "linux.resources.blockIO.weightDevice[0]",
            "250:9",
            "does not exist",
        ],
        Some("no such device"),
    );
}

#[test]
fn bad_unified_key_dotdot() {
    refused(
        "cg_bad_unified_dotdot",
        json!({"unified": {"../x": "1"}}),
        &["linux.resources.unified", "../x"],
        Some("cannot use unified on cgroup v1"),
    );
}

#[test]
fn bad_unified_key_missing_file() {
    refused(
        "cg_bad_unified_missing",
        json!({"unified": {"memory.nonexistent": "1"}}),
        &["linux.resources.unified", "memory.nonexistent"],
        Some("cannot use unified on cgroup v1"),
    );
}

#[test]
fn unified_core_key_on_hybrid() {
    if cgroup2_serves_controllers() {
        // cgroup2 serves a controller (hugetlb) here, so the container has a directory there:
        // core keys go to it.
        skiff_only!("runc 1.1 refuses unified on hybrid hosts");
        let mut c = Cg::new("cg_unified_core");
        c.set_args(&["sleep", "60"]);
        c.resources(json!({"unified": {"cgroup.max.depth": "3"}}));
        c.create_ok();
        assert_eq!(c.file("unified", "cgroup.max.depth"), "3");
        return;
    }
    // cgroup2 is mounted but serves no controller here: even core keys have nowhere to go.
    refused(
        "cg_bad_unified_core",
        json!({"unified": {"cgroup.max.depth": "3"}}),
        &["linux.resources.unified", "cgroup.max.depth"],
        Some("cannot use unified on cgroup v1"),
    );
}

#[test]
fn bad_cpus_not_online() {
    refused(
        "cg_bad_cpus",
        json!({"cpu": {"cpus": "0-99"}}),
        &["linux.resources.cpu.cpus", "0-99"],
        Some("cpuset.cpus"),
    );
}

#[test]
fn bad_mems_not_online() {
    refused(
        "cg_bad_mems",
        json!({"cpu": {"mems": "3"}}),
        &["linux.resources.cpu.mems"],
        Some("cpuset.mems"),
    );
}

#[test]
fn bad_negative_memory_limit() {
    refused(
        "cg_bad_negmem",
        json!({"memory": {"limit": -5}}),
        &["linux.resources.memory.limit", "-5"],
        Some("memory.limit_in_bytes"),
    );
}

#[test]
fn bad_swap_below_limit() {
    refused(
        "cg_bad_swap",
        json!({"memory": {"limit": 64 * MB, "swap": 32 * MB}}),
        &["linux.resources.memory.swap"],
        Some("memory.memsw.limit_in_bytes"),
    );
}

#[test]
fn bad_cpu_quota_too_small() {
    refused(
        "cg_bad_quota",
        json!({"cpu": {"quota": 5, "period": 100000}}),
        &["linux.resources.cpu.quota", "5"],
        Some("cpu.cfs_quota_us"),
    );
}

/// A weight where the host's I/O schedulers have none: refused before anything exists.
#[test]
fn blkio_weight_without_a_weighted_scheduler_is_refused() {
    if host_blkio_weight_file().is_some() {
        eprintln!("skipped: this host's blkio cgroups have a weight file");
        return;
    }
    refused(
        "cg_no_weight",
        json!({"blockIO": {"weight": 300}}),
        &["linux.resources.blockIO.weight", "does not exist"],
        Some("blkio"),
    );
}

#[test]
fn bad_blkio_weight() {
    skiff_only!("runc passes weight 5 to blkio.bfq.weight, whose range (1-1000) accepts it");
    refused(
        "cg_bad_blkio",
        json!({"blockIO": {"weight": 5}}),
        &["linux.resources.blockIO.weight", "5"],
        None,
    );
}

#[test]
fn update_memory_and_swap_raised_together() {
    // v1 needs memsw >= limit at every moment: raising both means writing memsw first.
    let mut c = Cg::new("cg_update_swap");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({"memory": {"limit": 64 * MB, "swap": 64 * MB}}));
    start_main(&c);
    c.rt(&["update", "--memory", "128m", "--memory-swap", "256m", &c.id])
        .ok();
    assert_eq!(
        c.file("memory", "memory.limit_in_bytes"),
        (128 * MB).to_string()
    );
    assert_eq!(
        c.file("memory", "memory.memsw.limit_in_bytes"),
        (256 * MB).to_string()
    );
    // And lowered together: the limit first.
    c.rt(&["update", "--memory", "32m", "--memory-swap", "48m", &c.id])
        .ok();
    assert_eq!(
        c.file("memory", "memory.limit_in_bytes"),
        (32 * MB).to_string()
    );
    assert_eq!(
        c.file("memory", "memory.memsw.limit_in_bytes"),
        (48 * MB).to_string()
    );
}

#[test]
fn update_memory_past_swap_limit_refused() {
    // Raising only the limit above memory+swap: the kernel refuses it (runc fails the same way);
    // nothing may change.
    let mut c = Cg::new("cg_update_swap1");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({"memory": {"limit": 64 * MB, "swap": 64 * MB}}));
    start_main(&c);
    c.rt(&["update", "--memory", "128m", &c.id]).fails_with(
        "linux.resources.memory.limit",
        Some("memory.limit_in_bytes"),
    );
    assert_eq!(
        c.file("memory", "memory.limit_in_bytes"),
        (64 * MB).to_string()
    );
    assert_eq!(
        c.file("memory", "memory.memsw.limit_in_bytes"),
        (64 * MB).to_string()
    );
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn update_paused_container() {
    let mut c = Cg::new("cg_update_paused");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({"pids": {"limit": 100}}));
    start_main(&c);
    c.rt(&["pause", &c.id]).ok();
    c.rt(&["update", "--pids-limit", "55", &c.id]).ok();
    assert_eq!(c.file("pids", "pids.max"), "55");
    assert_eq!(c.status(&c.id), "paused");
    c.rt(&["resume", &c.id]).ok();
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn commands_on_stopped_container() {
    let mut c = Cg::new("cg_stopped_cmds");
    c.set_args(&["true"]);
    start_main(&c);
    c.wait_status(&c.id, "stopped");
    c.rt(&["events", "--stats", &c.id])
        .fails_with("container not running", Some("is not running"));
    c.rt(&["pause", &c.id])
        .fails_with("container not running", Some("container not running"));
    c.rt(&["resume", &c.id]).fails();
}

#[test]
fn pause_created_container() {
    let mut c = Cg::new("cg_pause_created");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.rt(&["pause", &c.id]).ok();
    assert_eq!(c.file("freezer", "freezer.state"), "FROZEN");
    assert_eq!(c.status(&c.id), "paused");
    c.rt(&["resume", &c.id]).ok();
    assert_eq!(c.status(&c.id), "created");
    c.start().ok();
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn delete_force_of_paused_created_container() {
    let mut c = Cg::new("cg_delete_paused_created");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.rt(&["pause", &c.id]).ok();
    c.delete_id(&c.id, true).ok();
    assert!(c.dirs().is_empty(), "left: {:?}", c.dirs());
    c.assert_clean();
}

/// The container sees only its own cgroups, in every hierarchy (named ones such as
/// name=systemd and cgroup2 included), with and without a cgroup namespace: it is placed at its
/// cgroupsPath in each, and its /sys/fs/cgroup shows that place, never the host's root.
#[test]
fn container_sees_only_its_own_cgroups_in_every_hierarchy() {
    for cgroupns in [false, true] {
        let mut c = Cg::new(if cgroupns { "cg_view_ns" } else { "cg_view" });
        if cgroupns {
            c.set_namespace("cgroup", None);
        } else {
            c.remove_namespace("cgroup");
        }
        let path = c.path.clone();
        let out =
            c.sh_ok("cat /proc/self/cgroup; echo ---; for d in /sys/fs/cgroup/*/; do ls $d; done");
        let (own, listing) = out.split_once("---\n").unwrap();
        for line in own.lines() {
            let p = line.splitn(3, ':').nth(2).unwrap();
            let want = if cgroupns { "/" } else { path.as_str() };
            assert_eq!(p, want, "cgroupns {cgroupns}: {line}\n{own}");
        }
        // Only files: the host's other cgroups (and the parent of ours) are not in view.
        for name in listing.lines() {
            assert!(
                name.contains('.')
                    || ["tasks", "release_agent", "notify_on_release"].contains(&name),
                "cgroupns {cgroupns}: a cgroup directory {name:?} is visible:\n{listing}"
            );
        }
    }
}

/// A cgroupsPath whose cgroup is frozen (or under a frozen parent): refused before anything
/// is made (the init would freeze the moment it joined, and create wait forever).
#[test]
fn frozen_cgroup_is_refused() {
    skiff_only!("runc 1.1 hangs with its init frozen in the cgroup");
    let c = Cg::new("cg_frozen");
    let freezer = PathBuf::from(format!("/sys/fs/cgroup/freezer{}", c.path));
    let parent = freezer.parent().unwrap().join(format!("{}-parent", c.id));
    for (label, frozen_dir, path) in [
        ("the cgroup", freezer.clone(), c.path.clone()),
        (
            "its parent",
            parent.clone(),
            format!("/{}-parent/child", c.id),
        ),
    ] {
        fs::create_dir_all(&frozen_dir).unwrap();
        fs::write(frozen_dir.join("freezer.state"), "FROZEN").unwrap();
        let mut c2 = Cg::new("cg_frozen");
        c2.spec["linux"]["cgroupsPath"] = json!(path);
        c2.set_args(&["true"]);
        let t = std::time::Instant::now();
        let out = c2.create();
        fs::write(frozen_dir.join("freezer.state"), "THAWED").unwrap();
        let _ = fs::remove_dir(&frozen_dir);
        out.fails_with("is frozen", Some(""));
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{label}: took {:?}",
            t.elapsed()
        );
        c2.assert_clean();
    }
}

/// A parent cpuset cgroup someone made with a plain mkdir has empty cpus and mems: it is
/// filled from the nearest ancestor that has them, so the container can join below it.
#[test]
fn cpuset_parent_made_by_plain_mkdir_is_filled() {
    let mut c = Cg::new("cg_cpuset_parent");
    let parent_name = format!("{}-parent", c.id);
    let parent = PathBuf::from(format!("/sys/fs/cgroup/cpuset/{parent_name}"));
    fs::create_dir(&parent).unwrap();
    assert_eq!(
        fs::read_to_string(parent.join("cpuset.cpus"))
            .unwrap()
            .trim(),
        ""
    );
    c.path = format!("/{parent_name}/c");
    c.spec["linux"]["cgroupsPath"] = json!(c.path);
    let out = c.run_sh("cat /proc/self/cgroup | grep cpuset");
    let filled = fs::read_to_string(parent.join("cpuset.cpus")).unwrap();
    // Remove what the test made in every hierarchy (the runtime leaves parents it finds).
    for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = fs::remove_dir(h.path().join(&parent_name).join("c"));
        let _ = fs::remove_dir(h.path().join(&parent_name));
    }
    out.ok();
    assert!(!filled.trim().is_empty(), "parent cpus still empty");
}

/// linux.resources.devices rules are written in the order of the config (the default allow
/// list after them), so devices.list reads back in the order given.
#[test]
fn device_rules_are_written_in_config_order() {
    skiff_only!("runc 1.1 writes the default allow list first");
    let mut c = Cg::new("cg_dev_order");
    c.set_args(&["sleep", "60"]);
    c.resources(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"},
        {"allow": true, "type": "b", "major": 7, "access": "r"},
        {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    ]}));
    c.create_ok();
    let list = c.file("devices", "devices.list");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        &lines[..3],
        ["c 10:229 rw", "b 7:* r", "c 1:7 rwm"],
        "{list}"
    );
}
