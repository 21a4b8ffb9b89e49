//! `process.capabilities`: the five capability sets.
//!
//! Order in the init: `drop_bounding` (needs CAP_SETPCAP, so before the user
//! switch), `user::switch_user` (keeps the permitted set), `apply_final`.

use caps::{Capability, CapsHashSet};
use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability as SpecCap, LinuxCapabilities};

use crate::error::{Error, Result};

/// The five sets, validated and restricted to what the running kernel knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityPlan {
    /// False when config.json has no `process.capabilities`: then, like
    /// runc, the capability sets are left as they are.
    pub configured: bool,
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
    /// Highest capability number of this kernel (/proc/sys/kernel/cap_last_cap).
    pub last_cap: u8,
}

const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// The kernel's highest capability number; when unreadable, the highest one
/// the caps crate knows.
pub fn kernel_last_cap() -> u8 {
    crate::sys::fsio::read_to_string(CAP_LAST_CAP)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(Capability::CAP_CHECKPOINT_RESTORE.index())
}

impl CapabilityPlan {
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<Self> {
        Self::from_spec_for_kernel(caps, kernel_last_cap())
    }

    /// As `from_spec`, for a kernel whose highest capability is `last_cap`.
    pub fn from_spec_for_kernel(caps: Option<&LinuxCapabilities>, last_cap: u8) -> Result<Self> {
        let set = |name: &str, s: Option<&Capabilities>| -> CapsHashSet {
            let mut out = CapsHashSet::new();
            for c in s.into_iter().flatten() {
                let cap = from_spec_cap(*c);
                if cap.index() > last_cap {
                    log::debug!(
                        "process.capabilities.{name}: {cap} is unknown to this kernel, skipped"
                    );
                    continue;
                }
                out.insert(cap);
            }
            out
        };
        let Some(c) = caps else {
            return Ok(CapabilityPlan {
                configured: false,
                bounding: CapsHashSet::new(),
                effective: CapsHashSet::new(),
                permitted: CapsHashSet::new(),
                inheritable: CapsHashSet::new(),
                ambient: CapsHashSet::new(),
                last_cap,
            });
        };
        let mut plan = CapabilityPlan {
            configured: true,
            bounding: set("bounding", c.bounding().as_ref()),
            effective: set("effective", c.effective().as_ref()),
            permitted: set("permitted", c.permitted().as_ref()),
            inheritable: set("inheritable", c.inheritable().as_ref()),
            ambient: set("ambient", c.ambient().as_ref()),
            last_cap,
        };
        // The kernel refuses an ambient capability that is not both
        // permitted and inheritable; runc warns and goes on, so do we.
        let refused: Vec<Capability> = plan
            .ambient
            .iter()
            .filter(|c| !plan.permitted.contains(c) || !plan.inheritable.contains(c))
            .copied()
            .collect();
        for c in refused {
            log::warn!(
                "process.capabilities.ambient: {c} is not in both the permitted and the inheritable set, skipped"
            );
            plan.ambient.remove(&c);
        }
        Ok(plan)
    }
}

/// Parses a capability name as given on the command line (`exec --cap`):
/// "CAP_CHOWN", "chown", "cap_chown". `field` names where it came from.
pub fn parse_capability(field: &str, name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    format!("CAP_{bare}")
        .parse::<Capability>()
        .map_err(|_| Error::config(field, format!("unknown capability {name:?}")))
}

