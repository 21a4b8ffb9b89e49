//! `process.user`: supplementary groups, gid, uid and umask.

use nix::errno::Errno;
use oci_spec::runtime::User;

use crate::error::{Error, Result};

/// umask when `process.user.umask` is absent (runc's default).
pub const DEFAULT_UMASK: u32 = 0o022;

/// The entry for `uid` in the passwd file `text`: (name, home directory).
pub fn passwd_entry(text: &str, uid: u32) -> Option<(&str, &str)> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>() == Ok(uid)).then(|| (f[0], f[5]))
    })
}

/// Switches to the configured user. Capabilities survive the uid change
/// (PR_SET_KEEPCAPS) so that `capabilities::apply_final` can set the final
/// sets afterwards.
pub fn switch_user(user: &User) -> Result<()> {
    let gids: &[u32] = user.additional_gids().as_deref().unwrap_or(&[]);
    set_groups(gids)?;

    let gid = user.gid();
    // SAFETY: plain integer syscall wrapper; this process is single-threaded,
    // so glibc's all-threads credential broadcast has nothing to do.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(Error::sys(format!("setresgid {gid}"), Errno::last()));
    }

    let uid = user.uid();
    // Leaving uid 0 clears the permitted set unless KEEPCAPS is on; staying
    // uid 0 keeps everything, so the two prctls are only needed then.
    let keep = uid != 0;
    if keep {
        set_keepcaps(true)?;
    }
    // SAFETY: as for setresgid.
    let r = unsafe { libc::setresuid(uid, uid, uid) };
    let errno = Errno::last();
    if keep {
        set_keepcaps(false)?;
    }
    if r != 0 {
        return Err(Error::sys(format!("setresuid {uid}"), errno));
    }

    let mask = user.umask().unwrap_or(DEFAULT_UMASK);
    // SAFETY: umask cannot fail; it only sets the process's file mode mask.
    unsafe { libc::umask((mask & 0o7777) as libc::mode_t) };
    Ok(())
}

fn set_keepcaps(on: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(Error::sys(
            format!("prctl PR_SET_KEEPCAPS {}", on as u8),
            Errno::last(),
        ));
    }
    Ok(())
}

/// setgroups, tolerating a user namespace whose /proc/self/setgroups is
/// "deny" (there the call must be skipped). The file is read only when the
/// call fails, which saves an open+read on the common path.
fn set_groups(gids: &[u32]) -> Result<()> {
    // SAFETY: the pointer and length describe a live slice of gid_t (u32).
    if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } == 0 {
        return Ok(());
    }
    let errno = Errno::last();
    if errno == Errno::EPERM && setgroups_denied() {
        log::debug!("setgroups skipped: /proc/self/setgroups is \"deny\"");
        return Ok(());
    }
    Err(Error::sys(format!("setgroups {gids:?}"), errno))
}

fn setgroups_denied() -> bool {
    std::fs::read("/proc/self/setgroups").is_ok_and(|b| b.trim_ascii() == b"deny")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{in_child_exit_code as in_child, status_field};

    #[test]
    fn passwd_entry_by_uid() {
        let text =
            "root:x:0:0:root:/root:/bin/sh\nbad line\nuser:x:1000:1000::/home/user:/bin/sh\n";
        assert_eq!(passwd_entry(text, 0), Some(("root", "/root")));
        assert_eq!(passwd_entry(text, 1000), Some(("user", "/home/user")));
        assert_eq!(passwd_entry(text, 7), None);
    }

    #[test]
    fn switches_user_in_child() {
        let code = in_child(|| {
            let user: User = serde_json::from_str(
                r#"{"uid":1000,"gid":1001,"additionalGids":[2000,3000],"umask":63}"#,
            )
            .unwrap();
            if let Err(e) = switch_user(&user) {
                eprintln!("{e}");
                return 2;
            }
            if status_field("Uid") != "1000 1000 1000 1000" {
                return 3;
            }
            if status_field("Gid") != "1001 1001 1001 1001" {
                return 4;
            }
            if status_field("Groups") != "2000 3000" {
                return 5;
            }
            // KEEPCAPS kept the permitted set, and is cleared again.
            if status_field("CapPrm") == "0000000000000000" {
                return 6;
            }
            // SAFETY: reading the keepcaps flag.
            if unsafe { libc::prctl(libc::PR_GET_KEEPCAPS, 0, 0, 0, 0) } != 0 {
                return 7;
            }
            // SAFETY: umask read-and-restore in our own child.
            let m = unsafe { libc::umask(0) };
            if m != 0o077 {
                return 8;
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn defaults_in_child() {
        let code = in_child(|| {
            // SAFETY: setting up our own child.
            unsafe { libc::umask(0o077) };
            let user: User = serde_json::from_str(r#"{"uid":0,"gid":0}"#).unwrap();
            if switch_user(&user).is_err() {
                return 2;
            }
            if !status_field("Groups").is_empty() {
                return 3;
            }
            // SAFETY: reading our own umask.
            if unsafe { libc::umask(0) } != 0o022 {
                return 4;
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn errors_name_the_step() {
        let code = in_child(|| {
            let unpriv: User = serde_json::from_str(r#"{"uid":1000,"gid":1000}"#).unwrap();
            if switch_user(&unpriv).is_err() {
                return 2;
            }
            let root: User = serde_json::from_str(r#"{"uid":0,"gid":0}"#).unwrap();
            match switch_user(&root) {
                Err(e) if e.to_string() == "setgroups []: operation not permitted" => 0,
                Err(e) => {
                    eprintln!("{e}");
                    3
                }
                Ok(()) => 4,
            }
        });
        assert_eq!(code, 0);
    }
}
