//! Device access rules: the v1 rule emulation shared by both backends, the
//! v1 devices.allow/deny writes, and the v2 BPF_PROG_TYPE_CGROUP_DEVICE
//! program, hand-assembled.
//!
//! Semantics follow the v1 kernel (and so runc): an "a" rule resets the
//! whole state to allow-all or deny-all; any other rule either adds an
//! exception (when its action differs from the default) or removes
//! permissions from an exactly matching exception. Removing permissions that
//! a wildcard exception grants is refused, since v1 silently ignores it.
//! The resulting state is a default plus exceptions whose action is the
//! opposite of the default, so their order does not matter.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// A device rule after validation. `major`/`minor` None = wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DevRule {
    pub allow: bool,
    /// 'a', 'b' or 'c'.
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// ACC_* bits.
    pub access: u8,
}

fn access_text(a: u8) -> String {
    let mut s = String::new();
    if a & ACC_READ != 0 {
        s.push('r');
    }
    if a & ACC_WRITE != 0 {
        s.push('w');
    }
    if a & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

impl DevRule {
    /// The v1 devices.allow/deny line.
    pub fn v1_line(&self) -> String {
        let n = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "*".into());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            access_text(self.access)
        )
    }

    pub fn from_oci(d: &LinuxDeviceCgroup, field: &str) -> Result<DevRule> {
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => 'a',
            Some(LinuxDeviceType::B) => 'b',
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
            Some(LinuxDeviceType::P) => {
                return Err(Error::config(
                    format!("{field}.type"),
                    "\"p\" (fifo) cannot be used in a device cgroup rule",
                ))
            }
        };
        let num = |v: Option<i64>, name: &str| -> Result<Option<u32>> {
            match v {
                None | Some(-1) => Ok(None),
                Some(x) if (0..=u32::MAX as i64).contains(&x) => Ok(Some(x as u32)),
                Some(x) => Err(Error::config(
                    format!("{field}.{name}"),
                    format!("{x} is not a device number"),
                )),
            }
        };
        let access = match d.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(s) => {
                let mut a = 0;
                for c in s.chars() {
                    a |= match c {
                        'r' => ACC_READ,
                        'w' => ACC_WRITE,
                        'm' => ACC_MKNOD,
                        _ => {
                            return Err(Error::config(
                                format!("{field}.access"),
                                format!("{s:?}: only r, w and m are allowed"),
                            ))
                        }
                    };
                }
                a
            }
        };
        Ok(DevRule {
            allow: d.allow(),
            kind,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            access,
        })
    }
}

/// The rules every container gets after its own (as runc does): mknod of
/// anything, and rwm on the standard character devices.
pub fn default_rules() -> Vec<DevRule> {
    let c = |major, minor: Option<u32>, access| DevRule {
        allow: true,
        kind: 'c',
        major,
        minor,
        access,
    };
    vec![
        c(None, None, ACC_MKNOD),
        DevRule {
            allow: true,
            kind: 'b',
            major: None,
            minor: None,
            access: ACC_MKNOD,
        },
        c(Some(1), Some(3), ACC_ALL),    // null
        c(Some(1), Some(8), ACC_ALL),    // random
        c(Some(1), Some(7), ACC_ALL),    // full
        c(Some(5), Some(0), ACC_ALL),    // tty
        c(Some(1), Some(5), ACC_ALL),    // zero
        c(Some(1), Some(9), ACC_ALL),    // urandom
        c(Some(136), None, ACC_ALL),     // pts/*
        c(Some(5), Some(2), ACC_ALL),    // ptmx
        c(Some(10), Some(200), ACC_ALL), // net/tun
    ]
}

type Key = (char, Option<u32>, Option<u32>);

/// The emulated state of a v1 devices cgroup. Exceptions keep the order their rules came
/// in, so that devices.list reads back in the order of the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceState {
    pub default_allow: bool,
    exceptions: Vec<(Key, u8)>,
}

impl DeviceState {
    /// A fresh container cgroup starts as deny-all (an empty allow list).
    pub fn new() -> Self {
        DeviceState {
            default_allow: false,
            exceptions: Vec::new(),
        }
    }

