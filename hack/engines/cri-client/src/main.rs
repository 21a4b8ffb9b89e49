//! cri-client: a minimal kubelet stand-in for hack/engines/cri.sh.
//!
//! Speaks Kubernetes' CRI v1 (gRPC) to containerd's socket, one call (or a short sequence, as
//! kubelet would make it) per subcommand, and prints what the shell script asserts on: ids as
//! plain lines, statuses and stats as JSON, a command's output on stdout/stderr with its exit
//! status as ours. Exec and Attach speak containerd's streaming server with the websocket
//! flavour of Kubernetes' remotecommand protocol (`v4.channel.k8s.io`: one binary message per
//! write, its first byte the channel: 0 stdin, 1 stdout, 2 stderr, 3 status as JSON, 4 resize).
//!
//! A dev-only tool, not part of skiff. Usage: `cri-client --help`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::{json, Value};
use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

#[derive(Parser)]
#[command(about = "A minimal CRI v1 client (kubelet's side) for hack/engines/cri.sh")]
struct Cli {
    /// containerd's gRPC socket.
    #[arg(long, env = "CRI_SOCKET")]
    socket: PathBuf,
    /// A directory of the test's own: `runp` keeps each pod's config there, for the
    /// CreateContainer calls that carry it again (as kubelet's do).
    #[arg(long, env = "CRI_STATE")]
    state: PathBuf,
    /// Give up on the whole subcommand after this many seconds (exit status 124).
    #[arg(long, default_value_t = 60)]
    deadline: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Version: runtime name and version.
    Version,
    /// PullImage; prints the image ref.
    Pull { image: String },
    /// RunPodSandbox; prints the pod id.
    Runp(PodOpts),
    /// StopPodSandbox.
    Stopp { id: String },
    /// RemovePodSandbox.
    Rmp { id: String },
    /// PodSandboxStatus (verbose): {"status": ..., "info": ...} with the state by name.
    Inspectp { id: String },
    /// ListPodSandbox: "ID STATE NAME" lines.
    Pods,
    /// CreateContainer in a pod made by `runp`; prints the container id.
    Create(CreateOpts),
    /// CreateContainer then StartContainer; prints the container id.
    Run(CreateOpts),
    /// StartContainer.
    Start { id: String },
    /// StopContainer: SIGTERM (or the image's stop signal), SIGKILL after TIMEOUT seconds.
    Stop {
        #[arg(long, default_value_t = 10)]
        timeout: i64,
        id: String,
    },
    /// RemoveContainer.
    Rm { id: String },
    /// ContainerStatus (verbose): {"status": ..., "info": ...} with the state by name.
    Inspect { id: String },
    /// ListContainers: "ID STATE NAME POD" lines.
    Ps,
    /// Poll ContainerStatus until the container exited; prints "EXIT_CODE REASON".
    Wait {
        #[arg(long, default_value_t = 20)]
        timeout: u64,
        id: String,
    },
    /// ExecSync: the command's stdout and stderr on ours, its exit status as ours. A failed
    /// call (e.g. the timeout expired) prints the gRPC status on stderr and exits 125.
    ExecSync {
        /// Seconds; 0: none.
        #[arg(long, default_value_t = 0)]
        timeout: i64,
        id: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Exec through the streaming server: like exec-sync, TEXT written to the command's stdin
    /// (which stays open: v4 cannot half-close); with --tty a terminal (stdin attached) of
    /// ROWSxCOLS.
    Exec {
        #[arg(long)]
        stdin: Option<String>,
        #[arg(long)]
        tty: bool,
        /// ROWSxCOLS, sent on the resize channel.
        #[arg(long)]
        size: Option<String>,
        id: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Attach through the streaming server: write TEXT to the container's stdin, print what
    /// it writes until its stdout shows UNTIL (then detach, exit 0) or TIMEOUT (exit 1).
    Attach {
        #[arg(long)]
        stdin: Option<String>,
        #[arg(long)]
        until: String,
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        id: String,
    },
    /// ContainerStats as JSON.
    Stats { id: String },
    /// ListContainerStats as JSON (a list).
    StatsAll,
    /// UpdateContainerResources.
    Update {
        id: String,
        #[command(flatten)]
        res: ResOpts,
    },
}

#[derive(Args)]
struct PodOpts {
    #[arg(long)]
    name: String,
    /// The RuntimeClass handler (a runtime of containerd's CRI config).
    #[arg(long, env = "CRI_RUNTIME_HANDLER", default_value = "")]
    runtime: String,
    #[arg(long, env = "CRI_CGROUP_PARENT", default_value = "")]
    cgroup_parent: String,
    /// Pod logs go to LOG_DIR/NAME/CONTAINER.log.
    #[arg(long, env = "CRI_LOG_DIR")]
    log_dir: PathBuf,
    #[arg(long)]
    host_net: bool,
    #[arg(long)]
    host_pid: bool,
    #[arg(long)]
    host_ipc: bool,
    #[arg(long)]
    privileged: bool,
    /// HOST_PORT:CONTAINER_PORT (TCP), repeatable.
    #[arg(long = "port")]
    ports: Vec<String>,
}

#[derive(Args)]
struct CreateOpts {
    /// The pod's id (from `runp`).
    pod: String,
    #[arg(long)]
    name: String,
    #[arg(long, env = "CRI_IMAGE")]
    image: String,
    /// KEY=VALUE, repeatable.
    #[arg(long = "env")]
    envs: Vec<String>,
    #[arg(long)]
    workdir: Option<String>,
    /// UID[:GID] (runAsUser, runAsGroup).
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    read_only: bool,
    /// A capability without CAP_ (NET_ADMIN), repeatable.
    #[arg(long)]
    cap_add: Vec<String>,
    #[arg(long)]
    cap_drop: Vec<String>,
    #[arg(long)]
    privileged: bool,
    /// runtime-default or unconfined; none: no profile sent.
    #[arg(long)]
    seccomp: Option<String>,
    /// allowPrivilegeEscalation: false.
    #[arg(long)]
    no_new_privs: bool,
    /// HOST:CONTAINER[:ro][:private|rslave|rshared], repeatable.
    #[arg(long = "mount")]
    mounts: Vec<String>,
    #[command(flatten)]
    res: ResOpts,
    #[arg(long)]
    stdin: bool,
    #[arg(long)]
    stdin_once: bool,
    #[arg(long)]
    tty: bool,
    /// The command (and its arguments).
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

#[derive(Args)]
struct ResOpts {
    /// Bytes.
    #[arg(long)]
    memory: Option<i64>,
    #[arg(long)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_period: Option<i64>,
    #[arg(long)]
    cpu_shares: Option<i64>,
}

impl ResOpts {
    fn resources(&self) -> LinuxContainerResources {
        LinuxContainerResources {
            memory_limit_in_bytes: self.memory.unwrap_or(0),
            cpu_quota: self.cpu_quota.unwrap_or(0),
            cpu_period: self.cpu_period.unwrap_or(0),
            cpu_shares: self.cpu_shares.unwrap_or(0),
            ..Default::default()
        }
    }
}

/// kubelet's masked and read-only paths for the default procMount.
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A failure with the exit status to report it with.
struct Fail(u8, String);

impl<E: Into<Error>> From<E> for Fail {
    fn from(e: E) -> Self {
        let e: Error = e.into();
        match e.downcast_ref::<tonic::Status>() {
            Some(s) => Fail(125, format!("{:?}: {}", s.code(), s.message())),
            None => Fail(1, e.to_string()),
        }
    }
}

struct Cri {
    rt: RuntimeServiceClient<Channel>,
    img: ImageServiceClient<Channel>,
    state: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let deadline = Duration::from_secs(cli.deadline);
    let res = rt.block_on(async {
        match tokio::time::timeout(deadline, run(cli)).await {
            Ok(r) => r,
            Err(_) => Err(Fail(
                124,
                format!("no answer within {}s", deadline.as_secs()),
            )),
        }
    });
    match res {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("cri-client: {msg}");
            ExitCode::from(code)
        }
    }
}

async fn connect(socket: &Path) -> Result<Channel, Error> {
    let socket = socket.to_path_buf();
    // The URI is not used: every connection goes to the unix socket.
    let ch = Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await?;
    Ok(ch)
}

async fn run(cli: Cli) -> Result<u8, Fail> {
    let ch = connect(&cli.socket).await?;
    let mut c = Cri {
        rt: RuntimeServiceClient::new(ch.clone()),
        img: ImageServiceClient::new(ch),
        state: cli.state,
    };
    match cli.cmd {
        Cmd::Version => {
            let v = c.rt.version(VersionRequest::default()).await?.into_inner();
            println!(
                "{} {} {}",
                v.runtime_name, v.runtime_version, v.runtime_api_version
            );
        }
        Cmd::Pull { image } => {
            let r = c
                .img
                .pull_image(PullImageRequest {
                    image: Some(ImageSpec {
                        image,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await?
                .into_inner();
            println!("{}", r.image_ref);
        }
        Cmd::Runp(o) => println!("{}", c.runp(o).await?),
        Cmd::Stopp { id } => {
            c.rt.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id })
                .await?;
        }
        Cmd::Rmp { id } => {
            c.rt.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await?;
            let _ = std::fs::remove_file(c.state.join(format!("{id}.json")));
        }
        Cmd::Inspectp { id } => {
            let r =
                c.rt.pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: id,
                    verbose: true,
                })
                .await?
                .into_inner();
            let mut status = serde_json::to_value(&r.status)?;
            let state = r.status.as_ref().map(|s| s.state).unwrap_or(-1);
            status["state"] = json!(PodSandboxState::try_from(state)
                .map(|s| s.as_str_name())
                .unwrap_or("?"));
            println!("{}", json!({"status": status, "info": info_json(&r.info)}));
        }
        Cmd::Pods => {
            let r =
                c.rt.list_pod_sandbox(ListPodSandboxRequest::default())
                    .await?
                    .into_inner();
            for p in r.items {
                let state = PodSandboxState::try_from(p.state)
                    .map(|s| s.as_str_name())
                    .unwrap_or("?");
                println!(
                    "{} {} {}",
                    p.id,
                    state,
                    p.metadata.map(|m| m.name).unwrap_or_default()
                );
            }
        }
        Cmd::Create(o) => println!("{}", c.create(o).await?),
        Cmd::Run(o) => {
            let id = c.create(o).await?;
            c.rt.start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
            println!("{id}");
        }
        Cmd::Start { id } => {
            c.rt.start_container(StartContainerRequest { container_id: id })
                .await?;
        }
        Cmd::Stop { timeout, id } => {
            c.rt.stop_container(StopContainerRequest {
                container_id: id,
                timeout,
            })
            .await?;
        }
        Cmd::Rm { id } => {
            c.rt.remove_container(RemoveContainerRequest { container_id: id })
                .await?;
        }
        Cmd::Inspect { id } => {
            let (status, info) = c.inspect(&id).await?;
            println!("{}", json!({"status": status, "info": info}));
        }
        Cmd::Ps => {
            let r =
                c.rt.list_containers(ListContainersRequest::default())
                    .await?
                    .into_inner();
            for x in r.containers {
                let state = ContainerState::try_from(x.state)
                    .map(|s| s.as_str_name())
                    .unwrap_or("?");
                let name = x.metadata.map(|m| m.name).unwrap_or_default();
                println!("{} {} {} {}", x.id, state, name, x.pod_sandbox_id);
            }
        }
        Cmd::Wait { timeout, id } => {
            let t0 = Instant::now();
            loop {
                let (s, _) = c.inspect(&id).await?;
                if s["state"] == "CONTAINER_EXITED" {
                    println!("{} {}", s["exit_code"], s["reason"].as_str().unwrap_or(""));
                    break;
                }
                if t0.elapsed() > Duration::from_secs(timeout) {
                    return Err(Fail(
                        1,
                        format!("{id} still {} after {timeout}s", s["state"]),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Cmd::ExecSync { timeout, id, cmd } => {
            let r =
                c.rt.exec_sync(ExecSyncRequest {
                    container_id: id,
                    cmd,
                    timeout,
                })
                .await?
                .into_inner();
            std::io::stdout().write_all(&r.stdout)?;
            std::io::stderr().write_all(&r.stderr)?;
            return Ok(exit_status(r.exit_code));
        }
        Cmd::Exec {
            stdin,
            tty,
            size,
            id,
            cmd,
        } => {
            let url =
                c.rt.exec(ExecRequest {
                    container_id: id,
                    cmd,
                    tty,
                    // As `kubectl exec -it`: containerd 1.6 loses a terminal's output when
                    // no stdin is attached ("Failed to pipe stdout ... file already closed").
                    stdin: stdin.is_some() || tty,
                    stdout: true,
                    // With a terminal both go to the one stream.
                    stderr: !tty,
                })
                .await?
                .into_inner()
                .url;
            let size = match size {
                Some(s) => Some(parse_size(&s).ok_or_else(|| Fail(2, format!("bad --size {s}")))?),
                None => None,
            };
            let s = stream(&url, stdin.as_deref(), size, None).await?;
            std::io::stdout().write_all(&s.stdout)?;
            std::io::stderr().write_all(&s.stderr)?;
            return s.exit_code();
        }
        Cmd::Attach {
            stdin,
            until,
            timeout,
            id,
        } => {
            let url =
                c.rt.attach(AttachRequest {
                    container_id: id,
                    stdin: stdin.is_some(),
                    tty: false,
                    stdout: true,
                    stderr: true,
                })
                .await?
                .into_inner()
                .url;
            let wait = tokio::time::timeout(
                Duration::from_secs(timeout),
                stream(&url, stdin.as_deref(), None, Some(&until)),
            );
            match wait.await {
                Ok(s) => {
                    let s = s?;
                    std::io::stdout().write_all(&s.stdout)?;
                    std::io::stderr().write_all(&s.stderr)?;
                    if !String::from_utf8_lossy(&s.stdout).contains(&until) {
                        return Err(Fail(1, format!("the stream ended before {until:?} came")));
                    }
                }
                Err(_) => return Err(Fail(1, format!("no {until:?} on stdout within {timeout}s"))),
            }
        }
        Cmd::Stats { id } => {
            let r =
                c.rt.container_stats(ContainerStatsRequest { container_id: id })
                    .await?
                    .into_inner();
            println!("{}", serde_json::to_string(&r.stats)?);
        }
        Cmd::StatsAll => {
            let r =
                c.rt.list_container_stats(ListContainerStatsRequest::default())
                    .await?
                    .into_inner();
            println!("{}", serde_json::to_string(&r.stats)?);
        }
        Cmd::Update { id, res } => {
            c.rt.update_container_resources(UpdateContainerResourcesRequest {
                container_id: id,
                linux: Some(res.resources()),
                ..Default::default()
            })
            .await?;
        }
    }
    Ok(0)
}

/// An exit code (0..255) as our exit status; anything else (a signal's -1) as 255.
fn exit_status(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

/// containerd's verbose info: {"info": "<json>"}; the JSON parsed (null when absent).
fn info_json(info: &HashMap<String, String>) -> Value {
    info.get("info")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

fn parse_size(s: &str) -> Option<(u16, u16)> {
    let (r, c) = s.split_once('x')?;
    Some((r.parse().ok()?, c.parse().ok()?))
}

impl Cri {
    async fn runp(&mut self, o: PodOpts) -> Result<String, Fail> {
        let mode = |host: bool, default: NamespaceMode| {
            if host {
                NamespaceMode::Node as i32
            } else {
                default as i32
            }
        };
        let ns = NamespaceOption {
            network: mode(o.host_net, NamespaceMode::Pod),
            pid: mode(o.host_pid, NamespaceMode::Container),
            ipc: mode(o.host_ipc, NamespaceMode::Pod),
            ..Default::default()
        };
        let mut ports = Vec::new();
        for p in &o.ports {
            let (h, c) = p
                .split_once(':')
                .ok_or_else(|| Fail(2, format!("bad --port {p}")))?;
            ports.push(PortMapping {
                protocol: Protocol::Tcp as i32,
                host_port: h.parse().map_err(|_| Fail(2, format!("bad --port {p}")))?,
                container_port: c.parse().map_err(|_| Fail(2, format!("bad --port {p}")))?,
                host_ip: String::new(),
            });
        }
        // kubelet makes the pod's log directory before it asks for the pod.
        let log_dir = o.log_dir.join(&o.name);
        std::fs::create_dir_all(&log_dir)?;
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: o.name.clone(),
                uid: format!("{}-uid", o.name),
                namespace: "smoke".into(),
                attempt: 0,
            }),
            // kubelet names no hostname for a pod on the host's network (and the runtime
            // could not set one without a UTS namespace of the pod's own).
            hostname: if o.host_net {
                String::new()
            } else {
                o.name.clone()
            },
            log_directory: log_dir.to_string_lossy().into_owned(),
            port_mappings: ports,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: o.cgroup_parent,
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(ns),
                    privileged: o.privileged,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: o.runtime,
            })
            .await?
            .into_inner()
            .pod_sandbox_id;
        std::fs::create_dir_all(&self.state)?;
        std::fs::write(
            self.state.join(format!("{id}.json")),
            serde_json::to_vec(&config)?,
        )?;
        Ok(id)
    }

    async fn create(&mut self, o: CreateOpts) -> Result<String, Fail> {
        let path = self.state.join(format!("{}.json", o.pod));
        let pod: PodSandboxConfig =
            serde_json::from_slice(&std::fs::read(&path).map_err(|e| {
                Fail(
                    1,
                    format!("{}: {e} (a pod not made by runp?)", path.display()),
                )
            })?)?;
        let pod_ns = pod
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone());
        let (uid, gid) = match &o.user {
            None => (None, None),
            Some(u) => {
                let (a, b) = match u.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (u.as_str(), None),
                };
                let bad = || Fail(2, format!("bad --user {u}"));
                let uid: i64 = a.parse().map_err(|_| bad())?;
                let gid: Option<i64> = match b {
                    Some(b) => Some(b.parse().map_err(|_| bad())?),
                    None => None,
                };
                (
                    Some(Int64Value { value: uid }),
                    gid.map(|value| Int64Value { value }),
                )
            }
        };
        let seccomp = match o.seccomp.as_deref() {
            None => None,
            Some("runtime-default") => Some(security_profile::ProfileType::RuntimeDefault),
            Some("unconfined") => Some(security_profile::ProfileType::Unconfined),
            Some(x) => return Err(Fail(2, format!("bad --seccomp {x}"))),
        }
        .map(|t| SecurityProfile {
            profile_type: t as i32,
            localhost_ref: String::new(),
        });
        let mut mounts = Vec::new();
        for m in &o.mounts {
            let mut parts = m.split(':');
            let (Some(host), Some(ctr)) = (parts.next(), parts.next()) else {
                return Err(Fail(2, format!("bad --mount {m}")));
            };
            let mut mount = Mount {
                host_path: host.into(),
                container_path: ctr.into(),
                ..Default::default()
            };
            for opt in parts {
                match opt {
                    "ro" => mount.readonly = true,
                    "private" => mount.propagation = MountPropagation::PropagationPrivate as i32,
                    "rslave" => {
                        mount.propagation = MountPropagation::PropagationHostToContainer as i32
                    }
                    "rshared" => {
                        mount.propagation = MountPropagation::PropagationBidirectional as i32
                    }
                    _ => return Err(Fail(2, format!("bad --mount option {opt} in {m}"))),
                }
            }
            mounts.push(mount);
        }
        let mut envs = Vec::new();
        for e in &o.envs {
            let (k, v) = e
                .split_once('=')
                .ok_or_else(|| Fail(2, format!("bad --env {e}")))?;
            envs.push(KeyValue {
                key: k.into(),
                value: v.into(),
            });
        }
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: o.name.clone(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: o.image,
                ..Default::default()
            }),
            command: o.cmd,
            working_dir: o.workdir.unwrap_or_default(),
            envs,
            mounts,
            log_path: format!("{}.log", o.name),
            stdin: o.stdin,
            stdin_once: o.stdin_once,
            tty: o.tty,
            linux: Some(LinuxContainerConfig {
                resources: Some(o.res.resources()),
                security_context: Some(LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        add_capabilities: o.cap_add,
                        drop_capabilities: o.cap_drop,
                        ..Default::default()
                    }),
                    privileged: o.privileged,
                    namespace_options: pod_ns,
                    run_as_user: uid,
                    run_as_group: gid,
                    readonly_rootfs: o.read_only,
                    no_new_privs: o.no_new_privs,
                    masked_paths: strings(MASKED_PATHS),
                    readonly_paths: strings(READONLY_PATHS),
                    seccomp,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let id = self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: o.pod,
                config: Some(config),
                sandbox_config: Some(pod),
            })
            .await?
            .into_inner()
            .container_id;
        Ok(id)
    }

    /// ContainerStatus (verbose): the status as JSON with its state by name, and the info.
    async fn inspect(&mut self, id: &str) -> Result<(Value, Value), Fail> {
        let r = self
            .rt
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: true,
            })
            .await?
            .into_inner();
        let mut status = serde_json::to_value(&r.status)?;
        let state = r.status.as_ref().map(|s| s.state).unwrap_or(-1);
        status["state"] = json!(ContainerState::try_from(state)
            .map(|s| s.as_str_name())
            .unwrap_or("?"));
        Ok((status, info_json(&r.info)))
    }
}

