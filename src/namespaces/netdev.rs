//! `linux.netDevices`: move host network devices into the container's
//! network namespace, renamed when asked, keeping their permanent global
//! addresses, and set them up.
//!
//! The runtime's parent does this (it is the one in the host network
//! namespace), after the clone and before the init configures anything:
//! `move_devices(&plan, init_pid)`. Everything is checked (devices exist,
//! no name clash in the container) before the first device moves.
//!
//! rtnetlink is spoken directly over a NETLINK_ROUTE socket. A device loses
//! its addresses when it changes namespace, so they are read before the
//! move and added again through a second socket created inside the
//! container's namespace (a netlink socket stays bound to the namespace it
//! was created in, so the process itself returns to its own at once).

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

const FIELD: &str = "linux.netDevices";
/// IFNAMSIZ minus the terminating NUL.
const MAX_IFNAME: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    /// Name in the runtime's (host) network namespace.
    pub host_name: String,
    /// Name in the container; may hold one "%d" for the kernel to number.
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDevPlan {
    /// Sorted by host name, so the moves happen in a stable order.
    pub devices: Vec<NetDevice>,
}

/// The kernel's rule for interface names (dev_valid_name), and for a
/// template, at most one "%" which must start "%d".
fn check_name(name: &str, field: &str, template_ok: bool) -> Result<()> {
    let bad = |why: &str| Error::config(field, format!("{name:?}: {why}"));
    if name.is_empty() {
        return Err(bad("empty interface name"));
    }
    if name.len() > MAX_IFNAME {
        return Err(bad("interface names have at most 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(bad("not a valid interface name"));
    }
    if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) {
        return Err(bad(
            "interface names may not contain '/', ':' or white space",
        ));
    }
    if let Some(pos) = name.find('%') {
        if !template_ok {
            return Err(bad("'%' is only allowed in the name inside the container"));
        }
        if !name[pos..].starts_with("%d") || name[pos + 2..].contains('%') {
            return Err(bad("a name template holds exactly one \"%d\""));
        }
    }
    Ok(())
}

impl NetDevPlan {
    pub fn from_spec(spec: &Spec) -> Result<Self> {
        let Some(linux) = spec.linux() else {
            return Ok(Self::default());
        };
        let Some(devs) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) else {
            return Ok(Self::default());
        };
        let has_netns = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Network);
        if !has_netns {
            return Err(Error::config(
                FIELD,
                "moving devices needs the container to have its own network namespace \
                 (linux.namespaces has no \"network\" entry)",
            ));
        }
        let mut devices = Vec::with_capacity(devs.len());
        for (host_name, dev) in devs {
            check_name(host_name, FIELD, false)?;
            let name = dev
                .name()
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(host_name);
            check_name(name, &format!("{FIELD}.{host_name}.name"), true)?;
            devices.push(NetDevice {
                host_name: host_name.clone(),
                name: name.to_string(),
            });
        }
        devices.sort_by(|a, b| a.host_name.cmp(&b.host_name));
        for w in devices.windows(2) {
            if w[0].name == w[1].name && !w[0].name.contains('%') {
                return Err(Error::config(
                    format!("{FIELD}.{}.name", w[1].host_name),
                    format!(
                        "{:?} is also the container name of {:?}",
                        w[1].name, w[0].host_name
                    ),
                ));
            }
        }
        // Two devices may map to one name the other way round too (a's host name is b's target).
        Ok(NetDevPlan { devices })
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// Move the plan's devices into the network namespace of `init_pid`.
pub fn move_devices(plan: &NetDevPlan, init_pid: libc::pid_t) -> Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{init_pid}/ns/net");
    let ns = open_ro(&path)?;
    move_devices_to(plan, ns.as_fd())
}

