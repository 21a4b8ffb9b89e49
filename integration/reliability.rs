//! Reliability: short versions of hack/stress.sh (no leaks under load, SIGKILL at random points,
//! the caller dying), pid reuse, tiny limits, interrupted-create leftovers, and the replay of
//! every fuzz regression input (fuzz/regressions/<target>/).

use crate::common::*;
use serde_json::json;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;

/// hack/stress.sh PHASE with small figures; its own leak checks decide (it exits non-zero and
/// says why on any leak, hang or failure). GLOBAL_CHECKS=0: other tests run alongside.
fn stress(phase: &str, env: &[(&str, &str)]) {
    rootfs();
    let mut c = Command::new(repo().join("hack/stress.sh"));
    c.arg(phase)
        .env("SKIFF", runtime())
        .env("GLOBAL_CHECKS", "0")
        .env("SKIFF_TEST_ROOTFS", rootfs())
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("running hack/stress.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "hack/stress.sh {phase} failed:\n{text}"
    );
    assert!(text.contains("no leaks, no failures"), "{text}");
}

#[test]
fn stress_sequential_cycles() {
    skiff_only!("stress runs drive skiff");
    stress("seq", &[("CYCLES", "50")]);
}

#[test]
fn stress_concurrent_lifecycles() {
    skiff_only!("stress runs drive skiff");
    stress("conc", &[("CONCURRENT", "20")]);
}

#[test]
fn stress_mixed_commands_on_one_id() {
    skiff_only!("stress runs drive skiff");
    stress("mixed", &[("MIXED", "10"), ("MIXED_ROUNDS", "3")]);
}

#[test]
fn crash_sigkill_at_random_points() {
    skiff_only!("checks skiff's preliminary state and recovery");
    // 6 kills each of create, start, exec and delete. STRICT_LIST=0: a create killed between
    // the init's Ready and the final state save is listed `stopped` while its init still waits
    // (counted in the outcomes; see create_killed_after_ready_is_not_stopped_with_live_init).
    stress("crash", &[("CRASH", "24"), ("STRICT_LIST", "0")]);
}

