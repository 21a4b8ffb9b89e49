//! `skiff features`: the runtime-spec features document, stating what this
//! binary and this host can really do.

use serde_json::{json, Value};

/// Exactly the options rootfs::options accepts; `idmap` and `ridmap` are
/// added by [`features_json`] only where id-mapped mounts work.
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
    features_with(crate::rootfs::idmap_supported())
}

/// The document, given whether id-mapped mounts work here (probed for real
/// by `rootfs::idmap_supported`: root, and a kernel and filesystem that
/// accept MOUNT_ATTR_IDMAP).
pub fn features_with(idmap: bool) -> Value {
    let mut options: Vec<&str> = MOUNT_OPTIONS.to_vec();
    if idmap {
        options.extend(["idmap", "ridmap"]);
        options.sort_unstable();
    }
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    // The v1/v2 support is in the binary; rdma is driven on both.
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": options,
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
            "apparmor": { "enabled": crate::process::lsm::apparmor_enabled() },
            "selinux": { "enabled": crate::process::lsm::selinux_enabled() },
            "intelRdt": { "enabled": crate::rdt::resctrl_root().is_ok() },
            "mountExtensions": { "idmap": { "enabled": idmap } },
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
        // The features document parses as oci-spec's type.
        let _: oci_spec::runtime::Features = serde_json::from_value(f).unwrap();
    }

    #[test]
    fn idmap_advertised_only_when_it_works() {
        let f = features_with(false);
        let opts = f["mountOptions"].as_array().unwrap();
        assert!(!opts.iter().any(|o| o == "idmap" || o == "ridmap"));
        assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], false);
        let f = features_with(true);
        let opts = f["mountOptions"].as_array().unwrap();
        assert!(opts.iter().any(|o| o == "idmap") && opts.iter().any(|o| o == "ridmap"));
        assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
        // Every advertised option is accepted by the parser.
        let all: Vec<String> = opts
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect();
        for o in &all {
            let parsed = crate::rootfs::parse_mount_options(std::slice::from_ref(o)).unwrap();
            assert!(parsed, "{o} went to the filesystem data");
        }
        // As root on this host (kernel 6.x, ext4), they work.
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(
                features_json()["linux"]["mountExtensions"]["idmap"]["enabled"],
                true
            );
        }
    }
}