    fn exception(&self, key: &Key) -> Option<u8> {
        self.exceptions
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, a)| *a)
    }

    pub fn apply(&mut self, r: &DevRule) -> Result<()> {
        if r.kind == 'a' {
            *self = DeviceState {
                default_allow: r.allow,
                exceptions: Vec::new(),
            };
            return Ok(());
        }
        let key = (r.kind, r.major, r.minor);
        if r.allow != self.default_allow {
            match self.exceptions.iter_mut().find(|(k, _)| *k == key) {
                Some((_, a)) => *a |= r.access,
                None => self.exceptions.push((key, r.access)),
            }
            return Ok(());
        }
        // Removing permissions: refuse to punch a hole in a wider rule.
        for wider in [
            (r.kind, None, r.minor),
            (r.kind, r.major, None),
            (r.kind, None, None),
        ] {
            if wider == key {
                continue;
            }
            if let Some(p) = self.exception(&wider) {
                if p & r.access != 0 {
                    return Err(Error::msg(format!(
                        "device rule {:?} cannot take away access granted by the wildcard rule {:?}",
                        r.v1_line(),
                        DevRule { allow: !r.allow, kind: wider.0, major: wider.1, minor: wider.2, access: p }.v1_line()
                    )));
                }
            }
        }
        if let Some(i) = self.exceptions.iter().position(|(k, _)| *k == key) {
            self.exceptions[i].1 &= !r.access;
            if self.exceptions[i].1 == 0 {
                self.exceptions.remove(i);
            }
        }
        Ok(())
    }

    pub fn from_rules(rules: &[DevRule]) -> Result<Self> {
        let mut s = DeviceState::new();
        for r in rules {
            s.apply(r)?;
        }
        Ok(s)
    }

    /// The exceptions (action = !default), in the order their rules came.
    pub fn exceptions(&self) -> impl Iterator<Item = DevRule> + '_ {
        self.exceptions
            .iter()
            .map(|&((kind, major, minor), access)| DevRule {
                allow: !self.default_allow,
                kind,
                major,
                minor,
                access,
            })
    }

    /// Ordered v1 writes: (file, line). A reset rule first, then exceptions.
    pub fn v1_writes(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let reset = if self.default_allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        out.push((reset, "a *:* rwm".to_string()));
        let exc = if self.default_allow {
            "devices.deny"
        } else {
            "devices.allow"
        };
        out.extend(self.exceptions().map(|r| (exc, r.v1_line())));
        out
    }

    /// Whether an access is allowed (the semantics the BPF program encodes).
    pub fn allows(&self, kind: char, major: u32, minor: u32, access: u8) -> bool {
        for r in self.exceptions() {
            if r.kind == kind
                && r.major.is_none_or(|m| m == major)
                && r.minor.is_none_or(|m| m == minor)
                && access & r.access == access
            {
                return r.allow;
            }
        }
        self.default_allow
    }

    /// The BPF_PROG_TYPE_CGROUP_DEVICE program for this state.
    pub fn bpf_program(&self) -> Vec<Insn> {
        // ctx = struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
        // with access_type = (access << 16) | type.
        let mut p = vec![
            Insn::ldx_w(2, 1, 0),
            Insn::alu32_imm(ALU_AND, 2, 0xffff),
            Insn::ldx_w(3, 1, 0),
            Insn::alu32_imm(ALU_RSH, 3, 16),
            Insn::ldx_w(4, 1, 4),
            Insn::ldx_w(5, 1, 8),
        ];
        for r in self.exceptions() {
            let mut block: Vec<Insn> = Vec::new();
            // Jumps are patched to the block's end once its length is known;
            // `JUMP_NEXT` marks them.
            let ty = if r.kind == 'b' { 1 } else { 2 };
            block.push(Insn::jne32_imm(2, ty, JUMP_NEXT));
            if r.access != ACC_ALL {
                // The requested access must be a subset of the rule's.
                block.push(Insn::mov32_reg(1, 3));
                block.push(Insn::alu32_imm(ALU_AND, 1, r.access as i32));
                block.push(Insn::jne32_reg(1, 3, JUMP_NEXT));
            }
            if let Some(m) = r.major {
                block.push(Insn::jne32_imm(4, m as i32, JUMP_NEXT));
            }
            if let Some(m) = r.minor {
                block.push(Insn::jne32_imm(5, m as i32, JUMP_NEXT));
            }
            block.push(Insn::mov32_imm(0, r.allow as i32));
            block.push(Insn::exit());
            let len = block.len();
            for (i, insn) in block.iter_mut().enumerate() {
                if insn.off == JUMP_NEXT {
                    insn.off = (len - i - 1) as i16;
                }
            }
            p.extend(block);
        }
        p.push(Insn::mov32_imm(0, self.default_allow as i32));
        p.push(Insn::exit());
        p
    }
}