/// `create` SIGKILLed after its init reported Ready but before the final state save: the state
/// still names the (dead) creator, so `list`/`state` say `stopped`, yet the init lives on,
/// blocked in accept() on start.sock, forever (delete --force does kill it via the cgroup).
#[test]
fn create_killed_after_ready_is_not_stopped_with_live_init() {
    skiff_only!("skiff's preliminary state");
    let mut c = Ctx::new("killed_after_ready");
    c.set_args(&["sleep", "1000"]);
    c.write_spec();
    // How long an undisturbed create takes.
    let t = std::time::Instant::now();
    c.create().ok();
    let full = t.elapsed();
    c.delete_id(&c.id, true).ok();
    let bundle = c.bundle.to_str().unwrap().to_string();
    for i in 0..200u32 {
        let id = c.new_id();
        c.track(&id);
        let mut child = c
            .command(&["create", "--bundle", &bundle, &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Sweep the last 40% of the command.
        let delay = full.mul_f64(0.6 + 0.4 * f64::from(i % 40) / 40.0);
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        // Give an init that noticed its creator's death a moment to exit.
        std::thread::sleep(Duration::from_millis(300));
        let st = c.rt(&["state", &id]);
        let stopped = st.code == 0 && st.stdout.contains("\"stopped\"");
        let live: Vec<i32> = cgroup_dirs_at(&format!("/skiff/{id}"))
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .filter(|&p| !matches!(proc_state(p), Some('Z') | Some('X') | None))
            .collect();
        let wchan: Vec<String> = live
            .iter()
            .map(|p| fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default())
            .collect();
        c.delete_id(&id, true).ok();
        assert!(
            !stopped || live.is_empty(),
            "create killed after {delay:?}: state says stopped, live {live:?} waiting in {wchan:?}"
        );
    }
}

#[test]
fn caller_death_leaves_nothing_undeletable() {
    skiff_only!("stress runs drive skiff");
    stress("caller", &[("CALLER", "6")]);
}

/// In a private pid namespace (so that steering pid allocation touches nobody else): a
/// container's init dies, a stranger gets its pid, and skiff must call the container stopped
/// and leave the stranger alone through kill, pause, exec and delete.
#[test]
fn pid_reuse_never_touches_the_stranger() {
    skiff_only!("skiff's pidfd and start-time checks");
    let mut c = Ctx::new("pid_reuse");
    c.set_args(&["sleep", "1000"]);
    c.write_spec();
    c.track(&c.id);
    let script = r#"
import json, os, subprocess, sys, time
sk, root, bundle, cid = sys.argv[1:5]
def run(*a, out=subprocess.DEVNULL):
    return subprocess.run([sk, "--root", root] + list(a), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL, timeout=30)
def status():
    p = run("state", cid, out=subprocess.PIPE)
    return json.loads(p.stdout) if p.returncode == 0 else None
def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
assert os.getpid() == 1, "not pid 1 of a new pid namespace"
assert run("create", "--bundle", bundle, cid).returncode == 0, "create"
assert run("start", cid).returncode == 0, "start"
pid = status()["pid"]
os.kill(pid, 9)
# The init was re-parented to us (pid 1 here): reap it so that its pid is free.
deadline = time.time() + 10
while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
    reap(); time.sleep(0.005)
assert not os.path.exists("/proc/%d" % pid), "init did not die"
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(str(pid - 1))
stranger = subprocess.Popen(["sleep", "1000"])
assert stranger.pid == pid, "pid not reused: %d != %d" % (stranger.pid, pid)
def stat(p):
    s = open("/proc/%d/stat" % p).read()
    return s[s.rfind(")") + 2:].split()
st0 = stat(pid)
results = {}
results["status"] = status()["status"]
results["kill"] = run("kill", cid, "KILL").returncode
results["kill_term"] = run("kill", cid, "TERM").returncode
results["pause"] = run("pause", cid).returncode
results["exec"] = run("exec", cid, "true").returncode
time.sleep(0.1)
results["stranger_alive"] = stranger.poll() is None
results["stranger_state"] = stat(pid)[0]
results["stranger_start_same"] = stat(pid)[19] == st0[19]
results["delete"] = run("delete", cid).returncode
results["stranger_alive_after_delete"] = stranger.poll() is None
stranger.kill(); stranger.wait()
print(json.dumps(results))
"#;
    let out = host_cmd(
        "unshare",
        &[
            "--pid",
            "--mount",
            "--fork",
            "--mount-proc",
            "python3",
            "-c",
            script,
            runtime().to_str().unwrap(),
            c.root.to_str().unwrap(),
            c.bundle.to_str().unwrap(),
            &c.id,
        ],
    );
    out.ok();
    let r: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("pid reuse script printed no JSON ({e}): {out:?}"));
    assert_eq!(r["status"], "stopped", "{r}");
    assert_ne!(r["kill"], 0, "kill reached a reused pid: {r}");
    assert_ne!(r["kill_term"], 0, "kill reached a reused pid: {r}");
    assert_ne!(r["pause"], 0, "pause of a dead container succeeded: {r}");
    assert_ne!(r["exec"], 0, "exec into a dead container succeeded: {r}");
    assert_eq!(r["stranger_alive"], true, "{r}");
    assert_eq!(r["stranger_state"], "S", "stranger not sleeping: {r}");
    assert_eq!(r["stranger_start_same"], true, "{r}");
    assert_eq!(r["delete"], 0, "delete of the stopped container: {r}");
    assert_eq!(r["stranger_alive_after_delete"], true, "{r}");
}

#[test]
fn tiny_limits_run_true() {
    let mut c = Ctx::new("tiny_limits");
    c.set_args(&["/bin/true"]);
    c.spec["linux"]["resources"] = json!({
        "memory": {"limit": 4 * 1024 * 1024},
        "pids": {"limit": 1}
    });
    let id = c.id.clone();
    let out = c.run_id(&id, &[]);
    out.ok();
}

/// A container directory as a create killed early leaves it: no state file at all, or only the
/// preliminary one whose creator is gone. `list` answers, `delete --force` removes it.
#[test]
fn interrupted_create_leftovers_are_deletable() {
    skiff_only!("skiff's preliminary state");
    let c = Ctx::new("interrupted");
    let bare = c.new_id();
    let prelim = c.new_id();
    c.track(&bare);
    c.track(&prelim);
    fs::create_dir_all(c.root.join(&bare)).unwrap();
    fs::create_dir_all(c.root.join(&prelim)).unwrap();
    // A creator that has exited: its pid and a start time that cannot match any process.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let st = json!({
        "ociVersion": "1.3.0", "id": prelim, "pid": 0, "pidStartTime": 0,
        "bundle": c.bundle, "rootfs": c.rootfs_path(), "created": "2024-01-01T00:00:00Z",
        "owner": "root", "creator": [gone_pid, 1],
        "cgroup": null, "ownPidNs": true
    });
    fs::write(
        c.root.join(&prelim).join("state.json"),
        serde_json::to_vec(&st).unwrap(),
    )
    .unwrap();
    let list = c.rt(&["list", "--format", "json"]);
    list.ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let listed = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == prelim.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{prelim} not listed: {v}"));
    assert_eq!(listed["status"], "stopped", "{listed}");
    c.delete_id(&bare, true).ok();
    c.delete_id(&prelim, true).ok();
    assert!(!c.root.join(&bare).exists());
    assert!(!c.root.join(&prelim).exists());
}

