//! /proc/self/mountinfo, parsed once for everyone who reads it (the
//! rootfs's cgroup mount, the cgroup probe, resctrl discovery).

/// This process's /proc/self/mountinfo, whole.
pub fn read_own() -> crate::error::Result<String> {
    const PATH: &str = "/proc/self/mountinfo";
    crate::sys::fsio::read_to_string(PATH).map_err(|e| crate::error::Error::io("read", PATH, e))
}

/// One line of /proc/self/mountinfo (only the fields used here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub root: String,
    pub mount_point: String,
    /// Optional fields ("shared:1", "master:2").
    pub optional: String,
    pub fstype: String,
    pub super_options: String,
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
pub fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(text: &str) -> Vec<MountInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        out.push(MountInfo {
            root: unescape(l[3]),
            mount_point: unescape(l[4]),
            optional: l[6..].join(" "),
            fstype: r[0].to_string(),
            super_options: r[2].to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_unescapes() {
        let text =
            "36 35 98:0 /mnt1 /mnt\\040a rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    40 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    garbage line\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].root, "/mnt1");
        assert_eq!(m[0].mount_point, "/mnt a");
        assert_eq!(m[0].optional, "master:1");
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[0].super_options, "rw,errors=continue");
        assert_eq!(m[1].fstype, "cgroup2");
        assert_eq!(unescape("/a\\011b\\134"), "/a\tb\\");
    }
}
