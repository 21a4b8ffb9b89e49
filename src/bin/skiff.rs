//! `skiff`: runc's command line over the skiff library.

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
    /// Container id
    id: String,
    /// Command and arguments (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
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
    ("help", false),
];
const SHORT_WITH_VALUE: &[&str] = &["-b", "-f", "-p", "-e", "-u", "-g", "-c"];

fn normalize_args(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(argv0) = iter.next() {
        out.push(argv0);
    }
    let mut seen_command = false;
    let mut expect_value = false;
    let mut verbatim = false;
    for arg in iter {
        if verbatim || expect_value {
            expect_value = false;
            out.push(arg);
            continue;
        }
        if arg == "--" {
            verbatim = true;
            out.push(arg);
            continue;
        }
        if let Some(body) = arg
            .strip_prefix('-')
            .filter(|b| !b.starts_with('-') && b.len() > 1)
        {
            let name = body.split('=').next().unwrap_or(body);
            if let Some((_, takes)) = LONG_FLAGS.iter().find(|(n, _)| *n == name) {
                expect_value = *takes && !body.contains('=');
                out.push(format!("-{arg}"));
                continue;
            }
        }
        if let Some(body) = arg.strip_prefix("--") {
            let name = body.split('=').next().unwrap_or(body);
            expect_value = LONG_FLAGS.iter().any(|(n, t)| *n == name && *t) && !body.contains('=');
            out.push(arg);
            continue;
        }
        if arg.starts_with('-') {
            expect_value = SHORT_WITH_VALUE.contains(&arg.as_str());
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

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args().collect()));
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
    let store = Store::new(cli.root.clone().unwrap_or_else(default_root));
    match dispatch(&store, command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logging::report_error(&e.to_string());
            ExitCode::from(1)
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
    })
}

fn dispatch(store: &Store, command: Command) -> Result<u8> {
    match command {
        Command::Create(args) => {
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
            let sig = skiff::signal::parse(&signal)?;
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
        } => run(store, &create, detach, keep),
        Command::Exec(args) => match exec(store, args) {
            Ok(code) => Ok(code),
            Err(e) => {
                // runc-compat: exec's own errors exit 255.
                logging::report_error(&e.to_string());
                Ok(255)
            }
        },
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

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn run(store: &Store, args: &CreateArgs, detach: bool, keep: bool) -> Result<u8> {
    let opts = create_options(args, !detach)?;
    let launched = container::create(store, &opts)?;
    let id = &opts.id;
    if let Err(e) = container::start(store, id) {
        let _ = container::delete(store, id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let waited = match launched.console_master {
        Some(master) => skiff::tty::relay(master, std::os::fd::AsFd::as_fd(&launched.pidfd))
            .and_then(|()| skiff::tty::wait_exit_code(launched.state.pid)),
        None => skiff::tty::forward_signals_and_wait(
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
                    args: args.command.clone(),
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
        },
    )?;
    Ok(code.clamp(0, 255) as u8)
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
        let items: Vec<serde_json::Value> = all
            .iter()
            .map(|(st, status)| {
                serde_json::json!({
                    "ociVersion": st.oci_version,
                    "id": st.id,
                    "pid": if *status == skiff::state::Status::Stopped { 0 } else { st.pid },
                    "status": status.as_str(),
                    "bundle": st.bundle,
                    "rootfs": st.rootfs,
                    "created": st.created,
                    "annotations": st.annotations,
                    "owner": st.owner,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
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
        normalize_args(args.iter().map(|s| s.to_string()).collect())
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
