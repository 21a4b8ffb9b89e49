//! Linux security modules: AppArmor profiles and SELinux labels for the
//! container process. Applied by writing to /proc/thread-self/attr/...
//! right before exec (the label takes effect at exec). A config that asks
//! for a module the host does not run is refused, as runc does: running
//! unconfined when confinement was asked for would be a silent downgrade.

use std::path::Path;

use crate::error::{Error, Result};

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.starts_with('Y'))
        .unwrap_or(false)
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Check, before anything exists, that what the process asks for can be had.
pub fn check(apparmor: Option<&str>, selinux: Option<&str>, field: &str) -> Result<()> {
    if apparmor.is_some_and(|p| !p.is_empty()) && !apparmor_enabled() {
        return Err(Error::config(
            format!("{field}.apparmorProfile"),
            "AppArmor is not enabled on this host",
        ));
    }
    if selinux.is_some_and(|l| !l.is_empty()) && !selinux_enabled() {
        return Err(Error::config(
            format!("{field}.selinuxLabel"),
            "SELinux is not enabled on this host",
        ));
    }
    Ok(())
}

/// The text written to the attr file for an AppArmor profile change on exec.
pub fn apparmor_exec_command(profile: &str) -> String {
    format!("exec {profile}")
}

/// Arrange the profile/label for the next exec of this thread.
pub fn apply(apparmor: Option<&str>, selinux: Option<&str>) -> Result<()> {
    if let Some(profile) = apparmor.filter(|p| !p.is_empty()) {
        let modern = "/proc/thread-self/attr/apparmor/exec";
        let path = if Path::new(modern).exists() {
            modern
        } else {
            "/proc/thread-self/attr/exec"
        };
        std::fs::write(path, apparmor_exec_command(profile)).map_err(|e| {
            Error::io(
                format!("apply AppArmor profile {profile:?}: write"),
                path,
                e,
            )
        })?;
    }
    if let Some(label) = selinux.filter(|l| !l.is_empty()) {
        let path = "/proc/thread-self/attr/exec";
        std::fs::write(path, label.as_bytes())
            .map_err(|e| Error::io(format!("apply SELinux label {label:?}: write"), path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_this_host_lacks() {
        if !apparmor_enabled() {
            let e = check(Some("docker-default"), None, "process")
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                "process.apparmorProfile: AppArmor is not enabled on this host"
            );
        }
        if !selinux_enabled() {
            let e = check(None, Some("system_u:system_r:container_t:s0"), "process")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("process.selinuxLabel"), "{e}");
        }
        check(None, Some(""), "process").unwrap();
    }

    #[test]
    fn apparmor_command_text() {
        assert_eq!(apparmor_exec_command("p1"), "exec p1");
    }
}
