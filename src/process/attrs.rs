//! Small per-process knobs applied in the container init just before exec.

use std::io::Write;

use nix::errno::Errno;

use crate::error::{Error, Result};

/// Sets `PR_SET_NO_NEW_PRIVS` so that exec cannot grant privileges
/// (setuid bits, file capabilities) the process does not already have.
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r != 0 {
        return Err(Error::sys("prctl PR_SET_NO_NEW_PRIVS", Errno::last()));
    }
    Ok(())
}

const OOM_SCORE_ADJ: &str = "/proc/self/oom_score_adj";

/// Writes `process.oomScoreAdj` to /proc/self/oom_score_adj.
pub fn set_oom_score_adj(v: i32) -> Result<()> {
    // Through a checked procfs: the write must reach the kernel's knob.
    let mut f = crate::rootfs::open_proc_file(OOM_SCORE_ADJ, libc::O_WRONLY)?;
    // One write call: the kernel parses the value from a single write.
    let mut buf = itoa_buf(v);
    let text = buf.as_str();
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("write {v} to"), OOM_SCORE_ADJ, e))
}

/// Formats an i32 without going through the formatting machinery's heap
/// allocation (a String), since this runs right before exec.
struct SmallNum {
    bytes: [u8; 12],
    start: usize,
}

impl SmallNum {
    fn as_str(&mut self) -> &str {
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("0")
    }
}

fn itoa_buf(v: i32) -> SmallNum {
    let mut bytes = [0u8; 12];
    let mut i = bytes.len();
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        bytes[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        bytes[i] = b'-';
    }
    SmallNum { bytes, start: i }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::in_child_exit_code as in_child;

    #[test]
    fn formats_numbers() {
        for v in [0, 7, -1, 1000, -1000, i32::MAX, i32::MIN] {
            assert_eq!(itoa_buf(v).as_str(), v.to_string());
        }
    }

    #[test]
    fn no_new_privs_in_child() {
        let code = in_child(|| {
            if set_no_new_privs().is_err() {
                return 2;
            }
            let s = crate::sys::fsio::read_to_string("/proc/self/status").unwrap_or_default();
            if s.lines().any(|l| l == "NoNewPrivs:\t1") {
                0
            } else {
                3
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn oom_score_adj_in_child() {
        let code = in_child(|| {
            // Raising is always allowed; lowering needs CAP_SYS_RESOURCE,
            // which this VM's bounding set lacks.
            if set_oom_score_adj(500).is_err() {
                return 2;
            }
            let s = crate::sys::fsio::read_to_string(OOM_SCORE_ADJ).unwrap_or_default();
            if s.trim() == "500" {
                0
            } else {
                3
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn oom_score_adj_error_names_file_and_value() {
        let e = set_oom_score_adj(5000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "write 5000 to /proc/self/oom_score_adj: invalid argument"
        );
    }
}