/// oci-spec's capability names mapped onto the caps crate's numbers.
pub fn from_spec_cap(c: SpecCap) -> Capability {
    use Capability as C;
    use SpecCap as S;
    match c {
        S::AuditControl => C::CAP_AUDIT_CONTROL,
        S::AuditRead => C::CAP_AUDIT_READ,
        S::AuditWrite => C::CAP_AUDIT_WRITE,
        S::BlockSuspend => C::CAP_BLOCK_SUSPEND,
        S::Bpf => C::CAP_BPF,
        S::CheckpointRestore => C::CAP_CHECKPOINT_RESTORE,
        S::Chown => C::CAP_CHOWN,
        S::DacOverride => C::CAP_DAC_OVERRIDE,
        S::DacReadSearch => C::CAP_DAC_READ_SEARCH,
        S::Fowner => C::CAP_FOWNER,
        S::Fsetid => C::CAP_FSETID,
        S::IpcLock => C::CAP_IPC_LOCK,
        S::IpcOwner => C::CAP_IPC_OWNER,
        S::Kill => C::CAP_KILL,
        S::Lease => C::CAP_LEASE,
        S::LinuxImmutable => C::CAP_LINUX_IMMUTABLE,
        S::MacAdmin => C::CAP_MAC_ADMIN,
        S::MacOverride => C::CAP_MAC_OVERRIDE,
        S::Mknod => C::CAP_MKNOD,
        S::NetAdmin => C::CAP_NET_ADMIN,
        S::NetBindService => C::CAP_NET_BIND_SERVICE,
        S::NetBroadcast => C::CAP_NET_BROADCAST,
        S::NetRaw => C::CAP_NET_RAW,
        S::Perfmon => C::CAP_PERFMON,
        S::Setgid => C::CAP_SETGID,
        S::Setfcap => C::CAP_SETFCAP,
        S::Setpcap => C::CAP_SETPCAP,
        S::Setuid => C::CAP_SETUID,
        S::SysAdmin => C::CAP_SYS_ADMIN,
        S::SysBoot => C::CAP_SYS_BOOT,
        S::SysChroot => C::CAP_SYS_CHROOT,
        S::SysModule => C::CAP_SYS_MODULE,
        S::SysNice => C::CAP_SYS_NICE,
        S::SysPacct => C::CAP_SYS_PACCT,
        S::SysPtrace => C::CAP_SYS_PTRACE,
        S::SysRawio => C::CAP_SYS_RAWIO,
        S::SysResource => C::CAP_SYS_RESOURCE,
        S::SysTime => C::CAP_SYS_TIME,
        S::SysTtyConfig => C::CAP_SYS_TTY_CONFIG,
        S::Syslog => C::CAP_SYSLOG,
        S::WakeAlarm => C::CAP_WAKE_ALARM,
    }
}

fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

