//! `process.scheduler` (sched_setattr), `process.ioPriority` (ioprio_set)
//! and `process.execCPUAffinity` (sched_setaffinity).
//!
//! Where each is applied (the caller's order):
//! - scheduler and I/O priority: in the process that execs the user
//!   program, after the rootfs is finished and before the user switch and
//!   the final capabilities, like runc: raising a priority or choosing a
//!   real-time class needs CAP_SYS_NICE, which an unprivileged user loses.
//!   Both are inherited over fork and kept over execve.
//! - execCPUAffinity: only for processes started by `exec` (the spec says
//!   it does not apply to the container's init). `initial` as the first
//!   thing in the new process, before it joins the container's cgroup;
//!   `final` after it joined the cgroup, before execve.

use oci_spec::runtime::{
    ExecCPUAffinity, IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    Scheduler,
};

use nix::errno::Errno;

use crate::error::{Error, Result};

const SCHED_OTHER: u32 = 0;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_BATCH: u32 = 3;
const SCHED_IDLE: u32 = 5;
const SCHED_DEADLINE: u32 = 6;

const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const SCHED_FLAG_RECLAIM: u64 = 0x02;
const SCHED_FLAG_DL_OVERRUN: u64 = 0x04;
const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
const SCHED_FLAG_KEEP_PARAMS: u64 = 0x10;
const SCHED_FLAG_UTIL_CLAMP_MIN: u64 = 0x20;
const SCHED_FLAG_UTIL_CLAMP_MAX: u64 = 0x40;

/// The kernel refuses deadline runtimes below 2^DL_SCALE ns.
const DL_MIN_RUNTIME: u64 = 1 << 10;

/// `struct sched_attr` in its second version (with the utilization clamps,
/// which the UTIL_CLAMP flags make the kernel read).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

const SCHED_ATTR_SIZE: u32 = std::mem::size_of::<SchedAttr>() as u32;

/// `process.scheduler`, checked: the attr to hand to sched_setattr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerPlan {
    pub attr: SchedAttr,
}

fn policy_name(p: u32) -> &'static str {
    match p {
        SCHED_OTHER => "SCHED_OTHER",
        SCHED_FIFO => "SCHED_FIFO",
        SCHED_RR => "SCHED_RR",
        SCHED_BATCH => "SCHED_BATCH",
        SCHED_IDLE => "SCHED_IDLE",
        _ => "SCHED_DEADLINE",
    }
}

