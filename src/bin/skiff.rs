//! `skiff`: runc's command line over the skiff library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use skiff::container::{self, CreateOptions};
use skiff::error::{Error, Result};
use skiff::logging::{self, Format};
use skiff::state::Store;

#[derive(Parser)]
#[command(
    name = "skiff",
    about = "An OCI container runtime with runc's command line",
    disable_version_flag = true
)]
struct Cli {
    /// Root directory for container state
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Append log lines (errors; everything with --debug) to this file
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Format of the --log file: text or json
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log debug lines
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver (not available: skiff manages cgroupfs)
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (auto: when not running as root)
    #[arg(
        long = "rootless",
        id = "global_rootless",
        value_name = "true|false|auto"
    )]
    rootless: Option<String>,
    /// Print the version and exit
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Clone, Default)]
struct CreateArgs {
    /// Path to the bundle directory (default: the current directory)
    #[arg(short = 'b', long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Unix socket to receive the pty master of a container with a terminal
    #[arg(long = "console-socket", value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Write the host pid of the container's init to this file
    #[arg(long = "pid-file", value_name = "PATH")]
    pid_file: Option<PathBuf>,
    /// Unix socket to receive a pidfd of the container's init
    #[arg(long = "pidfd-socket", value_name = "PATH")]
    pidfd_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for ramfs roots)
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra fds (3 .. 3+N-1) to the container process
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    preserve_fds: u32,
    /// Container id
    id: String,
}

#[derive(clap::Args)]
struct ExecArgs {
    /// Path to a process.json (runtime-spec Process); "-" reads stdin
    #[arg(short = 'p', long, value_name = "FILE")]
    process: Option<PathBuf>,
    /// Detach from the process
    #[arg(short = 'd', long)]
    detach: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Working directory in the container
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Set an environment variable (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// Additional group ids (repeatable, or comma-separated)
    #[arg(
        short = 'g',
        long = "additional-gids",
        value_name = "GID",
        value_delimiter = ','
    )]
    additional_gids: Vec<u32>,
    /// Add a capability (repeatable)
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// AppArmor profile for the process
    #[arg(long, value_name = "PROFILE")]
    apparmor: Option<String>,
    /// SELinux label for the process
    #[arg(long = "process-label", value_name = "LABEL")]
    process_label: Option<String>,
    /// Pass N extra fds (3 .. 3+N-1) to the process
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    preserve_fds: u32,
    /// Write the host pid of the process to this file
    #[arg(long = "pid-file", value_name = "PATH")]
    pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master
    #[arg(long = "console-socket", value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Exec even when the container is paused
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Run the process in an existing sub-cgroup of the container's: [CONTROLLER[,...]:]PATH
    /// (repeatable; without a controller, every hierarchy)
    #[arg(long = "cgroup", value_name = "[CONTROLLER:]PATH")]
    cgroup: Vec<String>,
    /// Container id
    id: String,
    /// Command and arguments (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

