//! skiff-image: pull, store, list, remove and unpack OCI images into
//! bundles `skiff run` takes. A separate binary so that its registry,
//! TLS and archive code never lands in `skiff` itself.

mod bundle;
mod import;
mod refs;
mod registry;
mod store;
mod unpack;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;
use skiff::error::{Error, Result};

use store::{Descriptor, Manifest, Store, MAX_CONFIG, MAX_MANIFEST, REF_NAME};

#[derive(Parser)]
#[command(
    name = "skiff-image",
    version,
    about = "Pull, list, remove and unpack OCI images for skiff"
)]
struct Cli {
    /// The image store, an OCI image layout [env: SKIFF_STORE; default: /var/lib/skiff/images]
    #[arg(long, global = true)]
    store: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pull an image from a registry (docker.io by default)
    Pull {
        reference: String,
        /// os/arch[/variant] to pick from a multi-platform image (default: this host's)
        #[arg(long)]
        platform: Option<String>,
        /// USER:PASSWORD for the registry (else auth.json / ~/.docker/config.json)
        #[arg(long)]
        creds: Option<String>,
        /// Allow plain HTTP to a registry that is not on loopback
        #[arg(long)]
        insecure: bool,
        /// No progress bars
        #[arg(long, short)]
        quiet: bool,
        /// Seconds to wait for the registry: to connect, for any answer, and
        /// between data (a transfer slower than 1 KiB/s over that long fails
        /// too) [env: SKIFF_IMAGE_TIMEOUT; default: 30]
        #[arg(long, value_name = "SECS")]
        timeout: Option<String>,
    },
    /// List the images in the store
    #[command(visible_alias = "images")]
    Ls {
        /// table or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Remove image references, then the blobs no image uses any more
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove blobs no image uses
    Gc,
    /// Print an image's manifest and config as JSON
    Inspect { reference: String },
    /// Make a bundle (DIR/rootfs and DIR/config.json) from an image
    ///
    /// DIR is created mode 0700 (an existing empty DIR is made 0700), whatever
    /// the umask: the rootfs keeps the image's owners and modes, setuid
    /// binaries, file capabilities and device nodes, so no other user may
    /// reach it.
    Unpack {
        reference: String,
        dir: PathBuf,
        /// HOST:CONTAINER[:ro] bind mount
        #[arg(long = "volume", short = 'v')]
        volumes: Vec<String>,
        /// KEY=VALUE added to the environment
        #[arg(long = "env", short = 'e')]
        env: Vec<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// Give the process a terminal
        #[arg(long, short = 't')]
        tty: bool,
        /// A user-namespace config for the calling unprivileged user
        #[arg(long)]
        rootless: bool,
        /// The command, replacing the image's Cmd
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Import a docker-archive, oci-archive, OCI layout directory or rootfs tar
    Import {
        source: PathBuf,
        /// The name to store it under (default: from the archive)
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    handle_signals();
    let res = run(cli);
    if let Err(e) = &res {
        eprintln!("skiff-image: {e}");
    }
    if let Some(sig) = store::interrupted() {
        // Undone: now end the way the signal would have.
        die_by(sig);
    }
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// How long the operation has, after SIGINT/SIGTERM/SIGHUP, to undo itself
/// before the process removes its temp files and dies anyway.
const UNDO_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// SIGINT, SIGTERM and SIGHUP go to one thread (blocked in all others,
/// which inherit this mask: call before any thread starts). It flags the
/// operation as interrupted, which then fails and undoes itself (temp
/// files, blobs it added, a half-made bundle) and exits by the signal. If
/// it has not within UNDO_GRACE (blocked in a syscall), or a second signal
/// comes, the thread removes the temp files itself and dies.
fn handle_signals() {
    // SAFETY: sigset_t is plain data, initialized by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers; pthread_sigmask on this thread.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
    }
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: valid set and out-pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            store::set_interrupted(sig);
            let ts = libc::timespec {
                tv_sec: UNDO_GRACE.as_secs() as libc::time_t,
                tv_nsec: 0,
            };
            // SAFETY: valid set and timespec; no siginfo wanted.
            unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
            let _held = store::remove_live_tmp_files();
            eprintln!("skiff-image: interrupted: removed temp files, exiting");
            die_by(sig);
        });
    if spawned.is_err() {
        // No handler thread: let the signals kill as before.
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// Ends the process by `sig` (default action), so the caller sees it.
fn die_by(sig: i32) -> ! {
    // SAFETY: restoring the default action and unblocking the signal in
    // this thread, then sending it to this thread; _exit if we survive it.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut one: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut one);
        libc::sigaddset(&mut one, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
        libc::raise(sig);
        libc::_exit(128 + sig)
    }
}

/// The registry timeout: `--timeout`, else $SKIFF_IMAGE_TIMEOUT, else 30 s.
fn pull_timeout(flag: Option<&str>) -> Result<std::time::Duration> {
    let (what, v) = match flag {
        Some(v) => ("--timeout", v.to_string()),
        None => match std::env::var("SKIFF_IMAGE_TIMEOUT") {
            Ok(v) => ("SKIFF_IMAGE_TIMEOUT", v),
            Err(_) => {
                return Ok(std::time::Duration::from_secs(
                    registry::DEFAULT_TIMEOUT_SECS,
                ))
            }
        },
    };
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86400.0 => {
            Ok(std::time::Duration::from_secs_f64(s))
        }
        _ => Err(Error::msg(format!(
            "{what} {v:?}: expected seconds, more than 0 (at most 86400)"
        ))),
    }
}

fn run(cli: Cli) -> Result<()> {
    // rustls needs one crypto provider chosen per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = cli
        .store
        .or_else(|| std::env::var_os("SKIFF_STORE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/skiff/images"));
    let store = Store::open(&root)?;
    match cli.cmd {
        Cmd::Pull {
            reference,
            platform,
            creds,
            insecure,
            quiet,
            timeout,
        } => {
            let opts = registry::PullOpts {
                platform: platform.as_deref(),
                creds: creds.as_deref(),
                insecure,
                quiet,
                timeout: pull_timeout(timeout.as_deref())?,
            };
            let (name, digest) = registry::pull(&store, &reference, &opts)?;
            println!("{name} {digest}");
        }
        Cmd::Ls { format } => ls(&store, &format)?,
        Cmd::Rm { references } => {
            let names: Vec<String> = references
                .iter()
                .map(|r| resolve_name(&store, r))
                .collect::<Result<_>>()?;
            store.update_index(|index| {
                index.manifests.retain(|d| {
                    !d.annotations
                        .get(REF_NAME)
                        .is_some_and(|n| names.contains(n))
                });
                Ok(())
            })?;
            for n in &names {
                println!("Untagged: {n}");
            }
            let (n, bytes) = store.gc()?;
            println!("Deleted {n} blobs, {}", human(bytes));
        }
        Cmd::Gc => {
            let (n, bytes) = store.gc()?;
            println!("Deleted {n} blobs, {}", human(bytes));
        }
        Cmd::Inspect { reference } => {
            let (name, desc) = find(&store, &reference)?;
            let manifest: serde_json::Value = serde_json::from_slice(&store.read_blob_max(
                &desc.digest,
                MAX_MANIFEST,
                "manifest",
            )?)
            .map_err(|e| Error::msg(format!("manifest {}: {e}", desc.digest)))?;
            let m: Manifest = serde_json::from_value(manifest.clone())
                .map_err(|e| Error::msg(format!("manifest {}: {e}", desc.digest)))?;
            let config: serde_json::Value = serde_json::from_slice(&store.read_blob_max(
                &m.config.digest,
                MAX_CONFIG,
                "image config",
            )?)
            .map_err(|e| Error::msg(format!("config {}: {e}", m.config.digest)))?;
            let out = json!({
                "name": name,
                "digest": desc.digest,
                "sourceDigest": desc.annotations.get(store::SOURCE_DIGEST),
                "manifest": manifest,
                "config": config,
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Cmd::Unpack {
            reference,
            dir,
            volumes,
            env,
            hostname,
            tty,
            rootless,
            args,
        } => {
            let mut vols = Vec::new();
            for v in &volumes {
                let (h, c, ro) = bundle::parse_volume(v)?;
                let abs =
                    std::path::absolute(&h).map_err(|e| Error::io("resolve volume", &h, e))?;
                vols.push((abs.display().to_string(), c, ro));
            }
            let opts = bundle::BundleOpts {
                volumes: vols,
                env,
                hostname,
                tty,
                // SAFETY: getuid/getgid cannot fail.
                rootless: rootless.then(|| unsafe { (libc::getuid(), libc::getgid()) }),
                args,
            };
            unpack_bundle(&store, &reference, &dir, &opts)?;
        }
        Cmd::Import { source, name } => {
            for (n, d) in import::import(&store, &source, name.as_deref())? {
                println!("{n} {d}");
            }
        }
    }
    Ok(())
}

/// The store name a user reference stands for.
fn resolve_name(store: &Store, r: &str) -> Result<String> {
    find(store, r).map(|(n, _)| n)
}

/// Finds an image by reference (normalized like docker) or by a manifest
/// digest (prefix of at least 12 hex digits).
fn find(store: &Store, r: &str) -> Result<(String, Descriptor)> {
    let index = store.read_index()?;
    let named = |d: &Descriptor| d.annotations.get(REF_NAME).cloned();
    if let Ok(parsed) = refs::parse(r) {
        let want = refs::ref_name(&parsed);
        for d in &index.manifests {
            if named(d).as_deref() == Some(want.as_str()) || named(d).as_deref() == Some(r) {
                return Ok((want, d.clone()));
            }
        }
    }
    let hex = r.strip_prefix("sha256:").unwrap_or(r);
    if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|d| {
                d.digest
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(hex))
            })
            .collect();
        if let [d] = hits.as_slice() {
            return Ok((named(d).unwrap_or_else(|| d.digest.clone()), (*d).clone()));
        }
    }
    Err(Error::msg(format!("image not known: {r}")))
}

fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", units[u])
    }
}

