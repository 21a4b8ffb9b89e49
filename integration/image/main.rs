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

// ---- security regressions ---------------------------------------------------

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;

/// What the fake registry answers to one request.
#[derive(Clone)]
enum Reply {
    /// A complete response: status, headers, body.
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// 200 with `len` zero bytes, made on the fly; with a Content-Length
    /// header when `announce` (else the body runs until the connection closes).
    Zeros {
        len: u64,
        announce: bool,
        headers: Vec<(String, String)>,
    },
    /// Reads the request, then sends nothing.
    Stall,
    /// Sends the response (headers and body, Content-Length set) one byte at
    /// a time every `every`; when `head_fast`, the headers go out at once.
    Trickle {
        body: Vec<u8>,
        every: Duration,
        head_fast: bool,
    },
    /// Headers at once, then `chunk` bytes of `body` every `every`.
    Slow {
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
}

type Route = Arc<dyn Fn(&str, &str) -> Option<Reply> + Send + Sync>;

/// A registry that says what a test wants on 127.0.0.1 (docker-registry
/// will not serve a 300 MB manifest or stall). The route gets the path and
/// the request's head. `/v2/` answers 200 unless the route says otherwise;
/// anything unrouted is a 404 MANIFEST_UNKNOWN.
struct Fake {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

fn fake_registry(route: impl Fn(&str, &str) -> Option<Reply> + Send + Sync + 'static) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(Mutex::new(Vec::new()));
    let route: Route = Arc::new(route);
    let h2 = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let route = route.clone();
            let hits = h2.clone();
            std::thread::spawn(move || serve_one(c, &*route, &hits));
        }
    });
    Fake { port, hits }
}

fn serve_one(
    mut c: std::net::TcpStream,
    route: &(dyn Fn(&str, &str) -> Option<Reply> + Send + Sync),
    hits: &Mutex<Vec<String>>,
) {
    let mut req = Vec::new();
    let mut b = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") && req.len() < 65536 {
        match c.read(&mut b) {
            Ok(1) => req.push(b[0]),
            _ => return,
        }
    }
    let head_text = String::from_utf8_lossy(&req).into_owned();
    let line = head_text.lines().next().unwrap_or("").to_string();
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    hits.lock().unwrap().push(path.clone());
    let reply = route(&path, &head_text).unwrap_or_else(|| {
        if path == "/v2/" {
            Reply::Full(200, vec![], b"{}".to_vec())
        } else {
            Reply::Full(
                404,
                vec![],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not here"}]}"#.to_vec(),
            )
        }
    });
    let head = |status: u16, headers: &[(String, String)], len: Option<u64>| {
        let mut h = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
        for (k, v) in headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(n) = len {
            h.push_str(&format!("Content-Length: {n}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    };
    match reply {
        Reply::Full(status, headers, body) => {
            let _ = c.write_all(&head(status, &headers, Some(body.len() as u64)));
            let _ = c.write_all(&body);
        }
        Reply::Zeros {
            len,
            announce,
            headers,
        } => {
            if c.write_all(&head(200, &headers, announce.then_some(len)))
                .is_err()
            {
                return;
            }
            let buf = vec![0u8; 1 << 16];
            let mut left = len;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                if c.write_all(&buf[..n]).is_err() {
                    return;
                }
                left -= n as u64;
            }
        }
        Reply::Stall => std::thread::sleep(Duration::from_secs(120)),
        Reply::Trickle {
            body,
            every,
            head_fast,
        } => {
            let h = head(200, &[], Some(body.len() as u64));
            if head_fast && c.write_all(&h).is_err() {
                return;
            }
            let all: Vec<u8> = if head_fast {
                body
            } else {
                h.into_iter().chain(body).collect()
            };
            for byte in all {
                std::thread::sleep(every);
                if c.write_all(&[byte]).is_err() {
                    return;
                }
            }
        }
        Reply::Slow { body, chunk, every } => {
            if c.write_all(&head(200, &[], Some(body.len() as u64)))
                .is_err()
            {
                return;
            }
            for part in body.chunks(chunk) {
                if c.write_all(part).is_err() {
                    return;
                }
                std::thread::sleep(every);
            }
        }
    }
    let _ = c.flush();
}

fn json_reply(v: &Value, mt: &str) -> Reply {
    let body = serde_json::to_vec(v).unwrap();
    Reply::Full(
        200,
        vec![
            ("Content-Type".into(), mt.into()),
            (
                "Docker-Content-Digest".into(),
                format!("sha256:{}", sha_hex(&body)),
            ),
        ],
        body,
    )
}

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// One small image (config + one layer) as registry replies, keyed by path
/// under `/v2/REPO/`: `manifests/TAG`, `blobs/DIGEST`. Returns the routes and
/// the manifest.
fn small_image(repo: &str, tag: &str, layer_bytes: &[u8]) -> (HashMap<String, Reply>, Value) {
    let mut m = HashMap::new();
    let cfg = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha_hex(layer_bytes))]}
    }))
    .unwrap();
    let cd = format!("sha256:{}", sha_hex(&cfg));
    let ld = format!("sha256:{}", sha_hex(layer_bytes));
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer_bytes.len()}]
    });
    m.insert(
        format!("/v2/{repo}/manifests/{tag}"),
        json_reply(&manifest, MT_MANIFEST),
    );
    m.insert(
        format!("/v2/{repo}/blobs/{cd}"),
        Reply::Full(200, vec![], cfg),
    );
    m.insert(
        format!("/v2/{repo}/blobs/{ld}"),
        Reply::Full(200, vec![], layer_bytes.to_vec()),
    );
    (m, manifest)
}

