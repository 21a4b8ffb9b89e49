//! Everything `create` decides from config.json and the command line before
//! any process exists. Building a `ContainerPlan` makes no syscalls that
//! change anything, so every config error is found before there is
//! anything to clean up.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, LinuxIdMapping, Process, Spec, User};

use crate::capabilities::CapabilityPlan;
use crate::error::{Error, Result};
use crate::namespaces::{Disposition, NamespacePlan};
use crate::rlimits::RlimitPlan;
use crate::rootfs::RootfsPlan;
use crate::sysctl::SysctlPlan;

/// What the command line adds to the config.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Receives a pidfd of the init once it is set up (runc's --pidfd-socket).
    pub pidfd_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// The caller will attach the terminal itself (`run` in the foreground).
    pub attach_terminal: bool,
    /// Unprivileged mode (`--rootless`): cgroups that cannot be made are skipped.
    pub rootless: bool,
}

pub struct ProcessPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub user: User,
    pub capabilities: CapabilityPlan,
    pub rlimits: RlimitPlan,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
    pub scheduler: Option<crate::sched::SchedulerPlan>,
    pub io_priority: Option<crate::sched::IoPriorityPlan>,
    pub affinity: Option<crate::sched::AffinityPlan>,
    pub seccomp: Option<SeccompSetup>,
    /// linux.memoryPolicy and linux.personality: container-wide, applied to the init and to
    /// every exec'd process alike (as runc does).
    pub memory_policy: Option<crate::mempolicy::MemPolicyPlan>,
    pub personality: Option<crate::personality::PersonalityPlan>,
    /// fds 3.. kept open for the process: LISTEN_FDS first, then --preserve-fds.
    pub extra_fds: u32,
}

/// The container-wide settings of `linux` that every process of the container gets: from
/// config.json for the init, from the state for `exec`.
#[derive(Clone, Copy, Default)]
pub struct ContainerWide<'a> {
    pub seccomp: Option<&'a oci_spec::runtime::LinuxSeccomp>,
    pub memory_policy: Option<&'a oci_spec::runtime::LinuxMemoryPolicy>,
    pub personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
}

/// A compiled seccomp filter and where its NOTIFY listener goes.
pub struct SeccompSetup {
    pub filter: crate::seccomp::CompiledFilter,
    pub listener_path: Option<PathBuf>,
    pub listener_metadata: Option<String>,
    /// Set when the profile denies execve: said along with an exec failure.
    pub execve_denial: Option<String>,
}

impl SeccompSetup {
    pub fn from_spec(s: &oci_spec::runtime::LinuxSeccomp) -> Result<Self> {
        let plan = crate::seccomp::SeccompPlan::from_spec(s)?;
        Ok(SeccompSetup {
            filter: crate::seccomp::compile(&plan)?,
            listener_path: plan.listener_path().map(|p| p.to_path_buf()),
            listener_metadata: plan.listener_metadata().map(str::to_string),
            execve_denial: plan.execve_denial(),
        })
    }
}

pub struct Hooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

pub struct ContainerPlan {
    pub id: String,
    pub bundle: PathBuf,
    pub namespaces: NamespacePlan,
    pub uid_map: String,
    pub gid_map: String,
    pub rootfs: RootfsPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: SysctlPlan,
    pub process: ProcessPlan,
    pub hooks: Hooks,
    pub new_keyring: bool,
    pub cgroup: crate::cgroups::CgroupPlan,
    pub net_devices: crate::netdev::NetDevPlan,
    pub rdt: Option<crate::rdt::RdtPlan>,
}

