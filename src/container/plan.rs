//! Everything `create` decides from config.json and the command line before
//! any process exists. Building a `ContainerPlan` makes no syscalls that
//! change anything, so every config error is found before there is
//! anything to clean up.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, LinuxIdMapping, Spec};

use crate::error::{Error, Result};
use crate::namespaces::sysctl::SysctlPlan;
use crate::namespaces::{Disposition, NamespacePlan};
use crate::process::{process_plan, ContainerWide, ProcessPlan, TerminalWiring};
use crate::rootfs::RootfsPlan;

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
    pub net_devices: crate::namespaces::netdev::NetDevPlan,
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
            if !crate::process::lsm::selinux_enabled() {
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
            net_devices: crate::namespaces::netdev::NetDevPlan::from_spec(spec)?,
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
