//! Fake-cgroupfs tests (no root) and real tests on this host (root).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxResources, Spec};

use super::plan::{blkio_to_io_weight, shares_to_weight, swap_to_v2, HostLimits};
use super::*;

fn spec(linux: serde_json::Value) -> Spec {
    let mut v: serde_json::Value = serde_json::from_str(r#"{"ociVersion":"1.3.0","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#).unwrap();
    v["linux"] = linux;
    serde_json::from_value(v).unwrap()
}

fn limits() -> HostLimits {
    HostLimits {
        cpus: [0, 1].into(),
        mems: [0].into(),
        hugepage_sizes: vec!["2MB".into(), "1GB".into()],
        block_devices: [(8, 0)].into(),
    }
}

const V1_CTRLS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
    "net_cls", "net_prio",
];

fn fake_v1(root: &Path) -> HostCgroups {
    let mut mi = String::new();
    for (i, c) in V1_CTRLS.iter().enumerate() {
        std::fs::create_dir_all(root.join(c)).unwrap();
        mi.push_str(&format!(
            "{} 1 0:{i} / {} rw - cgroup cgroup rw,{c}\n",
            40 + i,
            root.join(c).display()
        ));
    }
    HostCgroups::parse(&mi, "", None).unwrap()
}

fn fake_v2(root: &Path) -> HostCgroups {
    let mi = format!("30 1 0:9 / {} rw - cgroup2 cgroup2 rw\n", root.display());
    HostCgroups::parse(
        &mi,
        "0::/\n",
        Some("cpuset cpu io memory hugetlb pids rdma"),
    )
    .unwrap()
}

/// Pre-create the files a real cgroupfs would have.
fn touch(dir: &Path, files: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for f in files {
        std::fs::write(dir.join(f), "").unwrap();
    }
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const RES: &str = r#"{
  "cgroupsPath": "/ctr/x",
  "resources": {
    "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 20},
    "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
    "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 4, "minor": 1, "access": "rw"}]
  }
}"#;

