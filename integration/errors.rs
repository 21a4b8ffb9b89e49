//! Every failure: non-zero exit, a message naming what failed, one JSON log line, nothing left.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;

/// Create that must fail: checks exit code, message, and that nothing was left behind.
#[track_caller]
fn create_fails(c: &Ctx, skiff_text: &str, other: Option<&str>) -> Out {
    let out = c.create();
    out.fails_with(skiff_text, other);
    assert!(
        !c.root.join(&c.id).exists(),
        "failed create left its state dir"
    );
    c.state_id(&c.id).fails();
    c.assert_clean();
    out
}

#[test]
fn missing_bundle() {
    let c = Ctx::new("missing_bundle");
    c.track(&c.id);
    let nowhere = c.path("no-such-bundle");
    let out = c.rt(&["create", "--bundle", nowhere.to_str().unwrap(), &c.id]);
    out.fails_with(nowhere.to_str().unwrap(), Some("no such file or directory"));
    c.assert_clean();
}

#[test]
fn missing_config() {
    let c = Ctx::new("missing_config");
    c.track(&c.id);
    let out = c.rt(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    out.fails_with("config.json", Some("config.json"));
    c.assert_clean();
}

#[test]
fn unreadable_config() {
    let c = Ctx::new("unreadable_config");
    c.track(&c.id);
    // We are root, so mode 000 would still be readable: a directory is unreadable for everyone.
    fs::create_dir(c.bundle.join("config.json")).unwrap();
    let out = c.rt(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    out.fails_with("config.json", None);
    c.assert_clean();
}

/// A config.json that is a FIFO: refused at once (nobody writes to it), not waited for.
#[test]
fn fifo_config_is_refused_without_waiting() {
    skiff_only!("runc opens config.json and waits for a writer");
    let c = Ctx::new("fifo_config");
    c.track(&c.id);
    nix::unistd::mkfifo(
        &c.bundle.join("config.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let out = c.rt(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    out.fails_with("config.json: not a regular file", None);
    c.assert_clean();
}

#[test]
fn malformed_json_says_where() {
    let c = Ctx::new("malformed_json");
    c.track(&c.id);
    fs::write(
        c.bundle.join("config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}\n",
    )
    .unwrap();
    let out = c.rt(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    out.fails_with("line 3 column", None);
    c.assert_clean();
}

#[test]
fn bad_oci_version() {
    skiff_only!("runc 1.1 does not check ociVersion");
    let mut c = Ctx::new("bad_version");
    c.spec["ociVersion"] = json!("2.0.0");
    create_fails(&c, "ociVersion", None);
}

#[test]
fn missing_root_path() {
    let mut c = Ctx::new("missing_root");
    c.spec["root"]["path"] = json!("no-such-rootfs");
    create_fails(&c, "no-such-rootfs", None);
}

#[test]
fn empty_args() {
    let mut c = Ctx::new("empty_args");
    c.spec["process"]["args"] = json!([]);
    create_fails(&c, "process.args", Some("args"));
}

#[test]
fn executable_not_found_is_named() {
    let mut c = Ctx::new("exe_not_found");
    c.set_args(&["no-such-binary-xyz"]);
    let out = c.run_id(&c.id.clone(), &[]);
    out.fails_with(
        "executable file not found in $PATH",
        Some("executable file not found"),
    );
    assert!(out.stderr.contains("no-such-binary-xyz"), "{out:?}");
    assert!(!c.root.join(&c.id).exists());
}

#[test]
fn executable_not_found_absolute() {
    let mut c = Ctx::new("exe_abs_not_found");
    c.set_args(&["/bin/no-such-binary-abs"]);
    let out = c.run_id(&c.id.clone(), &[]);
    out.fails_with("/bin/no-such-binary-abs", Some("no-such-binary-abs"));
}

#[test]
fn invalid_ids() {
    let c = Ctx::new("invalid_ids");
    c.write_spec();
    for bad in ["../x", "", "a/b", "..", "."] {
        let out = c.rt(&["create", "--bundle", c.bundle.to_str().unwrap(), bad]);
        let runc_text = if bad.is_empty() {
            None
        } else {
            Some("invalid")
        };
        out.fails_with("invalid container ID format", runc_text);
    }
    // Nothing may have been created anywhere near the state root.
    let names: Vec<_> = fs::read_dir(&c.root)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(names.is_empty(), "state root has {names:?}");
    assert!(!c.tmp.path().join("x").exists());
    c.assert_clean();
}

#[test]
fn duplicate_id() {
    let mut c = Ctx::new("duplicate_id");
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    let out = c.create();
    out.fails_with(
        "container with given ID already exists",
        Some("already exists"),
    );
    // The first container is untouched.
    assert_eq!(c.status(&c.id), "created");
    assert_eq!(c.state_json(&c.id)["pid"].as_i64(), Some(pid as i64));
}

#[test]
fn unknown_id() {
    let c = Ctx::new("unknown_id");
    for cmd in ["start", "kill", "state", "delete"] {
        c.rt(&[cmd, "no-such-container"])
            .fails_with("container does not exist", Some("does not exist"));
    }
}

#[test]
fn start_and_kill_on_stopped() {
    let mut c = Ctx::new("stopped_ops");
    c.set_args(&["true"]);
    c.create_ok();
    c.start().ok();
    c.wait_status(&c.id, "stopped");
    let s = c.start();
    s.fails();
    let k = c.kill_id(&c.id, "KILL");
    k.fails();
    if is_skiff() {
        for o in [&s, &k] {
            assert!(
                o.stderr.contains("container not running") || o.stderr.contains("does not exist"),
                "{o:?}"
            );
        }
    }
}

#[test]
fn nonexistent_namespace_path() {
    let mut c = Ctx::new("ns_missing");
    let p = c.path("no-such-netns");
    c.set_namespace("network", Some(p.to_str().unwrap()));
    create_fails(&c, p.to_str().unwrap(), Some("no-such-netns"));
}

#[test]
fn wrong_namespace_type_path() {
    let mut c = Ctx::new("ns_wrong_type");
    // An ipc namespace file given as the network namespace.
    c.set_namespace("network", Some("/proc/self/ns/ipc"));
    let out = c.create();
    out.fails();
    if is_skiff() {
        assert!(
            out.stderr.contains("/proc/self/ns/ipc") || out.stderr.contains("network"),
            "{out:?}"
        );
    }
    assert!(!c.root.join(&c.id).exists());
    c.assert_clean();
    // A regular file is not a namespace either.
    let f = c.path("plainfile");
    fs::write(&f, "x").unwrap();
    c.set_namespace("network", Some(f.to_str().unwrap()));
    c.create().fails();
    c.assert_clean();
}

#[test]
fn json_log_one_error_line() {
    let c = Ctx::new("json_log");
    let log = c.path("log.json");
    let out = c.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "no-such-ctr",
    ]);
    out.fails_with("container does not exist", Some("does not exist"));
    let text = fs::read_to_string(&log).expect("log file written");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .filter(|v| v["level"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "log: {text}");
    if is_skiff() {
        assert_eq!(lines.len(), 1, "skiff writes exactly one line: {text}");
    }
    let e = &errors[0];
    assert!(
        e["msg"].as_str().unwrap_or("").contains("does not exist"),
        "{e}"
    );
    let time = e["time"].as_str().unwrap_or("");
    assert!(
        time.len() >= 20 && time.as_bytes()[10] == b'T',
        "time not RFC3339: {time}"
    );
}

#[test]
fn json_log_on_create_failure() {
    let mut c = Ctx::new("json_log_create");
    c.spec["process"]["args"] = json!([]);
    c.write_spec();
    c.track(&c.id);
    let log = c.path("log.json");
    let b = c.bundle.to_str().unwrap().to_string();
    let out = c.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format=json",
        "create",
        "--bundle",
        &b,
        &c.id,
    ]);
    out.fails();
    let text = fs::read_to_string(&log).expect("log file written");
    let n = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "error")
        .count();
    assert_eq!(n, 1, "log: {text}");
    c.assert_clean();
}

#[test]
fn rootfs_not_a_directory() {
    let mut c = Ctx::new("rootfs_file");
    let f = c.bundle.join("rootfs-file");
    fs::write(&f, "").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    c.spec["root"]["path"] = json!("rootfs-file");
    create_fails(&c, "rootfs-file", None);
}

/// Arguments and paths that are not UTF-8 are valid on Linux: never a panic (abort, 134). A
/// state root with such a name works; ids, which must be [A-Za-z0-9_+.-], are refused.
#[test]
fn non_utf8_arguments_never_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let mut c = Ctx::new("non_utf8");
    c.sh_args("echo ran");
    c.write_spec();
    let bad = OsStr::from_bytes(b"x\xffy");
    let root = c.tmp.path().join(OsStr::from_bytes(b"root-\xff"));
    let bundle = c.bundle.clone();
    let run = |args: &[&OsStr]| {
        let out = std::process::Command::new(runtime())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(134), "{args:?}: {err}");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            err,
        )
    };
    assert_ne!(run(&[OsStr::new("state"), bad]).0, Some(0));
    assert_ne!(
        run(&[OsStr::new("delete"), OsStr::new("--force"), bad]).0,
        Some(0)
    );
    assert_ne!(
        run(&[OsStr::new("exec"), bad, OsStr::new("true")]).0,
        Some(0)
    );
    assert_ne!(run(&[OsStr::new("kill"), OsStr::new("x"), bad]).0, Some(0));
    let id = c.new_id();
    let (code, out, err) = run(&[
        OsStr::new("--root"),
        root.as_os_str(),
        OsStr::new("run"),
        OsStr::new("--bundle"),
        bundle.as_os_str(),
        OsStr::new(&id),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "ran\n");
    let (code, _, _) = run(&[OsStr::new("--root"), root.as_os_str(), OsStr::new("list")]);
    assert_eq!(code, Some(0));
}

