//! Hooks: all six stages, their order, state on stdin, env, timeout and failure rules.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const STAGES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A hook that records its stage, stdin and $HOOKVAR in `dir` (a path valid where it runs).
fn recording_hook(stage: &str, dir: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo {stage} >> {dir}/order; cat > {dir}/{stage}.json; echo \"$HOOKVAR\" > {dir}/{stage}.env")],
        "env": ["HOOKVAR=hello-from-{stage}".replace("{stage}", stage)]
    })
}

fn hook_dir(c: &Ctx) -> String {
    let d = c.path("hooks");
    fs::create_dir_all(&d).unwrap();
    d.to_str().unwrap().to_string()
}

#[test]
fn all_six_stages() {
    let mut c = Ctx::new("hooks_all");
    let dir = hook_dir(&c);
    c.add_mount(
        json!({"destination": "/hooks", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    let mut hooks = serde_json::Map::new();
    for s in STAGES {
        // startContainer runs inside the container: its path and files are the container's.
        let d = if s == "startContainer" {
            "/hooks"
        } else {
            dir.as_str()
        };
        hooks.insert(s.to_string(), json!([recording_hook(s, d)]));
    }
    c.spec["hooks"] = Value::Object(hooks);
    c.sh_args("echo user-process >> /hooks/order; exec sleep 60");
    let pid = c.create_ok();
    let order = || fs::read_to_string(Path::new(&dir).join("order")).unwrap_or_default();
    let o = order();
    assert!(
        o.starts_with("prestart\ncreateRuntime\ncreateContainer\n"),
        "{o}"
    );
    // runc 1.1 runs poststart already during create (fixed in runc 1.2); the spec says after start.
    if is_skiff() {
        assert_eq!(o, "prestart\ncreateRuntime\ncreateContainer\n");
    }
    c.start().ok();
    wait_for(
        Duration::from_secs(10),
        "startContainer and poststart",
        || {
            let o = order();
            (o.contains("poststart") && o.contains("user-process")).then_some(())
        },
    );
    let o = order();
    let pos = |s: &str| {
        o.find(&format!("{s}\n"))
            .unwrap_or_else(|| panic!("{s} missing: {o}"))
    };
    assert!(pos("createContainer") < pos("startContainer"), "{o}");
    assert!(pos("startContainer") < pos("user-process"), "{o}");
    if is_skiff() {
        assert!(pos("startContainer") < pos("poststart"), "{o}");
    }
    c.kill_id(&c.id, "KILL").ok();
    c.wait_status(&c.id, "stopped");
    c.delete_id(&c.id, false).ok();
    let o = order();
    assert!(o.ends_with("poststop\n"), "{o}");

    for s in STAGES {
        let text = fs::read_to_string(Path::new(&dir).join(format!("{s}.json"))).unwrap();
        let st: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{s} stdin not state JSON ({e}): {text}"));
        assert_eq!(st["id"], c.id.as_str(), "{s}: {st}");
        assert!(st["ociVersion"].is_string(), "{s}: {st}");
        assert!(
            st["bundle"].as_str().unwrap_or("").ends_with("/bundle"),
            "{s}: {st}"
        );
        let in_container = s == "createContainer" || s == "startContainer";
        if s != "poststop" && (is_skiff() || !in_container) {
            // The host pid, also for the hooks that run in the container's namespaces
            // (runc 1.1 reports 1 there).
            assert_eq!(st["pid"].as_i64(), Some(pid as i64), "{s}: {st}");
        }
        let env = fs::read_to_string(Path::new(&dir).join(format!("{s}.env"))).unwrap();
        assert_eq!(env.trim(), format!("hello-from-{s}"), "{s} env");
    }
}

/// A create whose `stage` hook exits 1 must fail and leave nothing behind.
fn failing_create_hook(stage: &str) {
    let mut c = Ctx::new(&format!("hookfail-{}", stage.to_lowercase()));
    c.spec["hooks"] = json!({ stage: [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-says-no >&2; exit 1"]}] });
    c.set_args(&["sleep", "60"]);
    let out = c.create();
    out.fails();
    if is_skiff() {
        assert!(
            out.stderr.contains(stage),
            "error should name the hook stage: {out:?}"
        );
    }
    assert!(
        !c.root.join(&c.id).exists(),
        "state dir left after failing {stage} hook"
    );
    c.assert_clean();
}

#[test]
fn failing_prestart_fails_create() {
    failing_create_hook("prestart");
}

#[test]
fn failing_create_runtime_fails_create() {
    failing_create_hook("createRuntime");
}

#[test]
fn failing_create_container_fails_create() {
    failing_create_hook("createContainer");
}

#[test]
fn failing_start_container_fails_start() {
    let mut c = Ctx::new("hookfail-startc");
    let marker = c.path("ran");
    c.spec["hooks"] =
        json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]});
    c.add_mount(json!({"destination": "/out", "type": "bind", "source": c.tmp.path().to_str().unwrap(), "options": ["rbind"]}));
    c.sh_args("touch /out/ran; sleep 60");
    let pid = c.create_ok();
    let out = c.start();
    if is_skiff() {
        out.fails();
    }
    // Whatever start reported, the user process never ran and the container is stopped.
    wait_for(Duration::from_secs(10), "init gone", || {
        (!proc_alive(pid, proc_starttime(pid).unwrap_or(0)) || proc_state(pid).is_none())
            .then_some(())
    });
    assert!(
        !marker.exists(),
        "user process ran despite failing startContainer hook"
    );
}

#[test]
fn failing_poststart_only_warns() {
    skiff_only!("runc 1.1 fails start and kills the container when a poststart hook fails");
    let mut c = Ctx::new("hookfail-poststart");
    c.spec["hooks"] = json!({"poststart": [{"path": "/bin/false", "args": ["false"]}]});
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    let out = c.start();
    out.ok();
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn failing_poststop_only_warns() {
    let mut c = Ctx::new("hookfail-poststop");
    c.spec["hooks"] = json!({"poststop": [{"path": "/bin/false", "args": ["false"]}]});
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    c.delete_id(&c.id, true).ok();
    c.assert_clean();
}

#[test]
fn hook_timeout() {
    let mut c = Ctx::new("hook_timeout");
    c.spec["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}]});
    let t = Instant::now();
    let out = c.create();
    out.fails();
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "timeout not enforced: {:?}",
        t.elapsed()
    );
    if is_skiff() {
        assert!(
            out.stderr.contains("timed out") || out.stderr.contains("timeout"),
            "{out:?}"
        );
    }
    c.assert_clean();
    // The hook process itself must be gone too.
    assert!(
        processes_running("sleep 20").is_empty(),
        "hook process outlived its timeout"
    );
}

/// Pids whose cmdline is exactly `cmd` (space-joined) and that are our descendants' leftovers.
fn processes_running(cmd: &str) -> Vec<i32> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cl) = fs::read(format!("/proc/{pid}/cmdline")) {
            let s: String = String::from_utf8_lossy(&cl)
                .split('\0')
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if s == cmd && !matches!(proc_state(pid), Some('Z') | None) {
                v.push(pid);
            }
        }
    }
    v
}

/// A poststart hook may drive the runtime on its own container (exec into it, pause and resume
/// it): `start` must not hold the container's lock while it waits for its hooks.
#[test]
fn poststart_hook_can_call_the_runtime() {
    let mut c = Ctx::new("hook_calls_runtime");
    let dir = hook_dir(&c);
    let rt = format!("{} --root {}", runtime().display(), c.root.display());
    let script = format!(
        "{rt} exec {id} echo exec-ok > {dir}/out 2>&1; \
         {rt} pause {id} && {rt} resume {id} && echo pause-resume-ok >> {dir}/out",
        id = c.id
    );
    c.spec["hooks"] =
        json!({"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 20}]});
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    assert_eq!(
        fs::read_to_string(Path::new(&dir).join("out")).unwrap_or_default(),
        "exec-ok\npause-resume-ok\n"
    );
    assert_eq!(c.status(&c.id), "running");
}

/// A failing poststart or poststop hook does not stop the ones after it (the spec's MUST),
/// and each failure is a warning naming the hook.
#[test]
fn after_a_failing_post_hook_the_next_ones_still_run() {
    skiff_only!("runc 1.1 stops at the first failing poststart hook and kills the container");
    let mut c = Ctx::new("hookfail-rest");
    let dir = hook_dir(&c);
    let fail = json!({"path": "/bin/false", "args": ["false"]});
    c.spec["hooks"] = json!({
        "poststart": [fail.clone(), recording_hook("poststart", &dir)],
        "poststop": [fail, recording_hook("poststop", &dir)],
    });
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    let out = c.start();
    out.ok();
    assert!(out.stderr.contains("poststart hook /bin/false"), "{out:?}");
    let out = c.delete_id(&c.id, true);
    out.ok();
    assert!(out.stderr.contains("poststop hook /bin/false"), "{out:?}");
    let order = fs::read_to_string(Path::new(&dir).join("order")).unwrap_or_default();
    assert_eq!(order, "poststart\npoststop\n");
}

/// createContainer hooks run in the container's rootfs (as runc runs them; ldconfig hooks
/// and others written for runc rely on it).
#[test]
fn create_container_hooks_run_in_the_rootfs() {
    let mut c = Ctx::new("hook_cwd");
    let dir = hook_dir(&c);
    c.spec["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", format!("pwd > {dir}/cwd")]}]});
    c.create_ok();
    let cwd = fs::read_to_string(Path::new(&dir).join("cwd")).unwrap();
    let rootfs = fs::canonicalize(c.rootfs_path()).unwrap();
    assert_eq!(cwd.trim(), rootfs.to_str().unwrap());
}
