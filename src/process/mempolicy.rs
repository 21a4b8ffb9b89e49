//! `linux.memoryPolicy`: the NUMA memory policy (set_mempolicy).
//!
//! The policy is inherited over fork and kept over execve, so the init sets
//! it for itself before exec (with the scheduler settings: before seccomp,
//! which might not allow set_mempolicy).

use nix::errno::Errno;
use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

use crate::error::{Error, Result};
use crate::process::sched::CpuMask;

pub const MPOL_DEFAULT: i32 = 0;
pub const MPOL_PREFERRED: i32 = 1;
pub const MPOL_BIND: i32 = 2;
pub const MPOL_INTERLEAVE: i32 = 3;
pub const MPOL_LOCAL: i32 = 4;
pub const MPOL_PREFERRED_MANY: i32 = 5;
pub const MPOL_WEIGHTED_INTERLEAVE: i32 = 6;

pub const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
pub const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
pub const MPOL_F_STATIC_NODES: i32 = 1 << 15;

/// Highest node id accepted: x86's largest MAX_NUMNODES is 1024.
pub const MAX_NODE_ID: u32 = 1023;

const F: &str = "linux.memoryPolicy";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemPolicyPlan {
    /// Mode with the flags or'ed in, as set_mempolicy takes it.
    pub mode: i32,
    pub nodes: Option<CpuMask>,
}

fn mode_name(m: i32) -> &'static str {
    match m {
        MPOL_DEFAULT => "MPOL_DEFAULT",
        MPOL_PREFERRED => "MPOL_PREFERRED",
        MPOL_BIND => "MPOL_BIND",
        MPOL_INTERLEAVE => "MPOL_INTERLEAVE",
        MPOL_LOCAL => "MPOL_LOCAL",
        MPOL_PREFERRED_MANY => "MPOL_PREFERRED_MANY",
        _ => "MPOL_WEIGHTED_INTERLEAVE",
    }
}

impl MemPolicyPlan {
    pub fn from_spec(p: &LinuxMemoryPolicy) -> Result<Self> {
        let mode = match p.mode() {
            MemoryPolicyModeType::MpolDefault => MPOL_DEFAULT,
            MemoryPolicyModeType::MpolPreferred => MPOL_PREFERRED,
            MemoryPolicyModeType::MpolBind => MPOL_BIND,
            MemoryPolicyModeType::MpolInterleave => MPOL_INTERLEAVE,
            MemoryPolicyModeType::MpolLocal => MPOL_LOCAL,
            MemoryPolicyModeType::MpolPreferredMany => MPOL_PREFERRED_MANY,
            MemoryPolicyModeType::MpolWeightedInterleave => MPOL_WEIGHTED_INTERLEAVE,
        };
        let name = mode_name(mode);
        let mut flags = 0;
        for f in p.flags().iter().flatten() {
            flags |= match f {
                MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
                MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
                MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
            };
        }
        let nodes = match p.nodes().as_deref() {
            None | Some("") => None,
            Some(t) => Some(CpuMask::parse(t, &format!("{F}.nodes"), MAX_NODE_ID)?),
        };
        // The rules set_mempolicy(2) enforces, checked up front so the error names the field.
        match mode {
            MPOL_DEFAULT | MPOL_LOCAL if nodes.is_some() => {
                return Err(Error::config(
                    format!("{F}.nodes"),
                    format!("must be empty for {name}"),
                ))
            }
            MPOL_BIND | MPOL_INTERLEAVE | MPOL_WEIGHTED_INTERLEAVE | MPOL_PREFERRED_MANY
                if nodes.is_none() =>
            {
                return Err(Error::config(
                    format!("{F}.nodes"),
                    format!("{name} needs at least one node"),
                ))
            }
            _ => {}
        }
        if mode == MPOL_DEFAULT && flags != 0 {
            return Err(Error::config(
                format!("{F}.flags"),
                "MPOL_DEFAULT takes no flags",
            ));
        }
        if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
            return Err(Error::config(
                format!("{F}.flags"),
                "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
            ));
        }
        if mode == MPOL_LOCAL && flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 {
            return Err(Error::config(
                format!("{F}.flags"),
                "MPOL_LOCAL takes no node flags",
            ));
        }
        if flags & MPOL_F_NUMA_BALANCING != 0 && mode != MPOL_BIND && mode != MPOL_PREFERRED_MANY {
            return Err(Error::config(
                format!("{F}.flags"),
                format!("MPOL_F_NUMA_BALANCING needs MPOL_BIND or MPOL_PREFERRED_MANY, not {name}"),
            ));
        }
        Ok(MemPolicyPlan {
            mode: mode | flags,
            nodes,
        })
    }
}

