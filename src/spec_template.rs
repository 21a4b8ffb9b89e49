//! The config.json `skiff spec` writes: runc's defaults, so bundles made
//! for one run unchanged under the other.

use serde_json::{json, Value};

use crate::config::OCI_VERSION;

/// runc's template for this host: a cgroup namespace only where cgroup v2 is the host's
/// hierarchy (as runc does; on v1 and hybrid hosts a cgroup namespace hides the paths tools
/// expect under /sys/fs/cgroup).
pub fn default_spec() -> Value {
    default_spec_for(host_is_unified())
}

/// Whether /sys/fs/cgroup is cgroup2 itself (a unified host).
pub fn host_is_unified() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The template with or without a cgroup namespace (`unified`: the host is cgroup v2 only).
pub fn default_spec_for(unified: bool) -> Value {
    let mut spec = template();
    if !unified {
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "cgroup");
        }
    }
    spec
}

fn template() -> Value {
    json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "skiff",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// The rootless variant: a user namespace mapping root to the caller, no
/// network or cgroup namespace (an unprivileged user cannot set them up
/// usefully), /sys bind-mounted (sysfs needs a network namespace), no
/// devpts gid (gid 5 is not mapped) and no resources.
pub fn rootless_spec(uid: u32, gid: u32) -> Value {
    let mut spec = default_spec();
    let linux = &mut spec["linux"];
    linux["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}
    ]);
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    let mounts: Vec<Value> = spec["mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["type"] != "cgroup")
        .map(|mut m| {
            if m["type"] == "sysfs" {
                m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["type"] == "devpts" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
            m
        })
        .collect();
    spec["mounts"] = Value::Array(mounts);
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_as_valid_configs() {
        for v in [default_spec(), rootless_spec(1000, 1000)] {
            let text = serde_json::to_vec(&v).unwrap();
            crate::config::parse(&text).unwrap();
        }
    }

    #[test]
    fn cgroup_namespace_only_on_unified_hosts() {
        let has = |v: &Value| {
            v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "cgroup")
        };
        assert!(has(&default_spec_for(true)));
        assert!(!has(&default_spec_for(false)));
    }

    #[test]
    fn rootless_maps_the_caller() {
        let v = rootless_spec(1234, 99);
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1234);
        assert_eq!(v["linux"]["gidMappings"][0]["hostID"], 99);
        assert!(v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["type"] != "cgroup"));
    }

    #[test]
    fn rootless_template_passes_the_unprivileged_checks() {
        let text = serde_json::to_vec(&rootless_spec(1234, 99)).unwrap();
        let spec = crate::config::parse(&text).unwrap();
        // No newuidmap needed: only the caller's own ids are mapped.
        crate::namespaces::userns::check_spec(&spec, 1234, 99, false).unwrap();
        let text = serde_json::to_vec(&default_spec()).unwrap();
        let spec = crate::config::parse(&text).unwrap();
        let e = crate::namespaces::userns::check_spec(&spec, 1234, 99, true).unwrap_err();
        assert!(e.to_string().contains("needs a user namespace"), "{e}");
    }
}