const JUMP_NEXT: i16 = i16::MIN;
const ALU_AND: u8 = 0x50;
const ALU_RSH: u8 = 0x70;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0xf),
            off,
            imm,
        }
    }
    /// dst = *(u32 *)(src + off)   (BPF_LDX | BPF_MEM | BPF_W)
    fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x61, dst, src, off, 0)
    }
    /// 32-bit ALU with an immediate (BPF_ALU | op | BPF_K)
    fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(0x04 | op, dst, 0, 0, imm)
    }
    fn mov32_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0xb4, dst, 0, 0, imm)
    }
    fn mov32_reg(dst: u8, src: u8) -> Insn {
        Insn::new(0xbc, dst, src, 0, 0)
    }
    /// if (u32)dst != imm goto +off   (BPF_JMP32 | BPF_JNE | BPF_K); 32-bit
    /// compares so majors/minors above 2^31 are not sign-extended.
    fn jne32_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(0x56, dst, 0, off, imm)
    }
    fn jne32_reg(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x5e, dst, src, off, 0)
    }
    fn exit() -> Insn {
        Insn::new(0x95, 0, 0, 0, 0)
    }
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    // Zero padding up to the fields the kernel checks are zero.
    _pad: [u64; 12],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _pad: [u32; 7],
}

/// Load a device program with bpf(BPF_PROG_LOAD); the verifier log is put
/// in the error if the kernel refuses it.
pub fn load_program(insns: &[Insn]) -> Result<OwnedFd> {
    let license = b"Apache\0";
    let mut log = vec![0u8; 4096];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: attr points at live buffers (insns, license) for the duration of
    // the call; the size passed is the size of the zero-padded struct.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd >= 0 {
        // SAFETY: the kernel returned a new fd that nothing else owns.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    let errno = Errno::last();
    // Retry once with the verifier log to say why.
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    // SAFETY: as above; log is a live writable buffer of log_size bytes.
    let fd2 = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd2 >= 0 {
        // SAFETY: new fd owned by nobody else.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd2 as i32) });
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
    let e = Error::sys("bpf(BPF_PROG_LOAD) device program", errno);
    if text.is_empty() {
        Err(e)
    } else {
        Err(Error::msg(format!("{e}: verifier: {text}")))
    }
}

/// Attach with BPF_F_ALLOW_MULTI so that programs of parent cgroups (and a
/// later replacement) keep running too.
pub fn attach_program(cgroup_dir: &impl AsRawFd, prog: &impl AsRawFd) -> Result<()> {
    let attr = ProgAttachAttr {
        target_fd: cgroup_dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: attr is a plain struct living across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if r < 0 {
        return Err(Error::sys(
            "bpf(BPF_PROG_ATTACH) device program",
            Errno::last(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        kind: char,
        major: Option<u32>,
        minor: Option<u32>,
        access: u8,
    ) -> DevRule {
        DevRule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    /// A tiny interpreter for the subset of eBPF we emit, to check the
    /// program against the emulator without the kernel.
    fn run(p: &[Insn], kind: char, major: u32, minor: u32, access: u8) -> u64 {
        let ty: u32 = if kind == 'b' { 1 } else { 2 };
        let ctx = [(access as u32) << 16 | ty, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => r[dst] = ctx[i.off as usize / 4] as u64,
                0x54 => r[dst] = ((r[dst] as u32) & i.imm as u32) as u64,
                0x74 => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                0xb4 => r[dst] = i.imm as u32 as u64,
                0xbc => r[dst] = r[src] as u32 as u64,
                0x56 => {
                    if r[dst] as u32 != i.imm as u32 {
                        pc = (pc as i64 + i.off as i64) as usize
                    }
                }
                0x5e => {
                    if r[dst] as u32 != r[src] as u32 {
                        pc = (pc as i64 + i.off as i64) as usize
                    }
                }
                0x95 => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn default_deny_with_defaults() {
        let mut rules = vec![rule(false, 'a', None, None, ACC_ALL)];
        rules.extend(default_rules());
        let s = DeviceState::from_rules(&rules).unwrap();
        assert!(!s.default_allow);
        let w = s.v1_writes();
        assert_eq!(w[0], ("devices.deny", "a *:* rwm".to_string()));
        assert!(w.contains(&("devices.allow", "c 1:3 rwm".to_string())));
        assert!(w.contains(&("devices.allow", "c *:* m".to_string())));
        let p = s.bpf_program();
        for (k, ma, mi, acc, want) in [
            ('c', 1, 3, ACC_READ | ACC_WRITE, true),
            ('c', 1, 5, ACC_READ, true),
            ('c', 8, 0, ACC_READ, false),
            ('c', 8, 0, ACC_MKNOD, true),
            ('b', 8, 0, ACC_MKNOD, true),
            ('b', 8, 0, ACC_READ, false),
            ('c', 136, 42, ACC_WRITE, true),
            ('c', 4, 1, ACC_READ, false),
        ] {
            assert_eq!(s.allows(k, ma, mi, acc), want, "{k} {ma}:{mi} {acc}");
            assert_eq!(
                run(&p, k, ma, mi, acc) == 1,
                want,
                "bpf {k} {ma}:{mi} {acc}"
            );
        }
    }

    #[test]
    fn last_rule_wins_and_allow_all() {
        // deny all, allow 1:5 rw, deny 1:5 w  => 1:5 r only.
        let s = DeviceState::from_rules(&[
            rule(false, 'a', None, None, ACC_ALL),
            rule(true, 'c', Some(1), Some(5), ACC_READ | ACC_WRITE),
            rule(false, 'c', Some(1), Some(5), ACC_WRITE),
        ])
        .unwrap();
        let p = s.bpf_program();
        assert_eq!(run(&p, 'c', 1, 5, ACC_READ), 1);
        assert_eq!(run(&p, 'c', 1, 5, ACC_WRITE), 0);
        assert_eq!(run(&p, 'c', 1, 5, ACC_READ | ACC_WRITE), 0);
        // allow all then deny one: blacklist mode.
        let s = DeviceState::from_rules(&[
            rule(true, 'a', None, None, ACC_ALL),
            rule(false, 'c', Some(1), Some(5), ACC_ALL),
        ])
        .unwrap();
        assert!(s.default_allow);
        let p = s.bpf_program();
        assert_eq!(run(&p, 'c', 1, 5, ACC_READ), 0);
        assert_eq!(run(&p, 'c', 1, 3, ACC_READ), 1);
        assert_eq!(s.v1_writes()[0], ("devices.allow", "a *:* rwm".to_string()));
        assert_eq!(s.v1_writes()[1], ("devices.deny", "c 1:5 rwm".to_string()));
        // Big majors compare as u32.
        let s = DeviceState::from_rules(&[rule(true, 'c', Some(u32::MAX), None, ACC_ALL)]).unwrap();
        assert_eq!(run(&s.bpf_program(), 'c', u32::MAX, 1, ACC_READ), 1);
        assert_eq!(run(&s.bpf_program(), 'c', 7, 1, ACC_READ), 0);
    }

    #[test]
    fn hole_punching_is_refused() {
        let e = DeviceState::from_rules(&[
            rule(true, 'c', Some(1), None, ACC_ALL),
            rule(false, 'c', Some(1), Some(5), ACC_READ),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("wildcard"), "{e}");
    }

    #[test]
    fn oci_conversion() {
        let d: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"access":"rx"}"#).unwrap();
        let e = DevRule::from_oci(&d, "linux.resources.devices[0]")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.resources.devices[0].access"), "{e}");
        let d: LinuxDeviceCgroup = serde_json::from_str(r#"{"allow":false}"#).unwrap();
        let r = DevRule::from_oci(&d, "x").unwrap();
        assert_eq!(r.v1_line(), "a *:* rwm");
    }
}
