//! `events --stats`: runc's stats shape (types/events.go), read from v1 or
//! v2 files.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::manager::CgroupHandle;
use crate::error::Result;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero", default)]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero", default)]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioQueueRecursive",
        skip_serializing_if = "Vec::is_empty",
        default
    )]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub max: u64,
    pub failcnt: u64,
}

fn rd(p: &Path) -> Option<String> {
    crate::sys::fsio::read_to_string(p).ok()
}

/// A single number; "max" (and v1's huge "unlimited") read as u64::MAX.
fn num(p: &Path) -> u64 {
    rd(p)
        .and_then(|s| {
            let s = s.trim();
            if s == "max" {
                Some(u64::MAX)
            } else {
                s.parse().ok()
            }
        })
        .unwrap_or(0)
}

/// "key value" lines.
fn kv(p: &Path) -> BTreeMap<String, u64> {
    rd(p)
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    Some((it.next()?.to_string(), it.next()?.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn nums(p: &Path) -> Vec<u64> {
    rd(p)
        .map(|s| {
            s.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// v1 blkio "M:m Op value" lines (the "Total" line has no device).
fn blkio_v1(p: &Path) -> Vec<BlkioEntry> {
    let Some(s) = rd(p) else { return Vec::new() };
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dev, op, v) = match f.as_slice() {
                [dev, op, v] => (*dev, *op, *v),
                [dev, v] => (*dev, "", *v),
                _ => return None,
            };
            let (ma, mi) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: op.to_string(),
                value: v.parse().ok()?,
            })
        })
        .collect()
}

const USER_HZ_NS: u64 = 10_000_000;

impl CgroupHandle {
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.dir_for("cpuacct").filter(|d| !d.v2) {
            let p = &d.dir;
            s.cpu.usage.total = num(&p.join("cpuacct.usage"));
            s.cpu.usage.percpu = nums(&p.join("cpuacct.usage_percpu"));
            s.cpu.usage.percpu_kernel = nums(&p.join("cpuacct.usage_percpu_sys"));
            s.cpu.usage.percpu_user = nums(&p.join("cpuacct.usage_percpu_user"));
            let st = kv(&p.join("cpuacct.stat"));
            s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * USER_HZ_NS;
            s.cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * USER_HZ_NS;
        }
        if let Some(d) = self.dir_for("cpu") {
            let st = kv(&d.dir.join("cpu.stat"));
            let g = |k: &str| st.get(k).copied().unwrap_or(0);
            s.cpu.throttling.periods = g("nr_periods");
            s.cpu.throttling.throttled_periods = g("nr_throttled");
            if d.v2 {
                s.cpu.throttling.throttled_time = g("throttled_usec") * 1000;
                s.cpu.usage.total = g("usage_usec") * 1000;
                s.cpu.usage.user = g("user_usec") * 1000;
                s.cpu.usage.kernel = g("system_usec") * 1000;
            } else {
                s.cpu.throttling.throttled_time = g("throttled_time");
            }
        }
        if let Some(d) = self.dir_for("memory") {
            let p = &d.dir;
            if d.v2 {
                s.memory.raw = kv(&p.join("memory.stat"));
                s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
                let ev = kv(&p.join("memory.events"));
                s.memory.usage = MemoryEntry {
                    usage: num(&p.join("memory.current")),
                    max: num(&p.join("memory.peak")),
                    limit: num(&p.join("memory.max")),
                    failcnt: ev.get("max").copied().unwrap_or(0),
                };
                s.memory.swap = MemoryEntry {
                    usage: num(&p.join("memory.swap.current")),
                    max: num(&p.join("memory.swap.peak")),
                    limit: num(&p.join("memory.swap.max")),
                    failcnt: 0,
                };
            } else {
                s.memory.raw = kv(&p.join("memory.stat"));
                s.memory.cache = s
                    .memory
                    .raw
                    .get("total_cache")
                    .or(s.memory.raw.get("cache"))
                    .copied()
                    .unwrap_or(0);
                let e = |pre: &str| MemoryEntry {
                    usage: num(&p.join(format!("{pre}.usage_in_bytes"))),
                    max: num(&p.join(format!("{pre}.max_usage_in_bytes"))),
                    limit: num(&p.join(format!("{pre}.limit_in_bytes"))),
                    failcnt: num(&p.join(format!("{pre}.failcnt"))),
                };
                s.memory.usage = e("memory");
                s.memory.swap = e("memory.memsw");
                s.memory.kernel = e("memory.kmem");
                s.memory.kernel_tcp = e("memory.kmem.tcp");
            }
        }
        if let Some(d) = self.dir_for("pids") {
            s.pids.current = num(&d.dir.join("pids.current"));
            let l = num(&d.dir.join("pids.max"));
            s.pids.limit = if l == u64::MAX { 0 } else { l };
        }
        if let Some(d) = self.dir_for("blkio").filter(|d| !d.v2) {
            let p = &d.dir;
            // CFQ files first, then BFQ, then the throttle counters.
            let pick = |names: &[&str]| {
                names
                    .iter()
                    .map(|n| blkio_v1(&p.join(n)))
                    .find(|v| !v.is_empty())
                    .unwrap_or_default()
            };
            s.blkio.io_service_bytes_recursive = pick(&[
                "blkio.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
            ]);
            s.blkio.io_serviced_recursive = pick(&[
                "blkio.io_serviced_recursive",
                "blkio.bfq.io_serviced_recursive",
                "blkio.throttle.io_serviced_recursive",
            ]);
            s.blkio.io_queued_recursive = pick(&["blkio.io_queued_recursive"]);
            s.blkio.io_service_time_recursive = pick(&["blkio.io_service_time_recursive"]);
            s.blkio.io_wait_time_recursive = pick(&["blkio.io_wait_time_recursive"]);
            s.blkio.io_merged_recursive = pick(&["blkio.io_merged_recursive"]);
            s.blkio.io_time_recursive = pick(&["blkio.time_recursive"]);
            s.blkio.sectors_recursive = pick(&["blkio.sectors_recursive"]);
        } else if let Some(v2) = self.v2_dir() {
            if let Some(text) = rd(&v2.join("io.stat")) {
                for l in text.lines() {
                    let mut it = l.split_whitespace();
                    let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else {
                        continue;
                    };
                    let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
                        continue;
                    };
                    for kvp in it {
                        let Some((k, v)) = kvp.split_once('=') else {
                            continue;
                        };
                        let Ok(value) = v.parse() else { continue };
                        let (list, op) = match k {
                            "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                            "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                            "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                            "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                            _ => continue,
                        };
                        list.push(BlkioEntry {
                            major,
                            minor,
                            op: op.into(),
                            value,
                        });
                    }
                }
            }
        }
        if let Some(d) = self.dir_for("hugetlb") {
            for kb in hugepage_kbs() {
                let size = super::plan::hugepage_name(kb);
                let p = &d.dir;
                let h = if d.v2 {
                    Hugetlb {
                        usage: num(&p.join(format!("hugetlb.{size}.current"))),
                        max: 0,
                        failcnt: kv(&p.join(format!("hugetlb.{size}.events")))
                            .get("max")
                            .copied()
                            .unwrap_or(0),
                    }
                } else {
                    Hugetlb {
                        usage: num(&p.join(format!("hugetlb.{size}.usage_in_bytes"))),
                        max: num(&p.join(format!("hugetlb.{size}.max_usage_in_bytes"))),
                        failcnt: num(&p.join(format!("hugetlb.{size}.failcnt"))),
                    }
                };
                s.hugetlb.insert(size, h);
            }
        }
        Ok(s)
    }
}

fn hugepage_kbs() -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}