/// Move the plan's devices into the network namespace `netns` (an open
/// /proc/PID/ns/net or bind-mounted namespace file).
pub fn move_devices_to(plan: &NetDevPlan, netns: BorrowedFd<'_>) -> Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let own = open_ro("/proc/thread-self/ns/net")?;
    if same_file(own.as_fd(), netns)? {
        return Err(Error::config(
            FIELD,
            "the container shares the runtime's network namespace: there is nowhere to move devices to",
        ));
    }
    let mut host = Netlink::open().context(FIELD)?;
    let mut guest = Netlink::open_in(netns, own.as_fd()).context(FIELD)?;

    // Check everything before anything moves.
    let mut found = Vec::with_capacity(plan.devices.len());
    for d in &plan.devices {
        let field = format!("{FIELD}.{}", d.host_name);
        let link = host
            .link_by_name(&d.host_name)
            .context(field.clone())?
            .ok_or_else(|| {
                Error::config(
                    &field,
                    "no such network device in the runtime's network namespace",
                )
            })?;
        if !d.name.contains('%')
            && guest
                .link_by_name(&d.name)
                .context(field.clone())?
                .is_some()
        {
            return Err(Error::config(
                format!("{field}.name"),
                format!(
                    "a device named {:?} already exists in the container's network namespace",
                    d.name
                ),
            ));
        }
        let addrs: Vec<Addr> = host
            .addresses(link.index)
            .context(field)?
            .into_iter()
            .filter(Addr::moves)
            .collect();
        found.push((link, addrs));
    }

    for (d, (link, addrs)) in plan.devices.iter().zip(found) {
        let field = format!("{FIELD}.{}", d.host_name);
        host.move_link(link.index, netns, &d.name)
            .with_context(|| {
                format!(
                    "{field}: move {:?} into the container as {:?}",
                    d.host_name, d.name
                )
            })?;
        let moved = guest.find_moved(&d.name, &link).context(field.clone())?;
        for a in &addrs {
            let label = relabel(a.label.as_deref(), &link.name, &moved.name);
            guest
                .add_address(moved.index, a, label.as_deref())
                .with_context(|| format!("{field}: add address {}/{}", a.ip_text(), a.prefixlen))?;
        }
        guest
            .set_up(moved.index)
            .with_context(|| format!("{field}: set {:?} up", moved.name))?;
    }
    Ok(())
}

/// An IPv4 label is the device name, or "name:alias": follow the rename.
fn relabel(label: Option<&str>, old: &str, new: &str) -> Option<String> {
    let rest = label?.strip_prefix(old)?.strip_prefix(':')?;
    let l = format!("{new}:{rest}");
    (l.len() <= MAX_IFNAME).then_some(l)
}

fn open_ro(path: &str) -> Result<OwnedFd> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    Ok(OwnedFd::from(f))
}

fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<bool> {
    let sa = nix::sys::stat::fstat(a.as_raw_fd()).map_err(|e| Error::sys("fstat netns", e))?;
    let sb = nix::sys::stat::fstat(b.as_raw_fd()).map_err(|e| Error::sys("fstat netns", e))?;
    Ok(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
}

// ---- rtnetlink by hand ----

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

const SOL_NETLINK: libc::c_int = 270;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;

const IFA_F_NODAD: u32 = 0x02;
const IFA_F_OPTIMISTIC: u32 = 0x04;
const IFA_F_HOMEADDRESS: u32 = 0x10;
const IFA_F_PERMANENT: u32 = 0x80;
const IFA_F_MANAGETEMPADDR: u32 = 0x100;
const IFA_F_NOPREFIXROUTE: u32 = 0x200;
const IFA_F_MCAUTOJOIN: u32 = 0x400;
/// The address flags a user may set (the rest are state the kernel keeps).
const IFA_SETTABLE: u32 = IFA_F_NODAD
    | IFA_F_OPTIMISTIC
    | IFA_F_HOMEADDRESS
    | IFA_F_MANAGETEMPADDR
    | IFA_F_NOPREFIXROUTE
    | IFA_F_MCAUTOJOIN;
const RT_SCOPE_UNIVERSE: u8 = 0;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One request being built: header, fixed struct, attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[0; NLMSG_HDRLEN]);
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn pad(&mut self) {
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn ifinfomsg(mut self, index: i32, flags: u32, change: u32) -> Self {
        self.buf.extend_from_slice(&[0u8; 4]); // family, pad, type
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn ifaddrmsg(mut self, family: u8, prefixlen: u8, flags: u8, scope: u8, index: u32) -> Self {
        self.buf
            .extend_from_slice(&[family, prefixlen, flags, scope]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn attr_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v)
    }

    fn nest_start(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.attr(ty, &[])
    }

    fn nest_end(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Iterate over the attributes in `b` as (type, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16_at(b, 0) as usize;
        if len < 4 || len > b.len() {
            return None;
        }
        let ty = u16_at(b, 2) & 0x3fff;
        let data = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((ty, data))
    })
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A network device as RTM_NEWLINK describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub flags: u32,
    pub name: String,
    pub address: Vec<u8>,
}

impl Link {
    fn parse(p: &[u8]) -> Option<Link> {
        if p.len() < 16 {
            return None;
        }
        let mut l = Link {
            index: u32_at(p, 4) as i32,
            flags: u32_at(p, 8),
            name: String::new(),
            address: Vec::new(),
        };
        for (ty, d) in attrs(&p[16..]) {
            match ty {
                IFLA_IFNAME => l.name = c_string(d),
                IFLA_ADDRESS => l.address = d.to_vec(),
                _ => {}
            }
        }
        Some(l)
    }

    pub fn is_up(&self) -> bool {
        self.flags & libc::IFF_UP as u32 != 0
    }
}

/// An interface address as RTM_NEWADDR describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: u8,
    pub prefixlen: u8,
    pub flags: u32,
    pub scope: u8,
    pub index: u32,
    pub local: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
    pub broadcast: Option<Vec<u8>>,
    pub label: Option<String>,
}

