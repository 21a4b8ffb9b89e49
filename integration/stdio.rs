//! The container's stdio (issue 19): with no terminal, the fds the caller hands the runtime as
//! 0, 1 and 2 are the process's, whatever they are (pipes, FIFOs, files, /dev/null, a terminal,
//! closed fds); its writes arrive, and no process of the runtime keeps a copy once the runtime
//! has exited, so the reader sees end-of-file exactly when the container's process is gone.
//!
//! The shim-style tests start containers the way containerd's runc v2 shim does: the caller owns
//! the read ends of pipes, hands the write ends to `create` / `run -d` / `exec -d`, closes its own
//! copies, and reads until end-of-file while the runtime exits and the process writes.

use crate::common::*;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A pipe whose ends are close-on-exec: in this multi-threaded test process, another test's
/// child must not inherit them (a held write end would delay end-of-file).
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2")
}

/// `dev:ino` of an fd, as busybox `stat -L -c %d:%i` prints it inside the container.
fn dev_ino(fd: BorrowedFd<'_>) -> String {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).expect("fstat");
    format!("{}:{}", st.st_dev, st.st_ino)
}

/// `dev:ino rdev-major:minor` (hex, as `stat -c %t:%T` prints them).
fn identity(fd: BorrowedFd<'_>) -> String {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).expect("fstat");
    let (maj, min) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    format!("{}:{} {maj:x}:{min:x}", st.st_dev, st.st_ino)
}

/// Everything written to `out` and `err` until both reach end-of-file. Err when that takes
/// longer than `timeout`: a copy of a write end is still open somewhere (or the process hangs).
fn read_to_eof(out: OwnedFd, err: OwnedFd, timeout: Duration) -> Result<(String, String), String> {
    let deadline = Instant::now() + timeout;
    let mut fds = [Some(out), Some(err)];
    let mut text = [Vec::new(), Vec::new()];
    while fds.iter().any(Option::is_some) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no end-of-file on {} within {timeout:?}; read so far: {:?} / {:?}",
                if fds[0].is_some() { "stdout" } else { "stderr" },
                String::from_utf8_lossy(&text[0]),
                String::from_utf8_lossy(&text[1])
            ));
        }
        let mut pfds: Vec<libc::pollfd> = fds
            .iter()
            .map(|f| libc::pollfd {
                fd: f.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), 2, left.as_millis() as i32) };
        if n < 0 {
            continue; // EINTR
        }
        for i in 0..2 {
            if pfds[i].revents == 0 {
                continue;
            }
            let fd = fds[i].as_ref().expect("polled fd is open");
            let mut buf = [0u8; 4096];
            let n = nix::unistd::read(fd.as_raw_fd(), &mut buf).unwrap_or(0);
            if n == 0 {
                fds[i] = None;
            } else {
                text[i].extend_from_slice(&buf[..n]);
            }
        }
    }
    let [o, e] = text;
    Ok((
        String::from_utf8_lossy(&o).into_owned(),
        String::from_utf8_lossy(&e).into_owned(),
    ))
}

/// Run a runtime command with the given write ends as its stdout and stderr (the process's,
/// when it starts one), wait for it, and close our copies. Returns its exit code and the
/// runtime's own diagnostics when it failed (they went to the process's stderr pipe).
fn run_with_stdio(c: &Ctx, args: &[&str], out_w: OwnedFd, err_w: OwnedFd) -> i32 {
    let mut cmd = c.command(args);
    cmd.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
    let st = cmd.status().expect("spawn the runtime");
    // The Command owns the write ends: dropping it closes the caller's copies, as the shim's
    // CloseAfterStart does.
    drop(cmd);
    st.code().unwrap_or(-1)
}

/// How a shim-style process is launched.
#[derive(Clone, Copy, Debug)]
enum Launch {
    /// `create` then `start` (the shim's way for a task).
    CreateStart,
    /// `run -d`: the runtime exits while the process may be writing.
    RunDetached,
    /// `exec -d` into a running container (the shim's way for an exec).
    ExecDetached,
}