#[test]
fn fake_v1_tree_gets_v1_files() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v1(tmp.path());
    let plan = CgroupPlan::from_spec(&spec(serde_json::from_str(RES).unwrap()), "x").unwrap();
    let t = tmp.path();
    touch(
        &t.join("memory/ctr/x"),
        &[
            "cgroup.procs",
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
        ],
    );
    touch(
        &t.join("cpu/ctr/x"),
        &[
            "cgroup.procs",
            "cpu.shares",
            "cpu.cfs_quota_us",
            "cpu.cfs_period_us",
        ],
    );
    touch(
        &t.join("cpuset/ctr/x"),
        &["cgroup.procs", "cpuset.cpus", "cpuset.mems"],
    );
    touch(&t.join("pids/ctr/x"), &["cgroup.procs", "pids.max"]);
    touch(
        &t.join("blkio/ctr/x"),
        &[
            "cgroup.procs",
            "blkio.bfq.weight",
            "blkio.bfq.weight_device",
            "blkio.throttle.read_bps_device",
        ],
    );
    touch(
        &t.join("hugetlb/ctr/x"),
        &["cgroup.procs", "hugetlb.2MB.limit_in_bytes"],
    );
    touch(
        &t.join("net_cls/ctr/x"),
        &["cgroup.procs", "net_cls.classid"],
    );
    touch(
        &t.join("net_prio/ctr/x"),
        &["cgroup.procs", "net_prio.ifpriomap"],
    );
    touch(
        &t.join("devices/ctr/x"),
        &["cgroup.procs", "devices.allow", "devices.deny"],
    );
    let h = manager::create(&host, &limits(), &plan).unwrap();
    assert_eq!(
        read(t.join("memory/ctr/x/memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        read(t.join("memory/ctr/x/memory.memsw.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(
        read(t.join("memory/ctr/x/memory.soft_limit_in_bytes")),
        "33554432"
    );
    assert_eq!(read(t.join("cpu/ctr/x/cpu.shares")), "512");
    assert_eq!(read(t.join("cpu/ctr/x/cpu.cfs_quota_us")), "50000");
    assert_eq!(read(t.join("cpuset/ctr/x/cpuset.cpus")), "0-1");
    assert_eq!(read(t.join("pids/ctr/x/pids.max")), "20");
    // No blkio.weight file: BFQ's weight takes the raw value.
    assert_eq!(read(t.join("blkio/ctr/x/blkio.bfq.weight")), "500");
    assert_eq!(
        read(t.join("blkio/ctr/x/blkio.bfq.weight_device")),
        "8:0 300"
    );
    assert_eq!(
        read(t.join("blkio/ctr/x/blkio.throttle.read_bps_device")),
        "8:0 1048576"
    );
    assert_eq!(
        read(t.join("hugetlb/ctr/x/hugetlb.2MB.limit_in_bytes")),
        "4194304"
    );
    assert_eq!(read(t.join("net_cls/ctr/x/net_cls.classid")), "1048577");
    assert_eq!(read(t.join("net_prio/ctr/x/net_prio.ifpriomap")), "eth0 5");
    // One open file per devices file, one write per rule: a plain file
    // holds the rules back to back, in order (reset first, then the allows).
    assert_eq!(read(t.join("devices/ctr/x/devices.deny")), "a *:* rwm");
    let allows = read(t.join("devices/ctr/x/devices.allow"));
    // The config's rules first, in its order, then the default allow list.
    assert!(allows.starts_with("c 4:1 rwc *:* mb *:* m"), "{allows}");
    assert!(allows.contains("c 1:3 rwm"), "{allows}");
    // Handles round-trip through JSON (state file).
    let j = serde_json::to_string(&h).unwrap();
    assert_eq!(serde_json::from_str::<CgroupHandle>(&j).unwrap(), h);
    assert_eq!(h.dirs.len(), V1_CTRLS.len());
}

#[test]
fn fake_v2_tree_gets_converted_values() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v2(tmp.path());
    let mut l: serde_json::Value = serde_json::from_str(RES).unwrap();
    l["resources"]["network"] = serde_json::Value::Null;
    l["resources"]["unified"] = serde_json::json!({"memory.high": "50000000"});
    let plan = CgroupPlan::from_spec(&spec(l), "x").unwrap();
    let d = tmp.path().join("ctr/x");
    touch(
        &d,
        &[
            "cgroup.procs",
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "memory.high",
            "cpu.weight",
            "cpu.max",
            "cpuset.cpus",
            "cpuset.mems",
            "pids.max",
            "io.weight",
            "io.max",
            "hugetlb.2MB.max",
            "hugetlb.2MB.rsvd.max",
        ],
    );
    // Devices go to BPF on v2; loading needs root, so test without devices here.
    let mut plan = plan;
    plan.devices = None;
    let h = manager::create(&host, &limits(), &plan).unwrap();
    assert_eq!(read(d.join("memory.max")), "67108864");
    assert_eq!(read(d.join("memory.swap.max")), "67108864");
    assert_eq!(read(d.join("memory.low")), "33554432");
    assert_eq!(read(d.join("memory.high")), "50000000");
    assert_eq!(
        read(d.join("cpu.weight")),
        shares_to_weight(512).to_string()
    );
    assert_eq!(read(d.join("cpu.max")), "50000 100000");
    assert_eq!(read(d.join("pids.max")), "20");
    // No io.bfq.weight: converted io.weight; last write wins in a plain file.
    assert_eq!(
        read(d.join("io.weight")),
        format!("8:0 {}", blkio_to_io_weight(300))
    );
    assert_eq!(read(d.join("io.max")), "8:0 rbps=1048576");
    assert_eq!(read(d.join("hugetlb.2MB.max")), "4194304");
    assert_eq!(read(d.join("hugetlb.2MB.rsvd.max")), "4194304");
    assert_eq!(h.dirs.len(), 1);
    assert!(h.dirs[0].v2);
    // net_cls has no v2 form.
    let l: serde_json::Value = serde_json::json!({"resources": {"network": {"classID": 1}}});
    let e = CgroupPlan::from_spec(&spec(l), "x")
        .unwrap()
        .ops(&host)
        .unwrap_err()
        .to_string();
    assert!(e.contains("network.classID"), "{e}");
}

#[test]
fn conversions_like_runc() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262144), 10000);
    assert_eq!(blkio_to_io_weight(10), 1);
    assert_eq!(blkio_to_io_weight(1000), 10000);
    assert_eq!(swap_to_v2(0, -1), Ok(-1));
    assert_eq!(swap_to_v2(-1, 100), Ok(-1));
    assert_eq!(swap_to_v2(300, 100), Ok(200));
    assert!(swap_to_v2(50, 100).is_err());
    assert!(swap_to_v2(50, 0).is_err());
}

fn err_of(linux: serde_json::Value) -> String {
    let host = fake_v1(tempfile::tempdir().unwrap().path());
    match CgroupPlan::from_spec(&spec(linux), "x") {
        Err(e) => e.to_string(),
        Ok(p) => match p.ops(&host).and_then(|_| p.check_host(&limits())) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("accepted"),
        },
    }
}

