//! Rootless containers (a real unprivileged user the tests create, running the runtime through
//! setpriv) and id-mapped mounts (idmap/ridmap, a mount's own uidMappings/gidMappings).

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const USER: &str = "skiff-rootless";
/// The sub-id range the test user gets in /etc/subuid and /etc/subgid.
const SUB_START: u32 = 400000;
const SUB_SIZE: u32 = 65536;

/// The test user's (uid, gid), created once: no home, no login shell, sub-id ranges.
fn test_user() -> (u32, u32) {
    static USER_IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *USER_IDS.get_or_init(|| {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").arg(flag).arg(USER).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        if id("-u").is_none() {
            let st = Command::new("useradd")
                .args(["--no-create-home", "--shell", "/usr/sbin/nologin", USER])
                .status()
                .expect("useradd");
            assert!(st.success(), "useradd {USER} failed");
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = fs::read_to_string(file).unwrap_or_default();
            if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
                let mut text = text;
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!("{USER}:{SUB_START}:{SUB_SIZE}\n"));
                fs::write(file, text).unwrap_or_else(|e| panic!("write {file}: {e}"));
            }
        }
        (id("-u").expect("uid"), id("-g").expect("gid"))
    })
}

fn sub_ranges() -> (u32, u32) {
    let line = fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{USER}:")))
        .map(String::from)
        .expect("subuid line");
    let f: Vec<&str> = line.split(':').collect();
    (f[1].parse().unwrap(), f[2].parse().unwrap())
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(p)
        .status()
        .expect("chown");
    assert!(st.success(), "chown -R {}", p.display());
}

/// A test world for the unprivileged user: the bundle (rootfs included) and
/// $XDG_RUNTIME_DIR belong to the user, the config comes from `spec --rootless` run as that
/// user, and every runtime command runs as that user without --root.
struct Rootless {
    c: Ctx,
    uid: u32,
    gid: u32,
    xdg: PathBuf,
}

impl Rootless {
    fn new(name: &str) -> Rootless {
        let (uid, gid) = test_user();
        let mut c = Ctx::new(name);
        let xdg = c.path("xdg");
        fs::create_dir(&xdg).unwrap();
        fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        chown_r(&xdg, uid, gid);
        chown_r(&c.bundle, uid, gid);
        // The harness's own cleanup and leftover checks look where the user's state lives.
        c.root = xdg.join("skiff");
        let r = Rootless { c, uid, gid, xdg };
        let out = r.run_as(&[
            "spec",
            "--rootless",
            "--bundle",
            r.c.bundle.to_str().unwrap(),
        ]);
        out.ok();
        let text = fs::read_to_string(r.c.bundle.join("config.json")).unwrap();
        let mut r = r;
        let mut spec: Value = serde_json::from_str(&text).unwrap();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(["true"]);
        r.c.spec = spec;
        r
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("env")
            .arg("-i")
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("XDG_RUNTIME_DIR={}", self.xdg.display()))
            .arg(runtime())
            .args(args);
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    fn run_as(&self, args: &[&str]) -> Out {
        let n = args.len();
        let out = self.c.path(&format!("rl-{}-{n}.out", args[0]));
        let err = self.c.path(&format!("rl-{}-{n}.err", args[0]));
        self.c.exec_cmd(self.command(args), &out, &err)
    }

    /// `run` the current spec in the foreground as the user.
    fn run(&self, id: &str) -> Out {
        self.c.write_spec();
        self.c.track(id);
        let bundle = self.c.bundle.to_str().unwrap().to_string();
        self.run_as(&["run", "--bundle", &bundle, id])
    }

    fn sh(&mut self, script: &str) -> Out {
        self.c.sh_args(script);
        let id = self.c.new_id();
        self.run(&id)
    }
}

#[test]
fn rootless_runs_true_and_reports_exit_codes() {
    skiff_only!("the rootless state location and setup are skiff's");
    let mut r = Rootless::new("rl_true");
    let id = r.c.id.clone();
    r.run(&id).ok();
    let out = r.sh("id -u; id -g; exit 3");
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "0\n0\n");
    // Root in the container is the user on the host.
    let out = r.sh("cat /proc/self/uid_map");
    out.ok();
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", r.uid.to_string().as_str(), "1"]
    );
}

