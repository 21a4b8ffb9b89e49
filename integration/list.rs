//! `list` in its three forms.

use crate::common::*;
use serde_json::Value;

#[test]
fn list_empty() {
    let c = Ctx::new("list_empty");
    let out = c.rt(&["list", "--format", "json"]);
    out.ok();
    let t = out.stdout.trim();
    assert!(t == "null" || t == "[]", "{out:?}");
    let out = c.rt(&["list", "-q"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "");
}

#[test]
fn list_formats() {
    let mut c = Ctx::new("list_formats");
    c.set_args(&["sleep", "60"]);
    let pid = c.create_ok();
    let id2 = c.new_id();
    c.create_id(&id2, &[]).ok();
    c.start_id(&id2).ok();

    let table = c.rt(&["list"]);
    table.ok();
    let lines = table.lines();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table:?}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with(&format!("{} ", c.id)))
        .expect("row for id");
    let f: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(f[1], pid.to_string());
    assert_eq!(f[2], "created");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&id2) && l.contains("running")),
        "{table:?}"
    );

    let json = c.rt(&["list", "--format", "json"]);
    json.ok();
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    let me = arr
        .iter()
        .find(|e| e["id"] == c.id.as_str())
        .expect("id in json");
    assert_eq!(me["pid"].as_i64(), Some(pid as i64));
    assert_eq!(me["status"], "created");

    let q = c.rt(&["list", "-q"]);
    q.ok();
    let mut ids: Vec<&str> = q.lines();
    ids.sort();
    let mut want = vec![c.id.as_str(), id2.as_str()];
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn spec_default_and_rootless() {
    let c = Ctx::new("spec_cmd");
    let dir = c.path("specdir");
    std::fs::create_dir(&dir).unwrap();
    c.rt(&["spec", "--bundle", dir.to_str().unwrap()]).ok();
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert!(v["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(v["root"]["path"], "rootfs");
    assert!(v["process"]["args"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for k in ["pid", "mount", "ipc", "uts", "network"] {
        assert!(ns.contains(&k), "{k} missing in {ns:?}");
    }
    assert!(!ns.contains(&"user"));
    // An existing config.json is not overwritten.
    c.rt(&["spec", "--bundle", dir.to_str().unwrap()]).fails();

    let rl = c.path("rootless");
    std::fs::create_dir(&rl).unwrap();
    c.rt(&["spec", "--rootless", "--bundle", rl.to_str().unwrap()])
        .ok();
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(rl.join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(ns.contains(&"user"), "{ns:?}");
    assert!(
        !ns.contains(&"network"),
        "rootless spec should not ask for a netns: {ns:?}"
    );
    assert!(!v["linux"]["uidMappings"].as_array().unwrap().is_empty());
    assert!(!v["linux"]["gidMappings"].as_array().unwrap().is_empty());
}

/// The order of keys scripts grep for: `state` and `list --format json` as runc prints them
/// (ociVersion, id, pid, status, bundle, rootfs, created, then owner), `events` lines as
/// {"type", "id", "data"}.
#[test]
fn json_key_order_is_runcs() {
    let mut c = Ctx::new("key_order");
    c.set_args(&["sleep", "60"]);
    c.create_ok();
    c.start().ok();
    let keys = |text: &str| -> Vec<String> {
        // Top-level keys in the order they appear.
        let mut v = Vec::new();
        let mut depth = 0;
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                b'"' => {
                    let end = i + 1 + text[i + 1..].find('"').unwrap();
                    let after = text[end + 1..].trim_start();
                    if depth == 1 && after.starts_with(':') {
                        v.push(text[i + 1..end].to_string());
                    }
                    i = end;
                }
                _ => {}
            }
            i += 1;
        }
        v
    };
    let runc_order = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ];
    let state = c.state_id(&c.id);
    state.ok();
    assert_eq!(keys(&state.stdout), runc_order, "{}", state.stdout);
    let list = c.rt(&["list", "--format", "json"]);
    list.ok();
    let inner = list
        .stdout
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    assert_eq!(keys(inner), runc_order, "{}", list.stdout);
    let events = c.rt(&["events", "--stats", &c.id]);
    events.ok();
    assert!(
        events.stdout.starts_with(&format!(
            "{{\"type\":\"stats\",\"id\":\"{}\",\"data\":",
            c.id
        )),
        "{}",
        events.stdout
    );
}

/// `skiff spec` puts a cgroup namespace in only where cgroup v2 is the host's hierarchy, as runc
/// does.
#[test]
fn spec_cgroup_namespace_only_on_unified_hosts() {
    let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let c = Ctx::new("spec_cgroupns");
    let has = c.spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "cgroup");
    assert_eq!(
        has, unified,
        "cgroup namespace in `spec` on a host where unified={unified}"
    );
}