#[test]
fn bad_input_names_the_field() {
    let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    let e = err_of(j(
        r#"{"resources":{"blockIO":{"weightDevice":[{"major":250,"minor":9,"weight":100}]}}}"#,
    ));
    assert!(
        e.starts_with("linux.resources.blockIO.weightDevice[0]") && e.contains("does not exist"),
        "{e}"
    );
    let e = err_of(j(r#"{"resources":{"unified":{"../x":"1"}}}"#));
    assert!(e.contains("unified[\"../x\"]"), "{e}");
    let e = err_of(j(r#"{"resources":{"unified":{"memory/x":"1"}}}"#));
    assert!(e.contains("not a cgroup file name"), "{e}");
    let e = err_of(j(r#"{"resources":{"cpu":{"cpus":"0-99"}}}"#));
    assert!(
        e.starts_with("linux.resources.cpu.cpus") && e.contains("2 is not online"),
        "{e}"
    );
    let e = err_of(j(r#"{"resources":{"memory":{"limit":-5}}}"#));
    assert!(e.starts_with("linux.resources.memory.limit"), "{e}");
    let e = err_of(j(r#"{"resources":{"cpu":{"quota":5}}}"#));
    assert!(e.starts_with("linux.resources.cpu.quota"), "{e}");
    let e = err_of(j(r#"{"resources":{"cpu":{"period":10}}}"#));
    assert!(e.starts_with("linux.resources.cpu.period"), "{e}");
    let e = err_of(j(
        r#"{"resources":{"hugepageLimits":[{"pageSize":"3MB","limit":1}]}}"#,
    ));
    assert!(
        e.starts_with("linux.resources.hugepageLimits[0].pageSize"),
        "{e}"
    );
    let e = err_of(j(
        r#"{"resources":{"hugepageLimits":[{"pageSize":"2MB","limit":-1}]}}"#,
    ));
    assert!(
        e.starts_with("linux.resources.hugepageLimits[0].limit"),
        "{e}"
    );
    let e = err_of(j(r#"{"resources":{"blockIO":{"weight":5}}}"#));
    assert!(e.starts_with("linux.resources.blockIO.weight"), "{e}");
    let e = err_of(j(r#"{"resources":{"memory":{"swappiness":101}}}"#));
    assert!(e.starts_with("linux.resources.memory.swappiness"), "{e}");
    let e = err_of(j(r#"{"resources":{"rdma":{"mlx":{"hcaHandles":1}}}}"#));
    assert!(e.contains("rdma controller is not available"), "{e}");
    let e = err_of(j(r#"{"cgroupsPath":"system.slice:skiff:x"}"#));
    assert!(
        e.contains("systemd cgroup driver is not available on this host"),
        "{e}"
    );
    let e = err_of(j(r#"{"resources":{"unified":{"memory.max":"1"}}}"#));
    assert!(e.contains("cgroup v2 is not mounted"), "{e}");
    // Unset values are fine and write nothing.
    let p = CgroupPlan::from_spec(
        &spec(j(
            r#"{"resources":{"pids":{"limit":0},"memory":{"limit":0}}}"#,
        )),
        "x",
    )
    .unwrap();
    assert!(p
        .ops(&fake_v1(tempfile::tempdir().unwrap().path()))
        .unwrap()
        .is_empty());
}

#[test]
fn paths_resolve_like_runc() {
    let mi = super::probe::tests_fixture();
    let host = HostCgroups::parse(mi, "4:memory:/a/b\n0::/u/s\n", Some("hugetlb")).unwrap();
    let p = CgroupPlan::from_spec(&spec(serde_json::json!({})), "c1").unwrap();
    assert_eq!(p.path, "/skiff/c1");
    let h = CgroupHandle::resolve(&host, "rel/x");
    let mem = h.dir_for("memory").unwrap();
    assert_eq!(mem.dir, PathBuf::from("/sys/fs/cgroup/memory/a/b/rel/x"));
    assert_eq!(
        h.dir_for("pids").unwrap().dir,
        PathBuf::from("/sys/fs/cgroup/pids/rel/x")
    );
    assert_eq!(
        h.v2_dir().unwrap(),
        Path::new("/sys/fs/cgroup/unified/u/rel/x")
    );
    let h = CgroupHandle::resolve(&host, "/abs");
    assert_eq!(h.v2_dir().unwrap(), Path::new("/sys/fs/cgroup/unified/abs"));
    assert!(h.dir_for("hugetlb").unwrap().v2);
    let none = HostCgroups::parse(mi, "", Some("")).unwrap();
    assert!(CgroupHandle::resolve(&none, "/abs").v2_dir().is_none());
}

#[test]
fn stats_json_uses_runc_names() {
    let s = Stats::default();
    let v = serde_json::to_value(&s).unwrap();
    assert!(v["cpu"]["usage"].get("kernel").is_some());
    assert!(v["memory"].get("kernelTCP").is_some());
    let mut s = Stats::default();
    s.cpu.throttling.throttled_periods = 3;
    s.blkio.io_queued_recursive.push(Default::default());
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 3);
    assert!(v["blkio"].get("ioQueueRecursive").is_some());
    let _ = LinuxResources::default();
}

#[path = "root_tests.rs"]
mod root_tests;

#[test]
fn rootless_skips_an_unwritable_cgroup_unless_limits_are_asked() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let host = fake_v1(tmp.path());
    let plain = CgroupPlan::from_spec(
        &spec(serde_json::json!({"resources": {"devices": [{"allow": false, "access": "rwm"}]}})),
        "x",
    )
    .unwrap();
    assert_eq!(plain.limits_asked(), None);
    let limited = CgroupPlan::from_spec(&spec(serde_json::from_str(RES).unwrap()), "x").unwrap();
    assert_eq!(limited.limits_asked(), Some("linux.resources.memory"));
    let code = crate::testing::in_child_exit_code(|| {
        // SAFETY: plain id syscall in a forked child.
        if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
            return 2;
        }
        let Ok(h) = create_for(&host, &limits(), &plain, true) else {
            return 3;
        };
        if !h.is_empty() || h.add_pid(1).is_err() || !matches!(h.v2_dir_fd(), Ok(None)) {
            return 4;
        }
        if create_for(&host, &limits(), &plain, false).is_ok() {
            return 5;
        }
        match create_for(&host, &limits(), &limited, true) {
            Err(e)
                if e.to_string()
                    .starts_with("rootless container: linux.resources.memory") =>
            {
                0
            }
            _ => 6,
        }
    });
    assert_eq!(code, 0);
}

/// A hybrid host: every controller but hugetlb on v1, hugetlb on cgroup2 at `unified`.
fn fake_hybrid(root: &Path) -> HostCgroups {
    let mut mi = String::new();
    for (i, c) in V1_CTRLS.iter().filter(|c| **c != "hugetlb").enumerate() {
        std::fs::create_dir_all(root.join(c)).unwrap();
        mi.push_str(&format!(
            "{} 1 0:{i} / {} rw - cgroup cgroup rw,{c}\n",
            40 + i,
            root.join(c).display()
        ));
    }
    std::fs::create_dir_all(root.join("unified")).unwrap();
    mi.push_str(&format!(
        "60 1 0:30 / {} rw - cgroup2 cgroup2 rw\n",
        root.join("unified").display()
    ));
    HostCgroups::parse(&mi, "0::/\n", Some("hugetlb")).unwrap()
}

const HYBRID_RES: &str = r#"{
  "cgroupsPath": "/ctr/x",
  "resources": {
    "pids": {"limit": 20},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
    "devices": [{"allow": false, "access": "rwm"}]
  }
}"#;

#[test]
fn two_step_create_makes_cgroup2_first_then_v1() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let host = fake_hybrid(t);
    let plan =
        CgroupPlan::from_spec(&spec(serde_json::from_str(HYBRID_RES).unwrap()), "x").unwrap();
    touch(
        &t.join("unified/ctr/x"),
        &["cgroup.procs", "hugetlb.2MB.max"],
    );

    let h = manager::create_part(&host, &limits(), &plan, Part::V2).unwrap();
    assert_eq!(read(t.join("unified/ctr/x/hugetlb.2MB.max")), "4194304");
    assert!(
        !t.join("pids/ctr/x").exists(),
        "a v1 directory made in the cgroup2 step"
    );
    let v2_only = h.part(Part::V2);
    assert_eq!(v2_only.dirs.len(), 1);
    assert!(v2_only.dirs[0].v2);

    touch(&t.join("pids/ctr/x"), &["cgroup.procs", "pids.max"]);
    touch(
        &t.join("devices/ctr/x"),
        &["cgroup.procs", "devices.allow", "devices.deny"],
    );
    let h1 = manager::create_part(&host, &limits(), &plan, Part::V1).unwrap();
    assert_eq!(h1, h, "both steps name the same directories");
    assert_eq!(read(t.join("pids/ctr/x/pids.max")), "20");
    assert_eq!(read(t.join("devices/ctr/x/devices.deny")), "a *:* rwm");
    // The v1 step wrote nothing to cgroup2 (its file still has the first step's value).
    assert_eq!(read(t.join("unified/ctr/x/hugetlb.2MB.max")), "4194304");
    assert_eq!(h.part(Part::V1).dirs.len(), V1_CTRLS.len() - 1);
}

#[test]
fn two_step_create_refuses_a_busy_v1_cgroup_before_making_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let host = fake_hybrid(t);
    let plan =
        CgroupPlan::from_spec(&spec(serde_json::from_str(HYBRID_RES).unwrap()), "x").unwrap();
    std::fs::create_dir_all(t.join("pids/ctr/x")).unwrap();
    std::fs::write(t.join("pids/ctr/x/cgroup.procs"), "4242\n").unwrap();
    let e = manager::create_part(&host, &limits(), &plan, Part::V2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already has processes"), "{e}");
    assert!(
        !t.join("unified/ctr").exists(),
        "cgroup2 directory made anyway"
    );
}