#[test]
fn rootless_state_lives_under_xdg_runtime_dir_and_delete_leaves_nothing() {
    skiff_only!("the rootless state location is skiff's");
    let mut r = Rootless::new("rl_state");
    r.c.set_args(&["sleep", "60"]);
    r.c.write_spec();
    let id = r.c.id.clone();
    r.c.track(id.as_str());
    let bundle = r.c.bundle.to_str().unwrap().to_string();
    r.run_as(&["create", "--bundle", &bundle, &id]).ok();
    let dir = r.xdg.join("skiff").join(&id);
    let meta = fs::metadata(&dir).expect("state dir under $XDG_RUNTIME_DIR/skiff");
    assert_eq!(meta.uid(), r.uid, "state dir owned by the user");
    let out = r.run_as(&["state", &id]);
    out.ok();
    let st: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap() as i32;
    r.c.track_pid(pid);
    assert_eq!(
        proc_status(&pid.to_string(), "Uid").unwrap(),
        format!("{0} {0} {0} {0}", r.uid)
    );
    r.run_as(&["start", &id]).ok();
    r.run_as(&["kill", &id, "KILL"]).ok();
    wait_for(
        std::time::Duration::from_secs(10),
        "container to stop",
        || {
            let out = r.run_as(&["state", &id]);
            out.stdout.contains("\"stopped\"").then_some(())
        },
    );
    r.run_as(&["delete", &id]).ok();
    assert!(!dir.exists(), "state dir left behind");
    r.c.assert_clean();
}

/// What a user does with a rootless container after `run -d`: exec (as runc allows), ps,
/// kill, pause (refused with a clear error where the user has no cgroup), delete.
#[test]
fn rootless_exec_ps_pause_kill_delete() {
    skiff_only!("the rootless state location and setup are skiff's");
    let r = Rootless::new("rl_exec");
    let mut r = r;
    r.c.set_args(&["sleep", "60"]);
    r.c.write_spec();
    let id = r.c.id.clone();
    r.c.track(id.as_str());
    let bundle = r.c.bundle.to_str().unwrap().to_string();
    r.run_as(&["run", "-d", "--bundle", &bundle, &id]).ok();
    let st: Value = serde_json::from_str(&r.run_as(&["state", &id]).stdout).unwrap();
    r.c.track_pid(st["pid"].as_i64().unwrap() as i32);
    let out = r.run_as(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; echo $$",
    ]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[0], "0", "{out:?}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", r.uid.to_string().as_str(), "1"],
        "{out:?}"
    );
    assert!(lines[2].parse::<i32>().unwrap() > 1, "{out:?}");
    let out = r.run_as(&["ps", "--format", "json", &id]);
    out.ok();
    let pids: Vec<i32> = serde_json::from_str(&out.stdout).unwrap_or_default();
    assert!(
        pids.contains(&(st["pid"].as_i64().unwrap() as i32)),
        "{out:?}"
    );
    let paused = r.run_as(&["pause", &id]);
    if paused.code == 0 {
        assert_eq!(
            serde_json::from_str::<Value>(&r.run_as(&["state", &id]).stdout).unwrap()["status"],
            "paused"
        );
        r.run_as(&["resume", &id]).ok();
    } else {
        assert!(
            paused.stderr.contains("cgroup"),
            "pause refused without saying why: {paused:?}"
        );
    }
    r.run_as(&["kill", &id, "KILL"]).ok();
    wait_for(
        std::time::Duration::from_secs(10),
        "container to stop",
        || {
            r.run_as(&["state", &id])
                .stdout
                .contains("\"stopped\"")
                .then_some(())
        },
    );
    r.run_as(&["delete", &id]).ok();
    r.c.assert_clean();
}

#[test]
fn rootless_sub_id_ranges_through_newuidmap() {
    skiff_only!("uses skiff's rootless defaults");
    let (start, size) = sub_ranges();
    let mut r = Rootless::new("rl_subids");
    for key in ["uidMappings", "gidMappings"] {
        let own = if key == "uidMappings" { r.uid } else { r.gid };
        r.c.spec["linux"][key] = json!([
            {"containerID": 0, "hostID": own, "size": 1},
            {"containerID": 1, "hostID": start, "size": size}
        ]);
    }
    r.c.spec["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": [10]});
    for set in ["bounding", "effective", "permitted"] {
        r.c.spec["process"]["capabilities"][set] = json!(["CAP_CHOWN"]);
    }
    let out = r.sh("cat /proc/self/uid_map; id -G; touch /dev/shm/f && chown 1000:1000 /dev/shm/f && stat -c %u:%g /dev/shm/f");
    out.ok();
    let lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            format!("0 {} 1", r.uid),
            format!("1 {start} {size}"),
            "0 10".to_string(),
            "1000:1000".to_string()
        ]
    );
}

#[test]
fn rootless_network_namespace_is_fine() {
    skiff_only!("uses skiff's rootless defaults");
    let mut r = Rootless::new("rl_netns");
    r.c.set_namespace("network", None);
    let out = r.sh("cat /proc/net/dev");
    out.ok();
    assert!(out.stdout.contains("lo:"), "{}", out.stdout);
    assert_eq!(out.stdout.matches(':').count(), 1, "{}", out.stdout);
}