impl Addr {
    fn parse(p: &[u8]) -> Option<Addr> {
        if p.len() < 8 {
            return None;
        }
        let mut a = Addr {
            family: p[0],
            prefixlen: p[1],
            flags: p[2] as u32,
            scope: p[3],
            index: u32_at(p, 4),
            local: None,
            address: None,
            broadcast: None,
            label: None,
        };
        for (ty, d) in attrs(&p[8..]) {
            match ty {
                IFA_ADDRESS => a.address = Some(d.to_vec()),
                IFA_LOCAL => a.local = Some(d.to_vec()),
                IFA_BROADCAST => a.broadcast = Some(d.to_vec()),
                IFA_LABEL => a.label = Some(c_string(d)),
                IFA_FLAGS if d.len() == 4 => a.flags = u32_at(d, 0),
                _ => {}
            }
        }
        Some(a)
    }

    /// The spec keeps permanent addresses of global scope (RFC 3549 2.3.3.2).
    fn moves(&self) -> bool {
        self.scope == RT_SCOPE_UNIVERSE && self.flags & IFA_F_PERMANENT != 0
    }

    /// The interface's own address (IFA_LOCAL for IPv4, IFA_ADDRESS otherwise).
    pub fn ip(&self) -> Option<IpAddr> {
        let b = self.local.as_ref().or(self.address.as_ref())?;
        match b.len() {
            4 => Some(IpAddr::from([b[0], b[1], b[2], b[3]])),
            16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                Some(IpAddr::from(o))
            }
            _ => None,
        }
    }

    fn ip_text(&self) -> String {
        self.ip()
            .map(|i| i.to_string())
            .unwrap_or_else(|| "?".into())
    }
}