fn ls(store: &Store, format: &str) -> Result<()> {
    if format != "table" && format != "json" {
        return Err(Error::msg(format!(
            "--format {format:?}: expected table or json"
        )));
    }
    let index = store.read_index()?;
    let mut rows = Vec::new();
    for d in &index.manifests {
        let name = d.annotations.get(REF_NAME).cloned().unwrap_or_default();
        let (repo, tag) = refs::split_name(&name);
        let (size, created) = match store.read_manifest(&d.digest) {
            Ok(m) => {
                let size = m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>();
                let created = store
                    .read_blob_max(&m.config.digest, MAX_CONFIG, "image config")
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|c| c.get("created").and_then(|c| c.as_str()).map(String::from))
                    .unwrap_or_default();
                (size, created)
            }
            Err(_) => (0, String::new()),
        };
        rows.push(json!({
            "name": name,
            "repository": repo,
            "tag": tag,
            "digest": d.digest,
            "size": size,
            "created": created,
        }));
    }
    let mut out = std::io::stdout().lock();
    if format == "json" {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(());
    }
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let w = rows
        .iter()
        .map(|r| s(r, "repository").len())
        .max()
        .unwrap_or(0)
        .max(10);
    let wt = rows
        .iter()
        .map(|r| s(r, "tag").len())
        .max()
        .unwrap_or(0)
        .clamp(3, 20);
    let _ = writeln!(
        out,
        "{:w$}  {:wt$}  {:19}  {:>8}  CREATED",
        "REPOSITORY", "TAG", "DIGEST", "SIZE"
    );
    for r in &rows {
        let digest = s(r, "digest");
        let short = digest.get(7..19).unwrap_or(&digest);
        let mut tag = s(r, "tag");
        if tag.len() > 20 {
            tag.truncate(19);
            tag.push('…');
        }
        let created = s(r, "created");
        let created = created.get(..19).unwrap_or(&created).replace('T', " ");
        let _ = writeln!(
            out,
            "{:w$}  {:wt$}  sha256:{:12}  {:>8}  {}",
            if s(r, "repository").is_empty() {
                "<none>".into()
            } else {
                s(r, "repository")
            },
            if tag.is_empty() { "<none>".into() } else { tag },
            short,
            human(r["size"].as_u64().unwrap_or(0)),
            created
        );
    }
    Ok(())
}