impl ContainerPlan {
    pub fn from_spec(spec: &Spec, opts: &CreateOptions) -> Result<Self> {
        let namespaces = NamespacePlan::from_spec(spec)?;
        let linux = spec.linux().as_ref();
        let (uid_map, gid_map) = id_maps(
            linux.and_then(|l| l.uid_mappings().as_deref()),
            linux.and_then(|l| l.gid_mappings().as_deref()),
            &namespaces.user,
        )?;
        let rootfs =
            RootfsPlan::from_spec(spec, &opts.bundle, opts.no_pivot, namespaces.in_userns())?;
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
        // The kernel's limit for both (__NEW_UTS_LEN): longer is EINVAL at sethostname.
        for (field, name) in [("hostname", &hostname), ("domainname", &domainname)] {
            if let Some(n) = name.as_deref().filter(|n| n.len() > 64) {
                return Err(Error::config(
                    field,
                    format!("is {} bytes long; the kernel allows at most 64", n.len()),
                ));
            }
        }
        if (hostname.is_some() || domainname.is_some()) && namespaces.uts == Disposition::Host {
            let field = if hostname.is_some() {
                "hostname"
            } else {
                "domainname"
            };
            return Err(Error::config(
                field,
                "requires the container to have its own uts namespace",
            ));
        }
        if let Some(label) = linux
            .and_then(|l| l.mount_label().as_deref())
            .filter(|l| !l.is_empty())
        {
            if !crate::lsm::selinux_enabled() {
                // Without SELinux a label means nothing: ignored, as crun and runc do.
                log::warn!(
                    "linux.mountLabel {label:?} ignored: SELinux is not enabled on this host"
                );
            } else {
                return Err(Error::config(
                    "linux.mountLabel",
                    format!("{label:?}: SELinux mount labels are not applied by skiff; refusing rather than mounting unlabeled"),
                ));
            }
        }
        let sysctl = SysctlPlan::from_spec(linux.and_then(|l| l.sysctl().as_ref()), &namespaces)?;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::config("process", "missing"))?;
        let process = process_plan(
            process,
            ContainerWide {
                seccomp: linux.and_then(|l| l.seccomp().as_ref()),
                memory_policy: linux.and_then(|l| l.memory_policy().as_ref()),
                personality: linux.and_then(|l| l.personality().as_ref()),
            },
            TerminalWiring {
                console_socket: opts.console_socket.is_some(),
                attach: opts.attach_terminal,
            },
            opts.preserve_fds,
        )?;
        let h = spec.hooks().as_ref();
        let list = |hooks: Option<&Vec<Hook>>, stage: &str| -> Result<Vec<Hook>> {
            let hooks = hooks.cloned().unwrap_or_default();
            for (i, hook) in hooks.iter().enumerate() {
                if !hook.path().is_absolute() {
                    return Err(Error::config(
                        format!("hooks.{stage}[{i}].path"),
                        format!("{} is not an absolute path", hook.path().display()),
                    ));
                }
                if hook.timeout().is_some_and(|t| t <= 0) {
                    return Err(Error::config(
                        format!("hooks.{stage}[{i}].timeout"),
                        "must be greater than zero",
                    ));
                }
            }
            Ok(hooks)
        };
        #[allow(deprecated)]
        let hooks = Hooks {
            prestart: list(h.and_then(|h| h.prestart().as_ref()), "prestart")?,
            create_runtime: list(h.and_then(|h| h.create_runtime().as_ref()), "createRuntime")?,
            create_container: list(
                h.and_then(|h| h.create_container().as_ref()),
                "createContainer",
            )?,
            start_container: list(
                h.and_then(|h| h.start_container().as_ref()),
                "startContainer",
            )?,
            poststart: list(h.and_then(|h| h.poststart().as_ref()), "poststart")?,
            poststop: list(h.and_then(|h| h.poststop().as_ref()), "poststop")?,
        };
        Ok(ContainerPlan {
            id: opts.id.clone(),
            bundle: opts.bundle.clone(),
            namespaces,
            uid_map,
            gid_map,
            rootfs,
            hostname,
            domainname,
            sysctl,
            process,
            hooks,
            new_keyring: !opts.no_new_keyring,
            cgroup: crate::cgroups::CgroupPlan::from_spec(spec, &opts.id)?,
            net_devices: crate::netdev::NetDevPlan::from_spec(spec)?,
            rdt: crate::rdt::RdtPlan::from_spec(
                linux.and_then(|l| l.intel_rdt().as_ref()),
                &opts.id,
            )?,
        })
    }

    /// The parent must run hooks in the middle of the init's setup.
    pub fn has_runtime_hooks(&self) -> bool {
        !self.hooks.prestart.is_empty() || !self.hooks.create_runtime.is_empty()
    }

    pub fn init_needs_state(&self) -> bool {
        !self.hooks.create_container.is_empty() || !self.hooks.start_container.is_empty()
    }
}

/// How the process's terminal is wired, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct TerminalWiring {
    pub console_socket: bool,
    /// The caller attaches the terminal itself (`run`/`exec` in the foreground).
    pub attach: bool,
}