/// How a skiff-image run ended.
struct Run {
    /// None: still running at the deadline, killed.
    status: Option<std::process::ExitStatus>,
    stderr: String,
    /// Peak resident set, kB (VmHWM, polled: rusage's ru_maxrss would
    /// include this test process's own, shared until exec by posix_spawn).
    maxrss_kb: i64,
    elapsed: Duration,
}

/// Runs skiff-image with `env`, killing it at `deadline`; measures its peak RSS.
fn run_deadline(store: &Path, args: &[&str], env: &[(&str, &str)], deadline: Duration) -> Run {
    let errf = tempfile::NamedTempFile::new().unwrap();
    let mut c = Command::new(BIN);
    c.arg("--store").arg(store).args(args);
    c.env_remove("XDG_RUNTIME_DIR")
        .env_remove("SKIFF_IMAGE_TIMEOUT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(errf.reopen().unwrap());
    let child = c.spawn().unwrap();
    let pid = child.id() as i32;
    std::mem::forget(child);
    wait_deadline(pid, deadline, errf.path())
}

fn wait_deadline(pid: i32, deadline: Duration, errf: &Path) -> Run {
    let start = Instant::now();
    let mut killed = false;
    let mut hwm = 0i64;
    loop {
        if let Ok(st) = fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(v) = st
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            {
                hwm = hwm.max(v);
            }
        }
        let mut st = 0;
        // SAFETY: waitpid on our own child, valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            return Run {
                status: (!killed).then(|| std::process::ExitStatus::from_raw(st)),
                stderr: fs::read_to_string(errf).unwrap_or_default(),
                maxrss_kb: hwm,
                elapsed: start.elapsed(),
            };
        }
        assert_eq!(r, 0, "waitpid");
        if !killed && start.elapsed() > deadline {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[track_caller]
fn run_fails(r: &Run, want: &str) {
    let Some(st) = r.status else {
        panic!(
            "skiff-image still running after {:?}, killed; stderr: {}",
            r.elapsed, r.stderr
        );
    };
    assert!(!st.success(), "expected failure; stderr: {}", r.stderr);
    assert!(
        r.stderr.contains(want),
        "error {:?} does not mention {want:?}",
        r.stderr
    );
}

#[test]
fn unpack_makes_a_private_bundle() {
    let r = plain();
    let s = tmp();
    let name = reg_ref(r, "t/hello:oci");
    ok(img(s.path(), &["pull", "-q", &name]));
    let w = tmp();
    // The bundle's parent is open to all, as /srv or /home would be.
    fs::set_permissions(w.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let unpack_umask0 = |bundle: &Path| {
        let o = Command::new("sh")
            .arg("-c")
            .arg("umask 0; exec \"$@\"")
            .arg("sh")
            .arg(BIN)
            .arg("--store")
            .arg(s.path())
            .args(["unpack", &name])
            .arg(bundle)
            .output()
            .unwrap();
        ok(o);
    };
    let bundle = w.path().join("bundle");
    unpack_umask0(&bundle);
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&bundle), 0o700);
    // The image's own modes are kept inside (its /tmp is 1777).
    assert_eq!(mode(&bundle.join("rootfs/tmp")), 0o1777);

    // `nobody` can neither list nor enter the bundle, so never reaches the
    // image's setuid binaries or its world-writable directories.
    let as_nobody = |script: &str| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(script)
            .arg("sh")
            .arg(&bundle)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    for script in [
        "ls \"$1\"",
        "cd \"$1\"",
        "cat \"$1/rootfs/etc/passwd\"",
        "touch \"$1/rootfs/tmp/planted\"",
        "test -x \"$1/rootfs/bin/busybox\"",
    ] {
        assert!(!as_nobody(script), "nobody could: {script}");
    }
    assert!(!bundle.join("rootfs/tmp/planted").exists());
    // (The same user can reach the rootfs when the bundle is opened: so
    // the checks above do test the bundle's mode.)
    fs::set_permissions(&bundle, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(as_nobody("cat \"$1/rootfs/etc/passwd\""));
    fs::set_permissions(&bundle, fs::Permissions::from_mode(0o700)).unwrap();
    // And the bundle still runs.
    assert_eq!(
        skiff_run(&bundle).trim(),
        "cmd says: hello from /srv as 1000:1000"
    );

    // An existing empty directory, even 0777, is made 0700.
    let b2 = w.path().join("b2");
    fs::create_dir(&b2).unwrap();
    fs::set_permissions(&b2, fs::Permissions::from_mode(0o777)).unwrap();
    unpack_umask0(&b2);
    assert_eq!(mode(&b2), 0o700);

    let help = ok(img(s.path(), &["unpack", "--help"]));
    assert!(help.contains("0700"), "{help}");
}

#[test]
fn oversized_manifests_and_configs_are_refused() {
    const BIG: u64 = 300 << 20;
    let fake_digest = format!("sha256:{}", "ab".repeat(32));
    let fd = fake_digest.clone();
    let cfg_digest = format!("sha256:{}", "cd".repeat(32));
    let cd = cfg_digest.clone();
    let idx = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        {"mediaType": MT_MANIFEST, "digest": fake_digest, "size": BIG,
         "platform": {"architecture": host_arch(), "os": "linux"}}]});
    let man = json!({"schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": 100u64 << 20},
        "layers": []});
    let f = fake_registry(move |p, _| match p {
        "/v2/t/big/manifests/v1" => Some(Reply::Zeros {
            len: BIG,
            announce: true,
            headers: vec![("Docker-Content-Digest".into(), fd.clone())],
        }),
        "/v2/t/chunked/manifests/v1" => Some(Reply::Zeros {
            len: BIG,
            announce: false,
            headers: vec![],
        }),
        "/v2/t/bigidx/manifests/v1" => Some(json_reply(&idx, MT_INDEX)),
        "/v2/t/bigcfg/manifests/v1" => Some(json_reply(&man, MT_MANIFEST)),
        _ => None,
    });
    let s = tmp();
    ok(img(s.path(), &["ls"]));
    let before = snapshot(s.path());
    let base = format!("127.0.0.1:{}", f.port);
    let t = Duration::from_secs(60);

    // Announced by Content-Length: refused before the body is read.
    let r = run_deadline(s.path(), &["pull", &format!("{base}/t/big:v1")], &[], t);
    run_fails(&r, "t/big:v1");
    assert!(
        r.stderr.contains(&fake_digest) && r.stderr.contains(&BIG.to_string()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("4194304"), "{}", r.stderr);
    assert!(r.maxrss_kb < 100_000, "peak RSS {} kB", r.maxrss_kb);
    // Not announced: the read stops at the limit.
    let r = run_deadline(s.path(), &["pull", &format!("{base}/t/chunked:v1")], &[], t);
    run_fails(&r, "t/chunked:v1");
    assert!(r.stderr.contains("4194304"), "{}", r.stderr);
    assert!(r.maxrss_kb < 100_000, "peak RSS {} kB", r.maxrss_kb);
    // An index naming a 300 MB manifest: refused without fetching it.
    let r = run_deadline(s.path(), &["pull", &format!("{base}/t/bigidx:v1")], &[], t);
    run_fails(&r, &fake_digest);
    assert!(r.stderr.contains(&BIG.to_string()), "{}", r.stderr);
    // A 100 MB image config: refused without fetching it.
    let r = run_deadline(s.path(), &["pull", &format!("{base}/t/bigcfg:v1")], &[], t);
    run_fails(&r, &cd);
    assert!(
        r.stderr.contains(&(100u64 << 20).to_string()),
        "{}",
        r.stderr
    );
    let hits = f.hits.lock().unwrap().clone();
    assert!(
        !hits
            .iter()
            .any(|h| h.contains(&fake_digest) || h.contains(&cd)),
        "{hits:?}"
    );
    assert_eq!(before, snapshot(s.path()));

    // The same from an OCI layout: a 300 MB manifest (sparse) and a config over the limit.
    let w = tmp();
    let l = w.path().join("layout");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    let mut ix = index(&l);
    let big = l.join("blobs/sha256").join("ab".repeat(32));
    fs::File::create(&big).unwrap().set_len(BIG).unwrap();
    ix["manifests"][0]["digest"] = json!(fake_digest);
    ix["manifests"][0]["size"] = json!(BIG);
    fs::write(l.join("index.json"), ix.to_string()).unwrap();
    let r = run_deadline(s.path(), &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, &fake_digest);
    assert!(r.stderr.contains(&BIG.to_string()), "{}", r.stderr);
    assert!(r.maxrss_kb < 100_000, "peak RSS {} kB", r.maxrss_kb);

    let l2 = w.path().join("layout2");
    layout(&l2, &[layer(&[E::File("f", b"x")])]);
    // A config of 20 MB (valid JSON, padded with spaces), its manifest re-made.
    let mut cfg =
        br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]}}"#.to_vec();
    cfg.resize(20 << 20, b' ');
    let cfgd = sha_hex(&cfg);
    fs::write(l2.join("blobs/sha256").join(&cfgd), &cfg).unwrap();
    let ix2 = index(&l2);
    let md = ix2["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mut m: Value =
        serde_json::from_slice(&fs::read(l2.join("blobs/sha256").join(&md)).unwrap()).unwrap();
    m["config"]["digest"] = json!(format!("sha256:{cfgd}"));
    m["config"]["size"] = json!(cfg.len());
    let mb = serde_json::to_vec(&m).unwrap();
    let mh = sha_hex(&mb);
    fs::write(l2.join("blobs/sha256").join(&mh), &mb).unwrap();
    let ix2 = json!({"schemaVersion": 2, "manifests": [{"mediaType": MT_MANIFEST, "digest": format!("sha256:{mh}"), "size": mb.len()}]});
    fs::write(l2.join("index.json"), ix2.to_string()).unwrap();
    let r = run_deadline(s.path(), &["import", l2.to_str().unwrap()], &[], t);
    run_fails(&r, &cfgd);
    assert!(
        r.stderr.contains(&(20u64 << 20).to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(before, snapshot(s.path()));
}

#[test]
fn stalled_registry_times_out() {
    let layer_bytes = layer(&[E::File("f", &[7u8; 4096])]);
    let (mut routes, _) = small_image("t/slowblob", "v1", &layer_bytes);
    let ld = format!("sha256:{}", sha_hex(&layer_bytes));
    routes.insert(
        format!("/v2/t/slowblob/blobs/{ld}"),
        Reply::Trickle {
            body: layer_bytes.clone(),
            every: Duration::from_millis(300),
            head_fast: true,
        },
    );
    let doc = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": {}, "layers": [], "pad": "x".repeat(2000)})).unwrap();
    routes.insert("/v2/t/stall/manifests/v1".into(), Reply::Stall);
    routes.insert(
        "/v2/t/trickle/manifests/v1".into(),
        Reply::Trickle {
            body: doc.clone(),
            every: Duration::from_millis(300),
            head_fast: true,
        },
    );
    routes.insert(
        "/v2/t/slowhead/manifests/v1".into(),
        Reply::Trickle {
            body: doc,
            every: Duration::from_millis(300),
            head_fast: false,
        },
    );
    let f = fake_registry(move |p, _| routes.get(p).cloned());
    // A registry that stalls on its very first answer (/v2/).
    let f0 = fake_registry(|p, _| (p == "/v2/").then_some(Reply::Stall));

    let s = tmp();
    ok(img(s.path(), &["ls"]));
    let before = snapshot(s.path());
    let env = [("SKIFF_IMAGE_TIMEOUT", "2")];
    let cases = [
        format!("127.0.0.1:{}/t/any:v1", f0.port),
        format!("127.0.0.1:{}/t/stall:v1", f.port),
        format!("127.0.0.1:{}/t/trickle:v1", f.port),
        format!("127.0.0.1:{}/t/slowhead:v1", f.port),
        format!("127.0.0.1:{}/t/slowblob:v1", f.port),
    ];
    let runs: Vec<(String, Run)> = std::thread::scope(|sc| {
        let hs: Vec<_> = cases
            .iter()
            .map(|c| {
                let st = s.path();
                sc.spawn(move || {
                    (
                        c.clone(),
                        run_deadline(st, &["pull", "-q", c], &env, Duration::from_secs(30)),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (c, r) in &runs {
        run_fails(r, "SKIFF_IMAGE_TIMEOUT");
        assert!(r.stderr.contains("timed out"), "{c}: {}", r.stderr);
        assert!(r.elapsed < Duration::from_secs(15), "{c}: {:?}", r.elapsed);
    }
    // The flag does the same.
    let r = run_deadline(
        s.path(),
        &[
            "pull",
            "--timeout",
            "1",
            &format!("127.0.0.1:{}/t/stall:v1", f.port),
        ],
        &[],
        Duration::from_secs(30),
    );
    run_fails(&r, "timed out");
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    assert_eq!(before, snapshot(s.path()));

    // A slow registry that keeps sending is not cut off.
    let big = layer(&[E::File("f", &[9u8; 60_000])]);
    let (mut routes, _) = small_image("t/slowok", "v1", &big);
    let bd = format!("sha256:{}", sha_hex(&big));
    routes.insert(
        format!("/v2/t/slowok/blobs/{bd}"),
        Reply::Slow {
            body: big.clone(),
            chunk: 8192,
            every: Duration::from_millis(200),
        },
    );
    let f2 = fake_registry(move |p, _| routes.get(p).cloned());
    let r = run_deadline(
        s.path(),
        &["pull", "-q", &format!("127.0.0.1:{}/t/slowok:v1", f2.port)],
        &env,
        Duration::from_secs(30),
    );
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
}

/// A sparse file of `len` bytes.
fn sparse(p: &Path, len: u64) {
    fs::File::create(p).unwrap().set_len(len).unwrap();
}

#[test]
fn import_refuses_symlinks_and_special_files() {
    let w = tmp();
    let s = w.path().join("store");
    ok(img(&s, &["ls"]));
    let before = snapshot(&s);
    let t = Duration::from_secs(15);
    let layer_of = |l: &Path| -> PathBuf {
        let ix = index(l);
        let md = &ix["manifests"][0]["digest"].as_str().unwrap()[7..];
        let m: Value =
            serde_json::from_slice(&fs::read(l.join("blobs/sha256").join(md)).unwrap()).unwrap();
        l.join("blobs/sha256")
            .join(&m["layers"][0]["digest"].as_str().unwrap()[7..])
    };

    // A layer blob that is a symlink to /dev/zero.
    let l = w.path().join("zero");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    let lb = layer_of(&l);
    fs::remove_file(&lb).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &lb).unwrap();
    let r = run_deadline(&s, &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, "symlink");
    assert_eq!(before, snapshot(&s));

    // A symlink to a regular file with the right content is refused too.
    let l = w.path().join("link");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    let lb = layer_of(&l);
    let moved = w.path().join("moved-blob");
    fs::rename(&lb, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &lb).unwrap();
    let r = run_deadline(&s, &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, "symlink");
    // So is a symlinked blobs/ directory or index.json.
    let l = w.path().join("dirlink");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    fs::rename(l.join("blobs"), w.path().join("blobs-elsewhere")).unwrap();
    std::os::unix::fs::symlink(w.path().join("blobs-elsewhere"), l.join("blobs")).unwrap();
    let r = run_deadline(&s, &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, "symlink");
    let l = w.path().join("ixlink");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    fs::rename(l.join("index.json"), w.path().join("index-elsewhere")).unwrap();
    std::os::unix::fs::symlink(w.path().join("index-elsewhere"), l.join("index.json")).unwrap();
    let r = run_deadline(&s, &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, "symlink");

    // A FIFO blob: refused, without waiting for a writer.
    let l = w.path().join("fifo");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    let lb = layer_of(&l);
    fs::remove_file(&lb).unwrap();
    let c = std::ffi::CString::new(lb.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let r = run_deadline(&s, &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, "not a regular file");

    // The source itself must be a file or a directory.
    let r = run_deadline(&s, &["import", "/dev/zero"], &[], t);
    run_fails(&r, "not a regular file");
    assert_eq!(before, snapshot(&s));
    assert_eq!(fs::read_dir(s.join(".skiff/tmp")).unwrap().count(), 0);
}

/// Starts skiff-image, waits for a temp file in the store, then sends `sig`.
fn interrupt_when_writing(store: &Path, args: &[&str], env: &[(&str, &str)], sig: i32) -> Run {
    let errf = tempfile::NamedTempFile::new().unwrap();
    let mut c = Command::new(BIN);
    c.arg("--store").arg(store).args(args);
    c.env_remove("XDG_RUNTIME_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(errf.reopen().unwrap());
    let child = c.spawn().unwrap();
    let pid = child.id() as i32;
    std::mem::forget(child);
    let start = Instant::now();
    let tmpd = store.join(".skiff/tmp");
    loop {
        let n = fs::read_dir(&tmpd).map(|d| d.count()).unwrap_or(0);
        if n > 0 {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let r = wait_deadline(pid, Duration::from_secs(5), errf.path());
            panic!("no temp file appeared; stderr: {}", r.stderr);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(pid, sig) };
    wait_deadline(pid, Duration::from_secs(15), errf.path())
}

#[test]
fn interrupted_import_and_pull_leave_nothing_behind() {
    // Import: a 64 GiB (sparse) layer is still being copied at SIGTERM.
    let w = tmp();
    let s = w.path().join("store");
    ok(img(&s, &["ls"]));
    let before = snapshot(&s);
    let l = w.path().join("layout");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    let ix = index(&l);
    let md = ix["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mut m: Value =
        serde_json::from_slice(&fs::read(l.join("blobs/sha256").join(&md)).unwrap()).unwrap();
    let fake = "ef".repeat(32);
    sparse(&l.join("blobs/sha256").join(&fake), 64 << 30);
    m["layers"][0]["digest"] = json!(format!("sha256:{fake}"));
    m["layers"][0]["size"] = json!(64u64 << 30);
    let mb = serde_json::to_vec(&m).unwrap();
    let mh = sha_hex(&mb);
    fs::write(l.join("blobs/sha256").join(&mh), &mb).unwrap();
    fs::write(
        l.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{"mediaType": MT_MANIFEST, "digest": format!("sha256:{mh}"), "size": mb.len()}]}).to_string(),
    )
    .unwrap();
    let r = interrupt_when_writing(&s, &["import", l.to_str().unwrap()], &[], libc::SIGTERM);
    let st = r.status.expect("not ended by SIGTERM");
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{st:?}: {}", r.stderr);
    assert_eq!(
        fs::read_dir(s.join(".skiff/tmp")).unwrap().count(),
        0,
        "temp files left"
    );
    assert_eq!(before, snapshot(&s), "the store changed");

    // Pull: a layer that comes slowly (but fast enough not to time out).
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut routes, _) = small_image("t/slow", "v1", &big);
    let bd = format!("sha256:{}", sha_hex(&big));
    routes.insert(
        format!("/v2/t/slow/blobs/{bd}"),
        Reply::Slow {
            body: big.clone(),
            chunk: 4096,
            every: Duration::from_millis(100),
        },
    );
    let f = fake_registry(move |p, _| routes.get(p).cloned());
    let r = interrupt_when_writing(
        &s,
        &["pull", "-q", &format!("127.0.0.1:{}/t/slow:v1", f.port)],
        &[],
        libc::SIGINT,
    );
    let st = r.status.expect("not ended by SIGINT");
    assert_eq!(st.signal(), Some(libc::SIGINT), "{st:?}: {}", r.stderr);
    assert_eq!(
        fs::read_dir(s.join(".skiff/tmp")).unwrap().count(),
        0,
        "temp files left"
    );
    assert_eq!(before, snapshot(&s), "the store changed");

    // Unpack: a layer with a 64 GiB file (sparse in the store, written for
    // real into the rootfs) is still being extracted at SIGTERM.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(64 << 30);
    h.set_path("big").unwrap();
    h.set_cksum();
    let fake = "34".repeat(32);
    let lp = s.join("blobs/sha256").join(&fake);
    fs::write(&lp, h.as_bytes()).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&lp)
        .unwrap()
        .set_len(512 + (64 << 30) + 1024)
        .unwrap();
    let cfg = serde_json::to_vec(&json!({"architecture": host_arch(), "os": "linux",
        "config": {"Cmd": ["/bin/true"]}, "rootfs": {"type": "layers", "diff_ids": []}}))
    .unwrap();
    let cd = sha_hex(&cfg);
    fs::write(s.join("blobs/sha256").join(&cd), &cfg).unwrap();
    let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cd}"), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{fake}"), "size": 512u64 + (64 << 30) + 1024}]}))
    .unwrap();
    let md = sha_hex(&m);
    fs::write(s.join("blobs/sha256").join(&md), &m).unwrap();
    fs::write(
        s.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{"mediaType": MT_MANIFEST, "digest": format!("sha256:{md}"), "size": m.len(),
            "annotations": {"org.opencontainers.image.ref.name": "docker.io/evil/slow:1"}}]})
        .to_string(),
    )
    .unwrap();
    let bundle = w.path().join("bundle");
    let errf = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(BIN)
        .arg("--store")
        .arg(&s)
        .args(["unpack", "evil/slow:1"])
        .arg(&bundle)
        .stdout(Stdio::null())
        .stderr(errf.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    std::mem::forget(child);
    let start = Instant::now();
    while fs::metadata(bundle.join("rootfs/big")).map_or(0, |m| m.len()) < (10 << 20) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "unpack did not start: {}",
            fs::read_to_string(errf.path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let r = wait_deadline(pid, Duration::from_secs(15), errf.path());
    let st = r.status.expect("not ended by SIGTERM");
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{st:?}: {}", r.stderr);
    assert!(!bundle.exists(), "a half-made bundle is left");
}

#[test]
fn blob_sizes_must_match_descriptors() {
    let w = tmp();
    let s = w.path().join("store");
    ok(img(&s, &["ls"]));
    let before = snapshot(&s);
    let t = Duration::from_secs(20);
    let rewrite = |l: &Path, f: &dyn Fn(&mut Value)| {
        let ix = index(l);
        let md = ix["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
        let mut m: Value =
            serde_json::from_slice(&fs::read(l.join("blobs/sha256").join(&md)).unwrap()).unwrap();
        f(&mut m);
        let mb = serde_json::to_vec(&m).unwrap();
        let mh = sha_hex(&mb);
        fs::write(l.join("blobs/sha256").join(&mh), &mb).unwrap();
        fs::write(
            l.join("index.json"),
            json!({"schemaVersion": 2, "manifests": [{"mediaType": MT_MANIFEST, "digest": format!("sha256:{mh}"), "size": mb.len()}]}).to_string(),
        )
        .unwrap();
    };

    // The right digest, a size one byte short.
    let l = w.path().join("short");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    rewrite(&l, &|m| {
        let n = m["layers"][0]["size"].as_u64().unwrap();
        m["layers"][0]["size"] = json!(n - 1);
    });
    let r = run_deadline(&s, &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, "size");
    // A 64 GiB blob whose descriptor says 10 bytes: refused at once.
    let l = w.path().join("huge");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    let fake = "12".repeat(32);
    sparse(&l.join("blobs/sha256").join(&fake), 64 << 30);
    rewrite(&l, &|m| {
        m["layers"][0]["digest"] = json!(format!("sha256:{fake}"));
        m["layers"][0]["size"] = json!(10);
    });
    let r = run_deadline(&s, &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, "size");
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    // The manifest's own descriptor (index.json) with a wrong size.
    let l = w.path().join("msize");
    layout(&l, &[layer(&[E::File("f", b"x")])]);
    let mut ix = index(&l);
    ix["manifests"][0]["size"] = json!(ix["manifests"][0]["size"].as_u64().unwrap() + 1);
    fs::write(l.join("index.json"), ix.to_string()).unwrap();
    let r = run_deadline(&s, &["import", l.to_str().unwrap()], &[], t);
    run_fails(&r, "size");
    assert_eq!(before, snapshot(&s));

    // Pull: an index entry with the right digest and a wrong size; a blob
    // the registry announces bigger than its descriptor.
    let lb = layer(&[E::File("f", b"x")]);
    let (mut routes, man) = small_image("t/img", "v1", &lb);
    let mbody = serde_json::to_vec(&man).unwrap();
    let md = format!("sha256:{}", sha_hex(&mbody));
    routes.insert(
        format!("/v2/t/img/manifests/{md}"),
        json_reply(&man, MT_MANIFEST),
    );
    let idx = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        {"mediaType": MT_MANIFEST, "digest": md, "size": mbody.len() + 5,
         "platform": {"architecture": host_arch(), "os": "linux"}}]});
    routes.insert("/v2/t/img/manifests/idx".into(), json_reply(&idx, MT_INDEX));
    let ld = format!("sha256:{}", sha_hex(&lb));
    let (mut r2, _) = small_image("t/huge", "v1", &lb);
    r2.insert(
        format!("/v2/t/huge/blobs/{ld}"),
        Reply::Zeros {
            len: 64 << 30,
            announce: true,
            headers: vec![],
        },
    );
    routes.extend(r2);
    let f = fake_registry(move |p, _| routes.get(p).cloned());
    let base = format!("127.0.0.1:{}", f.port);
    let r = run_deadline(&s, &["pull", "-q", &format!("{base}/t/img:idx")], &[], t);
    run_fails(&r, "size");
    let r = run_deadline(&s, &["pull", "-q", &format!("{base}/t/huge:v1")], &[], t);
    run_fails(&r, "size");
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    assert_eq!(before, snapshot(&s));
    // The image itself is fine.
    ok(img(&s, &["pull", "-q", &format!("{base}/t/img:v1")]));
}

