//! End-to-end tests of skiff-image against Debian's docker-registry on
//! 127.0.0.1, with images built by hack/image-fixtures.sh and pushed by
//! skopeo. Needs root, docker-registry, skopeo, umoci, busybox-static,
//! apache2-utils (htpasswd), zstd, curl, python3.
//!
//! Registries are shared per test process (started once, distinct repo
//! names per test) except where a test corrupts one; each is started from
//! a keeper thread with PDEATHSIG, and killed by pid at exit.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_skiff-image");
const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");
const HACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/hack");
const CREDS: &str = "alice:s3cr3t-pw";

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("skiff-image-test")
        .tempdir()
        .unwrap()
}

fn fixtures() -> &'static Path {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("image-fixtures");
        let st = Command::new(format!("{HACK}/image-fixtures.sh"))
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "hack/image-fixtures.sh failed");
        out
    })
}

// ---- registries -----------------------------------------------------------

struct Registry {
    port: u16,
    dir: PathBuf,
}

type Spawn = (Option<String>, mpsc::Sender<Registry>);

static PIDS: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn cleanup() {
    if let Ok(pids) = PIDS.lock() {
        for (pid, dir) in pids.iter() {
            // SAFETY: kill and reap of a child we started ourselves (reaped
            // here, since this machine's init does not reap orphans).
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
                libc::waitpid(*pid as i32, std::ptr::null_mut(), 0);
            }
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Registries are spawned from one thread that never exits, so their
/// PDEATHSIG fires only when the test process goes away.
fn spawner() -> &'static Mutex<mpsc::Sender<Spawn>> {
    static S: OnceLock<Mutex<mpsc::Sender<Spawn>>> = OnceLock::new();
    S.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(cleanup) };
        let (tx, rx) = mpsc::channel::<Spawn>();
        std::thread::spawn(move || {
            for (creds, reply) in rx {
                let _ = reply.send(spawn_registry(creds.as_deref()));
            }
        });
        Mutex::new(tx)
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_registry(creds: Option<&str>) -> Registry {
    let dir = tempfile::Builder::new()
        .prefix("skiff-image-registry")
        .tempdir()
        .unwrap()
        .keep();
    let port = free_port();
    let mut cmd = Command::new(format!("{HACK}/image-registry.sh"));
    cmd.arg(port.to_string()).arg(&dir);
    if let Some(c) = creds {
        cmd.arg(c);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    PIDS.lock().unwrap().push((child.id(), dir.clone()));
    std::mem::forget(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "registry did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Registry { port, dir }
}

fn new_registry(creds: Option<&str>) -> Registry {
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap()
        .send((creds.map(String::from), tx))
        .unwrap();
    rx.recv().unwrap()
}

fn push(reg: &Registry, src: &str, dest: &str, extra: &[&str]) {
    let out = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .args(extra)
        .arg(src)
        .arg(format!("docker://127.0.0.1:{}/{dest}", reg.port))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy {src}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The plain registry, holding t/hello:oci, t/hello:v2s2, t/zstd:v1, t/multi:v1.
fn plain() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let f = fixtures().display().to_string();
        let r = new_registry(None);
        push(&r, &format!("oci:{f}/layout:hello"), "t/hello:oci", &[]);
        push(
            &r,
            &format!("oci:{f}/layout:hello"),
            "t/hello:v2s2",
            &["--format", "v2s2"],
        );
        push(&r, &format!("oci:{f}/zstd:zstd"), "t/zstd:v1", &[]);
        push(
            &r,
            &format!("oci:{f}/multi:multi"),
            "t/multi:v1",
            &["--all"],
        );
        r
    })
}

fn authed() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let f = fixtures().display().to_string();
        let r = new_registry(Some(CREDS));
        push(
            &r,
            &format!("oci:{f}/layout:hello"),
            "a/hello:v1",
            &["--dest-creds", CREDS],
        );
        r
    })
}

// ---- running skiff-image --------------------------------------------------

