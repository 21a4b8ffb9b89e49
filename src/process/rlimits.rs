//! `process.rlimits`: decided into a plan at config time, applied with
//! setrlimit(2) in the container init.

use nix::errno::Errno;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{Error, Result};

/// setrlimit(2)'s resource argument: glibc declares its own enum type, musl
/// a plain int.
#[cfg(target_env = "gnu")]
pub type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type Resource = libc::c_int;

/// Every resource setrlimit(2) documents, by its config.json name.
const RESOURCES: [(&str, Resource); 16] = [
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
];

/// The kernel resource number for a config.json rlimit name such as
/// "RLIMIT_NOFILE"; `None` for names setrlimit(2) does not know.
pub fn resource_by_name(name: &str) -> Option<Resource> {
    RESOURCES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn resource_of(t: PosixRlimitType) -> (&'static str, Resource) {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => ("RLIMIT_CPU", libc::RLIMIT_CPU),
        RlimitFsize => ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        RlimitData => ("RLIMIT_DATA", libc::RLIMIT_DATA),
        RlimitStack => ("RLIMIT_STACK", libc::RLIMIT_STACK),
        RlimitCore => ("RLIMIT_CORE", libc::RLIMIT_CORE),
        RlimitRss => ("RLIMIT_RSS", libc::RLIMIT_RSS),
        RlimitNproc => ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        RlimitNofile => ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        RlimitMemlock => ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        RlimitAs => ("RLIMIT_AS", libc::RLIMIT_AS),
        RlimitLocks => ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        RlimitSigpending => ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        RlimitMsgqueue => ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        RlimitNice => ("RLIMIT_NICE", libc::RLIMIT_NICE),
        RlimitRtprio => ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        RlimitRttime => ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub name: &'static str,
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// Validated rlimits, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RlimitPlan {
    pub limits: Vec<Rlimit>,
}

impl RlimitPlan {
    /// From `process.rlimits` as oci-spec parsed it (an unknown type name
    /// already fails when config.json is deserialized).
    pub fn from_spec(rlimits: Option<&[PosixRlimit]>) -> Result<Self> {
        let rlimits = rlimits.unwrap_or(&[]);
        let mut limits = Vec::with_capacity(rlimits.len());
        for (i, rl) in rlimits.iter().enumerate() {
            let (name, resource) = resource_of(rl.typ());
            push_checked(&mut limits, i, name, resource, rl.soft(), rl.hard())?;
        }
        Ok(RlimitPlan { limits })
    }

    /// From raw (type, soft, hard) triples, for callers that read the JSON
    /// themselves; unknown types are rejected here.
    pub fn from_names<'a>(rlimits: impl IntoIterator<Item = (&'a str, u64, u64)>) -> Result<Self> {
        let mut limits = Vec::new();
        for (i, (typ, soft, hard)) in rlimits.into_iter().enumerate() {
            let Some((name, resource)) = RESOURCES.iter().find(|(n, _)| *n == typ).copied() else {
                return Err(Error::config(
                    format!("process.rlimits[{i}].type"),
                    format!("unknown rlimit type {typ:?}"),
                ));
            };
            push_checked(&mut limits, i, name, resource, soft, hard)?;
        }
        Ok(RlimitPlan { limits })
    }
}

fn push_checked(
    limits: &mut Vec<Rlimit>,
    i: usize,
    name: &'static str,
    resource: Resource,
    soft: u64,
    hard: u64,
) -> Result<()> {
    if soft > hard {
        return Err(Error::config(
            format!("process.rlimits[{i}]"),
            format!("{name}: soft limit {soft} is greater than hard limit {hard}"),
        ));
    }
    if limits.iter().any(|l| l.resource == resource) {
        return Err(Error::config(
            format!("process.rlimits[{i}]"),
            format!("duplicate rlimit type {name}"),
        ));
    }
    limits.push(Rlimit {
        name,
        resource,
        soft,
        hard,
    });
    Ok(())
}

