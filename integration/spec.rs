//! runtime-spec 1.3 fields of issue 8, seen from the host and from inside the container:
//! process.scheduler, process.ioPriority, process.execCPUAffinity, linux.memoryPolicy,
//! linux.personality, linux.netDevices, linux.intelRdt, annotations. Also: config fields that
//! cannot be honoured here are refused with an error naming the field (never silently
//! ignored), and there is no checkpoint/restore. The README's coverage table maps every field to
//! its test.
//!
//! runc 1.1 predates most of these fields (it ignores them), so those tests are skiff only.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;

/// Busybox-sh script printing the shell's own /proc stat line with builtins only (a
/// SCHED_DEADLINE task may not fork), then becoming `sleep` so the host can look at it.
const PRINT_STAT_THEN_SLEEP: &str = "read l < /proc/$$/stat; echo \"IN $l\"; exec sleep 60";

/// Create and start the main container running `script`; wait for `marker` in its output.
/// Returns the init's host pid and the output.
fn started_sh(c: &mut Ctx, script: &str, marker: &str) -> (i32, String) {
    c.sh_args(script);
    let pid = c.create_ok();
    c.start().ok();
    let out = c.wait_output(&c.id, marker);
    (pid, out)
}

/// The stat line printed by PRINT_STAT_THEN_SLEEP, split like `proc_stat_fields`.
fn inside_stat(out: &str) -> Vec<String> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("IN "))
        .unwrap_or_else(|| panic!("no stat line in {out:?}"));
    stat_text_fields(line)
}

/// (policy, nice, rt_priority) from stat fields.
fn sched_of(f: &[String]) -> (u32, i32, u32) {
    (
        f[38].parse().expect("policy"),
        f[16].parse().expect("nice"),
        f[37].parse().expect("rt_priority"),
    )
}

/// Wait until the process `pid` has exec'd `comm`, after which its scheduling is final.
fn wait_comm(pid: i32, comm: &str) {
    wait_for(
        std::time::Duration::from_secs(10),
        &format!("pid {pid} to run {comm}"),
        || {
            let c = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (c.trim() == comm).then_some(())
        },
    )
}

/// Run a container with `scheduler` and check its policy/nice/rt_priority from inside and
/// from the host (/proc/PID/stat and `chrt -p`). Returns the ctx (container still running),
/// the host pid and the `chrt -p` output.
fn check_scheduler(
    name: &str,
    scheduler: Value,
    want: (u32, i32, u32),
    chrt_policy: &str,
) -> (Ctx, i32, String) {
    let mut c = Ctx::new(name);
    c.spec["process"]["scheduler"] = scheduler;
    let (pid, out) = started_sh(&mut c, PRINT_STAT_THEN_SLEEP, "IN ");
    assert_eq!(sched_of(&inside_stat(&out)), want, "inside: {out}");
    wait_comm(pid, "sleep");
    assert_eq!(
        sched_of(&proc_stat_fields(pid)),
        want,
        "host /proc/{pid}/stat"
    );
    let chrt = host_cmd("chrt", &["-p", &pid.to_string()]);
    chrt.ok();
    assert!(
        chrt.stdout
            .contains(&format!("current scheduling policy: {chrt_policy}\n")),
        "chrt -p: {}",
        chrt.stdout
    );
    (c, pid, chrt.stdout)
}

const SCHED_OTHER: u32 = 0;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_BATCH: u32 = 3;
const SCHED_IDLE: u32 = 5;
const SCHED_DEADLINE: u32 = 6;

#[test]
fn scheduler_other_with_nice_also_for_exec() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    let (c, _, _) = check_scheduler(
        "sched_other",
        json!({"policy": "SCHED_OTHER", "nice": 7}),
        (SCHED_OTHER, 7, 0),
        "SCHED_OTHER",
    );
    // exec takes the container's process config, scheduler included.
    let out = c.rt(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        PRINT_STAT_THEN_SLEEP
            .replace("exec sleep 60", "true")
            .as_str(),
    ]);
    out.ok();
    assert_eq!(sched_of(&inside_stat(&out.stdout)), (SCHED_OTHER, 7, 0));
}

#[test]
fn scheduler_negative_nice() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    check_scheduler(
        "sched_nice_neg",
        json!({"policy": "SCHED_OTHER", "nice": -5}),
        (SCHED_OTHER, -5, 0),
        "SCHED_OTHER",
    );
}

#[test]
fn scheduler_batch() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    check_scheduler(
        "sched_batch",
        json!({"policy": "SCHED_BATCH", "nice": 3}),
        (SCHED_BATCH, 3, 0),
        "SCHED_BATCH",
    );
}