fn img(store: &Path, args: &[&str]) -> Output {
    img_env(store, args, &[])
}

fn img_env(store: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("--store").arg(store).args(args);
    c.env_remove("XDG_RUNTIME_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "skiff-image failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn fails(o: Output, want: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "expected failure, got: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains(want),
        "error {err:?} does not mention {want:?}"
    );
    assert!(err.starts_with("skiff-image: "), "{err}");
    err
}

/// Every file of the store with a hash of its content.
fn snapshot(store: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut todo = vec![store.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            } else {
                let h = sha_hex(&fs::read(&p).unwrap());
                m.insert(p.strip_prefix(store).unwrap().display().to_string(), h);
            }
        }
    }
    m
}

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn index(store: &Path) -> Value {
    serde_json::from_slice(&fs::read(store.join("index.json")).unwrap()).unwrap()
}

/// Blobs reachable from index.json vs blobs present: (orphans, missing).
fn orphans(store: &Path) -> (Vec<String>, Vec<String>) {
    let mut reach = std::collections::HashSet::new();
    let blob = |d: &str| -> Value {
        serde_json::from_slice(&fs::read(store.join("blobs/sha256").join(&d[7..])).unwrap())
            .unwrap()
    };
    for m in index(store)["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap().to_string();
        let v = blob(&d);
        reach.insert(d);
        reach.insert(v["config"]["digest"].as_str().unwrap().to_string());
        for l in v["layers"].as_array().unwrap() {
            reach.insert(l["digest"].as_str().unwrap().to_string());
        }
    }
    let present: std::collections::HashSet<String> = fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let mut o: Vec<String> = present.difference(&reach).cloned().collect();
    let mut m: Vec<String> = reach.difference(&present).cloned().collect();
    o.sort();
    m.sort();
    (o, m)
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// `skiff run` of a bundle; returns stdout.
fn skiff_run(bundle: &Path) -> String {
    let root = tmp();
    let id = format!(
        "img{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let o = Command::new(SKIFF)
        .arg("--root")
        .arg(root.path())
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "skiff run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn reg_ref(r: &Registry, path: &str) -> String {
    format!("127.0.0.1:{}/{path}", r.port)
}

// ---- tests ----------------------------------------------------------------

#[test]
fn pull_ls_unpack_run_oci_manifest() {
    let r = plain();
    let s = tmp();
    let name = reg_ref(r, "t/hello:oci");
    let out = ok(img(s.path(), &["pull", &name]));
    assert!(out.starts_with(&name), "{out}");

    let ls: Value = serde_json::from_str(&ok(img(s.path(), &["ls", "--format", "json"]))).unwrap();
    assert_eq!(ls[0]["repository"], reg_ref(r, "t/hello"));
    assert_eq!(ls[0]["tag"], "oci");
    assert!(ls[0]["size"].as_u64().unwrap() > 500_000);
    let table = ok(img(s.path(), &["images"]));
    assert!(
        table.contains("REPOSITORY") && table.contains("t/hello"),
        "{table}"
    );

    let b = tmp();
    let bundle = b.path().join("bundle");
    ok(img(s.path(), &["unpack", &name, bundle.to_str().unwrap()]));
    let rootfs = bundle.join("rootfs");
    // Layer 2 removed a file (whiteout) and added a hardlinked pair.
    assert!(!rootfs.join("etc/removed-later").exists());
    let a = fs::metadata(rootfs.join("srv/data.txt")).unwrap();
    let h = fs::metadata(rootfs.join("srv/hardlink.txt")).unwrap();
    assert_eq!(a.ino(), h.ino());
    assert_eq!(
        fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert!(fs::symlink_metadata(rootfs.join("bin/sh"))
        .unwrap()
        .file_type()
        .is_symlink());

    let cfg: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["terminal"], false);
    assert_eq!(cfg["process"]["cwd"], "/srv");
    assert_eq!(
        cfg["process"]["user"],
        json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]})
    );
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.stopSignal"],
        "SIGQUIT"
    );
    assert_eq!(cfg["annotations"]["org.example.test"], "yes");

    let printed = skiff_run(&bundle);
    assert_eq!(printed.trim(), "cmd says: hello from /srv as 1000:1000");

    // Options: command override, env, volume, hostname.
    let vol = tmp();
    fs::write(vol.path().join("f"), "from host").unwrap();
    let b2 = b.path().join("b2");
    let volspec = format!("{}:/mnt/v:ro", vol.path().display());
    ok(img(
        s.path(),
        &[
            "unpack",
            &name,
            b2.to_str().unwrap(),
            "--env",
            "GREETING=bye",
            "-v",
            &volspec,
            "--hostname",
            "imgbox",
            "--",
            "-c",
            "echo $GREETING $(hostname) $(cat /mnt/v/f)",
        ],
    ));
    let cfg: Value = serde_json::from_slice(&fs::read(b2.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["process"]["args"],
        json!(["-c", "echo $GREETING $(hostname) $(cat /mnt/v/f)"])
    );
    // No Entrypoint in this image, so the override replaces the whole command.
    fs::write(
        b2.join("config.json"),
        serde_json::to_vec(&{
            let mut c = cfg.clone();
            c["process"]["args"] = json!([
                "/bin/sh",
                "-c",
                "echo $GREETING $(hostname) $(cat /mnt/v/f)"
            ]);
            c
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(skiff_run(&b2).trim(), "bye imgbox from host");

    // A non-empty bundle dir is refused.
    fails(
        img(s.path(), &["unpack", &name, bundle.to_str().unwrap()]),
        "not empty",
    );
    // --tty and --rootless shape the config.
    let b3 = b.path().join("b3");
    ok(img(
        s.path(),
        &["unpack", &name, b3.to_str().unwrap(), "--tty", "--rootless"],
    ));
    let cfg: Value = serde_json::from_slice(&fs::read(b3.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["terminal"], true);
    assert!(cfg["linux"]["uidMappings"].is_array());
}

#[test]
fn docker_schema2_and_zstd_and_other_tools_read_the_store() {
    let r = plain();
    let s = tmp();
    let v2 = reg_ref(r, "t/hello:v2s2");
    let zs = reg_ref(r, "t/zstd:v1");
    ok(img(s.path(), &["pull", "-q", &v2]));
    ok(img(s.path(), &["pull", "-q", &zs]));
    let inspect: Value = serde_json::from_str(&ok(img(s.path(), &["inspect", &v2]))).unwrap();
    // Stored as OCI, with the registry's Docker digest kept.
    assert_eq!(
        inspect["manifest"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(inspect["sourceDigest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(inspect["config"]["config"]["User"], "app");

    let b = tmp();
    for (i, n) in [&v2, &zs].iter().enumerate() {
        let bundle = b.path().join(format!("b{i}"));
        ok(img(s.path(), &["unpack", n, bundle.to_str().unwrap()]));
        assert_eq!(
            skiff_run(&bundle).trim(),
            "cmd says: hello from /srv as 1000:1000"
        );
    }

    // skopeo and umoci read the store as a plain OCI layout.
    let dest = b.path().join("copy");
    let o = Command::new("skopeo")
        .arg("copy")
        .arg("-q")
        .arg(format!("oci:{}:{}", s.path().display(), v2))
        .arg(format!("oci:{}:x", dest.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{}", s.path().display(), zs))
        .arg(b.path().join("umoci"))
        .output()
        .unwrap();
    // umoci 0.4 cannot decompress zstd; the gzip image must work.
    let o2 = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{}", s.path().display(), v2))
        .arg(b.path().join("umoci2"))
        .output()
        .unwrap();
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    assert!(b.path().join("umoci2/rootfs/srv/data.txt").exists());
    let _ = o;
}

#[test]
fn index_platform_selection() {
    let r = plain();
    let s = tmp();
    let n = reg_ref(r, "t/multi:v1");
    ok(img(s.path(), &["pull", &n]));
    let i: Value = serde_json::from_str(&ok(img(s.path(), &["inspect", &n]))).unwrap();
    assert_eq!(i["config"]["architecture"], "amd64");
    ok(img(s.path(), &["pull", "--platform", "linux/arm64", &n]));
    let i: Value = serde_json::from_str(&ok(img(s.path(), &["inspect", &n]))).unwrap();
    assert_eq!(i["config"]["architecture"], "arm64");
    let before = snapshot(s.path());
    let e = fails(
        img(s.path(), &["pull", "--platform", "linux/s390x", &n]),
        "no image for platform linux/s390x",
    );
    assert!(e.contains("linux/amd64, linux/arm64"), "{e}");
    assert_eq!(before, snapshot(s.path()));
}

#[test]
fn basic_auth_and_credential_files() {
    let r = authed();
    let s = tmp();
    let n = reg_ref(r, "a/hello:v1");
    ok(img(s.path(), &["ls"]));
    let before = snapshot(s.path());
    fails(img(s.path(), &["pull", &n]), "unauthorized");
    fails(
        img(s.path(), &["pull", "--creds", "alice:wrong", &n]),
        "unauthorized",
    );
    assert_eq!(before, snapshot(s.path()));
    ok(img(s.path(), &["pull", "--creds", CREDS, &n]));

    // The same from podman's auth.json and docker's config.json.
    let home = tmp();
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(CREDS)
    };
    let auths = json!({"auths": {format!("127.0.0.1:{}", r.port): {"auth": b64}}}).to_string();
    fs::create_dir_all(home.path().join("containers")).unwrap();
    fs::write(home.path().join("containers/auth.json"), &auths).unwrap();
    let s2 = tmp();
    ok(img_env(
        s2.path(),
        &["pull", "-q", &n],
        &[
            ("XDG_RUNTIME_DIR", home.path()),
            ("HOME", Path::new("/nonexistent")),
        ],
    ));
    fs::create_dir_all(home.path().join(".docker")).unwrap();
    fs::write(home.path().join(".docker/config.json"), &auths).unwrap();
    let s3 = tmp();
    ok(img_env(
        s3.path(),
        &["pull", "-q", &n],
        &[("HOME", home.path())],
    ));
}

#[test]
fn rm_and_gc_leave_no_orphans() {
    let r = plain();
    let s = tmp();
    let a = reg_ref(r, "t/hello:oci");
    let b = reg_ref(r, "t/zstd:v1");
    let c = reg_ref(r, "t/hello:v2s2");
    for n in [&a, &b, &c] {
        ok(img(s.path(), &["pull", "-q", n]));
    }
    assert_eq!(orphans(s.path()), (vec![], vec![]));
    ok(img(s.path(), &["rm", &a]));
    ok(img(s.path(), &["gc"]));
    assert_eq!(orphans(s.path()), (vec![], vec![]));
    assert_eq!(index(s.path())["manifests"].as_array().unwrap().len(), 2);
    fails(img(s.path(), &["rm", &a]), "image not known");
    ok(img(s.path(), &["rm", &b, &c]));
    ok(img(s.path(), &["gc"]));
    assert_eq!(
        fs::read_dir(s.path().join("blobs/sha256")).unwrap().count(),
        0
    );
    assert_eq!(
        fs::read_dir(s.path().join(".skiff/tmp")).unwrap().count(),
        0
    );
}

#[test]
fn concurrent_pulls_into_one_store() {
    let r = plain();
    let s = tmp();
    let names = [
        reg_ref(r, "t/hello:oci"),
        reg_ref(r, "t/hello:v2s2"),
        reg_ref(r, "t/zstd:v1"),
        reg_ref(r, "t/multi:v1"),
    ];
    let children: Vec<_> = names
        .iter()
        .flat_map(|n| [n.clone(), n.clone()])
        .map(|n| {
            Command::new(BIN)
                .arg("--store")
                .arg(s.path())
                .args(["pull", "-q", &n])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(index(s.path())["manifests"].as_array().unwrap().len(), 4);
    assert_eq!(orphans(s.path()), (vec![], vec![]));
}

#[test]
fn import_archives_made_by_skopeo() {
    let f = fixtures().display().to_string();
    let s = tmp();
    let d = tmp();
    let da = d.path().join("docker.tar");
    let oa = d.path().join("oci.tar");
    for (dest, _) in [
        (
            format!("docker-archive:{}:example/hello:v1", da.display()),
            (),
        ),
        (format!("oci-archive:{}:v2", oa.display()), ()),
    ] {
        let o = Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci:{f}/layout:hello"))
            .arg(&dest)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = ok(img(s.path(), &["import", da.to_str().unwrap()]));
    assert!(
        out.starts_with("docker.io/example/hello:v1 sha256:"),
        "{out}"
    );
    let out = ok(img(s.path(), &["import", oa.to_str().unwrap()]));
    assert!(out.starts_with("localhost/oci:v2 "), "{out}");
    let out = ok(img(s.path(), &["import", &format!("{f}/layout")]));
    assert!(
        out.contains("localhost/layout:hello ") && out.contains("localhost/layout:hello-arm64 "),
        "{out}"
    );
    // A directory with two images cannot take one name.
    fails(
        img(s.path(), &["import", &format!("{f}/layout"), "x/y:z"]),
        "only for one",
    );
    let out = ok(img(
        s.path(),
        &["import", &format!("{f}/zstd"), "mine/zstd:1"],
    ));
    assert!(out.starts_with("docker.io/mine/zstd:1 "), "{out}");

    for (i, n) in ["example/hello:v1", "localhost/oci:v2", "mine/zstd:1"]
        .iter()
        .enumerate()
    {
        let b = d.path().join(format!("b{i}"));
        ok(img(s.path(), &["unpack", n, b.to_str().unwrap()]));
        assert_eq!(
            skiff_run(&b).trim(),
            "cmd says: hello from /srv as 1000:1000"
        );
    }

    // A plain rootfs tar becomes a one-layer image.
    let rootfs = d.path().join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/echo")).unwrap();
    let tgz = d.path().join("rootfs.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&rootfs)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = ok(img(s.path(), &["import", tgz.to_str().unwrap()]));
    assert!(out.starts_with("localhost/rootfs:latest "), "{out}");
    let b = d.path().join("plain");
    ok(img(
        s.path(),
        &[
            "unpack",
            "localhost/rootfs",
            b.to_str().unwrap(),
            "--",
            "/bin/echo",
            "plain rootfs",
        ],
    ));
    assert_eq!(skiff_run(&b).trim(), "plain rootfs");
    assert_eq!(orphans(s.path()), (vec![], vec![]));

    // Not an archive at all.
    let junk = d.path().join("junk.tar");
    fs::write(&junk, vec![7u8; 3000]).unwrap();
    let before = snapshot(s.path());
    fails(img(s.path(), &["import", junk.to_str().unwrap()]), "import");
    assert_eq!(before, snapshot(s.path()));
}

#[test]
fn bad_inputs_fail_clearly_and_leave_the_store_alone() {
    let r = plain();
    let s = tmp();
    ok(img(s.path(), &["pull", "-q", &reg_ref(r, "t/hello:oci")]));
    let before = snapshot(s.path());

    fails(
        img(s.path(), &["pull", &reg_ref(r, "t/nosuch:v1")]),
        "image not found",
    );
    fails(
        img(s.path(), &["pull", &reg_ref(r, "t/hello:nosuchtag")]),
        "image not found",
    );
    fails(
        img(
            s.path(),
            &["pull", &format!("127.0.0.1:{}/t/hello:oci", free_port())],
        ),
        "cannot reach registry",
    );
    fails(
        img(s.path(), &["pull", "Bad//Ref"]),
        "invalid image reference",
    );
    fails(
        img(
            s.path(),
            &["pull", "--platform", "linux", &reg_ref(r, "t/hello:oci")],
        ),
        "os/arch",
    );
    fails(
        img(s.path(), &["unpack", "nosuch", "/nonexistent/x"]),
        "image not known",
    );
    // Plain HTTP is refused for a non-loopback registry without --insecure:
    // reaching it over TLS fails (no such host here).
    assert!(!img(s.path(), &["pull", "skiff-test.invalid/x:1"])
        .status
        .success());

    // An artifact with a layer type that is not a file system layer.
    let repo = "t/artifact";
    let layer = b"not a tar".to_vec();
    let config = b"{}".to_vec();
    let ld = push_blob(r, repo, &layer);
    let cd = push_blob(r, repo, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.example.unknown", "digest": ld, "size": layer.len()}]
    });
    push_manifest(r, repo, "v1", &manifest);
    fails(
        img(s.path(), &["pull", &reg_ref(r, "t/artifact:v1")]),
        "unsupported media type \"application/vnd.example.unknown\"",
    );

    assert_eq!(before, snapshot(s.path()));
}

fn curl(args: &[&str], data: Option<&[u8]>) -> String {
    let mut c = Command::new("curl");
    c.args(["-sS", "-f", "-D", "-", "-o", "/dev/null"])
        .args(args);
    if data.is_some() {
        c.args(["--data-binary", "@-"]).stdin(Stdio::piped());
    }
    c.stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(d) = data {
        child.stdin.take().unwrap().write_all(d).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "curl {args:?} failed");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn push_blob(r: &Registry, repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha_hex(data));
    let h = curl(
        &[
            "-X",
            "POST",
            &format!("http://127.0.0.1:{}/v2/{repo}/blobs/uploads/", r.port),
        ],
        None,
    );
    let loc = h
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let sep = if loc.contains('?') { '&' } else { '?' };
    curl(
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            &format!("{loc}{sep}digest={digest}"),
        ],
        Some(data),
    );
    digest
}

fn push_manifest(r: &Registry, repo: &str, tag: &str, m: &Value) {
    let body = serde_json::to_vec(m).unwrap();
    curl(
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            &format!("http://127.0.0.1:{}/v2/{repo}/manifests/{tag}", r.port),
        ],
        Some(&body),
    );
}

#[test]
fn corrupted_blob_is_rejected() {
    let f = fixtures().display().to_string();
    let r = new_registry(None);
    push(&r, &format!("oci:{f}/layout:hello"), "c/hello:v1", &[]);
    // Flip bytes in the middle of the largest blob the registry holds.
    let mut biggest: Option<(u64, PathBuf)> = None;
    let mut todo = vec![r.dir.join("storage")];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            } else if p.file_name().unwrap() == "data" {
                let len = e.metadata().unwrap().len();
                if biggest.as_ref().is_none_or(|(l, _)| len > *l) {
                    biggest = Some((len, p));
                }
            }
        }
    }
    let (len, p) = biggest.unwrap();
    let mut data = fs::read(&p).unwrap();
    let mid = (len / 2) as usize;
    for b in &mut data[mid..mid + 16] {
        *b ^= 0xff;
    }
    fs::write(&p, data).unwrap();

    let s = tmp();
    ok(img(s.path(), &["ls"]));
    let before = snapshot(s.path());
    fails(
        img(s.path(), &["pull", &reg_ref(&r, "c/hello:v1")]),
        "digest mismatch",
    );
    assert_eq!(before, snapshot(s.path()));
}

#[test]
fn full_disk_leaves_the_store_unchanged() {
    let r = plain();
    let d = tmp();
    let store = d.path().join("store");
    fs::create_dir(&store).unwrap();
    // A private mount namespace holds the tiny tmpfs: nothing outlives it.
    let script = format!(
        "set -e; mount -t tmpfs -o size=400k tmpfs {s}; {bin} --store {s} ls >/dev/null; \
         cd {s}; find . -type f | sort | xargs sha256sum > {d}/before; \
         if {bin} --store {s} pull -q {n} 2> {d}/err; then exit 3; fi; \
         find . -type f | sort | xargs sha256sum > {d}/after",
        s = store.display(),
        bin = BIN,
        d = d.path().display(),
        n = reg_ref(r, "t/hello:oci"),
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = fs::read_to_string(d.path().join("err")).unwrap();
    assert!(err.contains("no space left on device"), "{err}");
    assert_eq!(
        fs::read_to_string(d.path().join("before")).unwrap(),
        fs::read_to_string(d.path().join("after")).unwrap()
    );
}

// ---- crafted layers ---------------------------------------------------------

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let (path, data): (&str, &[u8]) = match e {
            E::File(p, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                (p, d)
            }
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                (p, &[])
            }
            E::Sym(p, t) | E::Hard(p, t) => {
                h.set_entry_type(if matches!(e, E::Sym(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                h.set_size(0);
                // set_link_name refuses `..`; write the raw field.
                let raw = h.as_old_mut();
                raw.linkname = [0; 100];
                raw.linkname[..t.len()].copy_from_slice(t.as_bytes());
                (p, &[])
            }
        };
        // Raw names too: the builder would refuse `..` and absolute paths.
        let raw = h.as_old_mut();
        raw.name = [0; 100];
        raw.name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// An OCI layout directory holding one image made of `layers`.
fn layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let h = sha_hex(data);
        fs::write(blobs.join(&h), data).unwrap();
        format!("sha256:{h}")
    };
    let mut ls = Vec::new();
    let mut diffs = Vec::new();
    for l in layers {
        let d = put(l);
        diffs.push(d.clone());
        ls.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()}));
    }
    let cfg = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diffs}
    }))
    .unwrap();
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&cfg), "size": cfg.len()},
        "layers": ls
    }))
    .unwrap();
    let md = put(&m);
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": m.len()}]}).to_string(),
    )
    .unwrap();
}