/// A NETLINK_ROUTE socket.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket in the caller's network namespace.
    pub fn open() -> Result<Self> {
        // SAFETY: plain socket(2) call; the fd is owned right after.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(Error::sys("socket NETLINK_ROUTE", Errno::last()));
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for opt in [NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK] {
            let one: libc::c_int = 1;
            // SAFETY: setsockopt reads one c_int. Old kernels lack these
            // options; they only improve errors and filtering, so failure is fine.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    opt,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(Netlink {
            fd,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// A socket in the network namespace `netns`; `own` is the caller's
    /// namespace, to which it returns before this returns.
    pub fn open_in(netns: BorrowedFd<'_>, own: BorrowedFd<'_>) -> Result<Self> {
        // SAFETY: setns with an open namespace fd; affects only this thread.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
            return Err(Error::sys(
                "setns into the container's network namespace",
                Errno::last(),
            ));
        }
        let sock = Netlink::open();
        // SAFETY: as above, back to where we came from.
        if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
            return Err(Error::sys(
                "setns back into the runtime's network namespace",
                Errno::last(),
            ));
        }
        sock
    }

    fn send(&mut self, msg: &mut Msg) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        // SAFETY: sending an initialised buffer; the kernel is the default destination.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(Error::sys("netlink send", Errno::last()));
        }
        Ok(seq)
    }

    fn recv(&mut self) -> Result<usize> {
        loop {
            // SAFETY: receiving into our own buffer of the given length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = Errno::last();
            if e != Errno::EINTR {
                return Err(Error::sys("netlink recv", e));
            }
        }
    }

    /// Send `msg` and hand each reply message with our sequence number to
    /// `f` as (type, payload), until the ack (or the dump's end). A kernel
    /// error becomes `what: <errno>` with the kernel's own message if any.
    fn transact(&mut self, mut msg: Msg, what: &str, mut f: impl FnMut(u16, &[u8])) -> Result<()> {
        let dump = u16_at(&msg.buf, 6) & NLM_F_DUMP == NLM_F_DUMP;
        let seq = self.send(&mut msg)?;
        loop {
            let n = self.recv()?;
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let b = &self.buf[off..n];
                let len = u32_at(b, 0) as usize;
                if len < NLMSG_HDRLEN || len > b.len() {
                    return Err(Error::msg(format!("{what}: malformed netlink reply")));
                }
                let ty = u16_at(b, 4);
                let flags = u16_at(b, 6);
                let mseq = u32_at(b, 8);
                let payload = &b[NLMSG_HDRLEN..len];
                off += align4(len);
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_ERROR => {
                        if payload.len() < 4 {
                            return Err(Error::msg(format!("{what}: short netlink error")));
                        }
                        let err = -(u32_at(payload, 0) as i32);
                        if err == 0 {
                            return Ok(());
                        }
                        let mut op = what.to_string();
                        if let Some(m) = ext_ack_message(payload, flags) {
                            op = format!("{op} ({m})");
                        }
                        return Err(Error::sys(op, Errno::from_raw(err)));
                    }
                    NLMSG_DONE => return Ok(()),
                    _ => {
                        f(ty, payload);
                        if !dump && u16_at(&msg.buf, 6) & NLM_F_ACK == 0 {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = Msg::new(RTM_GETLINK, 0).ifinfomsg(0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        let mut out = None;
        match self.transact(m, &format!("RTM_GETLINK {name:?}"), |ty, p| {
            if ty == RTM_NEWLINK {
                out = Link::parse(p);
            }
        }) {
            Ok(()) => Ok(out),
            Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn links(&mut self) -> Result<Vec<Link>> {
        let m = Msg::new(RTM_GETLINK, NLM_F_DUMP).ifinfomsg(0, 0, 0);
        let mut out = Vec::new();
        self.transact(m, "RTM_GETLINK dump", |ty, p| {
            if ty == RTM_NEWLINK {
                out.extend(Link::parse(p));
            }
        })?;
        Ok(out)
    }

    /// The addresses of the device with index `index`.
    pub fn addresses(&mut self, index: i32) -> Result<Vec<Addr>> {
        let m = Msg::new(RTM_GETADDR, NLM_F_DUMP).ifaddrmsg(0, 0, 0, 0, index as u32);
        let mut out = Vec::new();
        self.transact(m, "RTM_GETADDR dump", |ty, p| {
            if ty == RTM_NEWADDR {
                out.extend(Addr::parse(p).filter(|a| a.index == index as u32));
            }
        })?;
        Ok(out)
    }

    /// Move a device into another network namespace under `new_name` (the
    /// kernel renames atomically with the move, and numbers a "%d").
    pub fn move_link(&mut self, index: i32, netns: BorrowedFd<'_>, new_name: &str) -> Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK).ifinfomsg(index, 0, 0);
        m.attr(IFLA_NET_NS_FD, &(netns.as_raw_fd() as u32).to_ne_bytes())
            .attr_str(IFLA_IFNAME, new_name);
        self.transact(m, "RTM_NEWLINK IFLA_NET_NS_FD", |_, _| {})
    }

    pub fn set_up(&mut self, index: i32) -> Result<()> {
        let up = libc::IFF_UP as u32;
        let m = Msg::new(RTM_NEWLINK, NLM_F_ACK).ifinfomsg(index, up, up);
        self.transact(m, "RTM_NEWLINK IFF_UP", |_, _| {})
    }

    /// Add `a` (as read from another device) to the device `index`.
    pub fn add_address(&mut self, index: i32, a: &Addr, label: Option<&str>) -> Result<()> {
        let flags = a.flags & IFA_SETTABLE;
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).ifaddrmsg(
            a.family,
            a.prefixlen,
            flags as u8,
            a.scope,
            index as u32,
        );
        if let Some(l) = &a.local {
            m.attr(IFA_LOCAL, l);
        }
        if let Some(ad) = &a.address {
            m.attr(IFA_ADDRESS, ad);
        }
        if let Some(b) = &a.broadcast {
            m.attr(IFA_BROADCAST, b);
        }
        if let Some(l) = label {
            m.attr_str(IFA_LABEL, l);
        }
        m.attr(IFA_FLAGS, &flags.to_ne_bytes());
        self.transact(m, "RTM_NEWADDR", |_, _| {})
    }

    /// Add a permanent address to a device by name (for tests and tools).
    pub fn add_ip(&mut self, name: &str, ip: IpAddr, prefixlen: u8) -> Result<()> {
        let link = self
            .link_by_name(name)?
            .ok_or_else(|| Error::sys(format!("add address to {name:?}"), Errno::ENODEV))?;
        let (family, bytes) = match ip {
            IpAddr::V4(v) => (libc::AF_INET as u8, v.octets().to_vec()),
            IpAddr::V6(v) => (libc::AF_INET6 as u8, v.octets().to_vec()),
        };
        let a = Addr {
            family,
            prefixlen,
            flags: if ip.is_ipv6() { IFA_F_NODAD } else { 0 },
            scope: RT_SCOPE_UNIVERSE,
            index: link.index as u32,
            local: Some(bytes.clone()),
            address: Some(bytes),
            broadcast: None,
            label: None,
        };
        self.add_address(link.index, &a, None)
    }

    /// Create a veth pair `a` <-> `b` (for tests).
    pub fn create_veth(&mut self, a: &str, b: &str) -> Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).ifinfomsg(0, 0, 0);
        m.attr_str(IFLA_IFNAME, a)
            .nest_start(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .nest_start(IFLA_INFO_DATA)
            .nest_start(VETH_INFO_PEER);
        // The peer's attributes follow its own ifinfomsg inside the nest.
        m.buf.extend_from_slice(&[0u8; 16]);
        m.attr_str(IFLA_IFNAME, b).nest_end().nest_end().nest_end();
        self.transact(m, &format!("create veth pair {a:?}/{b:?}"), |_, _| {})
    }

    /// Delete a device by name; false when there was none.
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        let mut m = Msg::new(RTM_DELLINK, NLM_F_ACK).ifinfomsg(0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.transact(m, &format!("delete link {name:?}"), |_, _| {}) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The device that `old` became after moving here as `name`.
    fn find_moved(&mut self, name: &str, old: &Link) -> Result<Link> {
        if !name.contains('%') {
            return self.link_by_name(name)?.ok_or_else(|| {
                Error::msg(format!(
                    "{name:?} is not in the container's network namespace after the move"
                ))
            });
        }
        // A template: the kernel chose the number. The device kept its
        // hardware address, and its index unless that was taken.
        let (pre, post) = name.split_once("%d").unwrap_or((name, ""));
        let fits = |l: &Link| {
            l.name
                .strip_prefix(pre)
                .and_then(|r| r.strip_suffix(post))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
                && l.address == old.address
        };
        let mut cands: Vec<Link> = self.links()?.into_iter().filter(fits).collect();
        cands.sort_by_key(|l| l.index != old.index);
        cands.into_iter().next().ok_or_else(|| {
            Error::msg(format!(
                "no device matching {name:?} in the container's network namespace after the move"
            ))
        })
    }
}

/// The kernel's extended-ack text in an NLMSG_ERROR payload, if any.
fn ext_ack_message(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 4 + NLMSG_HDRLEN {
        return None;
    }
    let inner_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32_at(payload, 4) as usize
    };
    let start = 4 + align4(inner_len);
    let tlvs = payload.get(start..)?;
    attrs(tlvs)
        .find(|(ty, _)| *ty == NLMSGERR_ATTR_MSG)
        .map(|(_, d)| c_string(d))
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::is_root;
    use std::io::{Read, Write};

    fn spec(json: &str) -> Spec {
        let doc = format!(r#"{{"ociVersion":"1.3.0","linux":{json}}}"#);
        crate::config::parse(doc.as_bytes()).expect("test spec")
    }

    #[test]
    fn plan_from_spec() {
        let s = spec(
            r#"{"namespaces":[{"type":"network"}],
                "netDevices":{"eth1":{"name":"ctr0"},"eth0":{},"veth9":{"name":"net%d"}}}"#,
        );
        let p = NetDevPlan::from_spec(&s).unwrap();
        let got: Vec<(&str, &str)> = p
            .devices
            .iter()
            .map(|d| (d.host_name.as_str(), d.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [("eth0", "eth0"), ("eth1", "ctr0"), ("veth9", "net%d")]
        );
        assert!(NetDevPlan::from_spec(&spec(r#"{}"#)).unwrap().is_empty());
        // A namespace joined by path is a container namespace too.
        NetDevPlan::from_spec(&spec(
            r#"{"namespaces":[{"type":"network","path":"/run/netns/x"}],"netDevices":{"eth0":{}}}"#,
        ))
        .unwrap();
    }

    #[test]
    fn plan_errors_name_the_field() {
        let cases = [
            (r#"{"netDevices":{"eth0":{}}}"#, "linux.netDevices:"),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"eth0":{"name":"a/b"}}}"#,
                "linux.netDevices.eth0.name:",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"eth0":{"name":"0123456789abcdef"}}}"#,
                "linux.netDevices.eth0.name:",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"eth0":{"name":"a%s"}}}"#,
                "linux.netDevices.eth0.name:",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"eth0":{"name":"a%d%d"}}}"#,
                "linux.netDevices.eth0.name:",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"et h":{}}}"#,
                "linux.netDevices:",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"e%d":{}}}"#,
                "linux.netDevices:",
            ),
            (
                r#"{"namespaces":[{"type":"network"}],"netDevices":{"a":{"name":"x"},"b":{"name":"x"}}}"#,
                "linux.netDevices.b.name:",
            ),
        ];
        for (json, want) in cases {
            let e = NetDevPlan::from_spec(&spec(json)).unwrap_err().to_string();
            assert!(e.starts_with(want), "{json}: {e}");
        }
    }

    #[test]
    fn messages_are_well_formed() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK).ifinfomsg(7, 1, 1);
        m.attr_str(IFLA_IFNAME, "abc").nest_start(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth").nest_end();
        let b = m.finish(9).to_vec();
        assert_eq!(u32_at(&b, 0) as usize, b.len());
        assert_eq!(b.len() % 4, 0);
        assert_eq!(u32_at(&b, 8), 9);
        assert_eq!(u32_at(&b, NLMSG_HDRLEN + 4), 7);
        let a: Vec<(u16, Vec<u8>)> = attrs(&b[NLMSG_HDRLEN + 16..])
            .map(|(t, d)| (t, d.to_vec()))
            .collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], (IFLA_IFNAME, b"abc\0".to_vec()));
        assert_eq!(a[1].0, IFLA_LINKINFO);
        let inner: Vec<u16> = attrs(&a[1].1).map(|(t, _)| t).collect();
        assert_eq!(inner, [IFLA_INFO_KIND]);
    }

    #[test]
    fn labels_follow_the_rename() {
        assert_eq!(relabel(Some("eth0"), "eth0", "ctr0"), None);
        assert_eq!(
            relabel(Some("eth0:1"), "eth0", "ctr0"),
            Some("ctr0:1".into())
        );
        assert_eq!(relabel(Some("other"), "eth0", "ctr0"), None);
        assert_eq!(relabel(Some("e:1"), "e", "abcdefghijklmn"), None);
    }

    /// Deletes the test's devices however the test ends.
    struct Devices(Vec<String>);
    impl Drop for Devices {
        fn drop(&mut self) {
            if let Ok(mut nl) = Netlink::open() {
                for n in &self.0 {
                    let _ = nl.delete_link(n);
                }
            }
        }
    }

    /// A child in a new network namespace that waits for "go", then runs
    /// `check` there and reports.
    struct NetnsChild {
        pid: libc::pid_t,
        go: Option<std::fs::File>,
        result: std::fs::File,
    }

    impl NetnsChild {
        fn spawn(check: impl FnOnce() -> std::result::Result<(), String>) -> NetnsChild {
            let pipe = || {
                let mut fds = [0; 2];
                // SAFETY: `fds` has room for the two descriptors.
                assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
                // SAFETY: both were just created and are owned here only.
                unsafe {
                    (
                        std::fs::File::from_raw_fd(fds[0]),
                        std::fs::File::from_raw_fd(fds[1]),
                    )
                }
            };
            let (mut ready_r, ready_w) = pipe();
            let (go_r, go_w) = pipe();
            let (res_r, res_w) = pipe();
            // SAFETY: the child only unshares, waits, checks and _exit()s.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                drop((ready_r, go_w, res_r));
                let (mut ready_w, mut go_r, mut res_w) = (ready_w, go_r, res_w);
                // SAFETY: plain syscall.
                let code = if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    let _ = res_w.write_all(b"unshare CLONE_NEWNET failed");
                    1
                } else {
                    let _ = ready_w.write_all(b"r");
                    let mut b = [0u8; 1];
                    match go_r.read(&mut b) {
                        Ok(1) => {
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
                            match r {
                                Ok(Ok(())) => 0,
                                Ok(Err(m)) => {
                                    let _ = res_w.write_all(m.as_bytes());
                                    1
                                }
                                Err(_) => {
                                    let _ = res_w.write_all(b"check panicked");
                                    2
                                }
                            }
                        }
                        _ => 3,
                    }
                };
                // SAFETY: ends the forked child without running the parent's destructors.
                unsafe { libc::_exit(code) };
            }
            drop((ready_w, go_r, res_w));
            let mut b = [0u8; 1];
            let _ = ready_r.read(&mut b);
            NetnsChild {
                pid,
                go: Some(go_w),
                result: res_r,
            }
        }

        fn finish(mut self, run_check: bool) -> std::result::Result<(), String> {
            if run_check {
                if let Some(mut g) = self.go.take() {
                    let _ = g.write_all(b"g");
                }
            }
            self.go = None;
            let mut msg = String::new();
            let _ = self.result.read_to_string(&mut msg);
            let mut status = 0;
            // SAFETY: our child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
            self.pid = 0;
            let code = libc::WEXITSTATUS(status);
            if run_check && (!libc::WIFEXITED(status) || code != 0) {
                return Err(format!("child status {status:#x}: {msg}"));
            }
            Ok(())
        }
    }

    impl Drop for NetnsChild {
        fn drop(&mut self) {
            if self.pid > 0 {
                self.go = None; // EOF: the child exits without checking
                let mut status = 0;
                // SAFETY: our child.
                unsafe { libc::waitpid(self.pid, &mut status, 0) };
            }
        }
    }

    fn names(tag: &str) -> (String, String) {
        let id = std::process::id() % 100_000;
        (format!("sk8{tag}{id}"), format!("sk8{tag}p{id}"))
    }

    fn ipv6_enabled() -> bool {
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
            .map(|s| s.trim() == "0")
            .unwrap_or(false)
    }

    fn plan_for(host: &str, name: &str) -> NetDevPlan {
        NetDevPlan {
            devices: vec![NetDevice {
                host_name: host.into(),
                name: name.into(),
            }],
        }
    }

    fn check_inside(
        name_prefix: &'static str,
        want_v4: IpAddr,
        want_v6: Option<IpAddr>,
    ) -> impl FnOnce() -> std::result::Result<(), String> {
        move || {
            let mut nl = Netlink::open().map_err(|e| e.to_string())?;
            let links = nl.links().map_err(|e| e.to_string())?;
            let dev = links
                .iter()
                .find(|l| l.name.starts_with(name_prefix))
                .ok_or_else(|| format!("no {name_prefix}* inside: {links:?}"))?;
            if !dev.is_up() {
                return Err(format!("{} is not up", dev.name));
            }
            if !std::path::Path::new("/proc/self/net/dev").exists() {
                return Err("no /proc/self/net/dev".into());
            }
            let addrs = nl.addresses(dev.index).map_err(|e| e.to_string())?;
            let ips: Vec<(IpAddr, u8)> = addrs
                .iter()
                .filter_map(|a| a.ip().map(|i| (i, a.prefixlen)))
                .collect();
            if !ips.contains(&(want_v4, 24)) {
                return Err(format!("{want_v4}/24 missing inside: {ips:?}"));
            }
            if let Some(v6) = want_v6 {
                if !ips.contains(&(v6, 64)) {
                    return Err(format!("{v6}/64 missing inside: {ips:?}"));
                }
            }
            Ok(())
        }
    }

    fn moves_veth(tag: &str, name: &str, prefix: &'static str, v4: [u8; 4]) {
        if !is_root() {
            return;
        }
        let (a, b) = names(tag);
        let _cleanup = Devices(vec![a.clone(), b.clone()]);
        let mut nl = Netlink::open().unwrap();
        nl.create_veth(&a, &b).unwrap();
        let net = v4[2];
        let v4 = IpAddr::from(v4);
        nl.add_ip(&a, v4, 24).unwrap();
        let v6 = ipv6_enabled().then(|| {
            let ip: IpAddr = format!("fd00:5c8:{net}::1").parse().unwrap();
            nl.add_ip(&a, ip, 64).unwrap();
            ip
        });
        let child = NetnsChild::spawn(check_inside(prefix, v4, v6));
        let r = move_devices(&plan_for(&a, name), child.pid);
        let gone = nl.link_by_name(&a).map(|l| l.is_none());
        let checked = child.finish(r.is_ok());
        r.unwrap();
        assert!(gone.unwrap(), "{a} is still on the host");
        checked.unwrap();
        // The peer dies with the namespace's end of the pair.
    }

    #[test]
    fn root_moves_a_veth_renamed_with_its_addresses() {
        moves_veth("m", "ctr0", "ctr0", [10, 213, 7, 1]);
    }

    #[test]
    fn root_moves_with_a_name_template() {
        moves_veth("t", "sk8net%d", "sk8net", [10, 213, 8, 1]);
    }

    #[test]
    fn root_missing_device_and_name_clash_are_refused() {
        if !is_root() {
            return;
        }
        let (a, b) = names("c");
        let _cleanup = Devices(vec![a.clone(), b.clone()]);
        let mut nl = Netlink::open().unwrap();
        nl.create_veth(&a, &b).unwrap();
        let child = NetnsChild::spawn(|| Ok(()));

        let e = move_devices(&plan_for("sk8nosuchdev", "x"), child.pid)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.netDevices.sk8nosuchdev: no such network device"),
            "{e}"
        );
        // Every new network namespace has "lo".
        let e = move_devices(&plan_for(&a, "lo"), child.pid)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("linux.netDevices.{a}.name: a device named \"lo\"")),
            "{e}"
        );
        assert!(nl.link_by_name(&a).unwrap().is_some(), "{a} moved anyway");
        // Our own namespace is not a container's.
        let e = move_devices(&plan_for(&a, "x"), std::process::id() as i32)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.netDevices: the container shares"),
            "{e}"
        );
        child.finish(true).unwrap();
    }
}