#[test]
fn scheduler_idle() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    check_scheduler(
        "sched_idle",
        json!({"policy": "SCHED_IDLE"}),
        (SCHED_IDLE, 0, 0),
        "SCHED_IDLE",
    );
}

/// Real-time policies in a cgroup-v1 cpu cgroup need real-time runtime there
/// (CONFIG_RT_GROUP_SCHED): the config gives the container's cgroup some. The cgroup sits
/// right under the hierarchy root, whose runtime it can borrow from (skiff's default parent
/// "/skiff" has none to give).
fn with_rt_runtime(c: &mut Ctx) {
    c.spec["linux"]["cgroupsPath"] = json!(format!("/{}", c.id));
    c.spec["linux"]["resources"]["cpu"]["realtimePeriod"] = json!(1_000_000);
    c.spec["linux"]["resources"]["cpu"]["realtimeRuntime"] = json!(10_000);
}

fn check_rt(name: &str, scheduler: Value, want: (u32, i32, u32), chrt_policy: &str) -> (Ctx, i32) {
    let mut c = Ctx::new(name);
    with_rt_runtime(&mut c);
    c.spec["process"]["scheduler"] = scheduler;
    let (pid, out) = started_sh(&mut c, PRINT_STAT_THEN_SLEEP, "IN ");
    assert_eq!(sched_of(&inside_stat(&out)), want, "inside: {out}");
    wait_comm(pid, "sleep");
    assert_eq!(
        sched_of(&proc_stat_fields(pid)),
        want,
        "host /proc/{pid}/stat"
    );
    let chrt = host_cmd("chrt", &["-p", &pid.to_string()]);
    chrt.ok();
    assert!(
        chrt.stdout.contains(chrt_policy),
        "chrt -p: {}",
        chrt.stdout
    );
    assert!(
        chrt.stdout
            .contains(&format!("current scheduling priority: {}\n", want.2)),
        "chrt -p: {}",
        chrt.stdout
    );
    (c, pid)
}

#[test]
fn scheduler_fifo_priority() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    check_rt(
        "sched_fifo",
        json!({"policy": "SCHED_FIFO", "priority": 10}),
        (SCHED_FIFO, 0, 10),
        "policy: SCHED_FIFO\n",
    );
}

#[test]
fn scheduler_rr_priority() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    check_rt(
        "sched_rr",
        json!({"policy": "SCHED_RR", "priority": 20}),
        (SCHED_RR, 0, 20),
        "policy: SCHED_RR\n",
    );
}

#[test]
fn scheduler_reset_on_fork_spec_spelling() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    let mut c = Ctx::new("sched_reset_fork");
    with_rt_runtime(&mut c);
    // runtime-spec spells it SCHED_FLAG_RESET_ON_FORK (oci-spec reads another spelling).
    c.spec["process"]["scheduler"] = json!({
        "policy": "SCHED_FIFO", "priority": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]
    });
    // The shell is FIFO; a child it forks (cat) is back to SCHED_OTHER.
    let (pid, out) = started_sh(
        &mut c,
        "read l < /proc/$$/stat; echo \"IN $l\"; echo \"CHILD $(cat /proc/self/stat)\"; exec sleep 60",
        "CHILD ",
    );
    assert_eq!(sched_of(&inside_stat(&out)), (SCHED_FIFO, 0, 5), "{out}");
    let child = out
        .lines()
        .find_map(|l| l.strip_prefix("CHILD "))
        .expect("child line");
    assert_eq!(
        sched_of(&stat_text_fields(child)),
        (SCHED_OTHER, 0, 0),
        "{out}"
    );
    wait_comm(pid, "sleep");
    let chrt = host_cmd("chrt", &["-p", &pid.to_string()]);
    chrt.ok();
    assert!(
        chrt.stdout.contains("SCHED_FIFO|SCHED_RESET_ON_FORK"),
        "chrt -p: {}",
        chrt.stdout
    );
}

#[test]
fn scheduler_fifo_without_reset_on_fork_is_inherited() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    let mut c = Ctx::new("sched_fifo_inherit");
    with_rt_runtime(&mut c);
    c.spec["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 5});
    let out = c.sh_ok("cat /proc/self/stat");
    assert_eq!(
        sched_of(&stat_text_fields(&out)),
        (SCHED_FIFO, 0, 5),
        "{out}"
    );
}