/// Imports and unpacks `layers`; returns (unpack output, rootfs).
fn unpack_layers(work: &Path, name: &str, layers: &[Vec<u8>]) -> (Output, PathBuf) {
    let l = work.join(format!("{name}-layout"));
    layout(&l, layers);
    let store = work.join("store");
    ok(img(
        &store,
        &["import", l.to_str().unwrap(), &format!("evil/{name}:1")],
    ));
    let b = work.join(format!("{name}-bundle"));
    let o = img(
        &store,
        &["unpack", &format!("evil/{name}:1"), b.to_str().unwrap()],
    );
    (o, b.join("rootfs"))
}

#[test]
fn malicious_layers_stay_inside_the_rootfs() {
    let w = tmp();
    let outside = tmp();
    let op = outside.path().display().to_string();
    fs::write(outside.path().join("secret"), "host secret").unwrap();
    let up = "../../../../../../../../../..";
    let rel = format!("{up}{op}");
    let abs_pwned = format!("{op}/pwned");

    // `..` and absolute names.
    let dotdot = format!("{up}/escape-dotdot");
    let (o, root) = unpack_layers(
        w.path(),
        "dotdot",
        &[layer(&[E::File(&dotdot, b"x"), E::File(&abs_pwned, b"x")])],
    );
    ok(o);
    assert!(root.join("escape-dotdot").exists());
    assert!(root.join(abs_pwned.trim_start_matches('/')).exists());

    // Symlinks (absolute and relative) to the outside, then writes through them.
    // Pointing at a directory missing inside: a clear error.
    let (o, _) = unpack_layers(
        w.path(),
        "dangling",
        &[layer(&[E::Sym("abs", &op), E::File("abs/pwned", b"x")])],
    );
    fails(o, "dangling symlink");
    let (o, root) = unpack_layers(
        w.path(),
        "symlink",
        &[layer(&[
            E::Dir(&op),
            E::Sym("abs", &op),
            E::Sym("rel", &rel),
            E::File("abs/pwned", b"x"),
            E::File("rel/pwned2", b"x"),
        ])],
    );
    ok(o);
    assert!(root.join(op.trim_start_matches('/')).join("pwned").exists());
    assert!(root
        .join(op.trim_start_matches('/'))
        .join("pwned2")
        .exists());

    // A hardlink to a host file: its target resolves inside, where there is none.
    let hl_target = format!("{rel}/secret");
    let (o, _) = unpack_layers(w.path(), "hardlink", &[layer(&[E::Hard("hl", &hl_target)])]);
    fails(o, "hardlink");
    assert!(
        !w.path().join("hardlink-bundle").exists(),
        "failed unpack leaves no bundle"
    );
    // Hardlink to a symlink pointing out: links the symlink itself.
    let (o, root) = unpack_layers(
        w.path(),
        "hardsym",
        &[layer(&[
            E::Sym("s", &format!("{op}/secret")),
            E::Hard("h", "s"),
            E::File("h", b"overwritten"),
        ])],
    );
    ok(o);
    assert_eq!(fs::read(root.join("h")).unwrap(), b"overwritten");

    // A symlink replaced by a directory in a later layer; a whiteout
    // through a symlink; an opaque directory.
    let (o, root) = unpack_layers(
        w.path(),
        "later",
        &[
            layer(&[
                E::Sym("d", &op),
                E::Dir("keep"),
                E::File("keep/old", b"1"),
                E::Sym("w", &op),
            ]),
            layer(&[
                E::Dir("d"),
                E::File("d/pwned3", b"x"),
                E::File("w/.wh.secret", b""),
                E::Dir("keep"),
                E::File("keep/.wh..wh..opq", b""),
                E::File("keep/new", b"2"),
            ]),
        ],
    );
    ok(o);
    assert!(fs::symlink_metadata(root.join("d")).unwrap().is_dir());
    assert!(root.join("d/pwned3").exists());
    assert!(!root.join("keep/old").exists());
    assert!(root.join("keep/new").exists());

    // Nothing reached the outside directory; the host file is intact.
    let names: Vec<_> = fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    assert_eq!(
        fs::read(outside.path().join("secret")).unwrap(),
        b"host secret"
    );
    assert_eq!(
        fs::metadata(outside.path().join("secret")).unwrap().nlink(),
        1
    );
    assert!(!w.path().join("escape-dotdot").exists());
    assert!(!Path::new("/escape-dotdot").exists());
}