#[derive(Default)]
struct Streamed {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// What came on the status channel (v4: a JSON metav1.Status), empty if nothing.
    status: Vec<u8>,
}

impl Streamed {
    /// The remote command's exit status from the v4 status: Success is 0, a NonZeroExitCode
    /// failure carries the code as an ExitCode cause; any other failure exits 126 with its text.
    fn exit_code(&self) -> Result<u8, Fail> {
        if self.status.is_empty() {
            return Err(Fail(126, "the stream ended with no status".into()));
        }
        let v: Value = serde_json::from_slice(&self.status).map_err(|e| {
            Fail(
                126,
                format!("status {:?}: {e}", String::from_utf8_lossy(&self.status)),
            )
        })?;
        if v["status"] == "Success" {
            return Ok(0);
        }
        if let Some(causes) = v["details"]["causes"].as_array() {
            for c in causes {
                if c["reason"] == "ExitCode" {
                    if let Some(code) = c["message"].as_str().and_then(|m| m.parse::<i32>().ok()) {
                        return Ok(exit_status(code));
                    }
                }
            }
        }
        Err(Fail(126, format!("remote command failed: {v}")))
    }
}

/// One session on a streaming URL (http://HOST:PORT/exec/TOKEN or /attach/TOKEN): send stdin
/// and a resize, collect stdout/stderr/status until the server closes, or (with `until`) until
/// stdout shows that text, then close.
async fn stream(
    url: &str,
    stdin: Option<&str>,
    size: Option<(u16, u16)>,
    until: Option<&str>,
) -> Result<Streamed, Fail> {
    let ws_url = match url.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}"),
        None => {
            return Err(Fail(
                1,
                format!("streaming URL {url}: only http:// is spoken"),
            ))
        }
    };
    let mut req = ws_url.as_str().into_client_request()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| Fail(1, format!("websocket {ws_url}: {e}")))?;
    let frame = |ch: u8, data: &[u8]| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(ch);
        v.extend_from_slice(data);
        Message::Binary(v.into())
    };
    if let Some((rows, cols)) = size {
        let msg = json!({"Width": cols, "Height": rows}).to_string();
        ws.send(frame(4, msg.as_bytes())).await?;
    }
    if let Some(text) = stdin.filter(|t| !t.is_empty()) {
        ws.send(frame(0, text.as_bytes())).await?;
    }
    let mut s = Streamed::default();
    let debug = std::env::var_os("CRI_CLIENT_DEBUG").is_some();
    while let Some(msg) = ws.next().await {
        if debug {
            eprintln!("cri-client: websocket {msg:?}");
        }
        match msg {
            Ok(Message::Binary(b)) if !b.is_empty() => match b[0] {
                1 => s.stdout.extend_from_slice(&b[1..]),
                2 => s.stderr.extend_from_slice(&b[1..]),
                3 => s.status.extend_from_slice(&b[1..]),
                _ => {}
            },
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            // The server may drop the connection without a closing handshake once it has sent
            // the status: what came before it counts.
            Err(e) => {
                if s.status.is_empty() && until.is_none() {
                    return Err(Fail(1, format!("websocket: {e}")));
                }
                break;
            }
        }
        if let Some(u) = until {
            if String::from_utf8_lossy(&s.stdout).contains(u) {
                let _ = ws.close(None).await;
                break;
            }
        }
    }
    Ok(s)
}