/// The script every shim-style process runs: one line to each stream naming the stream's
/// `dev:ino` as the process sees it, then exit at once.
const REPORT: &str = r#"echo "out $1 $(stat -L -c %d:%i /proc/$$/fd/1)"; echo "err $1 $(stat -L -c %d:%i /proc/$$/fd/2)" >&2"#;

/// One process started shim-style; checks that both lines arrive on the right pipe, that the
/// process saw exactly those pipes, and that end-of-file comes once it is gone.
fn one_shim_style(c: &Ctx, how: Launch, exec_target: &str) -> Result<(), String> {
    let id = c.new_id();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let (want_out, want_err) = (dev_ino(out_r.as_fd()), dev_ino(err_r.as_fd()));
    let bundle = c.bundle.to_str().expect("utf-8 bundle path");
    let pid_file = c.pid_file(&id);
    let pid_file = pid_file.to_str().expect("utf-8 path");
    let script_args = ["sh", "-c", REPORT, "sh", &id];
    let code = match how {
        Launch::CreateStart | Launch::RunDetached => {
            c.track(&id);
            let verb: &[&str] = match how {
                Launch::CreateStart => &["create"],
                _ => &["run", "-d"],
            };
            let mut args: Vec<&str> = verb.to_vec();
            args.extend(["--bundle", bundle, "--pid-file", pid_file, &id]);
            run_with_stdio(c, &args, out_w, err_w)
        }
        Launch::ExecDetached => {
            let mut args = vec!["exec", "-d", "--pid-file", pid_file, exec_target];
            args.extend(script_args);
            run_with_stdio(c, &args, out_w, err_w)
        }
    };
    if code != 0 {
        let (o, e) = read_to_eof(out_r, err_r, Duration::from_secs(5)).unwrap_or_default();
        return Err(format!("{how:?} {id}: the runtime failed ({code}): {o}{e}"));
    }
    if let Launch::CreateStart = how {
        let st = c.start_id(&id);
        if st.code != 0 {
            return Err(format!("start {id}: {}", st.stderr));
        }
    }
    let got = read_to_eof(out_r, err_r, Duration::from_secs(20));
    if !matches!(how, Launch::ExecDetached) {
        c.delete_id(&id, true);
    }
    let (out, err) = got.map_err(|e| format!("{how:?} {id}: {e}"))?;
    // The container's own process names itself "init" (its args are in config.json).
    let tag = if matches!(how, Launch::ExecDetached) {
        id.as_str()
    } else {
        "init"
    };
    let (want_o, want_e) = (
        format!("out {tag} {want_out}\n"),
        format!("err {tag} {want_err}\n"),
    );
    if out != want_o || err != want_e {
        return Err(format!(
            "{how:?} {id}: stdout {out:?} (want {want_o:?}), stderr {err:?} (want {want_e:?})"
        ));
    }
    Ok(())
}