/// Validate a process (config.json's, or `exec`'s) into what the process
/// setup needs.
pub fn process_plan(
    process: &Process,
    wide: ContainerWide<'_>,
    wiring: TerminalWiring,
    preserve_fds: u32,
) -> Result<ProcessPlan> {
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::config("process.args", "must name a program to run"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::config(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    crate::lsm::check(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
        "process",
    )?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && !wiring.console_socket && !wiring.attach {
        return Err(Error::msg(
            "process.terminal is true but no --console-socket was given: \
             a detached container needs a console socket to receive its terminal",
        ));
    }
    if !terminal && wiring.console_socket {
        return Err(Error::msg(
            "--console-socket was given but process.terminal is false",
        ));
    }
    let mut env = process.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        if !e.contains('=') {
            return Err(Error::config(
                format!("process.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    // systemd socket activation: fds 3..3+LISTEN_FDS go first, and the
    // container sees them as its own (it is PID 1 of its namespace).
    let listen_fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    if listen_fds > 0 {
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={listen_fds}"));
        env.push("LISTEN_PID=1".to_string());
    }
    let console_size = process.console_size().as_ref().map(|b| {
        (
            b.height().min(u16::MAX as u64) as u16,
            b.width().min(u16::MAX as u64) as u16,
        )
    });
    Ok(ProcessPlan {
        args,
        env,
        cwd: process.cwd().clone(),
        user: process.user().clone(),
        capabilities: CapabilityPlan::from_spec(process.capabilities().as_ref())?,
        rlimits: RlimitPlan::from_spec(process.rlimits().as_deref())?,
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        oom_score_adj: process.oom_score_adj(),
        terminal,
        console_size,
        apparmor_profile: process.apparmor_profile().clone(),
        selinux_label: process.selinux_label().clone(),
        scheduler: process
            .scheduler()
            .as_ref()
            .map(crate::sched::SchedulerPlan::from_spec)
            .transpose()?,
        io_priority: process
            .io_priority()
            .as_ref()
            .map(crate::sched::IoPriorityPlan::from_spec)
            .transpose()?,
        affinity: process
            .exec_cpu_affinity()
            .as_ref()
            .map(crate::sched::AffinityPlan::from_spec)
            .transpose()?
            .filter(|a| !a.is_empty()),
        seccomp: wide.seccomp.map(SeccompSetup::from_spec).transpose()?,
        memory_policy: wide
            .memory_policy
            .map(crate::mempolicy::MemPolicyPlan::from_spec)
            .transpose()?,
        personality: wide
            .personality
            .map(crate::personality::PersonalityPlan::from_spec)
            .transpose()?,
        extra_fds: listen_fds + preserve_fds,
    })
}

/// The text written to /proc/PID/uid_map and gid_map.
fn id_maps(
    uid: Option<&[LinuxIdMapping]>,
    gid: Option<&[LinuxIdMapping]>,
    user: &Disposition,
) -> Result<(String, String)> {
    let render = |maps: Option<&[LinuxIdMapping]>, field: &str| -> Result<String> {
        let maps = maps.unwrap_or_default();
        if *user != Disposition::New {
            if !maps.is_empty() && *user == Disposition::Host {
                return Err(Error::config(field, "mappings need a user namespace"));
            }
            return Ok(String::new());
        }
        if maps.is_empty() {
            return Err(Error::config(field, "a new user namespace needs mappings"));
        }
        let mut text = String::new();
        for (i, m) in maps.iter().enumerate() {
            if m.size() == 0 {
                return Err(Error::config(
                    format!("{field}[{i}].size"),
                    "must not be zero",
                ));
            }
            text.push_str(&format!(
                "{} {} {}\n",
                m.container_id(),
                m.host_id(),
                m.size()
            ));
        }
        Ok(text)
    };
    Ok((
        render(uid, "linux.uidMappings")?,
        render(gid, "linux.gidMappings")?,
    ))
}

/// The state JSON hooks read on stdin (runtime-spec "State").
pub fn hook_state(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &Path,
    annotations: &std::collections::HashMap<String, String>,
) -> String {
    // The spec's order.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct HookState<'a> {
        oci_version: &'a str,
        id: &'a str,
        status: &'a str,
        pid: i32,
        bundle: &'a Path,
        annotations: &'a std::collections::HashMap<String, String>,
    }
    serde_json::to_string(&HookState {
        oci_version: crate::config::OCI_VERSION,
        id,
        status,
        pid,
        bundle,
        annotations,
    })
    .unwrap_or_default()
}