#[test]
fn whiteouts_of_dot_and_dotdot_are_refused() {
    let w = tmp();
    for (i, bad) in [".wh...", "a/.wh...", ".wh..", "a/.wh.", "a/b/.wh..."]
        .iter()
        .enumerate()
    {
        let (o, _) = unpack_layers(
            w.path(),
            &format!("wh{i}"),
            &[
                layer(&[E::Dir("a"), E::Dir("a/b"), E::File("a/b/keep", b"1")]),
                layer(&[E::File(bad, b"")]),
            ],
        );
        let e = fails(o, "invalid whiteout");
        assert!(e.contains(bad), "{e}");
        assert!(!w.path().join(format!("wh{i}-bundle")).exists());
    }
    // aufs' own metadata (.wh..wh.plnk and the like) is skipped; a normal
    // whiteout still works; a whiteout under a missing directory creates nothing.
    let (o, root) = unpack_layers(
        w.path(),
        "whok",
        &[
            layer(&[
                E::Dir("a"),
                E::File("a/gone", b"1"),
                E::File("a/kept", b"1"),
            ]),
            layer(&[
                E::File(".wh..wh.plnk", b""),
                E::File("a/.wh.gone", b""),
                E::File("nosuch/dir/.wh.x", b""),
            ]),
        ],
    );
    ok(o);
    assert!(!root.join("a/gone").exists());
    assert!(root.join("a/kept").exists());
    assert!(!root.join("nosuch").exists());
    assert!(!root.join(".wh..wh.plnk").exists());
}