#[test]
fn special_files_ownership_xattrs_and_times() {
    let w = tmp();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Char);
    h.set_mode(0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_size(0);
    b.append_data(&mut h, "null2", &[][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_mode(0o640);
    h.set_size(0);
    b.append_data(&mut h, "fifo", &[][..]).unwrap();
    b.append_pax_extensions([("SCHILY.xattr.user.skiff", &b"yes"[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o4750);
    h.set_uid(1234);
    h.set_gid(4321);
    h.set_mtime(1_500_000_000);
    h.set_size(2);
    b.append_data(&mut h, "owned", &b"hi"[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o711);
    h.set_mtime(1_400_000_000);
    h.set_size(0);
    b.append_data(&mut h, "dir/", &[][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(1);
    b.append_data(&mut h, "dir/f", &b"x"[..]).unwrap();
    let (o, root) = unpack_layers(w.path(), "special", &[b.into_inner().unwrap()]);
    ok(o);
    let m = fs::metadata(root.join("null2")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), libc::makedev(1, 3));
    assert!(fs::metadata(root.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let m = fs::metadata(root.join("owned")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()),
        (1234, 4321, 0o4750, 1_500_000_000)
    );
    let m = fs::metadata(root.join("dir")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o711, 1_400_000_000));
    let mut buf = [0u8; 16];
    let p = std::ffi::CString::new(root.join("owned").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"user.skiff".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], b"yes");
}