/// skiff never writes a partial state file (write_atomic), but one can still be damaged
/// (disk full with another writer, manual edits, a crash of the whole machine on a persistent
/// --root). Then nothing can remove the container short of `rm -r`: `list` hides it and
/// `delete --force` refuses.
#[test]
fn delete_force_removes_a_corrupt_state() {
    let c = Ctx::new("corrupt_state");
    let id = c.new_id();
    c.track(&id);
    fs::create_dir_all(c.root.join(&id)).unwrap();
    fs::write(
        c.root.join(&id).join("state.json"),
        br#"{"ociVersion":"1.3.0","id":"x","pid":"#,
    )
    .unwrap();
    c.delete_id(&id, true).ok();
    assert!(!c.root.join(&id).exists());
}

/// Every input under fuzz/regressions/<target>/ through the same functions the fuzzer runs.
/// Files named `open-bug-*` reproduce a bug that is not fixed yet: see the ignored tests below.
#[test]
fn fuzz_regressions() {
    let dir = repo().join("fuzz/regressions");
    let mut n = 0;
    for target in fuzz_checks::TARGETS {
        let Ok(rd) = fs::read_dir(dir.join(target)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("open-bug-") || name.starts_with('.') {
                continue;
            }
            let data = fs::read(e.path()).unwrap();
            eprintln!("replaying {target}/{name}");
            fuzz_checks::run(target, &data);
            n += 1;
        }
    }
    assert!(n > 0, "no regression inputs under {}", dir.display());
}

fn replay(target: &str, file: &str) {
    let p = repo().join("fuzz/regressions").join(target).join(file);
    let data = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    fuzz_checks::run(target, &data);
}

/// Found by the `update` fuzz target: `skiff events --interval 44444444444444444444444444415m.5s`
/// (or any duration beyond u64 seconds) panics in Duration::from_secs_f64, which with
/// panic=abort kills skiff with SIGABRT instead of an "invalid duration" error.
#[test]
fn fuzz_go_duration_overflow() {
    replay("update", "go-duration-overflow");
    assert!(skiff::container::resources::parse_go_duration("99999999999999999999999h").is_err());
}

/// `update --memory nan` sets a limit of 0 and `--memory inf` one of i64::MAX: parse_bytes
/// takes whatever f64 parses, NaN and infinities included.
#[test]
fn update_sizes_refuse_nan_and_inf() {
    use skiff::container::resources::parse_bytes;
    for bad in ["nan", "NaN", "inf", "infinity", "1e400", "nanm"] {
        assert!(parse_bytes(bad).is_err(), "{bad:?} accepted");
    }
}

/// Ctrl-C or SIGTERM while `run` or `create` is still setting the container up (here: a
/// prestart hook that would sleep for a minute) stops it at once, with the shell's 128+N, and
/// leaves nothing: no state, no cgroup, no init, no hook.
#[test]
fn setup_stops_on_sigterm_and_sigint_and_leaves_nothing() {
    skiff_only!("runc blocks these signals during setup and waits for the hook");
    let mut c = Ctx::new("setup_stopped");
    let marker = c.path("hook-started");
    c.spec["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 60", marker.display())]}]});
    c.write_spec();
    let bundle = c.bundle.to_str().unwrap().to_string();
    for (verb, sig) in [
        ("run", libc::SIGTERM),
        ("create", libc::SIGINT),
        ("run", libc::SIGHUP),
    ] {
        let _ = fs::remove_file(&marker);
        let id = c.new_id();
        c.track(&id);
        let child = c
            .command(&[verb, "--bundle", &bundle, &id])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let hook_pid: i32 = wait_for(Duration::from_secs(10), "the hook", || {
            fs::read_to_string(&marker).ok()?.trim().parse().ok()
        });
        let t = std::time::Instant::now();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        let waited = t.elapsed();
        assert_eq!(
            out.status.code(),
            Some(128 + sig),
            "{verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("interrupted"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            waited < Duration::from_secs(10),
            "{verb} took {waited:?} to stop"
        );
        assert!(
            !std::path::Path::new(&format!("/proc/{hook_pid}")).exists()
                || proc_state(hook_pid) == Some('Z'),
            "the hook {hook_pid} still runs"
        );
        assert!(!c.root.join(&id).exists(), "state left for {id}");
        c.assert_clean();
    }
}