#[test]
fn scheduler_deadline() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    let (_c, pid, chrt) = check_scheduler(
        "sched_deadline",
        json!({
            "policy": "SCHED_DEADLINE",
            "runtime": 10_000_000u64, "deadline": 20_000_000u64, "period": 30_000_000u64,
            "flags": ["SCHED_FLAG_DL_OVERRUN"]
        }),
        (SCHED_DEADLINE, 0, 0),
        "SCHED_DEADLINE",
    );
    assert!(
        chrt.contains("runtime/deadline/period parameters: 10000000/20000000/30000000"),
        "chrt -p: {chrt}"
    );
    // The flag, in the spec's spelling, reached the kernel.
    let attr = skiff::sched::get_scheduler(pid).expect("sched_getattr");
    assert_eq!(
        attr.sched_flags & 0x04,
        0x04,
        "SCHED_FLAG_DL_OVERRUN: {attr:?}"
    );
}

#[test]
fn scheduler_bad_values_refused_naming_the_field() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    let cases = [
        (json!({"policy": "SCHED_ISO"}), "process.scheduler.policy"),
        (
            json!({"policy": "SCHED_FIFO"}),
            "process.scheduler.priority",
        ),
        (
            json!({"policy": "SCHED_FIFO", "priority": 100}),
            "process.scheduler.priority",
        ),
        (
            json!({"policy": "SCHED_OTHER", "priority": 3}),
            "process.scheduler.priority",
        ),
        (
            json!({"policy": "SCHED_OTHER", "nice": 20}),
            "process.scheduler.nice",
        ),
        (
            json!({"policy": "SCHED_DEADLINE", "runtime": 10}),
            "process.scheduler.runtime",
        ),
        (
            json!({"policy": "SCHED_DEADLINE", "runtime": 2_000_000, "deadline": 1_000_000}),
            "process.scheduler.deadline",
        ),
        (
            json!({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_BOGUS"]}),
            "process.scheduler",
        ),
    ];
    let mut c = Ctx::new("sched_bad");
    for (sched, field) in cases {
        c.spec["process"]["scheduler"] = sched.clone();
        let id = c.new_id();
        c.create_id(&id, &[]).fails_with(field, None);
        c.assert_clean();
    }
}

#[test]
fn io_priority_each_class_host_and_inside() {
    skiff_only!("runc 1.1 ignores process.ioPriority");
    for (class, prio, text) in [
        ("IOPRIO_CLASS_RT", 3, "realtime: prio 3"),
        ("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
        ("IOPRIO_CLASS_IDLE", 0, "idle"),
    ] {
        let mut c = Ctx::new("ioprio");
        c.spec["process"]["ioPriority"] = json!({"class": class, "priority": prio});
        let (pid, out) = started_sh(&mut c, "echo \"IN $(ionice -p $$)\"; exec sleep 60", "IN ");
        assert!(
            out.contains(&format!("IN {text}")),
            "{class}: inside: {out}"
        );
        let host = host_cmd("ionice", &["-p", &pid.to_string()]);
        host.ok();
        assert!(
            host.stdout.starts_with(text),
            "{class}: host ionice: {host:?}"
        );
        // exec'd processes get it too.
        let ex2 = c.rt(&["exec", &c.id, "sh", "-c", "ionice -p $$"]);
        ex2.ok();
        assert!(ex2.stdout.starts_with(text), "{class}: exec: {ex2:?}");
    }
}

#[test]
fn io_priority_out_of_range_refused() {
    skiff_only!("runc 1.1 ignores process.ioPriority");
    let mut c = Ctx::new("ioprio_bad");
    c.spec["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8});
    c.create().fails_with("process.ioPriority.priority", None);
    c.assert_clean();
}

fn cpus_allowed(pid: i32) -> String {
    proc_status(&pid.to_string(), "Cpus_allowed_list").expect("Cpus_allowed_list")
}

#[test]
fn exec_cpu_affinity_initial_then_final_for_init() {
    skiff_only!("runc 1.1 ignores process.execCPUAffinity");
    let mut c = Ctx::new("affinity_init");
    c.spec["process"]["execCPUAffinity"] = json!({"initial": "1", "final": "0"});
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    // Created, waiting for start: still in setup, on the initial CPUs.
    assert_eq!(cpus_allowed(pid), "1");
    c.start().ok();
    wait_comm(pid, "sleep");
    assert_eq!(cpus_allowed(pid), "0");
}

#[test]
fn exec_cpu_affinity_final_seen_from_inside() {
    skiff_only!("runc 1.1 ignores process.execCPUAffinity");
    let mut c = Ctx::new("affinity_inside");
    c.spec["process"]["execCPUAffinity"] = json!({"final": "1"});
    let out = c.sh_ok("grep Cpus_allowed_list /proc/self/status");
    assert_eq!(
        status_field(&out, "Cpus_allowed_list").unwrap(),
        "1",
        "{out}"
    );
}

fn write_process_json(c: &Ctx, name: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut p = c.spec["process"].clone();
    f(&mut p);
    let path = c.path(name);
    fs::write(&path, serde_json::to_vec(&p).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn exec_cpu_affinity_for_exec_process() {
    skiff_only!("runc 1.1 ignores process.execCPUAffinity");
    let mut c = Ctx::new("affinity_exec");
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    c.start().ok();
    assert_eq!(cpus_allowed(pid), "0-1");
    let script = ["sh", "-c", "grep Cpus_allowed_list /proc/self/status"];
    // initial and final: the process runs on the final list.
    let p = write_process_json(&c, "p1.json", |p| {
        p["args"] = json!(script);
        p["execCPUAffinity"] = json!({"initial": "1", "final": "0"});
    });
    let out = c.rt(&["exec", "--process", &p, &c.id]);
    out.ok();
    assert_eq!(
        status_field(&out.stdout, "Cpus_allowed_list").unwrap(),
        "0",
        "{out:?}"
    );
    // initial only: no change after joining the container, so it stays on the initial list.
    let p = write_process_json(&c, "p2.json", |p| {
        p["args"] = json!(script);
        p["execCPUAffinity"] = json!({"initial": "1"});
    });
    let out = c.rt(&["exec", "--process", &p, &c.id]);
    out.ok();
    assert_eq!(
        status_field(&out.stdout, "Cpus_allowed_list").unwrap(),
        "1",
        "{out:?}"
    );
    // The init was not touched.
    assert_eq!(cpus_allowed(pid), "0-1");
}

/// config.json accepts the spec's spellings (empty "final", SCHED_FLAG_RESET_ON_FORK) through
/// a fix-up pass that `exec --process` does not run.
#[test]
fn exec_process_json_empty_final_affinity() {
    skiff_only!("runc 1.1 ignores process.execCPUAffinity");
    let mut c = Ctx::new("affinity_exec_empty");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    // An empty final (allowed by the spec): no change after joining, the initial list stays.
    let p = write_process_json(&c, "p3.json", |p| {
        p["args"] = json!(["sh", "-c", "grep Cpus_allowed_list /proc/self/status"]);
        p["execCPUAffinity"] = json!({"initial": "1", "final": ""});
    });
    let out = c.rt(&["exec", "--process", &p, &c.id]);
    out.ok();
    assert_eq!(
        status_field(&out.stdout, "Cpus_allowed_list").unwrap(),
        "1",
        "{out:?}"
    );
}

#[test]
fn exec_process_json_scheduler_flag_spec_spelling() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    let mut c = Ctx::new("sched_exec_flag");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    let p = write_process_json(&c, "p.json", |p| {
        p["args"] = json!(["sh", "-c", "cat /proc/$$/stat; cat /proc/self/stat; true"]);
        // sched(7): reset-on-fork resets RT policies and *negative* nice values.
        p["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": -5,
                                "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    });
    let out = c.rt(&["exec", "--process", &p, &c.id]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        sched_of(&stat_text_fields(lines[0])),
        (SCHED_OTHER, -5, 0),
        "{out:?}"
    );
    // Reset on fork: the child is back to SCHED_OTHER, nice 0.
    assert_eq!(
        sched_of(&stat_text_fields(lines[1])),
        (SCHED_OTHER, 0, 0),
        "{out:?}"
    );
}

#[test]
fn scheduler_fifo_without_rt_runtime_fails_clearly() {
    skiff_only!("runc 1.1 ignores process.scheduler");
    if !std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
        return; // no real-time group scheduling: FIFO would just work
    }
    let mut c = Ctx::new("sched_fifo_no_rt");
    c.spec["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10});
    c.set_args(&["true"]);
    let out = c.create();
    out.fails_with("process.scheduler", None);
    c.assert_clean();
}

#[test]
fn exec_cpu_affinity_bad_lists_refused() {
    skiff_only!("runc 1.1 ignores process.execCPUAffinity");
    let mut c = Ctx::new("affinity_bad");
    c.spec["process"]["execCPUAffinity"] = json!({"final": "3-1"});
    c.create().fails_with("process.execCPUAffinity.final", None);
    c.assert_clean();
    c.spec["process"]["execCPUAffinity"] = json!({"initial": "x"});
    let id = c.new_id();
    c.create_id(&id, &[])
        .fails_with("process.execCPUAffinity.initial", None);
    c.assert_clean();
    // A CPU this 2-core host does not have: refused by the kernel, reported by field.
    c.spec["process"]["execCPUAffinity"] = json!({"final": "63"});
    let id = c.new_id();
    c.run_id(&id, &[])
        .fails_with("process.execCPUAffinity.final", None);
    c.assert_clean();
}

/// The policy column of the first line of a numa_maps text.
fn numa_policy(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no numa_maps line in {text:?}"))
        .to_string()
}

#[test]
fn memory_policy_modes_in_numa_maps() {
    skiff_only!("runc 1.1 ignores linux.memoryPolicy");
    for (policy, want) in [
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0"),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
        ),
        (json!({"mode": "MPOL_PREFERRED", "nodes": "0"}), "prefer:0"),
        (json!({"mode": "MPOL_LOCAL"}), "local"),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}),
            "interleave=relative:0",
        ),
    ] {
        let mut c = Ctx::new("mempolicy");
        c.spec["linux"]["memoryPolicy"] = policy.clone();
        let (pid, out) = started_sh(
            &mut c,
            "echo \"IN $(head -n1 /proc/self/numa_maps)\"; exec sleep 60",
            "IN ",
        );
        let inside = out.lines().find_map(|l| l.strip_prefix("IN ")).unwrap();
        assert_eq!(numa_policy(inside), want, "{policy}: inside: {out}");
        wait_comm(pid, "sleep");
        let host = fs::read_to_string(format!("/proc/{pid}/numa_maps")).unwrap();
        assert_eq!(numa_policy(&host), want, "{policy}: host numa_maps: {host}");
    }
}

#[test]
fn memory_policy_bad_configs_refused() {
    skiff_only!("runc 1.1 ignores linux.memoryPolicy");
    let mut c = Ctx::new("mempolicy_bad");
    for (policy, field) in [
        (json!({"mode": "MPOL_BIND"}), "linux.memoryPolicy.nodes"),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "linux.memoryPolicy.nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-x"}),
            "linux.memoryPolicy.nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0",
                   "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "linux.memoryPolicy.flags",
        ),
        (json!({"mode": "MPOL_BOGUS"}), "linux.memoryPolicy"),
    ] {
        c.spec["linux"]["memoryPolicy"] = policy;
        let id = c.new_id();
        c.create_id(&id, &[]).fails_with(field, None);
        c.assert_clean();
    }
    // A node this host does not have: the kernel refuses, the error names the field.
    c.spec["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "7"});
    let id = c.new_id();
    c.create_id(&id, &[]).fails_with("linux.memoryPolicy", None);
    c.assert_clean();
}

#[test]
fn personality_linux32_and_linux() {
    skiff_only!("runc 1.1 ignores linux.personality");
    let mut c = Ctx::new("personality");
    c.spec["linux"]["personality"] = json!({"domain": "LINUX32"});
    assert_eq!(c.sh_ok("uname -m"), "i686\n");
    // From the host: /proc/PID/personality holds PER_LINUX32 (8).
    c.id = c.new_id();
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    let p = fs::read_to_string(format!("/proc/{pid}/personality")).unwrap();
    assert_eq!(u32::from_str_radix(p.trim(), 16).unwrap(), 8, "{p}");

    c.spec["linux"]["personality"] = json!({"domain": "LINUX"});
    c.id = c.new_id();
    assert_eq!(c.sh_ok("uname -m"), "x86_64\n");
}

#[test]
fn personality_flags_and_unknown_domain_refused() {
    skiff_only!("runc 1.1 ignores linux.personality");
    let mut c = Ctx::new("personality_bad");
    c.spec["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]});
    c.create().fails_with("linux.personality.flags", None);
    c.assert_clean();
    c.spec["linux"]["personality"] = json!({"domain": "SVR4"});
    let id = c.new_id();
    c.create_id(&id, &[]).fails_with("linux.personality", None);
    c.assert_clean();
}

/// A veth pair on the host: `a` (with an address, to be moved) and its peer `b`.
fn veth_with_address(c: &Ctx, ip: &str) -> (HostLink, HostLink) {
    let _ = c;
    let a = HostLink::fresh_name("a");
    let b = HostLink::fresh_name("b");
    let pair = HostLink::veth(&a, &b);
    host_cmd("ip", &["addr", "add", ip, "dev", &a]).ok();
    pair
}

#[test]
fn net_devices_moved_renamed_with_address_and_up() {
    skiff_only!("runc 1.1 ignores linux.netDevices");
    let mut c = Ctx::new("netdev");
    // 192.0.2.0/24 is TEST-NET-1 (documentation): assigned, never used for traffic.
    let (a, b) = veth_with_address(&c, "192.0.2.17/24");
    c.set_namespace("network", None);
    c.spec["linux"]["netDevices"] = json!({ a.name.clone(): {"name": "eth7"} });
    let (pid, out) = started_sh(
        &mut c,
        "ip addr show eth7; echo OPER=$(cat /sys/class/net/eth7/operstate) \
         FLAGS=$(cat /sys/class/net/eth7/flags); echo DONE; exec sleep 60",
        "DONE",
    );
    assert!(out.contains("inet 192.0.2.17/24"), "{out}");
    assert!(out.contains("eth7"), "{out}");
    // IFF_UP is bit 0 of the flags (operstate stays LOWERLAYERDOWN while the peer is down).
    let flags = out
        .split("FLAGS=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "eth7 not up: {out}");
    // Gone from the host, and present in the container's network namespace.
    assert!(!HostLink::exists(&a.name), "{} still on the host", a.name);
    assert!(HostLink::exists(&b.name), "the peer must stay on the host");
    let ns = host_cmd(
        "nsenter",
        &[
            "-t",
            &pid.to_string(),
            "-n",
            "ip",
            "-o",
            "addr",
            "show",
            "eth7",
        ],
    );
    ns.ok();
    assert!(ns.stdout.contains("192.0.2.17/24"), "{ns:?}");
    // exec sees it too.
    let ex = c.rt(&["exec", &c.id, "cat", "/sys/class/net/eth7/address"]);
    ex.ok();
    let peer_of_a = fs::read_to_string(format!("/sys/class/net/{}/iflink", b.name)).unwrap();
    let idx_in = c.rt(&["exec", &c.id, "cat", "/sys/class/net/eth7/ifindex"]);
    idx_in.ok();
    assert_eq!(
        peer_of_a.trim(),
        idx_in.stdout.trim(),
        "eth7 is not b's peer"
    );

    // Delete: the namespace goes, and with it the veth pair (virtual devices are destroyed,
    // not moved back).
    c.delete_id(&c.id.clone(), true).ok();
    wait_for(
        std::time::Duration::from_secs(10),
        "the veth pair to vanish with the namespace",
        || (!HostLink::exists(&b.name) && !HostLink::exists(&a.name)).then_some(()),
    );
    assert!(
        !HostLink::exists("eth7"),
        "eth7 must not come back to the host"
    );
}

#[test]
fn net_devices_keep_name_and_template() {
    skiff_only!("runc 1.1 ignores linux.netDevices");
    let mut c = Ctx::new("netdev_tmpl");
    let (d1, p1) = HostLink::fresh_veth("d");
    let (d2, p2) = HostLink::fresh_veth("d");
    c.set_namespace("network", None);
    // No name: keeps the host name. A "%d" template: the kernel numbers it.
    c.spec["linux"]["netDevices"] = json!({
        d1.name.clone(): {},
        d2.name.clone(): {"name": "tmpl%d"}
    });
    let out = c.sh_ok("ls /sys/class/net");
    let names: Vec<&str> = out.split_whitespace().collect();
    assert!(names.contains(&d1.name.as_str()), "{out}");
    assert!(names.contains(&"tmpl0"), "{out}");
    // `run` deleted the container: the namespace died and took both pairs with it.
    wait_for(
        std::time::Duration::from_secs(10),
        "veth pairs gone",
        || (!HostLink::exists(&p1.name) && !HostLink::exists(&p2.name)).then_some(()),
    );
    assert!(!HostLink::exists(&d1.name) && !HostLink::exists(&d2.name));
}

#[test]
fn net_devices_errors_leave_nothing_behind() {
    skiff_only!("runc 1.1 ignores linux.netDevices");
    let mut c = Ctx::new("netdev_bad");
    c.set_namespace("network", None);
    // A device that does not exist.
    let missing = HostLink::fresh_name("m");
    c.spec["linux"]["netDevices"] = json!({ missing.clone(): {"name": "eth7"} });
    c.create()
        .fails_with(&format!("linux.netDevices.{missing}"), None)
        .fails_with("no such network device", None);
    c.assert_clean();

    // A name that exists in the new namespace already (lo): refused, device stays home.
    let (d, _peer) = HostLink::fresh_veth("d");
    c.spec["linux"]["netDevices"] = json!({ d.name.clone(): {"name": "lo"} });
    let id = c.new_id();
    c.create_id(&id, &[])
        .fails_with(&format!("linux.netDevices.{}.name", d.name), None);
    c.assert_clean();
    assert!(
        HostLink::exists(&d.name),
        "refused device must stay on the host"
    );

    // No network namespace of its own: nowhere to move to.
    c.remove_namespace("network");
    c.spec["linux"]["netDevices"] = json!({ d.name.clone(): {} });
    let id = c.new_id();
    c.create_id(&id, &[]).fails_with("linux.netDevices", None);
    c.assert_clean();
    assert!(HostLink::exists(&d.name));

    // Invalid names are refused before anything happens.
    c.set_namespace("network", None);
    c.spec["linux"]["netDevices"] = json!({ d.name.clone(): {"name": "a/b"} });
    let id = c.new_id();
    c.create_id(&id, &[])
        .fails_with(&format!("linux.netDevices.{}.name", d.name), None);
    c.assert_clean();
    assert!(HostLink::exists(&d.name));
}

#[test]
fn net_devices_second_device_missing_moves_nothing() {
    skiff_only!("runc 1.1 ignores linux.netDevices");
    let mut c = Ctx::new("netdev_partial");
    c.set_namespace("network", None);
    let (d, _peer) = HostLink::fresh_veth("d");
    // "zz..." sorts after the real one: the check must come before any move.
    let missing = format!("zz{}", HostLink::fresh_name("m"));
    let missing = &missing[..missing.len().min(15)];
    c.spec["linux"]["netDevices"] = json!({ d.name.clone(): {}, missing: {} });
    c.create().fails_with("no such network device", None);
    c.assert_clean();
    assert!(
        HostLink::exists(&d.name),
        "first device moved although the second was missing"
    );
}

#[test]
fn intel_rdt_refused_without_resctrl() {
    skiff_only!("runc 1.1 refuses intelRdt differently");
    if std::path::Path::new("/sys/fs/resctrl/schemata").exists() {
        eprintln!("skipped: resctrl is mounted on this host");
        return;
    }
    for rdt in [
        json!({"closID": "skiff-test", "l3CacheSchema": "L3:0=f"}),
        json!({"enableMonitoring": true}),
        json!({"schemata": ["MB:0=50"]}),
        json!({}),
    ] {
        let mut c = Ctx::new("rdt");
        c.spec["linux"]["intelRdt"] = rdt.clone();
        c.create().fails_with(
            "linux.intelRdt: resctrl is not mounted on this host (/sys/fs/resctrl)",
            None,
        );
        c.assert_clean();
        assert!(!std::path::Path::new("/sys/fs/resctrl/skiff-test").exists());
    }
}

#[test]
fn annotations_in_state_and_list() {
    let mut c = Ctx::new("annotations");
    let ann = json!({"org.example.key": "value", "com.example.empty": "", "x.y/z": "a=b c"});
    c.spec["annotations"] = ann.clone();
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    let st = c.state_json(&c.id);
    assert_eq!(st["annotations"], ann, "{st}");
    c.start().ok();
    assert_eq!(c.state_json(&c.id)["annotations"], ann);
    let list = c.rt(&["list", "--format", "json"]);
    list.ok();
    let v: Value = serde_json::from_str(&list.stdout).unwrap();
    let me = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == c.id.as_str())
        .expect("id in list");
    assert_eq!(me["annotations"], ann, "{me}");
}

#[test]
fn annotations_absent_is_empty_or_missing() {
    let mut c = Ctx::new("annotations_none");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    let st = c.state_json(&c.id);
    let a = &st["annotations"];
    assert!(
        a.is_null() || a.as_object().is_some_and(|m| m.is_empty()),
        "{st}"
    );
}

/// SELinux is not enabled here: a mount label cannot be applied and must not be dropped.
/// Without SELinux a mount label means nothing: ignored with a warning (as crun does), while
/// process.selinuxLabel stays refused (it promises confinement).
#[test]
fn mount_label_ignored_without_selinux() {
    skiff_only!("runc 1.1 passes context= to the mounts anyway, and they fail");
    if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        eprintln!("skipped: this host runs SELinux");
        return;
    }
    let mut c = Ctx::new("mount_label");
    c.spec["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2");
    let out = c.run_sh("echo ran");
    out.ok();
    assert_eq!(out.stdout, "ran\n");
    if is_skiff() {
        assert!(
            out.stderr.contains("linux.mountLabel") && out.stderr.contains("ignored"),
            "{out:?}"
        );
    }
}

#[test]
fn lsm_fields_refused_when_not_enabled() {
    skiff_only!("runc 1.1 error texts differ");
    let mut c = Ctx::new("lsm_refused");
    if !std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        c.spec["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
        c.create().fails_with("process.selinuxLabel", None);
        c.assert_clean();
        c.spec["process"]
            .as_object_mut()
            .unwrap()
            .remove("selinuxLabel");
    }
    let aa = fs::read_to_string("/sys/module/apparmor/parameters/enabled").unwrap_or_default();
    if !aa.starts_with('Y') {
        c.spec["process"]["apparmorProfile"] = json!("skiff-test-profile");
        let id = c.new_id();
        c.create_id(&id, &[])
            .fails_with("process.apparmorProfile", None);
        c.assert_clean();
    }
}

#[test]
fn no_checkpoint_or_restore() {
    skiff_only!("runc has checkpoint/restore");
    let c = Ctx::new("no_criu");
    for cmd in ["checkpoint", "restore"] {
        let out = c.rt(&[cmd, "x"]);
        out.fails();
        assert!(
            out.stderr.contains(cmd) && !out.stderr.contains("not implemented yet"),
            "{cmd}: {out:?}"
        );
    }
    let help = c.rt(&["--help"]);
    help.ok();
    let help_l = help.stdout.to_lowercase();
    for cmd in ["checkpoint", "restore"] {
        // Either not listed, or listed as unavailable.
        if let Some(line) = help_l.lines().find(|l| l.trim_start().starts_with(cmd)) {
            assert!(
                line.contains("not available"),
                "--help claims {cmd}: {line}"
            );
        }
    }
    let features = c.rt(&["features"]);
    features.ok();
    let f: Value = serde_json::from_str(&features.stdout).unwrap();
    let text = features.stdout.to_lowercase();
    if text.contains("checkpoint") || text.contains("criu") {
        // Only allowed as an explicit "not available".
        let s = f.to_string().to_lowercase();
        assert!(
            !s.contains("\"checkpoint\":true") && !s.contains("criu\":true"),
            "{s}"
        );
    }
}

/// The v1 cgroup directory of `pid` in hierarchy `ctrl` (as /proc/PID/cgroup says).
fn v1_cgroup_dir(pid: i32, ctrl: &str) -> Option<std::path::PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        ctrls.split(',').any(|c| c == ctrl).then(|| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(ctrl)
                .join(path.trim_start_matches('/'))
        })
    })
}