#[derive(clap::Args)]
struct UpdateArgs {
    /// LinuxResources JSON file ("-" reads stdin)
    #[arg(short = 'r', long, value_name = "FILE")]
    resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with k/m/g suffix; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    id: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle; it waits for `start`
    Create(CreateArgs),
    /// Start a created container's process
    Start { id: String },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal to a container's init (default SIGTERM)
    Kill {
        /// Signal every process in the container's cgroup
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and what it holds
    Delete {
        /// Kill a running container first
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, and wait for it unless detached
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Run a new process in a running container
    Exec(ExecArgs),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change a running container's resource limits
    Update(UpdateArgs),
    /// Print resource statistics and OOM events as JSON lines
    Events {
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Interval between stats events (Go duration: 5s, 500ms)
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// List the processes of a container
    Ps {
        /// table or json (json: an array of host pids)
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// Arguments for ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print the runtime-spec features document
    Features,
    /// List containers
    List {
        /// table or json
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Print only the ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json into the bundle
    Spec {
        /// Directory to write config.json into
        #[arg(short = 'b', long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        /// A config for running as an unprivileged user
        #[arg(long)]
        rootless: bool,
    },
}

/// Long flags and whether each takes a value, for turning Go-style
/// `-flag` into `--flag` (urfave/cli accepts both, and engines use both).
const LONG_FLAGS: &[(&str, bool)] = &[
    ("root", true),
    ("log", true),
    ("log-format", true),
    ("debug", false),
    ("version", false),
    ("bundle", true),
    ("console-socket", true),
    ("pidfd-socket", true),
    ("pid-file", true),
    ("no-pivot", false),
    ("no-new-keyring", false),
    ("preserve-fds", true),
    ("force", false),
    ("systemd-cgroup", false),
    ("stats", false),
    ("interval", true),
    ("resources", true),
    ("blkio-weight", true),
    ("cpu-period", true),
    ("cpu-quota", true),
    ("cpu-share", true),
    ("cpu-rt-period", true),
    ("cpu-rt-runtime", true),
    ("cpuset-cpus", true),
    ("cpuset-mems", true),
    ("memory", true),
    ("memory-reservation", true),
    ("memory-swap", true),
    ("kernel-memory", true),
    ("kernel-memory-tcp", true),
    ("pids-limit", true),
    ("all", false),
    ("detach", false),
    ("keep", false),
    ("format", true),
    ("quiet", false),
    ("rootless", false),
    ("process", true),
    ("tty", false),
    ("cwd", true),
    ("env", true),
    ("user", true),
    ("additional-gids", true),
    ("cap", true),
    ("no-new-privs", false),
    ("apparmor", true),
    ("process-label", true),
    ("ignore-paused", false),
    ("cgroup", true),
    ("help", false),
];
const SHORT_WITH_VALUE: &[&str] = &["-b", "-f", "-p", "-e", "-u", "-g", "-c", "-r"];

fn normalize_args(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(argv0) = iter.next() {
        out.push(argv0);
    }
    let mut seen_command = false;
    let mut expect_value = false;
    let mut verbatim = false;
    // The global `--rootless` takes a value; `spec --rootless` does not.
    let mut after_rootless = false;
    for arg in iter {
        if verbatim || expect_value {
            expect_value = false;
            out.push(arg);
            continue;
        }
        // Not UTF-8 (valid on Linux: a path, an operand): never one of our flags.
        let Some(text) = arg.to_str() else {
            after_rootless = false;
            if seen_command {
                verbatim = true;
            }
            seen_command = true;
            out.push(arg);
            continue;
        };
        if std::mem::take(&mut after_rootless) && ["true", "false", "auto"].contains(&text) {
            out.push(arg);
            continue;
        }
        after_rootless = text == "--rootless" || text == "-rootless";
        if text == "--" {
            verbatim = true;
            out.push(arg);
            continue;
        }
        if let Some(body) = text
            .strip_prefix('-')
            .filter(|b| !b.starts_with('-') && b.len() > 1)
        {
            let name = body.split('=').next().unwrap_or(body);
            if let Some((_, takes)) = LONG_FLAGS.iter().find(|(n, _)| *n == name) {
                expect_value = *takes && !body.contains('=');
                out.push(format!("-{text}").into());
                continue;
            }
        }
        if let Some(body) = text.strip_prefix("--") {
            let name = body.split('=').next().unwrap_or(body);
            expect_value = LONG_FLAGS.iter().any(|(n, t)| *n == name && *t) && !body.contains('=');
            out.push(arg);
            continue;
        }
        if text.starts_with('-') {
            expect_value = SHORT_WITH_VALUE.contains(&text);
            out.push(arg);
            continue;
        }
        // A positional: the command name first, then its operands, after
        // which nothing is a flag of ours any more.
        if seen_command {
            verbatim = true;
        }
        seen_command = true;
        out.push(arg);
    }
    out
}

fn default_root() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/run/skiff");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("skiff"),
        _ => std::env::temp_dir().join(format!("skiff-{}", unsafe { libc::geteuid() })),
    }
}

/// musl's allocator hands most allocations back to the kernel at once (an
/// mmap and a munmap for many of them, ~140 syscalls per `run`); dlmalloc
/// keeps a few 64 KiB segments for the life of the process. Guarded by a
/// spin lock rather than dlmalloc's pthread mutex: skiff runs one thread
/// (the lock is never contended), and every allocation pays for the lock.
/// Out-of-line so that LTO does not inline the allocator into every call
/// site.
#[cfg(target_env = "musl")]
mod allocator {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::UnsafeCell;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Locked {
        busy: AtomicBool,
        heap: UnsafeCell<dlmalloc::Dlmalloc>,
    }

    // SAFETY: `heap` is only reached through `with`, which holds `busy`.
    unsafe impl Sync for Locked {}

    impl Locked {
        #[inline(never)]
        fn with<R>(&self, f: impl FnOnce(&mut dlmalloc::Dlmalloc) -> R) -> R {
            while self
                .busy
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                std::hint::spin_loop();
            }
            // SAFETY: `busy` was false and is now ours: no other reference
            // to the heap exists until we release it below.
            let r = f(unsafe { &mut *self.heap.get() });
            self.busy.store(false, Ordering::Release);
            r
        }
    }

    // SAFETY: every method forwards to dlmalloc under the lock, with the
    // caller's layout; dlmalloc implements the GlobalAlloc contracts.
    unsafe impl GlobalAlloc for Locked {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            self.with(|h| unsafe { h.malloc(layout.size(), layout.align()) })
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            self.with(|h| unsafe { h.calloc(layout.size(), layout.align()) })
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's guarantees.
            self.with(|h| unsafe { h.free(ptr, layout.size(), layout.align()) })
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            self.with(|h| unsafe { h.realloc(ptr, layout.size(), layout.align(), new_size) })
        }
    }

    #[global_allocator]
    static ALLOCATOR: Locked = Locked {
        busy: AtomicBool::new(false),
        heap: UnsafeCell::new(dlmalloc::Dlmalloc::new()),
    };
}

/// Which of fds 0, 1 and 2 were closed when skiff started (bit N for fd N), recorded before
/// Rust's runtime opens /dev/null in their place.
static CLOSED_STDIO: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

extern "C" fn record_closed_stdio() {
    let mut closed = 0;
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the flags of an fd number; -1 (EBADF) means closed.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            closed |= 1 << fd;
        }
    }
    CLOSED_STDIO.store(closed, std::sync::atomic::Ordering::Relaxed);
}

