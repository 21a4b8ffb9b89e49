//! The commands that act on a running container's cgroups: pause, resume,
//! update, events, ps.

use std::io::Write;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde_json::json;

use crate::cgroups::{CgroupHandle, HostCgroups, HostLimits};
use crate::error::{Error, Result};
use crate::state::{ContainerState, Status, Store};

fn cgroup_of(st: &ContainerState) -> Result<&CgroupHandle> {
    st.cgroup.as_ref().ok_or_else(|| {
        Error::msg(format!(
            "container {} has no cgroup (rootless, and the host delegates none to this user)",
            st.id
        ))
    })
}

pub fn pause(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let st = store.load(id)?;
    match store.status(&st) {
        Status::Running | Status::Created => cgroup_of(&st)?.freeze(),
        Status::Paused => Err(Error::msg(format!("container {id} is already paused"))),
        _ => Err(Error::NotRunning(id.to_string())),
    }
}

pub fn resume(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let st = store.load(id)?;
    match store.status(&st) {
        Status::Paused => cgroup_of(&st)?.thaw(),
        Status::Stopped => Err(Error::NotRunning(id.to_string())),
        _ => Err(Error::msg(format!("container {id} is not paused"))),
    }
}

pub fn update(store: &Store, id: &str, resources: LinuxResources) -> Result<()> {
    let _lock = store.lock(id)?;
    let st = store.load(id)?;
    if store.status(&st) == Status::Stopped {
        return Err(Error::NotRunning(id.to_string()));
    }
    let limits = HostLimits::probe_for(&resources)?;
    cgroup_of(&st)?.update(&HostCgroups::probe()?, &limits, resources)
}

/// Host pids of every process in the container.
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let st = store.load(id)?;
    if store.status(&st) == Status::Stopped {
        return Ok(Vec::new());
    }
    let mut pids = match &st.cgroup {
        Some(cg) => cg.pids()?,
        // Rootless without a cgroup: with a pid namespace of its own, the container is every
        // process in it.
        None if st.own_pid_ns => pid_namespace_members(st.pid)?,
        None => return cgroup_of(&st).map(|_| Vec::new()),
    };
    pids.sort_unstable();
    Ok(pids)
}

/// Host pids of the processes in the pid namespace of `pid`.
fn pid_namespace_members(pid: i32) -> Result<Vec<i32>> {
    use std::os::unix::fs::MetadataExt;
    let ns_of =
        |p: &str| std::fs::metadata(format!("/proc/{p}/ns/pid")).map(|m| (m.dev(), m.ino()));
    let target =
        ns_of(&pid.to_string()).map_err(|e| Error::io("stat", format!("/proc/{pid}/ns/pid"), e))?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(|e| Error::io("read dir", "/proc", e))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(p) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // Processes of other users are not ours to see; gone ones are gone.
        if ns_of(p).is_ok_and(|ns| ns == target) {
            if let Ok(n) = p.parse() {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// One line of `events`, keys in runc's order (scripts grep these lines).
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
}

fn stats_event<'a>(id: &'a str, cg: &CgroupHandle) -> Result<Event<'a>> {
    Ok(Event {
        kind: "stats",
        id,
        data: Some(json!(cg.stats()?)),
    })
}

fn emit(out: &mut impl Write, v: &Event<'_>) -> Result<()> {
    let line = serde_json::to_string(v).map_err(|e| Error::msg(format!("encode event: {e}")))?;
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write event to", "stdout", e))
}

/// runc's `events`: with `stats_once`, one stats object; otherwise stats
/// every `interval` and an `oom` object as each OOM kill happens, until
/// the container stops.
pub fn events(store: &Store, id: &str, stats_once: bool, interval: Duration) -> Result<()> {
    let st = store.load(id)?;
    if store.status(&st) == Status::Stopped {
        return Err(Error::NotRunning(id.to_string()));
    }
    let cg = cgroup_of(&st)?;
    let mut out = std::io::stdout().lock();
    if stats_once {
        return emit(&mut out, &stats_event(id, cg)?);
    }
    let mut oom = cg.oom_watcher()?;
    let mut next_stats = Instant::now();
    loop {
        if store.status(&st) == Status::Stopped {
            return Ok(());
        }
        let now = Instant::now();
        if now >= next_stats {
            emit(&mut out, &stats_event(id, cg)?)?;
            next_stats = now + interval;
        }
        // Wake for OOM kills as they happen, and at least every 200 ms to
        // notice the container stopping.
        let wait = next_stats
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        let kills = match oom.as_mut() {
            Some(w) => w.wait(Some(wait))?,
            None => {
                std::thread::sleep(wait);
                0
            }
        };
        for _ in 0..kills {
            emit(
                &mut out,
                &Event {
                    kind: "oom",
                    id,
                    data: None,
                },
            )?;
        }
    }
}

/// Go's time.ParseDuration for the units `events --interval` sees: "5s",
/// "100ms", "1m30s", "1.5s", "2h".
pub fn parse_go_duration(text: &str) -> Result<Duration> {
    let bad = || Error::msg(format!("invalid duration {text:?}"));
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Docker-style sizes as runc's `update` takes them: "512m", "1g", "1024", "-1".
pub fn parse_bytes(text: &str) -> Result<i64> {
    let bad = || Error::msg(format!("invalid size {text:?}"));
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    // Digits and at most one '.': f64's parser would also take "nan", "inf" and "1e400".
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || num.bytes().filter(|b| *b == b'.').count() > 1
    {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !v.is_finite() || v * mult as f64 > i64::MAX as f64 {
        return Err(bad());
    }
    Ok((v * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_go_duration("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
        for bad in ["nan", "inf", "1e400", "-5", "1.2.3", "m"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert!(parse_go_duration("7777777777777777777777777777s").is_err());
    }
}