/// Sets each limit. Raising a hard limit needs CAP_SYS_RESOURCE, so this runs
/// before capabilities are dropped.
pub fn apply(plan: &RlimitPlan) -> Result<()> {
    for l in &plan.limits {
        let lim = libc::rlimit {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        // SAFETY: `lim` is a valid rlimit struct that outlives the call.
        if unsafe { libc::setrlimit(l.resource, &lim) } != 0 {
            return Err(Error::sys(
                format!("setrlimit {} (soft {}, hard {})", l.name, l.soft, l.hard),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::in_child_exit_code as in_child;

    fn spec(json: &str) -> Vec<PosixRlimit> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plans_in_order() {
        let rl = spec(
            r#"[{"type":"RLIMIT_NOFILE","soft":1024,"hard":4096},
                {"type":"RLIMIT_CORE","soft":0,"hard":0}]"#,
        );
        let p = RlimitPlan::from_spec(Some(&rl)).unwrap();
        assert_eq!(p.limits.len(), 2);
        assert_eq!(p.limits[0].name, "RLIMIT_NOFILE");
        assert_eq!(p.limits[0].resource, libc::RLIMIT_NOFILE);
        assert_eq!((p.limits[0].soft, p.limits[0].hard), (1024, 4096));
        assert_eq!(p.limits[1].resource, libc::RLIMIT_CORE);
        assert!(RlimitPlan::from_spec(None).unwrap().limits.is_empty());
    }

    #[test]
    fn soft_above_hard_is_a_config_error() {
        let rl = spec(
            r#"[{"type":"RLIMIT_CORE","soft":0,"hard":0},
                {"type":"RLIMIT_NOFILE","soft":10,"hard":5}]"#,
        );
        let e = RlimitPlan::from_spec(Some(&rl)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "process.rlimits[1]: RLIMIT_NOFILE: soft limit 10 is greater than hard limit 5"
        );
    }

    #[test]
    fn duplicates_are_a_config_error() {
        let rl = spec(
            r#"[{"type":"RLIMIT_NOFILE","soft":1,"hard":5},
                {"type":"RLIMIT_NOFILE","soft":1,"hard":5}]"#,
        );
        let e = RlimitPlan::from_spec(Some(&rl)).unwrap_err();
        assert!(e.to_string().starts_with("process.rlimits[1]: duplicate"));
    }

    #[test]
    fn names() {
        assert_eq!(resource_by_name("RLIMIT_RTTIME"), Some(libc::RLIMIT_RTTIME));
        assert_eq!(resource_by_name("RLIMIT_FOO"), None);
        for (n, r) in RESOURCES {
            let t: PosixRlimitType = serde_json::from_str(&format!("\"{n}\"")).unwrap();
            assert_eq!(resource_of(t), (n, r));
        }
        let e =
            RlimitPlan::from_names([("RLIMIT_NOFILE", 1, 2), ("RLIMIT_FOO", 1, 2)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "process.rlimits[1].type: unknown rlimit type \"RLIMIT_FOO\""
        );
    }

    #[test]
    fn applies_in_child() {
        let code = in_child(|| {
            // Only lower: raising the hard limit needs CAP_SYS_RESOURCE,
            // which this VM's bounding set lacks.
            let p = RlimitPlan::from_names([("RLIMIT_NOFILE", 100, 200), ("RLIMIT_CORE", 0, 0)])
                .unwrap();
            if apply(&p).is_err() {
                return 2;
            }
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: valid out pointer.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
            if (lim.rlim_cur, lim.rlim_max) != (100, 200) {
                return 3;
            }
            if caps::has_cap(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_RESOURCE,
            )
            .unwrap_or(true)
            {
                return 0;
            }
            // Raising above the hard limit now fails and names the values.
            let up = RlimitPlan::from_names([("RLIMIT_NOFILE", 100, 300)]).unwrap();
            match apply(&up) {
                Err(e)
                    if e.to_string()
                        == "setrlimit RLIMIT_NOFILE (soft 100, hard 300): operation not permitted" =>
                {
                    0
                }
                _ => 4,
            }
        });
        assert_eq!(code, 0);
    }
}