pub fn apply(plan: &MemPolicyPlan) -> Result<()> {
    let (ptr, maxnode) = match &plan.nodes {
        // The kernel reads maxnode-1 bits: one more than the mask holds.
        Some(m) => (
            m.words.as_ptr(),
            m.words.len() as libc::c_ulong * libc::c_ulong::BITS as libc::c_ulong + 1,
        ),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `ptr` is null or points to `maxnode - 1` readable bits.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, plan.mode, ptr, maxnode) };
    if rc < 0 {
        let e = Errno::last();
        let mode =
            plan.mode & !(MPOL_F_NUMA_BALANCING | MPOL_F_RELATIVE_NODES | MPOL_F_STATIC_NODES);
        let nodes = plan.nodes.as_ref().map(|m| m.to_list()).unwrap_or_default();
        // Only on failure: say which nodes exist, the usual cause of EINVAL.
        let hint = if e == Errno::EINVAL && plan.nodes.is_some() {
            let online = std::fs::read_to_string("/sys/devices/system/node/online")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            format!(" (online nodes: {online})")
        } else {
            String::new()
        };
        return Err(Error::sys(
            format!(
                "set_mempolicy {F} {} nodes {nodes:?}{hint}",
                mode_name(mode)
            ),
            e,
        ));
    }
    Ok(())
}

