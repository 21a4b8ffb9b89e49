//! `linux.personality`: the execution domain (LINUX, LINUX32).
//!
//! The personality is kept over execve, so the init sets it for itself
//! before exec. It goes before seccomp is loaded (a profile may not allow
//! personality(2)), together with the scheduler settings.

use nix::errno::Errno;
use oci_spec::runtime::{LinuxPersonality, LinuxPersonalityDomain};

use crate::error::{Error, Result};

pub const PER_LINUX: libc::c_ulong = 0x0000;
pub const PER_LINUX32: libc::c_ulong = 0x0008;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalityPlan {
    pub persona: libc::c_ulong,
}

impl PersonalityPlan {
    pub fn from_spec(p: &LinuxPersonality) -> Result<Self> {
        let persona = match p.domain() {
            LinuxPersonalityDomain::PerLinux => PER_LINUX,
            LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
        };
        // runtime-spec 1.3 defines no flags: any given is a request we cannot honour.
        if let Some(f) = p.flags().iter().flatten().next() {
            return Err(Error::config(
                "linux.personality.flags",
                format!("{f:?} is not supported (runtime-spec defines no personality flags)"),
            ));
        }
        Ok(PersonalityPlan { persona })
    }
}

pub fn apply(plan: &PersonalityPlan) -> Result<()> {
    // SAFETY: personality(2) takes a plain integer.
    let rc = unsafe { libc::personality(plan.persona) };
    if rc < 0 {
        return Err(Error::sys(
            format!("personality linux.personality {:#x}", plan.persona),
            Errno::last(),
        ));
    }
    Ok(())
}

/// The calling process's personality (personality(0xffffffff) only queries).
pub fn current() -> Result<libc::c_ulong> {
    // SAFETY: 0xffffffff asks without changing anything.
    let rc = unsafe { libc::personality(0xffff_ffff) };
    if rc < 0 {
        return Err(Error::sys("personality query", Errno::last()));
    }
    Ok(rc as libc::c_ulong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::in_child;

    fn plan(json: &str) -> Result<PersonalityPlan> {
        let p: LinuxPersonality = serde_json::from_str(json).expect("test json");
        PersonalityPlan::from_spec(&p)
    }

    #[test]
    fn domains() {
        assert_eq!(plan(r#"{"domain":"LINUX"}"#).unwrap().persona, PER_LINUX);
        assert_eq!(
            plan(r#"{"domain":"LINUX32","flags":[]}"#).unwrap().persona,
            PER_LINUX32
        );
    }

    #[test]
    fn flags_are_refused_naming_the_field() {
        let e = plan(r#"{"domain":"LINUX","flags":["ADDR_NO_RANDOMIZE"]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.personality.flags:"), "{e}");
    }

    #[test]
    fn unknown_domain_is_refused_by_the_config_parser() {
        let doc = r#"{"ociVersion":"1.3.0","linux":{"personality":{"domain":"LINUX64"}}}"#;
        let e = crate::config::parse(doc.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.personality.domain"), "{e}");
    }

    #[test]
    fn linux32_changes_uname_machine() {
        let p = plan(r#"{"domain":"LINUX32"}"#).unwrap();
        in_child(|| {
            apply(&p).map_err(|e| e.to_string())?;
            let cur = current().map_err(|e| e.to_string())?;
            if cur & 0xff != PER_LINUX32 {
                return Err(format!("personality {cur:#x}"));
            }
            let machine = nix::sys::utsname::uname()
                .map_err(|e| e.to_string())?
                .machine()
                .to_string_lossy()
                .into_owned();
            if cfg!(target_arch = "x86_64") && machine != "i686" {
                return Err(format!("machine {machine}"));
            }
            apply(&plan(r#"{"domain":"LINUX"}"#).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            match current() {
                Ok(c) if c & 0xff == PER_LINUX => Ok(()),
                other => Err(format!("back to LINUX: {other:?}")),
            }
        })
        .unwrap();
    }
}