#[test]
fn rootless_refusals_are_clear() {
    skiff_only!("skiff's error texts");
    let mut r = Rootless::new("rl_refuse");
    // No user namespace: nothing can be set up unprivileged.
    let saved = r.c.spec.clone();
    r.c.remove_namespace("user");
    let id = r.c.new_id();
    r.run(&id).fails_with(
        "running as an unprivileged user needs a user namespace",
        None,
    );
    // Limits need a cgroup this user cannot create.
    r.c.spec = saved.clone();
    r.c.spec["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    let id = r.c.new_id();
    r.run(&id).fails_with(
        "rootless container: linux.resources.memory needs a cgroup",
        None,
    );
    // Another user's id.
    r.c.spec = saved.clone();
    r.c.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    let id = r.c.new_id();
    r.run(&id).fails_with("linux.uidMappings", None);
    // Id-mapped mounts need host privileges.
    r.c.spec = saved;
    r.c.add_mount(
        json!({"destination": "/m", "type": "bind", "source": "/tmp",
                         "options": ["rbind", "idmap"]}),
    );
    let id = r.c.new_id();
    r.run(&id)
        .fails_with("id-mapped mounts need a privileged runtime", None);
    r.c.assert_clean();
}

/// A host directory with files owned by host uids 0, 3 and 1000.
fn owned_files(c: &Ctx) -> PathBuf {
    let vol = c.path("vol");
    fs::create_dir(&vol).unwrap();
    for (name, id) in [("f0", 0u32), ("f3", 3), ("f1000", 1000)] {
        let p = vol.join(name);
        fs::write(&p, b"x").unwrap();
        std::os::unix::fs::chown(&p, Some(id), Some(id)).unwrap();
    }
    vol
}

#[test]
fn features_advertise_idmap() {
    skiff_only!("skiff probes the kernel");
    let c = Ctx::new("idmap_features");
    let out = c.rt(&["features"]);
    out.ok();
    let f: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    let opts = f["mountOptions"].as_array().unwrap();
    assert!(opts.iter().any(|o| o == "idmap") && opts.iter().any(|o| o == "ridmap"));
}

#[test]
fn idmap_with_the_container_user_namespace() {
    let mut c = Ctx::new("idmap_userns");
    let vol = owned_files(&c);
    // Container root (host uid 100000) may not create directories in the root-owned rootfs.
    fs::create_dir(c.rootfs_path().join("mapped")).unwrap();
    fs::create_dir(c.rootfs_path().join("plain")).unwrap();
    c.set_namespace("user", None);
    c.set_namespace("network", None);
    c.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.add_mount(
        json!({"destination": "/mapped", "type": "bind", "source": vol,
                       "options": ["rbind", "idmap"]}),
    );
    c.add_mount(
        json!({"destination": "/plain", "type": "bind", "source": vol,
                       "options": ["rbind"]}),
    );
    // Host-owned files appear owned by the container's own ids through the mapped mount, and
    // container root can write to root-owned files there.
    let out = c.sh_ok(
        "stat -c %u:%g /mapped/f0 /mapped/f3 /mapped/f1000 /plain/f0; echo y > /mapped/f0 && echo written",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["0:0", "3:3", "1000:1000", "65534:65534", "written"]
    );
    assert_eq!(fs::read_to_string(vol.join("f0")).unwrap(), "y\n");
    assert_eq!(fs::metadata(vol.join("f0")).unwrap().uid(), 0);
}

#[test]
fn idmap_with_mount_specific_mappings() {
    let mut c = Ctx::new("idmap_own");
    let vol = owned_files(&c);
    // No user namespace at all: the mount's own mapping.
    c.add_mount(
        json!({"destination": "/mapped", "type": "bind", "source": vol,
                       "options": ["rbind", "ridmap", "ro"],
                       "uidMappings": [{"containerID": 0, "hostID": 5000, "size": 10}],
                       "gidMappings": [{"containerID": 0, "hostID": 6000, "size": 10}]}),
    );
    let out = c.sh_ok(
        "stat -c %u:%g /mapped/f0 /mapped/f3 /mapped/f1000; touch /mapped/new 2>/dev/null || echo ro",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["5000:6000", "5003:6003", "65534:65534", "ro"]
    );
}

#[test]
fn idmap_without_any_mapping_is_refused() {
    let mut c = Ctx::new("idmap_none");
    let vol = owned_files(&c);
    c.add_mount(
        json!({"destination": "/mapped", "type": "bind", "source": vol,
                       "options": ["rbind", "idmap"]}),
    );
    let id = c.id.clone();
    c.run_id(&id, &[])
        .fails_with("idmap without uidMappings and gidMappings", None);
    c.assert_clean();
}

/// CVE-2024-21626 class: a working directory reached through an fd that leads outside the
/// container's root (here a preserved fd of a host directory) is refused before exec.
#[test]
fn cwd_outside_the_root_is_refused() {
    skiff_only!("skiff's error text");
    let mut c = Ctx::new("cwd_escape");
    c.spec["process"]["cwd"] = json!("/proc/self/fd/3");
    c.sh_args("pwd; ls");
    let dir = fs::File::open(c.tmp.path()).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    let id = c.id.clone();
    let out = c.run_with(&id, &["--preserve-fds", "1"], |cmd| pass_fd(cmd, fd, 3));
    out.fails_with("outside the container's root", None);
    drop(dir);
}