#[test]
fn huge_index_error_is_capped() {
    let ms: Vec<Value> = (0..25_000)
        .map(|i| {
            json!({"digest": format!("sha256:{}", "0".repeat(64)), "size": 1,
                        "platform": {"architecture": format!("a{i}"), "os": "linux"}})
        })
        .collect();
    let idx = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": ms});
    let f = fake_registry(move |p, _| {
        (p == "/v2/t/many/manifests/v1").then(|| json_reply(&idx, MT_INDEX))
    });
    let s = tmp();
    let r = run_deadline(
        s.path(),
        &["pull", &format!("127.0.0.1:{}/t/many:v1", f.port)],
        &[],
        Duration::from_secs(60),
    );
    run_fails(&r, "no image for platform");
    assert!(r.stderr.len() < 1000, "{} bytes of error", r.stderr.len());
    assert!(r.stderr.contains("25000"), "{}", r.stderr);
    assert!(r.stderr.contains("linux/a0"), "{}", r.stderr);
}

#[test]
fn hostile_passwd_does_not_hang_unpack() {
    let w = tmp();
    for (name, kind) in [
        ("fifo", tar::EntryType::Fifo),
        ("chr", tar::EntryType::Char),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "etc/", &[][..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        // /dev/zero
        h.set_device_major(1).unwrap();
        h.set_device_minor(5).unwrap();
        h.set_size(0);
        b.append_data(&mut h, "etc/passwd", &[][..]).unwrap();
        let l = w.path().join(format!("{name}-layout"));
        layout(&l, &[b.into_inner().unwrap()]);
        let store = w.path().join("store");
        ok(img(
            &store,
            &["import", l.to_str().unwrap(), &format!("evil/{name}:1")],
        ));
        let bundle = w.path().join(format!("{name}-bundle"));
        let r = run_deadline(
            &store,
            &[
                "unpack",
                &format!("evil/{name}:1"),
                bundle.to_str().unwrap(),
            ],
            &[],
            Duration::from_secs(15),
        );
        assert!(
            r.status.is_some_and(|s| s.success()),
            "{name}: {:?} {}",
            r.status,
            r.stderr
        );
        assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
        assert!(r.maxrss_kb < 100_000, "peak RSS {} kB", r.maxrss_kb);
    }
}

#[test]
fn bearer_tokens_renew_and_stay_bounded() {
    let lb = layer(&[E::File("f", b"token test")]);
    let (routes, _) = small_image("t/tok", "v1", &lb);
    let port = Arc::new(Mutex::new(0u16));
    let issued = Arc::new(AtomicU32::new(0));
    let (p2, i2) = (port.clone(), issued.clone());
    let unauthorized = |realm: String| {
        Reply::Full(
            401,
            vec![(
                "WWW-Authenticate".into(),
                format!("Bearer realm=\"{realm}\",service=\"fake\""),
            )],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"token please"}]}"#.to_vec(),
        )
    };
    let f = fake_registry(move |p, head| {
        let realm = format!("http://127.0.0.1:{}/token", p2.lock().unwrap());
        let auth = head
            .lines()
            .find_map(|l| l.strip_prefix("authorization: "))
            .unwrap_or("")
            .trim()
            .to_string();
        let ua = head.contains("user-agent: skiff-image/");
        if p == "/v2/" {
            return Some(unauthorized(realm));
        }
        if let Some(q) = p.strip_prefix("/token?") {
            assert!(q.contains("scope=repository%3At%2Ftok%3Apull"), "{q}");
            assert!(q.contains("service=fake"), "{q}");
            // alice:pw (alice:huge gets 300 MB of answer)
            if auth == "Basic YWxpY2U6aHVnZQ==" {
                return Some(Reply::Zeros {
                    len: 300 << 20,
                    announce: false,
                    headers: vec![],
                });
            }
            if auth != "Basic YWxpY2U6cHc=" {
                return Some(Reply::Full(401, vec![], b"{}".to_vec()));
            }
            let n = i2.fetch_add(1, Ordering::SeqCst) + 1;
            return Some(Reply::Full(
                200,
                vec![],
                format!(r#"{{"token":"T{n}"}}"#).into_bytes(),
            ));
        }
        // The first token works for manifests only: blobs make the client
        // log in again (as when a token expires mid-pull).
        let ok = match auth
            .strip_prefix("Bearer T")
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(n) => n >= 2 || p.contains("/manifests/"),
            None => false,
        };
        if !ok || !ua {
            return Some(unauthorized(realm));
        }
        routes.get(p).cloned()
    });
    *port.lock().unwrap() = f.port;
    let s = tmp();
    let n = format!("127.0.0.1:{}/t/tok:v1", f.port);
    let t = Duration::from_secs(30);
    let r = run_deadline(s.path(), &["pull", "-q", &n], &[], t);
    run_fails(&r, "unauthorized");
    let r = run_deadline(
        s.path(),
        &["pull", "-q", "--creds", "alice:wrong", &n],
        &[],
        t,
    );
    run_fails(&r, "unauthorized");
    let r = run_deadline(
        s.path(),
        &["pull", "-q", "--creds", "alice:huge", &n],
        &[],
        t,
    );
    run_fails(&r, "more than");
    assert!(r.maxrss_kb < 100_000, "peak RSS {} kB", r.maxrss_kb);
    let r = run_deadline(s.path(), &["pull", "-q", "--creds", "alice:pw", &n], &[], t);
    assert!(r.status.is_some_and(|s| s.success()), "{}", r.stderr);
    assert!(issued.load(Ordering::SeqCst) >= 2);
    assert_eq!(orphans(s.path()), (vec![], vec![]));
}