/// The C library runs this before `main`, and so before Rust's runtime replaces closed stdio
/// fds with /dev/null: the only moment at which a closed fd can still be told from a /dev/null
/// the caller handed us.
#[used]
#[link_section = ".init_array"]
static RECORD_CLOSED_STDIO: extern "C" fn() = record_closed_stdio;

/// A stdio fd that was closed when skiff started stays occupied by the runtime's /dev/null (so
/// nothing skiff opens can land there and reach the container), but close-on-exec: the
/// container's process gets it closed, as the caller handed it.
fn keep_closed_stdio_closed() {
    let closed = CLOSED_STDIO.load(std::sync::atomic::Ordering::Relaxed);
    for fd in 0..3 {
        if closed & (1 << fd) != 0 {
            // SAFETY: sets a flag on an fd that Rust's runtime opened for this process.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

fn main() -> ExitCode {
    keep_closed_stdio_closed();
    let cli = Cli::parse_from(normalize_args(std::env::args_os().collect()));
    let format = if cli.log_format == "json" {
        Format::Json
    } else {
        Format::Text
    };
    logging::init(cli.log.clone(), format, cli.debug);
    if cli.version {
        print_version();
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        print_version();
        return ExitCode::SUCCESS;
    };
    if cli.systemd_cgroup {
        logging::report_error(
            "--systemd-cgroup: the systemd cgroup driver is not available (skiff manages cgroupfs directly)",
        );
        return ExitCode::from(1);
    }
    let rootless = match skiff::namespaces::userns::Rootless::parse(cli.rootless.as_deref()) {
        // SAFETY: geteuid cannot fail.
        Ok(r) => r.enabled(unsafe { libc::geteuid() }),
        Err(e) => {
            logging::report_error(&e.to_string());
            return ExitCode::from(1);
        }
    };
    ROOTLESS.store(rootless, std::sync::atomic::Ordering::Relaxed);
    let store = Store::new(cli.root.clone().unwrap_or_else(default_root));
    match dispatch(&store, command) {
        // exec's own errors already reported (exit 255): a stopper still gives 128+N.
        Ok(255) if skiff::sys::signal::interrupted().is_some() => {
            ExitCode::from(128 + skiff::sys::signal::interrupted().unwrap_or(0) as u8)
        }
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logging::report_error(&e.to_string());
            // Stopped by a signal during setup: the shell's 128+N.
            match skiff::sys::signal::interrupted() {
                Some(sig) => ExitCode::from(128 + sig as u8),
                None => ExitCode::from(1),
            }
        }
    }
}

fn print_version() {
    println!("skiff version {}", env!("CARGO_PKG_VERSION"));
    println!(
        "commit: {}",
        option_env!("SKIFF_COMMIT").unwrap_or("unknown")
    );
    println!("spec: {}", skiff::config::OCI_VERSION);
}

/// The global --rootless decision, made once in main.
static ROOTLESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn create_options(args: &CreateArgs, attach_terminal: bool) -> Result<CreateOptions> {
    let bundle = args.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    Ok(CreateOptions {
        id: args.id.clone(),
        bundle: skiff::config::absolute_bundle(&bundle)?,
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        pidfd_socket: args.pidfd_socket.clone(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds,
        attach_terminal,
        rootless: ROOTLESS.load(std::sync::atomic::Ordering::Relaxed),
    })
}

fn dispatch(store: &Store, command: Command) -> Result<u8> {
    match command {
        Command::Create(args) => {
            skiff::sys::selfexe::ensure_protected()?;
            skiff::sys::signal::make_setup_interruptible()?;
            container::create(store, &create_options(&args, false)?)?;
            Ok(0)
        }
        Command::Start { id } => {
            container::start(store, &id)?;
            Ok(0)
        }
        Command::State { id } => {
            let st = store.load(&id)?;
            let v = container::state_json(store, &st);
            println!("{}", pretty(&v));
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = skiff::sys::signal::parse(&signal)?;
            container::kill(store, &id, sig, all)?;
            Ok(0)
        }
        Command::Delete { force, id } => {
            container::delete(store, &id, force)?;
            Ok(0)
        }
        Command::Run {
            create,
            detach,
            keep,
        } => {
            skiff::sys::selfexe::ensure_protected()?;
            run(store, &create, detach, keep)
        }
        Command::Exec(args) => {
            match skiff::sys::selfexe::ensure_protected().and_then(|()| exec(store, args)) {
                Ok(code) => Ok(code),
                Err(e) => {
                    // runc-compat: exec's own errors exit 255.
                    logging::report_error(&e.to_string());
                    Ok(255)
                }
            }
        }
        Command::Pause { id } => {
            container::resources::pause(store, &id)?;
            Ok(0)
        }
        Command::Resume { id } => {
            container::resources::resume(store, &id)?;
            Ok(0)
        }
        Command::Update(args) => {
            let res = update_resources(&args)?;
            container::resources::update(store, &args.id, res)?;
            Ok(0)
        }
        Command::Events {
            stats,
            interval,
            id,
        } => {
            let d = container::resources::parse_go_duration(&interval)?;
            if d.is_zero() {
                return Err(Error::msg("events --interval must be greater than 0"));
            }
            container::resources::events(store, &id, stats, d)?;
            Ok(0)
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            ps(store, &id, &format, ps_args)?;
            Ok(0)
        }
        Command::Features => {
            println!("{}", pretty(&skiff::features::features_json()));
            Ok(0)
        }
        Command::List { format, quiet } => {
            list(store, &format, quiet)?;
            Ok(0)
        }
        Command::Spec { bundle, rootless } => {
            spec(bundle, rootless)?;
            Ok(0)
        }
    }
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn run(store: &Store, args: &CreateArgs, detach: bool, keep: bool) -> Result<u8> {
    skiff::terminal::relay::block_forwarded_signals_during_setup()?;
    let opts = create_options(args, !detach)?;
    let launched = container::create(store, &opts)?;
    let id = &opts.id;
    // From here on every signal waits for the container's process, which gets it.
    skiff::terminal::relay::block_forwarded_signals()?;
    if let Err(e) = container::start(store, id) {
        let _ = container::delete(store, id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let waited = match launched.console_master {
        Some(master) => {
            skiff::terminal::relay::relay(master, std::os::fd::AsFd::as_fd(&launched.pidfd))
                .and_then(|()| skiff::terminal::relay::wait_exit_code(launched.state.pid))
        }
        None => skiff::terminal::relay::forward_signals_and_wait(
            launched.state.pid,
            std::os::fd::AsFd::as_fd(&launched.pidfd),
        ),
    };
    let code = waited?;
    if !keep {
        container::delete(store, id, true)?;
    }
    Ok(code.clamp(0, 255) as u8)
}

fn exec(store: &Store, args: ExecArgs) -> Result<u8> {
    skiff::terminal::relay::block_forwarded_signals_during_setup()?;
    use skiff::container::exec::{self, ExecOptions, ExecOverrides};
    let mut process = match &args.process {
        Some(file) => exec::process_from_file(file)?,
        None => {
            let st = store.load(&args.id)?;
            let base = st.process.ok_or_else(|| {
                Error::msg(format!(
                    "container {}: no process config in its state",
                    args.id
                ))
            })?;
            exec::process_from_overrides(
                &base,
                &ExecOverrides {
                    args: args
                        .command
                        .iter()
                        .enumerate()
                        .map(|(i, a)| {
                            a.to_str().map(str::to_string).ok_or_else(|| {
                                Error::msg(format!(
                                    "exec: argument {i} ({}) is not valid UTF-8: a runtime-spec process's args are strings",
                                    a.to_string_lossy()
                                ))
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                    tty: args.tty,
                    cwd: args.cwd.clone(),
                    env: args.env.clone(),
                    user: args.user.clone(),
                    additional_gids: args.additional_gids.clone(),
                    caps: args.cap.clone(),
                    no_new_privs: args.no_new_privs,
                },
            )?
        }
    };
    if let Some(p) = &args.apparmor {
        process.set_apparmor_profile(Some(p.clone()));
    }
    if let Some(l) = &args.process_label {
        process.set_selinux_label(Some(l.clone()));
    }
    let code = exec::exec(
        store,
        &ExecOptions {
            id: args.id.clone(),
            process,
            detach: args.detach,
            pid_file: args.pid_file.clone(),
            console_socket: args.console_socket.clone(),
            preserve_fds: args.preserve_fds,
            ignore_paused: args.ignore_paused,
            sub_cgroups: args.cgroup.clone(),
        },
    )?;
    Ok(code.clamp(0, 255) as u8)
}

fn update_resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    use container::resources::parse_bytes;
    use serde_json::{json, Map, Value};
    let mut v: Value = match &a.resources {
        Some(path) => {
            let bytes = if path.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                    .map_err(|e| Error::io("read", "stdin", e))?;
                b
            } else {
                std::fs::read(path).map_err(|e| Error::io("read --resources", path, e))?
            };
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::msg(format!("--resources: invalid JSON: {e}")))?
        }
        None => json!({}),
    };
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::msg("--resources: expected a JSON object"))?;
    let mut set = |section: &str, key: &str, val: Value| {
        let sec = obj
            .entry(section.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = sec.as_object_mut() {
            m.insert(key.to_string(), val);
        }
    };
    let bytes = |s: &Option<String>| s.as_deref().map(parse_bytes).transpose();
    if let Some(w) = a.blkio_weight {
        set("blockIO", "weight", json!(w));
    }
    if let Some(x) = a.cpu_period {
        set("cpu", "period", json!(x));
    }
    if let Some(x) = a.cpu_quota {
        set("cpu", "quota", json!(x));
    }
    if let Some(x) = a.cpu_share {
        set("cpu", "shares", json!(x));
    }
    if let Some(x) = a.cpu_rt_period {
        set("cpu", "realtimePeriod", json!(x));
    }
    if let Some(x) = a.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", json!(x));
    }
    if let Some(x) = &a.cpuset_cpus {
        set("cpu", "cpus", json!(x));
    }
    if let Some(x) = &a.cpuset_mems {
        set("cpu", "mems", json!(x));
    }
    if let Some(x) = bytes(&a.memory)? {
        set("memory", "limit", json!(x));
    }
    if let Some(x) = bytes(&a.memory_reservation)? {
        set("memory", "reservation", json!(x));
    }
    if let Some(x) = bytes(&a.memory_swap)? {
        set("memory", "swap", json!(x));
    }
    if let Some(x) = bytes(&a.kernel_memory)? {
        set("memory", "kernel", json!(x));
    }
    if let Some(x) = bytes(&a.kernel_memory_tcp)? {
        set("memory", "kernelTCP", json!(x));
    }
    if let Some(x) = a.pids_limit {
        set("pids", "limit", json!(x));
    }
    serde_path_to_error::deserialize(v)
        .map_err(|e| Error::msg(format!("--resources: {}: {}", e.path(), e.inner())))
}

/// `ps ID [ps args]`: ps(1)'s table, cut to the container's processes
/// (what runc does); `--format json`: the host pids.
fn ps(store: &Store, id: &str, format: &str, args: Vec<String>) -> Result<()> {
    let pids = container::resources::pids(store, id)?;
    if format == "json" {
        println!("{}", serde_json::json!(pids));
        return Ok(());
    }
    let args = if args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::io("run", "ps", e))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::msg("ps: its output has no PID column"))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.binary_search(&p).is_ok()) {
            println!("{line}");
        }
    }
    Ok(())
}

fn list(store: &Store, format: &str, quiet: bool) -> Result<()> {
    let all = container::list(store)?;
    if quiet {
        for (st, _) in &all {
            println!("{}", st.id);
        }
        return Ok(());
    }
    if format == "json" {
        let items: Vec<container::StateView<'_>> = all
            .iter()
            .map(|(st, status)| container::StateView::new(st, *status))
            .collect();
        println!("{}", serde_json::to_string(&items).unwrap_or_default());
        return Ok(());
    }
    let mut rows = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for (st, status) in &all {
        let pid = if *status == skiff::state::Status::Stopped {
            0
        } else {
            st.pid
        };
        rows.push([
            st.id.clone(),
            pid.to_string(),
            status.to_string(),
            st.bundle.display().to_string(),
            st.created.clone(),
            st.owner.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        println!("{line}");
    }
    Ok(())
}

fn spec(bundle: Option<PathBuf>, rootless: bool) -> Result<()> {
    let dir = bundle.unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join("config.json");
    if path.exists() {
        return Err(Error::msg(format!(
            "{}: file already exists",
            path.display()
        )));
    }
    let value = if rootless {
        // SAFETY: geteuid/getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        skiff::spec_template::rootless_spec(uid, gid)
    } else {
        skiff::spec_template::default_spec()
    };
    std::fs::write(&path, pretty(&value)).map_err(|e| Error::io("write", &path, e))
}

#[cfg(test)]
mod tests {
    use super::normalize_args;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(|s| s.into()).collect())
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn go_style_single_dash_flags() {
        assert_eq!(
            norm(&[
                "skiff",
                "-root",
                "/r",
                "create",
                "-bundle",
                "/b",
                "-pid-file=/p",
                "id"
            ]),
            [
                "skiff",
                "--root",
                "/r",
                "create",
                "--bundle",
                "/b",
                "--pid-file=/p",
                "id"
            ]
        );
    }

    #[test]
    fn global_rootless_value_is_not_the_command() {
        assert_eq!(
            norm(&[
                "skiff",
                "-rootless",
                "true",
                "create",
                "-bundle",
                "/b",
                "id"
            ]),
            [
                "skiff",
                "--rootless",
                "true",
                "create",
                "--bundle",
                "/b",
                "id"
            ]
        );
        assert_eq!(
            norm(&["skiff", "spec", "-rootless", "-bundle", "/b"]),
            ["skiff", "spec", "--rootless", "--bundle", "/b"]
        );
    }

    #[test]
    fn operands_after_the_id_are_left_alone() {
        assert_eq!(
            norm(&["skiff", "kill", "id", "-debug"]),
            ["skiff", "kill", "id", "-debug"]
        );
        assert_eq!(
            norm(&["skiff", "run", "-d", "x"]),
            ["skiff", "run", "-d", "x"]
        );
    }
}
