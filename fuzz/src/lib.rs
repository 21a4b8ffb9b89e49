//! One function per fuzz target: feed an input through what skiff does with it. A panic (or an
//! abort, or a sanitizer report) is a finding; an `Err` is the right answer to bad input.
//!
//! The same file is compiled into the integration tests (integration/reliability.rs includes it
//! by #[path]) so that every input under fuzz/regressions/<target>/ is replayed by `cargo test`.
//! skiff-image is a binary, not a library: its store, unpack and bundle modules are included
//! here by #[path] as well (they use nothing of skiff-image but themselves and skiff::error).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[allow(dead_code, unused_imports)]
#[path = "../../src/bin/skiff-image/bundle.rs"]
pub mod image_bundle;
#[allow(dead_code, unused_imports)]
#[path = "../../src/bin/skiff-image/store.rs"]
pub mod image_store;
#[allow(dead_code, unused_imports)]
#[path = "../../src/bin/skiff-image/unpack.rs"]
pub mod image_unpack;

/// The fuzz target names, as under fuzz/fuzz_targets/ and fuzz/regressions/.
pub const TARGETS: &[&str] = &[
    "config",
    "seccomp",
    "state",
    "update",
    "image_manifest",
    "image_layer",
];

/// Run `data` through the target `name`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "config" => config(data),
        "seccomp" => seccomp(data),
        "state" => state(data),
        "update" => update(data),
        "image_manifest" => image_manifest(data),
        "image_layer" => image_layer(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// A bundle with an empty rootfs directory, made once per process (never removed: the
/// process is a fuzzer or a test binary, and the directory lives under the temp dir).
fn bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("skiff-fuzz-bundle-")
            .tempdir()
            .expect("tempdir")
            .keep();
        std::fs::create_dir(dir.join("rootfs")).expect("mkdir rootfs");
        dir
    })
}

/// config.json as `create` reads it: parse, the user-namespace checks, then every plan
/// (namespaces, id maps, rootfs and mounts, sysctl, process, seccomp, hooks, cgroups, ...).
pub fn config(data: &[u8]) {
    let Ok(spec) = skiff::config::parse(data) else {
        return;
    };
    let _ = skiff::namespaces::userns::check(&spec);
    let opts = skiff::container::CreateOptions {
        id: "fuzz".into(),
        bundle: bundle().to_path_buf(),
        ..Default::default()
    };
    let _ = skiff::container::plan::ContainerPlan::from_spec(&spec, &opts);
    // The pieces again on their own: from_spec stops at the first error.
    if let Ok(ns) = skiff::namespaces::NamespacePlan::from_spec(&spec) {
        let _ = skiff::namespaces::sysctl::SysctlPlan::from_spec(
            spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()),
            &ns,
        );
    }
    if let Ok(plan) = skiff::cgroups::CgroupPlan::from_spec(&spec, "fuzz") {
        cgroup_plan_ops(&plan);
    }
}

fn host_cgroups() -> Option<&'static (skiff::cgroups::HostCgroups, skiff::cgroups::HostLimits)> {
    static H: OnceLock<Option<(skiff::cgroups::HostCgroups, skiff::cgroups::HostLimits)>> =
        OnceLock::new();
    H.get_or_init(|| {
        Some((
            skiff::cgroups::HostCgroups::probe().ok()?,
            skiff::cgroups::HostLimits::probe().ok()?,
        ))
    })
    .as_ref()
}

fn cgroup_plan_ops(plan: &skiff::cgroups::CgroupPlan) {
    if let Some((cg, limits)) = host_cgroups() {
        let _ = plan.check_host(limits);
        let _ = plan.ops(cg);
    }
    let _ = plan.device_state();
    let _ = plan.limits_asked();
}

/// linux.seccomp: translate and compile to BPF, as `create` and `exec` do.
pub fn seccomp(data: &[u8]) {
    let Ok(s) = serde_json::from_slice::<oci_spec::runtime::LinuxSeccomp>(data) else {
        return;
    };
    let Ok(plan) = skiff::seccomp::SeccompPlan::from_spec(&s) else {
        return;
    };
    let _ = plan.execve_denial();
    let _ = plan.needs_listener();
    if let Ok(f) = skiff::seccomp::compile(&plan) {
        assert!(
            f.instructions().len() <= skiff::seccomp::MAX_INSNS,
            "compiled filter of {} instructions exceeds the kernel's limit",
            f.instructions().len()
        );
    }
}