impl SchedulerPlan {
    pub fn from_spec(s: &Scheduler) -> Result<Self> {
        const F: &str = "process.scheduler";
        let policy = match s.policy() {
            LinuxSchedulerPolicy::SchedOther => SCHED_OTHER,
            LinuxSchedulerPolicy::SchedFifo => SCHED_FIFO,
            LinuxSchedulerPolicy::SchedRr => SCHED_RR,
            LinuxSchedulerPolicy::SchedBatch => SCHED_BATCH,
            LinuxSchedulerPolicy::SchedIdle => SCHED_IDLE,
            LinuxSchedulerPolicy::SchedDeadline => SCHED_DEADLINE,
            LinuxSchedulerPolicy::SchedIso => {
                return Err(Error::config(
                    format!("{F}.policy"),
                    "SCHED_ISO is reserved but not implemented by Linux",
                ))
            }
        };
        let mut flags = 0u64;
        for f in s.flags().iter().flatten() {
            flags |= match f {
                LinuxSchedulerFlag::SchedResetOnFork => SCHED_FLAG_RESET_ON_FORK,
                LinuxSchedulerFlag::SchedFlagReclaim => SCHED_FLAG_RECLAIM,
                LinuxSchedulerFlag::SchedFlagDLOverrun => SCHED_FLAG_DL_OVERRUN,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => SCHED_FLAG_KEEP_POLICY,
                LinuxSchedulerFlag::SchedFlagKeepParams => SCHED_FLAG_KEEP_PARAMS,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => SCHED_FLAG_UTIL_CLAMP_MIN,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => SCHED_FLAG_UTIL_CLAMP_MAX,
            };
        }
        let nice = s.nice().unwrap_or(0);
        if !(-20..=19).contains(&nice) {
            return Err(Error::config(
                format!("{F}.nice"),
                format!("{nice} is out of range (-20 to 19)"),
            ));
        }
        let priority = s.priority().unwrap_or(0);
        let realtime = policy == SCHED_FIFO || policy == SCHED_RR;
        if realtime && !(1..=99).contains(&priority) {
            return Err(Error::config(
                format!("{F}.priority"),
                format!(
                    "{priority} is out of range for {} (1 to 99)",
                    policy_name(policy)
                ),
            ));
        }
        if !realtime && priority != 0 {
            return Err(Error::config(
                format!("{F}.priority"),
                format!(
                    "must be 0 for {} (only SCHED_FIFO and SCHED_RR have priorities)",
                    policy_name(policy)
                ),
            ));
        }
        let runtime = s.runtime().unwrap_or(0);
        let deadline = s.deadline().unwrap_or(0);
        let period = s.period().unwrap_or(0);
        if policy == SCHED_DEADLINE {
            if runtime < DL_MIN_RUNTIME {
                return Err(Error::config(
                    format!("{F}.runtime"),
                    format!("{runtime} ns is below the kernel's minimum of {DL_MIN_RUNTIME} ns"),
                ));
            }
            if deadline < runtime {
                return Err(Error::config(
                    format!("{F}.deadline"),
                    format!("{deadline} ns is less than the runtime ({runtime} ns)"),
                ));
            }
            if period != 0 && period < deadline {
                return Err(Error::config(
                    format!("{F}.period"),
                    format!("{period} ns is less than the deadline ({deadline} ns)"),
                ));
            }
            // The kernel keeps these in 63 bits.
            if deadline >> 63 != 0 || period >> 63 != 0 {
                return Err(Error::config(
                    format!("{F}.deadline"),
                    "deadline and period must be below 2^63 ns",
                ));
            }
        }
        Ok(SchedulerPlan {
            attr: SchedAttr {
                size: SCHED_ATTR_SIZE,
                sched_policy: policy,
                sched_flags: flags,
                sched_nice: nice,
                sched_priority: priority as u32,
                sched_runtime: runtime,
                sched_deadline: deadline,
                sched_period: period,
                sched_util_min: 0,
                sched_util_max: 0,
            },
        })
    }
}

/// sched_setattr on the calling process.
pub fn apply_scheduler(plan: &SchedulerPlan) -> Result<()> {
    // SAFETY: the attr is a valid, fully initialised struct whose size field matches.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &plan.attr as *const SchedAttr,
            0u32,
        )
    };
    if rc < 0 {
        let e = Errno::last();
        let hint = match e {
            Errno::EBUSY if plan.attr.sched_policy == SCHED_DEADLINE => {
                " (deadline bandwidth admission refused it)"
            }
            Errno::EPERM if plan.attr.sched_policy == SCHED_DEADLINE => {
                " (SCHED_DEADLINE needs CAP_SYS_NICE and an affinity spanning its root domain)"
            }
            Errno::EPERM => " (needs CAP_SYS_NICE, or real-time runtime in the cgroup)",
            _ => "",
        };
        return Err(Error::sys(
            format!(
                "sched_setattr process.scheduler {}{hint}",
                policy_name(plan.attr.sched_policy)
            ),
            e,
        ));
    }
    Ok(())
}

