//! `skiff features`: the runtime-spec features document, stating what this
//! binary and this host can really do.

use serde_json::{json, Value};

/// Exactly the options rootfs::options accepts (idmap is refused there).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// What this binary can do, and this host lets it do.
pub fn features_json() -> Value {
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    // The v1/v2 support is in the binary; rdma is driven on both.
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true },
            "seccomp": {
                "enabled": true,
                "actions": crate::seccomp::SUPPORTED_ACTIONS,
                "operators": crate::seccomp::SUPPORTED_OPERATORS,
                "archs": crate::seccomp::SUPPORTED_ARCHS,
                "knownFlags": crate::seccomp::SUPPORTED_FLAGS,
                "supportedFlags": crate::seccomp::SUPPORTED_FLAGS
            },
            "apparmor": { "enabled": crate::lsm::apparmor_enabled() },
            "selinux": { "enabled": crate::lsm::selinux_enabled() },
            "intelRdt": { "enabled": crate::rdt::resctrl_root().is_ok() },
            "mountExtensions": { "idmap": { "enabled": false } },
            "netDevices": { "enabled": true }
        },
        "annotations": { "io.github.skiff.version": env!("CARGO_PKG_VERSION") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_mount_options_match_rootfs() {
        let f = features_json();
        assert_eq!(f["ociVersionMax"], "1.3.0");
        assert_eq!(f["linux"]["cgroup"]["systemd"], false);
        assert_eq!(f["linux"]["namespaces"].as_array().unwrap().len(), 8);
        assert!(f["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN"));
        let opts = f["mountOptions"].as_array().unwrap();
        assert!(!opts.iter().any(|o| o == "idmap" || o == "ridmap"));
        // The features document parses as oci-spec's type.
        let _: oci_spec::runtime::Features = serde_json::from_value(f).unwrap();
    }
}