/// The largest /etc/passwd or /etc/group read from an image.
const MAX_ETC_FILE: u64 = 16 << 20;

fn unpack_bundle(
    store: &Store,
    reference: &str,
    dir: &Path,
    opts: &bundle::BundleOpts,
) -> Result<()> {
    let _shared = store.lock_shared()?;
    let (name, desc) = find(store, reference)?;
    let m = store.read_manifest(&desc.digest)?;
    let config: serde_json::Value = serde_json::from_slice(&store.read_blob_max(
        &m.config.digest,
        MAX_CONFIG,
        "image config",
    )?)
    .map_err(|e| Error::msg(format!("config {}: {e}", m.config.digest)))?;
    for l in &m.layers {
        if !registry::is_supported_layer(&l.media_type) {
            return Err(Error::msg(format!(
                "unsupported media type {:?} for layer {}",
                l.media_type, l.digest
            )));
        }
    }
    // The bundle directory is 0700 whatever the umask: the rootfs below it
    // has the image's modes and owners (often a 0755 or 0777 root, setuid
    // binaries, device nodes), and only its owner may reach them.
    let created_dir = fs::symlink_metadata(dir).is_err();
    if created_dir {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("create bundle dir", dir, e))?;
    } else {
        let mut rd = fs::read_dir(dir).map_err(|e| Error::io("read bundle dir", dir, e))?;
        if rd.next().is_some() {
            return Err(Error::msg(format!(
                "{}: bundle directory is not empty",
                dir.display()
            )));
        }
    }
    let res = fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("chmod 0700", dir, e));
    if let Err(e) = res {
        if created_dir {
            let _ = fs::remove_dir(dir);
        }
        return Err(e);
    }
    if let Ok(md) = fs::metadata(dir) {
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if md.uid() != me {
            eprintln!(
                "skiff-image: warning: {} belongs to uid {}, who can reach the rootfs",
                dir.display(),
                md.uid()
            );
        }
    }
    let rootfs = dir.join("rootfs");
    let res = (|| {
        fs::create_dir_all(&rootfs).map_err(|e| Error::io("create rootfs", &rootfs, e))?;
        let mut ap = unpack::Applier::new(&rootfs)?;
        ap.set_cancel(|| store::check_interrupted().err().map(|e| e.to_string()));
        for l in &m.layers {
            let p = store.blob_path(&l.digest)?;
            let f = fs::File::open(&p).map_err(|e| Error::io("open layer", &p, e))?;
            ap.apply(f)
                .map_err(|e| Error::msg(format!("layer {}: {e}", l.digest)))?;
        }
        for w in ap.finish()? {
            eprintln!("skiff-image: warning: {w}");
        }
        let read = |path: &str| match unpack::read_in_root(&rootfs, path, MAX_ETC_FILE) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                eprintln!("skiff-image: warning: {e}: not used to resolve the user");
                Vec::new()
            }
        };
        let passwd = read("/etc/passwd");
        let group = read("/etc/group");
        let base = match opts.rootless {
            Some((uid, gid)) => skiff::spec_template::rootless_spec(uid, gid),
            None => skiff::spec_template::default_spec(),
        };
        let mut spec = bundle::make_spec(
            base,
            &config,
            &String::from_utf8_lossy(&passwd),
            &String::from_utf8_lossy(&group),
            opts,
        )?;
        spec["annotations"]["org.opencontainers.image.ref.name"] = json!(name);
        spec["annotations"]["org.opencontainers.image.manifest.digest"] = json!(desc.digest);
        let data = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::msg(format!("encode config.json: {e}")))?;
        let cfg = dir.join("config.json");
        fs::write(&cfg, data).map_err(|e| Error::io("write", &cfg, e))
    })();
    if res.is_err() {
        if created_dir {
            let _ = fs::remove_dir_all(dir);
        } else {
            let _ = fs::remove_dir_all(&rootfs);
            let _ = fs::remove_file(dir.join("config.json"));
        }
    }
    res
}