/// sched_getattr of a process (0: the caller); for checks and tests.
pub fn get_scheduler(pid: libc::pid_t) -> Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: the kernel writes at most `size` bytes into `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            pid,
            &mut attr as *mut SchedAttr,
            SCHED_ATTR_SIZE,
            0u32,
        )
    };
    if rc < 0 {
        return Err(Error::sys("sched_getattr", Errno::last()));
    }
    Ok(attr)
}

const IOPRIO_CLASS_SHIFT: u32 = 13;
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// `process.ioPriority`, checked: the value for ioprio_set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoPriorityPlan {
    pub class: u32,
    pub level: u32,
}

impl IoPriorityPlan {
    pub fn from_spec(p: &LinuxIOPriority) -> Result<Self> {
        let class = match p.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let level = p.priority();
        if !(0..=7).contains(&level) {
            return Err(Error::config(
                "process.ioPriority.priority",
                format!("{level} is out of range (0 to 7)"),
            ));
        }
        Ok(IoPriorityPlan {
            class,
            level: level as u32,
        })
    }

    pub fn value(&self) -> u32 {
        self.class << IOPRIO_CLASS_SHIFT | self.level
    }
}

/// ioprio_set on the calling process. Children inherit it, so the whole
/// container gets it; the process group is not used, as the init may still
/// share the runtime caller's group.
pub fn apply_io_priority(plan: &IoPriorityPlan) -> Result<()> {
    // SAFETY: plain integer syscall.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            plan.value() as libc::c_int,
        )
    };
    if rc < 0 {
        return Err(Error::sys(
            "ioprio_set process.ioPriority".to_string(),
            Errno::last(),
        ));
    }
    Ok(())
}

/// ioprio_get of a process (0: the caller), as (class, level).
pub fn get_io_priority(pid: libc::pid_t) -> Result<(u32, u32)> {
    // SAFETY: plain integer syscall.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, pid) };
    if rc < 0 {
        return Err(Error::sys("ioprio_get", Errno::last()));
    }
    let v = rc as u32;
    Ok((v >> IOPRIO_CLASS_SHIFT, v & ((1 << IOPRIO_CLASS_SHIFT) - 1)))
}

/// CPU ids beyond this are refused: it bounds the mask we allocate, and is
/// far above what Linux builds for (CONFIG_NR_CPUS max is 8192).
pub const MAX_CPU_ID: u32 = 8191;

/// A set of CPUs (or memory nodes), as the kernel's bitmap of longs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuMask {
    pub words: Vec<libc::c_ulong>,
}

const WORD_BITS: u32 = libc::c_ulong::BITS;

impl CpuMask {
    /// Parse "0-3,7". `field` names the config field in errors, `max` is the
    /// highest id accepted.
    pub fn parse(text: &str, field: &str, max: u32) -> Result<Self> {
        let bad = |why: String| Error::config(field, format!("{text:?}: {why}"));
        if text.is_empty() {
            return Err(bad("empty list".into()));
        }
        let mut ranges = Vec::new();
        let mut top = 0u32;
        for part in text.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let num = |s: &str| -> Result<u32> {
                if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad(format!("{part:?} is not a number or a range like 0-3")));
                }
                let n: u32 = s.parse().map_err(|_| bad(format!("{s} is too large")))?;
                if n > max {
                    return Err(bad(format!("{n} is above the highest id accepted ({max})")));
                }
                Ok(n)
            };
            let (lo, hi) = (num(a)?, num(b)?);
            if lo > hi {
                return Err(bad(format!("range {part:?} runs backwards")));
            }
            top = top.max(hi);
            ranges.push((lo, hi));
        }
        let mut words = vec![0 as libc::c_ulong; (top / WORD_BITS + 1) as usize];
        for (lo, hi) in ranges {
            for i in lo..=hi {
                words[(i / WORD_BITS) as usize] |= 1 << (i % WORD_BITS);
            }
        }
        Ok(CpuMask { words })
    }

    pub fn contains(&self, i: u32) -> bool {
        self.words
            .get((i / WORD_BITS) as usize)
            .is_some_and(|w| w & (1 << (i % WORD_BITS)) != 0)
    }

    pub fn byte_len(&self) -> usize {
        self.words.len() * std::mem::size_of::<libc::c_ulong>()
    }

    /// Back to the "0-3,7" form (for messages and tests).
    pub fn to_list(&self) -> String {
        let mut out = String::new();
        let n = self.words.len() as u32 * WORD_BITS;
        let mut i = 0;
        while i < n {
            if !self.contains(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < n && self.contains(i + 1) {
                i += 1;
            }
            if !out.is_empty() {
                out.push(',');
            }
            if start == i {
                out += &start.to_string();
            } else {
                out += &format!("{start}-{i}");
            }
            i += 1;
        }
        out
    }
}

/// `process.execCPUAffinity`, parsed. An empty or missing list means "do
/// not change the affinity" at that point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AffinityPlan {
    pub initial: Option<CpuMask>,
    pub final_: Option<CpuMask>,
}

impl AffinityPlan {
    pub fn from_spec(a: &ExecCPUAffinity) -> Result<Self> {
        let parse = |v: &Option<String>, name: &str| -> Result<Option<CpuMask>> {
            match v.as_deref() {
                None | Some("") => Ok(None),
                Some(t) => Ok(Some(CpuMask::parse(
                    t,
                    &format!("process.execCPUAffinity.{name}"),
                    MAX_CPU_ID,
                )?)),
            }
        };
        Ok(AffinityPlan {
            initial: parse(a.initial(), "initial")?,
            final_: parse(a.cpu_affinity_final(), "final")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.initial.is_none() && self.final_.is_none()
    }
}

/// sched_setaffinity of `pid` (0: the caller). `what` says which list
/// ("process.execCPUAffinity.initial" / ".final") for the error.
pub fn set_affinity(pid: libc::pid_t, mask: &CpuMask, what: &str) -> Result<()> {
    // SAFETY: the pointer and length describe the mask's initialised words.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            mask.byte_len(),
            mask.words.as_ptr(),
        )
    };
    if rc < 0 {
        let e = Errno::last();
        let hint = if e == Errno::EINVAL {
            " (no CPU of the list is online and allowed by the cpuset)"
        } else {
            ""
        };
        return Err(Error::sys(
            format!("sched_setaffinity {what} {}{hint}", mask.to_list()),
            e,
        ));
    }
    Ok(())
}

/// The `initial` affinity, if any, for the process `pid` (0: the caller).
pub fn apply_initial_affinity(plan: &AffinityPlan, pid: libc::pid_t) -> Result<()> {
    match &plan.initial {
        Some(m) => set_affinity(pid, m, "process.execCPUAffinity.initial"),
        None => Ok(()),
    }
}

/// The `final` affinity, if any, for the process `pid` (0: the caller).
pub fn apply_final_affinity(plan: &AffinityPlan, pid: libc::pid_t) -> Result<()> {
    match &plan.final_ {
        Some(m) => set_affinity(pid, m, "process.execCPUAffinity.final"),
        None => Ok(()),
    }
}

/// config.json texts that oci-spec 0.10 cannot read although runtime-spec
/// 1.3 allows them: it spells two scheduler flags differently
/// ("SCHED_RESET_ON_FORK", "SCHED_FLAG_D_L_OVERRUN") and refuses an empty
/// execCPUAffinity list. Cheap test on the raw bytes so the common config
/// pays nothing.
pub fn spec_needs_fixup(bytes: &[u8]) -> bool {
    fn has(h: &[u8], n: &[u8]) -> bool {
        h.windows(n.len()).any(|w| w == n)
    }
    has(bytes, b"SCHED_FLAG_RESET_ON_FORK")
        || has(bytes, b"SCHED_FLAG_DL_OVERRUN")
        || has(bytes, b"execCPUAffinity")
}

/// Rewrite, in a parsed config (or process.json when `process_root` is
/// true), the spec spellings into the ones oci-spec reads. Only the fields
/// concerned are touched, never strings elsewhere (like `process.args`).
pub fn fixup_spec_json(doc: &mut serde_json::Value, process_root: bool) {
    let process = if process_root {
        Some(doc)
    } else {
        doc.get_mut("process")
    };
    let Some(process) = process.and_then(|p| p.as_object_mut()) else {
        return;
    };
    if let Some(flags) = process
        .get_mut("scheduler")
        .and_then(|s| s.get_mut("flags"))
        .and_then(|f| f.as_array_mut())
    {
        for f in flags {
            let new = match f.as_str() {
                Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
                Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
                _ => continue,
            };
            *f = serde_json::Value::String(new.into());
        }
    }
    if let Some(aff) = process
        .get_mut("execCPUAffinity")
        .and_then(|a| a.as_object_mut())
    {
        aff.retain(|_, v| v.as_str() != Some(""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn sched(json: &str) -> Result<SchedulerPlan> {
        let s: Scheduler = serde_json::from_str(json).expect("test json");
        SchedulerPlan::from_spec(&s)
    }

    #[test]
    fn scheduler_policies_and_fields() {
        let p = sched(r#"{"policy":"SCHED_OTHER","nice":5}"#).unwrap();
        assert_eq!(p.attr.sched_policy, SCHED_OTHER);
        assert_eq!(p.attr.sched_nice, 5);
        assert_eq!(p.attr.size, 56);
        let p = sched(r#"{"policy":"SCHED_FIFO","priority":10,"flags":["SCHED_RESET_ON_FORK"]}"#)
            .unwrap();
        assert_eq!(
            (p.attr.sched_policy, p.attr.sched_priority),
            (SCHED_FIFO, 10)
        );
        assert_eq!(p.attr.sched_flags, SCHED_FLAG_RESET_ON_FORK);
        assert_eq!(
            sched(r#"{"policy":"SCHED_RR","priority":99}"#)
                .unwrap()
                .attr
                .sched_policy,
            SCHED_RR
        );
        assert_eq!(
            sched(r#"{"policy":"SCHED_BATCH"}"#)
                .unwrap()
                .attr
                .sched_policy,
            SCHED_BATCH
        );
        assert_eq!(
            sched(r#"{"policy":"SCHED_IDLE"}"#)
                .unwrap()
                .attr
                .sched_policy,
            SCHED_IDLE
        );
        let p = sched(
            r#"{"policy":"SCHED_DEADLINE","runtime":1000000,"deadline":2000000,"period":3000000,
                "flags":["SCHED_FLAG_RECLAIM","SCHED_FLAG_D_L_OVERRUN","SCHED_FLAG_KEEP_POLICY",
                         "SCHED_FLAG_KEEP_PARAMS","SCHED_FLAG_UTIL_CLAMP_MIN","SCHED_FLAG_UTIL_CLAMP_MAX"]}"#,
        )
        .unwrap();
        assert_eq!(p.attr.sched_flags, 0x7e);
        assert_eq!(
            (
                p.attr.sched_runtime,
                p.attr.sched_deadline,
                p.attr.sched_period
            ),
            (1_000_000, 2_000_000, 3_000_000)
        );
    }

    #[test]
    fn scheduler_errors_name_the_field() {
        let cases = [
            (r#"{"policy":"SCHED_ISO"}"#, "process.scheduler.policy:"),
            (
                r#"{"policy":"SCHED_OTHER","nice":20}"#,
                "process.scheduler.nice:",
            ),
            (
                r#"{"policy":"SCHED_OTHER","nice":-21}"#,
                "process.scheduler.nice:",
            ),
            (r#"{"policy":"SCHED_FIFO"}"#, "process.scheduler.priority:"),
            (
                r#"{"policy":"SCHED_RR","priority":100}"#,
                "process.scheduler.priority:",
            ),
            (
                r#"{"policy":"SCHED_BATCH","priority":1}"#,
                "process.scheduler.priority:",
            ),
            (
                r#"{"policy":"SCHED_DEADLINE"}"#,
                "process.scheduler.runtime:",
            ),
            (
                r#"{"policy":"SCHED_DEADLINE","runtime":2000,"deadline":1500}"#,
                "process.scheduler.deadline:",
            ),
            (
                r#"{"policy":"SCHED_DEADLINE","runtime":2000,"deadline":3000,"period":2500}"#,
                "process.scheduler.period:",
            ),
        ];
        for (json, want) in cases {
            let e = sched(json).unwrap_err().to_string();
            assert!(e.starts_with(want), "{json}: {e}");
        }
    }

    #[test]
    fn unknown_policy_is_refused_by_the_config_parser_naming_the_field() {
        let doc = r#"{"ociVersion":"1.3.0","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},
            "scheduler":{"policy":"SCHED_FOO"}}}"#;
        let e = crate::config::parse(doc.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("process.scheduler.policy"), "{e}");
        assert!(e.contains("SCHED_FOO"), "{e}");
    }

    #[test]
    fn spec_flag_spellings_are_fixed_up() {
        let doc = r#"{"process":{"args":["SCHED_FLAG_RESET_ON_FORK"],
            "scheduler":{"policy":"SCHED_DEADLINE","runtime":2000,"deadline":3000,
              "flags":["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN"]},
            "execCPUAffinity":{"initial":"","final":"0"}}}"#;
        assert!(spec_needs_fixup(doc.as_bytes()));
        assert!(!spec_needs_fixup(br#"{"process":{"args":["sh"]}}"#));
        let mut v: serde_json::Value = serde_json::from_str(doc).unwrap();
        fixup_spec_json(&mut v, false);
        let p = &v["process"];
        assert_eq!(p["args"][0], "SCHED_FLAG_RESET_ON_FORK");
        let s: Scheduler = serde_json::from_value(p["scheduler"].clone()).unwrap();
        let plan = SchedulerPlan::from_spec(&s).unwrap();
        assert_eq!(
            plan.attr.sched_flags,
            SCHED_FLAG_RESET_ON_FORK | SCHED_FLAG_DL_OVERRUN
        );
        let a: ExecCPUAffinity = serde_json::from_value(p["execCPUAffinity"].clone()).unwrap();
        let a = AffinityPlan::from_spec(&a).unwrap();
        assert!(a.initial.is_none());
        assert_eq!(a.final_.unwrap().to_list(), "0");
    }

    #[test]
    fn io_priority_plan() {
        let p: LinuxIOPriority =
            serde_json::from_str(r#"{"class":"IOPRIO_CLASS_RT","priority":3}"#).unwrap();
        let plan = IoPriorityPlan::from_spec(&p).unwrap();
        assert_eq!(plan.value(), 1 << 13 | 3);
        for c in ["IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"] {
            let p: LinuxIOPriority =
                serde_json::from_str(&format!(r#"{{"class":"{c}","priority":7}}"#)).unwrap();
            IoPriorityPlan::from_spec(&p).unwrap();
        }
        for bad in [-1, 8] {
            let p: LinuxIOPriority = serde_json::from_str(&format!(
                r#"{{"class":"IOPRIO_CLASS_BE","priority":{bad}}}"#
            ))
            .unwrap();
            let e = IoPriorityPlan::from_spec(&p).unwrap_err().to_string();
            assert!(e.starts_with("process.ioPriority.priority:"), "{e}");
        }
    }

    #[test]
    fn cpu_lists() {
        let m = CpuMask::parse("0-3,7", "f", MAX_CPU_ID).unwrap();
        assert_eq!(m.words, vec![0b1000_1111]);
        assert_eq!(m.to_list(), "0-3,7");
        let m = CpuMask::parse("64,1,2,3", "f", MAX_CPU_ID).unwrap();
        assert_eq!(m.words.len(), 2);
        assert_eq!(m.to_list(), "1-3,64");
        assert_eq!(CpuMask::parse("5-5", "f", 9).unwrap().to_list(), "5");
        for bad in [
            "",
            ",",
            "1,",
            "a",
            "3-1",
            "1--2",
            "-1",
            "1-",
            " 1",
            "8192",
            "99999999999",
        ] {
            let e = CpuMask::parse(bad, "process.execCPUAffinity.final", MAX_CPU_ID)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("process.execCPUAffinity.final:"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn affinity_plan_empty_means_unchanged() {
        let a: ExecCPUAffinity = serde_json::from_str(r#"{"final":"1"}"#).unwrap();
        let p = AffinityPlan::from_spec(&a).unwrap();
        assert!(p.initial.is_none());
        assert!(!p.is_empty());
        assert!(AffinityPlan::from_spec(&ExecCPUAffinity::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn root_applies_scheduler_policies() {
        if !is_root() {
            return;
        }
        let cases = [
            r#"{"policy":"SCHED_BATCH","nice":7}"#,
            r#"{"policy":"SCHED_IDLE"}"#,
            r#"{"policy":"SCHED_OTHER","nice":-3,"flags":["SCHED_RESET_ON_FORK"]}"#,
            r#"{"policy":"SCHED_FIFO","priority":10}"#,
            r#"{"policy":"SCHED_RR","priority":20}"#,
            r#"{"policy":"SCHED_DEADLINE","runtime":1000000,"deadline":10000000,"period":20000000}"#,
        ];
        for json in cases {
            let plan = sched(json).unwrap();
            in_child(|| {
                apply_scheduler(&plan).map_err(|e| e.to_string())?;
                let got = get_scheduler(0).map_err(|e| e.to_string())?;
                let want = plan.attr;
                let ok = got.sched_policy == want.sched_policy
                    && got.sched_priority == want.sched_priority
                    && (got.sched_flags & SCHED_FLAG_RESET_ON_FORK)
                        == (want.sched_flags & SCHED_FLAG_RESET_ON_FORK)
                    && (want.sched_policy == SCHED_DEADLINE
                        || want.sched_policy == SCHED_FIFO
                        || want.sched_policy == SCHED_RR
                        || got.sched_nice == want.sched_nice)
                    && (want.sched_policy != SCHED_DEADLINE
                        || (got.sched_runtime, got.sched_deadline, got.sched_period)
                            == (want.sched_runtime, want.sched_deadline, want.sched_period));
                if ok {
                    Ok(())
                } else {
                    Err(format!("want {want:?}, got {got:?}"))
                }
            })
            .unwrap_or_else(|e| panic!("{json}: {e}"));
        }
    }

    #[test]
    fn root_scheduler_error_names_the_step() {
        if !is_root() {
            return;
        }
        // A period above kernel.sched_deadline_period_max_us (4 s by default).
        let plan = sched(
            r#"{"policy":"SCHED_DEADLINE","runtime":1000000,"deadline":100000000000,"period":100000000000}"#,
        )
        .unwrap();
        in_child(|| match apply_scheduler(&plan) {
            Ok(()) => Err("a 100 s deadline period was accepted".into()),
            Err(e) if e.to_string().starts_with("sched_setattr process.scheduler") => Ok(()),
            Err(e) => Err(e.to_string()),
        })
        .unwrap();
    }

    #[test]
    fn root_applies_io_priority() {
        if !is_root() {
            return;
        }
        for (class, level) in [
            ("IOPRIO_CLASS_RT", 2u32),
            ("IOPRIO_CLASS_BE", 6),
            ("IOPRIO_CLASS_IDLE", 0),
        ] {
            let p: LinuxIOPriority =
                serde_json::from_str(&format!(r#"{{"class":"{class}","priority":{level}}}"#))
                    .unwrap();
            let plan = IoPriorityPlan::from_spec(&p).unwrap();
            in_child(|| {
                apply_io_priority(&plan).map_err(|e| e.to_string())?;
                let got = get_io_priority(0).map_err(|e| e.to_string())?;
                if got == (plan.class, plan.level) {
                    Ok(())
                } else {
                    Err(format!("{class}: got {got:?}"))
                }
            })
            .unwrap();
        }
    }

    #[test]
    fn root_applies_affinity_initial_then_final() {
        let a: ExecCPUAffinity = serde_json::from_str(r#"{"initial":"0","final":"0-1"}"#).unwrap();
        let plan = AffinityPlan::from_spec(&a).unwrap();
        in_child(|| {
            apply_initial_affinity(&plan, 0).map_err(|e| e.to_string())?;
            let got = status_field("Cpus_allowed_list");
            if got != "0" {
                return Err(format!("after initial: {got}"));
            }
            apply_final_affinity(&plan, 0).map_err(|e| e.to_string())?;
            let got = status_field("Cpus_allowed_list");
            let online =
                std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
            // On a one-CPU machine "0-1" can only give "0".
            if got == "0-1" || online.trim() == "0" && got == "0" {
                Ok(())
            } else {
                Err(format!("after final: {got}"))
            }
        })
        .unwrap();
    }

    #[test]
    fn affinity_to_offline_cpus_names_the_field() {
        let m = CpuMask::parse("8000", "f", MAX_CPU_ID).unwrap();
        in_child(
            || match set_affinity(0, &m, "process.execCPUAffinity.final") {
                Err(e) if e.to_string().contains("process.execCPUAffinity.final 8000") => Ok(()),
                other => Err(format!("{other:?}")),
            },
        )
        .unwrap();
    }
}