/// Drops from the bounding set every capability the plan does not list.
pub fn drop_bounding(plan: &CapabilityPlan) -> Result<()> {
    if !plan.configured {
        return Ok(());
    }
    let keep = mask(&plan.bounding);
    for n in 0..=plan.last_cap.min(63) {
        if keep & (1u64 << n) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only. Dropping an already
        // dropped capability succeeds, so no read is needed first.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(Error::sys(
                format!("prctl PR_CAPBSET_DROP {}", cap_name(n)),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

fn cap_name(n: u8) -> String {
    caps::all()
        .into_iter()
        .find(|c| c.index() == n)
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("capability {n}"))
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// This process's (effective, permitted, inheritable) sets.
fn capget() -> Result<(u64, u64, u64)> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: a valid header and two writable data structs, as version 3 requires.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) } != 0 {
        return Err(Error::sys("capget", Errno::last()));
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// Sets permitted, effective and inheritable in one capset(2), then raises the ambient
/// capabilities. With `keep_sys_admin`, CAP_SYS_ADMIN stays effective and permitted so that
/// a seccomp filter can still be installed without no_new_privs right before execve; execve
/// then computes the process's sets from bounding, inheritable and ambient, and it is gone
/// unless those grant it.
pub fn apply_final(plan: &CapabilityPlan, keep_sys_admin: bool) -> Result<()> {
    let extra = if keep_sys_admin {
        Capability::CAP_SYS_ADMIN.bitmask()
    } else {
        0
    };
    let (e, p, i) = if plan.configured {
        (
            mask(&plan.effective) | extra,
            mask(&plan.permitted) | extra,
            mask(&plan.inheritable),
        )
    } else if extra != 0 {
        // Nothing configured: the sets as they are, CAP_SYS_ADMIN effective again (leaving
        // uid 0 cleared the effective set).
        let (e, p, i) = capget()?;
        (e | (extra & p), p, i)
    } else {
        return Ok(());
    };
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: header and the two data structs (as version 3 requires) are
    // valid, correctly laid out (#[repr(C)]) and outlive the call.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) } != 0 {
        return Err(Error::sys(
            "capset (permitted, effective, inheritable)",
            Errno::last(),
        ));
    }
    if !plan.configured {
        return Ok(());
    }
    for c in &plan.ambient {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                c.index() as libc::c_ulong,
                0,
                0,
            )
        };
        if r != 0 {
            return Err(Error::sys(
                format!("prctl PR_CAP_AMBIENT_RAISE {c}"),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{in_child_exit_code as in_child, status_field};

    fn spec(json: &str) -> LinuxCapabilities {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_spec_cap_maps_to_the_same_name() {
        for c in caps::all() {
            let s: SpecCap = serde_json::from_str(&format!("\"{c}\"")).unwrap();
            assert_eq!(from_spec_cap(s), c);
        }
    }

    #[test]
    fn plan_from_spec() {
        let c = spec(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL","CAP_CHECKPOINT_RESTORE"],
                "effective":["CAP_KILL"],"permitted":["CAP_KILL","CAP_CHOWN"],
                "inheritable":["CAP_KILL"],"ambient":["CAP_KILL","CAP_CHOWN"]}"#,
        );
        let p = CapabilityPlan::from_spec_for_kernel(Some(&c), 39).unwrap();
        assert!(p.configured);
        // CAP_CHECKPOINT_RESTORE (40) is unknown to a kernel whose last is 39.
        assert_eq!(
            p.bounding,
            [Capability::CAP_CHOWN, Capability::CAP_KILL]
                .into_iter()
                .collect()
        );
        assert_eq!(p.effective, [Capability::CAP_KILL].into_iter().collect());
        // CAP_CHOWN is not inheritable, so it cannot be ambient.
        assert_eq!(p.ambient, [Capability::CAP_KILL].into_iter().collect());

        let p = CapabilityPlan::from_spec_for_kernel(Some(&spec("{}")), 40).unwrap();
        assert!(p.configured && p.bounding.is_empty() && p.ambient.is_empty());
        let p = CapabilityPlan::from_spec(None).unwrap();
        assert!(!p.configured);
    }

    #[test]
    fn parses_cli_names() {
        for n in ["CAP_NET_RAW", "net_raw", "cap_net_raw"] {
            assert_eq!(
                parse_capability("--cap", n).unwrap(),
                Capability::CAP_NET_RAW
            );
        }
        assert_eq!(
            parse_capability("process.capabilities.bounding", "CAP_FOO")
                .unwrap_err()
                .to_string(),
            "process.capabilities.bounding: unknown capability \"CAP_FOO\""
        );
    }

    #[test]
    fn names_for_errors() {
        assert_eq!(cap_name(0), "CAP_CHOWN");
        assert_eq!(cap_name(63), "capability 63");
    }

    #[test]
    fn drops_and_applies_in_child() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("status");
        let out_f = std::fs::File::create(&out).unwrap();
        let code = in_child(|| {
            use std::os::fd::AsRawFd;
            // SAFETY: the exec'd shell's stdout, opened while still root.
            unsafe { libc::dup2(out_f.as_raw_fd(), 1) };
            let c = spec(
                r#"{"bounding":["CAP_CHOWN","CAP_KILL","CAP_NET_BIND_SERVICE","CAP_AUDIT_WRITE"],
                    "effective":["CAP_CHOWN","CAP_KILL","CAP_NET_BIND_SERVICE"],
                    "permitted":["CAP_CHOWN","CAP_KILL","CAP_NET_BIND_SERVICE"],
                    "inheritable":["CAP_NET_BIND_SERVICE"],
                    "ambient":["CAP_NET_BIND_SERVICE"]}"#,
            );
            let plan = CapabilityPlan::from_spec(Some(&c)).unwrap();
            if let Err(e) = drop_bounding(&plan) {
                eprintln!("{e}");
                return 2;
            }
            let user: oci_spec::runtime::User =
                serde_json::from_str(r#"{"uid":1000,"gid":1000}"#).unwrap();
            if let Err(e) = crate::process::user::switch_user(&user) {
                eprintln!("{e}");
                return 3;
            }
            if let Err(e) = apply_final(&plan, false) {
                eprintln!("{e}");
                return 4;
            }
            // CHOWN=0, KILL=5, NET_BIND_SERVICE=10, AUDIT_WRITE=29
            let want = [
                ("CapBnd", "0000000020000421"),
                ("CapEff", "0000000000000421"),
                ("CapPrm", "0000000000000421"),
                ("CapInh", "0000000000000400"),
                ("CapAmb", "0000000000000400"),
            ];
            for (i, (k, v)) in want.iter().enumerate() {
                if status_field(k) != *v {
                    eprintln!("{k}: {} != {v}", status_field(k));
                    return 10 + i as i32;
                }
            }
            // After exec as non-root, only the ambient capability remains.
            let sh = c"/bin/sh";
            let cmd = c"grep Cap /proc/self/status";
            let argv = [sh.as_ptr(), c"-c".as_ptr(), cmd.as_ptr(), std::ptr::null()];
            // SAFETY: NULL-terminated argv of live CStrings; empty env.
            unsafe { libc::execv(sh.as_ptr(), argv.as_ptr()) };
            5
        });
        assert_eq!(code, 0);
        let s = crate::sys::fsio::read_to_string(&out).unwrap();
        assert!(s.contains("CapEff:\t0000000000000400"), "{s}");
        assert!(s.contains("CapAmb:\t0000000000000400"), "{s}");
    }

    #[test]
    fn unconfigured_changes_nothing() {
        let code = in_child(|| {
            let before = status_field("CapBnd");
            let plan = CapabilityPlan::from_spec(None).unwrap();
            if drop_bounding(&plan).is_err() || apply_final(&plan, false).is_err() {
                return 2;
            }
            (status_field("CapBnd") != before) as i32
        });
        assert_eq!(code, 0);
    }
}