/// Both CPUs busy until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `count` processes of each kind, `workers` at a time, with both CPUs kept busy: every line
/// arrives, on its own stream, and every stream ends.
fn shim_style_many(name: &str, count: usize) {
    let mut c = Ctx::new(name);
    c.spec["process"]["args"] = serde_json::json!(["sh", "-c", REPORT, "sh", "init"]);
    c.write_spec();
    // The exec target: a container that stays up.
    let mut target = Ctx::new(&format!("{name}_target"));
    target.set_args(&["sleep", "1000"]);
    target.create().ok();
    target.start().ok();
    let target = Arc::new(target);
    let c = Arc::new(c);
    let _load = Load::start(2);
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    for how in [
        Launch::CreateStart,
        Launch::RunDetached,
        Launch::ExecDetached,
    ] {
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (c, target, next, failures, done) = (
                    c.clone(),
                    target.clone(),
                    next.clone(),
                    failures.clone(),
                    done.clone(),
                );
                std::thread::spawn(move || {
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        let ctx: &Ctx = if matches!(how, Launch::ExecDetached) {
                            &target
                        } else {
                            &c
                        };
                        if let Err(e) = one_shim_style(ctx, how, &target.id) {
                            failures.lock().unwrap().push(e);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker thread");
        }
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} processes lost output or kept a stream open:\n{}",
        failures.len(),
        done.load(Ordering::Relaxed),
        failures.join("\n")
    );
    assert_eq!(done.load(Ordering::Relaxed), 3 * count);
}

#[test]
fn shim_style_output_is_never_lost_under_load() {
    shim_style_many("stdio_shim", 100);
}

/// What the process sees as its stdio fds: `dev:ino`, or `closed`. A child shell asks about its
/// parent's fds: busybox runs applets such as `stat` inside the shell itself, with the
/// shell's own fds redirected for the time of the call.
fn report_script(report: &str) -> String {
    format!(
        "sh -c 'for f in 0 1 2; do stat -L -c \"$f=%d:%i %t:%T\" /proc/$PPID/fd/$f 2>/dev/null || echo \"$f=closed\"; done >>{report}'; echo to-stdout; echo to-stderr >&2"
    )
}

/// One kind of stdio handed to the runtime as fds 0, 1 and 2: what the caller expects the
/// process to see (`dev:ino` or `closed`), and how to read back what it wrote.
struct Handed {
    fds: [Option<OwnedFd>; 3],
    want: [String; 3],
    /// Read ends (pipe, FIFO, pty master) or files to read after the process is gone.
    readback: Vec<Readback>,
}

enum Readback {
    Fd(OwnedFd, &'static str),
    File(std::path::PathBuf, &'static str),
}

fn open(path: &std::path::Path, flags: nix::fcntl::OFlag) -> OwnedFd {
    let fd = nix::fcntl::open(
        path,
        flags | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: open returned a new fd that we own.
    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
}

fn handed(kind: &str, c: &Ctx) -> Handed {
    use nix::fcntl::OFlag;
    let want_of = |fd: &OwnedFd| identity(fd.as_fd());
    match kind {
        "pipe" => {
            let (in_r, in_w) = pipe();
            let (out_r, out_w) = pipe();
            let (err_r, err_w) = pipe();
            drop(in_w);
            let want = [want_of(&in_r), want_of(&out_w), want_of(&err_w)];
            Handed {
                fds: [Some(in_r), Some(out_w), Some(err_w)],
                want,
                readback: vec![
                    Readback::Fd(out_r, "to-stdout\n"),
                    Readback::Fd(err_r, "to-stderr\n"),
                ],
            }
        }
        "fifo" => {
            let mut ends = Vec::new();
            for name in ["in.fifo", "out.fifo", "err.fifo"] {
                let p = c.path(name);
                let _ = fs::remove_file(&p);
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .expect("mkfifo");
                // O_RDWR: opening does not wait for a peer.
                let read = open(&p, OFlag::O_RDWR | OFlag::O_NONBLOCK);
                let write = open(&p, OFlag::O_WRONLY);
                ends.push((read, write));
            }
            let (in_r, in_w) = ends.remove(0);
            let (out_r, out_w) = ends.remove(0);
            let (err_r, err_w) = ends.remove(0);
            drop(in_w);
            let want = [want_of(&in_r), want_of(&out_w), want_of(&err_w)];
            Handed {
                fds: [Some(in_r), Some(out_w), Some(err_w)],
                want,
                readback: vec![
                    Readback::Fd(out_r, "to-stdout\n"),
                    Readback::Fd(err_r, "to-stderr\n"),
                ],
            }
        }
        "file" => {
            let (i, o, e) = (c.path("in.txt"), c.path("out.txt"), c.path("err.txt"));
            fs::write(&i, "").expect("write in.txt");
            let fds = [
                open(&i, OFlag::O_RDONLY),
                open(
                    &o,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_APPEND,
                ),
                open(
                    &e,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_APPEND,
                ),
            ];
            let want = [want_of(&fds[0]), want_of(&fds[1]), want_of(&fds[2])];
            let [a, b, d] = fds;
            Handed {
                fds: [Some(a), Some(b), Some(d)],
                want,
                readback: vec![
                    Readback::File(o, "to-stdout\n"),
                    Readback::File(e, "to-stderr\n"),
                ],
            }
        }
        "devnull" => {
            let n = || open(std::path::Path::new("/dev/null"), OFlag::O_RDWR);
            let fds = [n(), n(), n()];
            let want = [want_of(&fds[0]), want_of(&fds[1]), want_of(&fds[2])];
            let [a, b, d] = fds;
            Handed {
                fds: [Some(a), Some(b), Some(d)],
                want,
                readback: vec![],
            }
        }
        "tty" => {
            let pty = nix::pty::openpty(None, None).expect("openpty");
            nix::fcntl::fcntl(
                pty.master.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .expect("cloexec");
            nix::fcntl::fcntl(
                pty.slave.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .expect("cloexec");
            // Raw output: the lines come back as written, without \r.
            let mut t = nix::sys::termios::tcgetattr(&pty.slave).expect("tcgetattr");
            nix::sys::termios::cfmakeraw(&mut t);
            nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t)
                .expect("tcsetattr");
            let want = want_of(&pty.slave);
            let dup = |fd: &OwnedFd| fd.try_clone().expect("dup");
            Handed {
                fds: [
                    Some(dup(&pty.slave)),
                    Some(dup(&pty.slave)),
                    Some(pty.slave),
                ],
                want: [want.clone(), want.clone(), want],
                readback: vec![Readback::Fd(pty.master, "to-stdout\nto-stderr\n")],
            }
        }
        "closed" => Handed {
            fds: [None, None, None],
            want: ["closed".into(), "closed".into(), "closed".into()],
            readback: vec![],
        },
        other => panic!("unknown stdio kind {other}"),
    }
}

/// Run `args` with `h`'s fds as 0, 1 and 2 (closed where None), from a child that sets them up
/// by hand: std's Command cannot hand a child a closed stdio fd.
fn spawn_with_fds(c: &Ctx, args: &[&str], fds: &[Option<OwnedFd>; 3]) -> i32 {
    let mut cmd = c.command(args);
    let raw: Vec<i32> = fds
        .iter()
        .map(|f| f.as_ref().map_or(-1, |f| f.as_raw_fd()))
        .collect();
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // SAFETY: the closure only calls async-signal-safe dup/dup2/close on fds we own.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // Move the sources out of 0..3 first, so setting one target does not clobber a
            // source still to be used.
            let mut moved = [-1; 3];
            for (i, &fd) in raw.iter().enumerate() {
                if fd >= 0 {
                    moved[i] = libc::fcntl(fd, libc::F_DUPFD, 10);
                }
            }
            for (target, &fd) in moved.iter().enumerate() {
                if fd >= 0 {
                    libc::dup2(fd, target as i32);
                } else {
                    libc::close(target as i32);
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn the runtime");
    let st = child.wait().expect("wait for the runtime");
    st.code().unwrap_or(-1)
}

fn check_kind(kind: &str, how: Launch) {
    let mut c = Ctx::new(&format!("stdio_{kind}"));
    let report = "/stdio-report";
    let report_on_host = c.rootfs_path().join("stdio-report");
    let script = report_script(report);
    let mut target_id = None;
    let h = handed(kind, &c);
    let code = match how {
        Launch::ExecDetached => {
            c.set_args(&["sleep", "1000"]);
            c.create().ok();
            c.start().ok();
            target_id = Some(c.id.clone());
            spawn_with_fds(&c, &["exec", "-d", &c.id, "sh", "-c", &script], &h.fds)
        }
        _ => {
            c.sh_args(&script);
            c.write_spec();
            c.track(&c.id.clone());
            let bundle = c.bundle.to_str().unwrap().to_string();
            spawn_with_fds(&c, &["create", "--bundle", &bundle, &c.id.clone()], &h.fds)
        }
    };
    drop(h.fds);
    assert_eq!(code, 0, "{kind}: the runtime failed");
    if target_id.is_none() {
        c.start().ok();
    }
    let text = wait_for(Duration::from_secs(10), "the process's report", || {
        let t = fs::read_to_string(&report_on_host).ok()?;
        (t.lines().count() == 3).then_some(t)
    });
    let want = format!("0={}\n1={}\n2={}\n", h.want[0], h.want[1], h.want[2]);
    if kind == "devnull" && !is_skiff() {
        // runc reopens a /dev/null stdio fd from the container's own /dev: the same device.
        let rdevs = |t: &str| {
            t.lines()
                .map(|l| l.split(' ').nth(1).unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(rdevs(&text), vec!["1:3"; 3], "{text}");
    } else {
        assert_eq!(
            text, want,
            "{kind} ({how:?}): what the process saw as 0, 1, 2"
        );
    }
    for rb in h.readback {
        match rb {
            Readback::Fd(fd, want) => {
                // Everything written, then end-of-file (pty: EIO once the last slave is gone).
                let mut f = fs::File::from(fd);
                nix::fcntl::fcntl(
                    f.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
                )
                .expect("blocking");
                let mut got = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut buf = [0u8; 256];
                while got.len() < want.len() && Instant::now() < deadline {
                    match f.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                assert_eq!(String::from_utf8_lossy(&got), want, "{kind} ({how:?})");
            }
            Readback::File(path, want) => {
                let got = wait_for(Duration::from_secs(10), "the output file", || {
                    let t = fs::read_to_string(&path).ok()?;
                    (t.len() >= want.len()).then_some(t)
                });
                assert_eq!(got, want, "{kind} ({how:?}): {}", path.display());
            }
        }
    }
}

#[test]
fn stdio_kinds_reach_the_process_unchanged() {
    for kind in ["pipe", "fifo", "file", "devnull", "tty"] {
        check_kind(kind, Launch::CreateStart);
        check_kind(kind, Launch::ExecDetached);
    }
}

/// A closed fd handed to the runtime is closed in the process too: never one of the
/// runtime's own files (runc 1.1 hands a closed stdin's slot to whatever it opened there,
/// /sys/fs/cgroup in one measurement), never a /dev/null the process did not ask for.
#[test]
fn closed_stdio_stays_closed() {
    skiff_only!("runc leaks one of its own fds into a closed stdin slot");
    check_kind("closed", Launch::CreateStart);
    check_kind("closed", Launch::ExecDetached);
}

#[test]
fn foreground_run_hands_its_stdio_through() {
    // The one-shot case people use by hand: `run` in the foreground with pipes.
    let mut c = Ctx::new("stdio_fg");
    c.spec["process"]["args"] = serde_json::json!(["sh", "-c", REPORT, "sh", "fg"]);
    c.write_spec();
    c.track(&c.id.clone());
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let (wo, we) = (dev_ino(out_r.as_fd()), dev_ino(err_r.as_fd()));
    let bundle = c.bundle.to_str().unwrap().to_string();
    let mut cmd: Command = c.command(&["run", "--bundle", &bundle, &c.id.clone()]);
    cmd.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
    let mut child = cmd.spawn().expect("spawn run");
    drop(cmd);
    let (out, err) = read_to_eof(out_r, err_r, Duration::from_secs(20)).expect("end-of-file");
    assert!(child.wait().expect("wait").success(), "{err}");
    if is_skiff() {
        // runc's foreground run copies through pipes of its own.
        assert_eq!(out, format!("out fg {wo}\n"));
        assert_eq!(err, format!("err fg {we}\n"));
    } else {
        assert!(
            out.starts_with("out fg ") && err.starts_with("err fg "),
            "{out} {err}"
        );
    }
}