/// `<root>/<id>/state.json` as every command reads it: load, derive the status (reads /proc and
/// the cgroup files named in the state: read-only), print `state`; and what `save` writes must
/// load again.
pub fn state(data: &[u8]) {
    let Ok(st) = serde_json::from_slice::<skiff::state::ContainerState>(data) else {
        return;
    };
    let store = skiff::state::Store::new(bundle().join("state-root"));
    let _ = store.status(&st);
    let _ = skiff::container::state_json(&store, &st);
    let bytes = serde_json::to_vec(&st).expect("a loaded state serializes");
    if let Err(e) = serde_json::from_slice::<skiff::state::ContainerState>(&bytes) {
        panic!(
            "a state skiff saves does not load again: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// `skiff update`: the --resources JSON (what bin/skiff.rs update_resources does with it:
/// a JSON object deserialized to LinuxResources), validated as for a running container; and
/// the size/duration strings the flags take. The first byte picks what the rest is.
pub fn update(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 | 1 => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            if !v.is_object() {
                return;
            }
            let Ok(r) = serde_path_to_error::deserialize::<_, oci_spec::runtime::LinuxResources>(v)
            else {
                return;
            };
            if let Ok(plan) = skiff::cgroups::CgroupPlan::from_resources("/skiff/fuzz".into(), r) {
                cgroup_plan_ops(&plan);
            }
        }
        2 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = skiff::container::resources::parse_bytes(s);
            }
        }
        _ => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = skiff::container::resources::parse_go_duration(s);
            }
        }
    }
}

/// skiff-image: index.json and manifests as read from a store or an archive, their digests,
/// and an image config turned into config.json (with /etc/passwd and /etc/group lookups).
/// The first byte picks what the rest is.
pub fn image_manifest(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            if let Ok(ix) = serde_json::from_slice::<image_store::Index>(rest) {
                for d in &ix.manifests {
                    let _ = image_store::digest_hex(&d.digest);
                }
            }
        }
        1 => {
            if let Ok(m) = serde_json::from_slice::<image_store::Manifest>(rest) {
                let _ = image_store::digest_hex(&m.config.digest);
                for d in &m.layers {
                    let _ = image_store::digest_hex(&d.digest);
                }
            }
        }
        _ => {
            // image config JSON \0 passwd \0 group
            let mut parts = rest.splitn(3, |&b| b == 0);
            let cfg = parts.next().unwrap_or_default();
            let passwd = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let group = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(cfg) else {
                return;
            };
            let base = skiff::spec_template::default_spec();
            let _ = image_bundle::make_spec(
                base,
                &cfg,
                &passwd,
                &group,
                &image_bundle::BundleOpts::default(),
            );
            if let Some(u) = cfg.pointer("/config/User").and_then(|u| u.as_str()) {
                let _ = image_bundle::resolve_user(u, &passwd, &group);
            }
        }
    }
}

/// skiff-image unpack: one layer blob (tar, gzip or zstd) applied onto an empty root in a
/// fresh temp dir. Afterwards nothing may exist outside that root.
pub fn image_layer(data: &[u8]) {
    let tmp = tempfile::Builder::new()
        .prefix("skiff-fuzz-layer-")
        .tempdir()
        .expect("tempdir");
    let root = tmp.path().join("rootfs");
    std::fs::create_dir(&root).expect("mkdir rootfs");
    let canary = tmp.path().join("outside");
    if let Ok(mut a) = image_unpack::Applier::new(&root) {
        if a.apply(data).is_ok() {
            let _ = a.finish();
        }
    }
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read tmp")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        names.len() == 1 && names[0] == "rootfs" && !canary.exists(),
        "a layer wrote outside its root: {names:?}"
    );
    // Whatever modes the layer set, the temp dir must go (unprivileged, modes matter).
    if std::fs::remove_dir_all(tmp.path()).is_err() {
        open_up(tmp.path());
    }
}

fn open_up(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    if md.is_dir() {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                open_up(&e.path());
            }
        }
    }
}