/// Resource fields the cgroup unit tests do not reach end to end, read back from the
/// container's cgroup-v1 files on the host.
#[test]
fn cgroup_v1_less_common_resource_fields() {
    if !std::path::Path::new("/sys/fs/cgroup/memory/memory.oom_control").exists() {
        eprintln!("skipped: no cgroup v1 memory hierarchy");
        return;
    }
    let mut c = Ctx::new("cg_v1_fields");
    c.spec["linux"]["resources"] = json!({
        "memory": {"limit": 268435456, "reservation": 134217728, "swappiness": 17,
                   "disableOOMKiller": true, "kernelTCP": 16777216},
        // (no shares: an idle group always has the minimum weight)
        "cpu": {"quota": 50000, "period": 100000, "burst": 10000,
                "cpus": "0", "mems": "0", "idle": 1},
        "pids": {"limit": 99}
    });
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    let read = |ctrl: &str, file: &str| -> String {
        let d = v1_cgroup_dir(pid, ctrl).unwrap_or_else(|| panic!("no {ctrl} cgroup"));
        fs::read_to_string(d.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", d.display()))
            .trim()
            .to_string()
    };
    assert_eq!(read("memory", "memory.limit_in_bytes"), "268435456");
    assert_eq!(read("memory", "memory.soft_limit_in_bytes"), "134217728");
    assert_eq!(read("memory", "memory.swappiness"), "17");
    assert!(read("memory", "memory.oom_control").contains("oom_kill_disable 1"));
    if is_skiff() {
        // runc 1.1 no longer sets kernel memory limits.
        assert_eq!(read("memory", "memory.kmem.tcp.limit_in_bytes"), "16777216");
    }
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    if is_skiff() {
        // runc 1.1.5 leaves these two alone.
        assert_eq!(read("cpu", "cpu.cfs_burst_us"), "10000");
        assert_eq!(read("cpu", "cpu.idle"), "1");
    }
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    assert_eq!(read("cpuset", "cpuset.mems"), "0");
    assert_eq!(read("pids", "pids.max"), "99");
}

/// cgroup v1 memory.use_hierarchy is always 1 on current kernels: a config asking for
/// false cannot be honoured and must be refused, not dropped.
#[test]
fn memory_use_hierarchy_false_refused() {
    skiff_only!("runc 1.1 writes use_hierarchy");
    let mut c = Ctx::new("use_hierarchy");
    c.spec["linux"]["resources"] = json!({"memory": {"useHierarchy": false}});
    c.create()
        .fails_with("linux.resources.memory.useHierarchy", None);
    c.assert_clean();
}

/// An exec'd process gets the container's linux.personality and linux.memoryPolicy, as the
/// init does.
#[test]
fn exec_gets_personality_and_memory_policy() {
    skiff_only!("runc 1.1 ignores linux.personality and linux.memoryPolicy");
    let mut c = Ctx::new("exec_persona");
    c.spec["linux"]["personality"] = json!({"domain": "LINUX32"});
    c.spec["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    let out = c.rt(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "uname -m; head -n1 /proc/self/numa_maps",
    ]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[0], "i686", "{out:?}");
    assert_eq!(numa_policy(lines[1]), "interleave:0", "{out:?}");
}