/// Errors that used to mislead: a hostname longer than the kernel allows (it broke the
/// init's report: "sync: decode message"), and a memory limit below what setting up takes
/// (the init was OOM-killed: "exited during setup without a reason").
#[test]
fn too_long_hostname_is_named() {
    let mut c = Ctx::new("long_hostname");
    c.spec["hostname"] = json!("h".repeat(100_000));
    create_fails(&c, "hostname: is 100000 bytes long", Some("hostname"));
}

#[test]
fn memory_limit_too_low_for_setup_is_named() {
    let mut c = Ctx::new("tiny_memory");
    c.spec["linux"]["resources"]["memory"] = json!({"limit": 1});
    create_fails(&c, "linux.resources.memory.limit", Some("memory limit"));
}

/// The phrases engines and scripts look for come first, then skiff's detail.
#[test]
fn error_texts_carry_runcs_phrases() {
    let mut c = Ctx::new("phrases");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    c.rt(&["pause", &c.id]).ok();
    c.rt(&["exec", &c.id, "true"]).fails_with(
        "cannot exec in a paused container",
        Some("cannot exec in a paused container"),
    );
    c.rt(&["resume", &c.id]).ok();

    // A resource this host cannot honour (no net_cls controller here, or none on v2).
    let mut c2 = Ctx::new("phrases_res");
    c2.spec["linux"]["resources"]["network"] = json!({"classID": 1048577});
    let out = c2.create();
    if out.code != 0 {
        out.fails_with("invalid configuration", None);
    }
    c2.assert_clean();

    let mut c3 = Ctx::new("phrases_agent");
    c3.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": c3.path("nobody-listens").to_str().unwrap(),
        "syscalls": [{"names": ["sched_get_priority_max"], "action": "SCMP_ACT_NOTIFY"}]
    });
    c3.run_sh("true")
        .fails_with("failed to connect with seccomp agent", None);
    c3.assert_clean();
}

/// --debug writes each setup step to the --log file, in its format; --log FILE exists after
/// any command, even one that logged nothing.
#[test]
fn debug_log_and_log_file() {
    let mut c = Ctx::new("debug_log");
    let log = c.path("debug.log");
    c.sh_args("true");
    let id = c.id.clone();
    c.run_with(&id, &[], |cmd| {
        let args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_os_string()).collect();
        *cmd = std::process::Command::new(runtime());
        cmd.args(["--debug", "--log-format", "json", "--log"])
            .arg(&log)
            .args(args);
        cmd.stdin(std::process::Stdio::null());
    })
    .ok();
    let text = fs::read_to_string(&log).unwrap();
    if is_skiff() {
        for step in [
            "namespaces",
            "cgroups",
            "init cloned",
            "init ready",
            "start ",
        ] {
            assert!(text.contains(step), "no {step:?} line:\n{text}");
        }
    }
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["msg"].is_string(), "{line}");
    }
    let quiet = c.path("quiet.log");
    c.rt(&["--log", quiet.to_str().unwrap(), "list"]).ok();
    assert!(quiet.exists(), "--log file not created");
}
