//! linux.resources.blockIO: v1 blkio.* (CFQ or BFQ weights, throttles) or v2 io.weight /
//! io.bfq.weight and io.max, with runc's weight conversion.

use oci_spec::runtime::LinuxResources;

use crate::cgroups::plan::{blkio_to_io_weight, cfg, throttle_lists};
use crate::cgroups::plan::{Op, Write, R};
use crate::cgroups::probe::{Backend, HostCgroups};
use crate::error::Result;

/// This controller's writes for `r` on this host, appended to `ops`.
pub(crate) fn ops(r: &LinuxResources, host: &HostCgroups, ops: &mut Vec<Op>) -> Result<()> {
    if let Some(b) = r.block_io() {
        let f = |n: &str| format!("{R}.blockIO.{n}");
        let v1 = match host.backend("blkio") {
            Some(Backend::V1(_)) => Some(true),
            _ => match host.backend("io") {
                Some(Backend::V2(_)) => Some(false),
                _ => None,
            },
        };
        let any = b.weight().unwrap_or(0) != 0
            || b.leaf_weight().unwrap_or(0) != 0
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttle_lists(b).iter().any(|(_, l)| !l.is_empty());
        if any {
            let v1 = v1.ok_or_else(|| {
                cfg(
                    f("weight"),
                    "neither the blkio (v1) nor the io (v2) controller is available on this host",
                )
            })?;
            let mk = |field: String, file: &str, value: String, alt: Option<(String, String)>| {
                Op::Write(Write {
                    controller: if v1 { "blkio" } else { "io" },
                    field,
                    file: file.into(),
                    value,
                    alt,
                    optional: false,
                })
            };
            if let Some(x) = b.weight().filter(|x| *x != 0) {
                if v1 {
                    ops.push(mk(
                        f("weight"),
                        "blkio.weight",
                        x.to_string(),
                        Some(("blkio.bfq.weight".into(), x.to_string())),
                    ));
                } else {
                    ops.push(mk(
                        f("weight"),
                        "io.bfq.weight",
                        x.to_string(),
                        Some(("io.weight".into(), blkio_to_io_weight(x).to_string())),
                    ));
                }
            }
            if let Some(x) = b.leaf_weight().filter(|x| *x != 0) {
                if !v1 {
                    return Err(cfg(f("leafWeight"), "not supported on cgroup v2"));
                }
                ops.push(mk(
                    f("leafWeight"),
                    "blkio.leaf_weight",
                    x.to_string(),
                    None,
                ));
            }
            for (i, d) in b.weight_device().iter().flatten().enumerate() {
                let dev = format!("{}:{}", d.major(), d.minor());
                if let Some(x) = d.weight().filter(|x| *x != 0) {
                    let field = f(&format!("weightDevice[{i}].weight"));
                    if v1 {
                        ops.push(mk(
                            field,
                            "blkio.weight_device",
                            format!("{dev} {x}"),
                            Some(("blkio.bfq.weight_device".into(), format!("{dev} {x}"))),
                        ));
                    } else {
                        ops.push(mk(
                            field,
                            "io.bfq.weight",
                            format!("{dev} {x}"),
                            Some((
                                "io.weight".into(),
                                format!("{dev} {}", blkio_to_io_weight(x)),
                            )),
                        ));
                    }
                }
                if let Some(x) = d.leaf_weight().filter(|x| *x != 0) {
                    if !v1 {
                        return Err(cfg(
                            f(&format!("weightDevice[{i}].leafWeight")),
                            "not supported on cgroup v2",
                        ));
                    }
                    ops.push(mk(
                        f(&format!("weightDevice[{i}].leafWeight")),
                        "blkio.leaf_weight_device",
                        format!("{dev} {x}"),
                        None,
                    ));
                }
            }
            for (name, list) in throttle_lists(b) {
                let (v1file, v2key) = match name {
                    "throttleReadBpsDevice" => ("blkio.throttle.read_bps_device", "rbps"),
                    "throttleWriteBpsDevice" => ("blkio.throttle.write_bps_device", "wbps"),
                    "throttleReadIOPSDevice" => ("blkio.throttle.read_iops_device", "riops"),
                    _ => ("blkio.throttle.write_iops_device", "wiops"),
                };
                for (i, d) in list.iter().enumerate() {
                    let dev = format!("{}:{}", d.major(), d.minor());
                    let field = f(&format!("{name}[{i}]"));
                    if v1 {
                        ops.push(mk(field, v1file, format!("{dev} {}", d.rate()), None));
                    } else {
                        let rate = if d.rate() == 0 {
                            "max".to_string()
                        } else {
                            d.rate().to_string()
                        };
                        ops.push(mk(field, "io.max", format!("{dev} {v2key}={rate}"), None));
                    }
                }
            }
        }
    }
    Ok(())
}