/// get_mempolicy for the caller: (mode with flags, nodes as "0-3").
pub fn current() -> Result<(i32, String)> {
    let mut mode: libc::c_int = 0;
    let mut words =
        vec![0 as libc::c_ulong; (MAX_NODE_ID as usize + 1) / libc::c_ulong::BITS as usize];
    let maxnode = (MAX_NODE_ID + 1) as libc::c_ulong;
    // SAFETY: `mode` and `words` are writable and `words` holds `maxnode` bits.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            words.as_mut_ptr(),
            maxnode,
            std::ptr::null::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(Error::sys("get_mempolicy", Errno::last()));
    }
    Ok((mode, CpuMask { words }.to_list()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::in_child;

    fn plan(json: &str) -> Result<MemPolicyPlan> {
        let p: LinuxMemoryPolicy = serde_json::from_str(json).expect("test json");
        MemPolicyPlan::from_spec(&p)
    }

    #[test]
    fn modes_nodes_and_flags() {
        let p = plan(r#"{"mode":"MPOL_INTERLEAVE","nodes":"2-3","flags":["MPOL_F_STATIC_NODES"]}"#)
            .unwrap();
        assert_eq!(p.mode, MPOL_INTERLEAVE | MPOL_F_STATIC_NODES);
        assert_eq!(p.nodes.unwrap().to_list(), "2-3");
        assert_eq!(
            plan(r#"{"mode":"MPOL_DEFAULT"}"#).unwrap().mode,
            MPOL_DEFAULT
        );
        assert_eq!(
            plan(r#"{"mode":"MPOL_LOCAL","nodes":""}"#).unwrap().mode,
            MPOL_LOCAL
        );
        // PREFERRED without nodes means "local".
        assert!(plan(r#"{"mode":"MPOL_PREFERRED"}"#)
            .unwrap()
            .nodes
            .is_none());
        let p =
            plan(r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_NUMA_BALANCING"]}"#).unwrap();
        assert_eq!(p.mode, MPOL_BIND | MPOL_F_NUMA_BALANCING);
        for m in ["MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"] {
            plan(&format!(
                r#"{{"mode":"{m}","nodes":"0,1","flags":["MPOL_F_RELATIVE_NODES"]}}"#
            ))
            .unwrap();
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"mode":"MPOL_BIND"}"#, "linux.memoryPolicy.nodes:"),
            (
                r#"{"mode":"MPOL_INTERLEAVE","nodes":""}"#,
                "linux.memoryPolicy.nodes:",
            ),
            (
                r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#,
                "linux.memoryPolicy.nodes:",
            ),
            (
                r#"{"mode":"MPOL_LOCAL","nodes":"0"}"#,
                "linux.memoryPolicy.nodes:",
            ),
            (
                r#"{"mode":"MPOL_BIND","nodes":"0-x"}"#,
                "linux.memoryPolicy.nodes:",
            ),
            (
                r#"{"mode":"MPOL_BIND","nodes":"1024"}"#,
                "linux.memoryPolicy.nodes:",
            ),
            (
                r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#,
                "linux.memoryPolicy.flags:",
            ),
            (
                r#"{"mode":"MPOL_INTERLEAVE","nodes":"0","flags":["MPOL_F_NUMA_BALANCING"]}"#,
                "linux.memoryPolicy.flags:",
            ),
            (
                r#"{"mode":"MPOL_DEFAULT","flags":["MPOL_F_STATIC_NODES"]}"#,
                "linux.memoryPolicy.flags:",
            ),
            (
                r#"{"mode":"MPOL_LOCAL","flags":["MPOL_F_STATIC_NODES"]}"#,
                "linux.memoryPolicy.flags:",
            ),
        ];
        for (json, want) in cases {
            let e = plan(json).unwrap_err().to_string();
            assert!(e.starts_with(want), "{json}: {e}");
        }
    }

    #[test]
    fn unknown_mode_is_refused_by_the_config_parser() {
        let doc = r#"{"ociVersion":"1.3.0","linux":{"memoryPolicy":{"mode":"MPOL_FOO"}}}"#;
        let e = crate::config::parse(doc.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.memoryPolicy.mode"), "{e}");
    }

    #[test]
    fn applies_and_reads_back() {
        // Node 0 exists on every Linux machine.
        let cases = [
            (r#"{"mode":"MPOL_BIND","nodes":"0"}"#, MPOL_BIND, "0"),
            (
                r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES"]}"#,
                MPOL_BIND | MPOL_F_STATIC_NODES,
                "0",
            ),
            (
                r#"{"mode":"MPOL_INTERLEAVE","nodes":"0"}"#,
                MPOL_INTERLEAVE,
                "0",
            ),
            (
                r#"{"mode":"MPOL_PREFERRED","nodes":"0"}"#,
                MPOL_PREFERRED,
                "0",
            ),
            (
                r#"{"mode":"MPOL_PREFERRED_MANY","nodes":"0"}"#,
                MPOL_PREFERRED_MANY,
                "0",
            ),
            (
                r#"{"mode":"MPOL_WEIGHTED_INTERLEAVE","nodes":"0"}"#,
                MPOL_WEIGHTED_INTERLEAVE,
                "0",
            ),
            (r#"{"mode":"MPOL_LOCAL"}"#, MPOL_LOCAL, ""),
            (r#"{"mode":"MPOL_DEFAULT"}"#, MPOL_DEFAULT, ""),
        ];
        for (json, want_mode, want_nodes) in cases {
            let p = plan(json).unwrap();
            in_child(|| {
                apply(&p).map_err(|e| e.to_string())?;
                let (mode, nodes) = current().map_err(|e| e.to_string())?;
                if mode == want_mode && nodes == want_nodes {
                    Ok(())
                } else {
                    Err(format!("got mode {mode:#x} nodes {nodes:?}"))
                }
            })
            .unwrap_or_else(|e| panic!("{json}: {e}"));
        }
    }

    #[test]
    fn absent_node_fails_naming_the_field() {
        let p = plan(r#"{"mode":"MPOL_BIND","nodes":"1000"}"#).unwrap();
        in_child(|| match apply(&p) {
            Err(e)
                if e.to_string()
                    .contains("linux.memoryPolicy MPOL_BIND nodes \"1000\"") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        })
        .unwrap();
    }
}
