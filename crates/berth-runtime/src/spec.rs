//! OCI runtime spec generation with Docker's defaults.
//!
//! [`build`] turns [`SpecOptions`] into the `config.json` a container gets from `docker run`
//! without special flags: Docker's namespaces, capabilities, masked and read-only paths,
//! mounts, device cgroup rules and seccomp profile (see [`crate::seccomp`]).

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResources, LinuxResourcesBuilder, LinuxSeccomp, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use crate::user::ResolvedUser;

/// Errors from [`build`].
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unknown capability: {0:?}")]
    UnknownCapability(String),
    #[error("invalid runtime spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

/// Docker's default capability set (Docker 20.10+).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability known to the runtime spec (what `--privileged` and `--cap-add ALL` give).
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETGID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
];

/// Docker's masked paths (`/dev/null` is bind-mounted over files, an empty tmpfs over dirs).
pub const MASKED_PATHS: &[&str] = &[
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
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The default cgroup parent: containers live in `/<parent>/<id>` of each hierarchy.
pub const DEFAULT_CGROUP_PARENT: &str = "berth";

/// The environment Docker gives a container whose image sets no `PATH`.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A bind mount into the container (`-v`, `/etc/hosts`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
    /// Extra options (`rprivate`, `nosuid`...). `rbind` and `ro` are added as needed.
    pub options: Vec<String>,
}

/// Which seccomp profile the container gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SeccompMode {
    /// Docker's default profile, adjusted to the container's capabilities.
    #[default]
    Default,
    /// No seccomp filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A profile given in full.
    Custom(LinuxSeccomp),
}

/// The container's network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// A new namespace with only a loopback interface (`--network none`, and the default until
    /// there are bridges).
    #[default]
    Loopback,
    /// Share the host's namespace (`--network host`).
    Host,
    /// Join the namespace at this path (`--network container:<id>` as `/proc/<pid>/ns/net`).
    Join(PathBuf),
}

/// What the daemon knows about a container that the spec depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecOptions {
    pub id: String,
    pub args: Vec<String>,
    /// `KEY=value` entries. A `PATH` is added when missing.
    pub env: Vec<String>,
    /// Working directory inside the container, absolute. Empty: `/`.
    pub cwd: String,
    pub user: ResolvedUser,
    pub hostname: String,
    pub domainname: Option<String>,
    pub tty: bool,
    /// The root filesystem, absolute or relative to the bundle.
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    /// Cgroup parent, a path relative to each hierarchy's root (`berth` by default).
    pub cgroup_parent: String,
    /// Bind mounts added after Docker's default mounts.
    pub binds: Vec<BindMount>,
    /// Further mounts in OCI form (tmpfs, volumes...), added last.
    pub extra_mounts: Vec<Mount>,
    /// `--cap-add`, with or without the `CAP_` prefix; `ALL` for every capability.
    pub cap_add: Vec<String>,
    /// `--cap-drop`, same forms.
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub seccomp: SeccompMode,
    pub no_new_privileges: bool,
    pub network: NetworkMode,
    /// Size of `/dev/shm` in bytes (64 MiB by default).
    pub shm_size: u64,
    pub oom_score_adj: Option<i32>,
    /// Resource limits; the device allow-list is filled in by [`build`] unless already set.
    pub resources: Option<LinuxResources>,
    /// `--ulimit`s of the container's processes.
    pub rlimits: Vec<oci_spec::runtime::PosixRlimit>,
    /// `--sysctl`s.
    pub sysctls: HashMap<String, String>,
    /// `--device`s: made in the container's `/dev` and allowed by its device cgroup (with
    /// their permissions), besides Docker's defaults.
    pub devices: Vec<(oci_spec::runtime::LinuxDevice, String)>,
    pub annotations: HashMap<String, String>,
}

impl Default for SpecOptions {
    fn default() -> Self {
        SpecOptions {
            id: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: "/".into(),
            user: ResolvedUser::default(),
            hostname: String::new(),
            domainname: None,
            tty: false,
            rootfs: PathBuf::from("rootfs"),
            readonly_rootfs: false,
            cgroup_parent: DEFAULT_CGROUP_PARENT.into(),
            binds: Vec::new(),
            extra_mounts: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            privileged: false,
            seccomp: SeccompMode::Default,
            no_new_privileges: false,
            network: NetworkMode::Loopback,
            shm_size: 64 * 1024 * 1024,
            oom_score_adj: None,
            resources: None,
            rlimits: Vec::new(),
            sysctls: HashMap::new(),
            devices: Vec::new(),
            annotations: HashMap::new(),
        }
    }
}

fn normalize_cap(name: &str) -> String {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn parse_cap(name: &str) -> Result<Capability, SpecError> {
    let n = normalize_cap(name);
    let short = n.strip_prefix("CAP_").unwrap_or(&n);
    Capability::from_str(short).map_err(|_| SpecError::UnknownCapability(name.to_string()))
}

/// The capability names (`CAP_...`) a container gets: Docker's defaults, or all of them when
/// privileged, then `cap_add`, then `cap_drop` (`ALL` works in both, as in Docker).
pub fn effective_capabilities(opts: &SpecOptions) -> Result<Vec<String>, SpecError> {
    let all = || -> Vec<String> {
        ALL_CAPABILITIES
            .iter()
            .filter(|c| grantable(c))
            .map(|s| s.to_string())
            .collect()
    };
    let mut caps: Vec<String> = if opts.privileged {
        all()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    };
    let adds: Vec<String> = opts.cap_add.iter().map(|c| normalize_cap(c)).collect();
    let drops: Vec<String> = opts.cap_drop.iter().map(|c| normalize_cap(c)).collect();
    for c in adds.iter().chain(drops.iter()) {
        if c != "ALL" {
            parse_cap(c)?;
        }
    }
    if !opts.privileged {
        if drops.iter().any(|d| d == "ALL") {
            caps.clear();
        } else {
            caps.retain(|c| !drops.contains(c));
        }
        if adds.iter().any(|a| a == "ALL") {
            caps = all();
            if !drops.iter().any(|d| d == "ALL") {
                caps.retain(|c| !drops.contains(c));
            }
        }
        for a in adds.iter().filter(|a| *a != "ALL") {
            if !caps.contains(a) {
                caps.push(a.clone());
            }
        }
    }
    Ok(caps)
}

/// Whether this process can hand `cap` (a `CAP_…` name) to a container: it must be in our own
/// bounding set. "All capabilities" means all that we have, as on a host whose bounding set
/// was narrowed (a sandbox, a container running berth).
fn grantable(cap: &str) -> bool {
    static BOUNDING: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let bnd = BOUNDING.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    });
    let Some(bnd) = bnd else { return true };
    match caps::Capability::from_str(cap) {
        Ok(c) => bnd & c.bitmask() != 0,
        Err(_) => false,
    }
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

fn dev_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, SpecError> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access);
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    Ok(b.build()?)
}

/// Docker's device cgroup rules: deny everything, then allow the standard devices and `mknod`.
pub fn default_device_rules() -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    use LinuxDeviceType::{B, C};
    Ok(vec![
        dev_rule(false, None, None, None, "rwm")?,
        dev_rule(true, Some(C), None, None, "m")?, // c *:* m
        dev_rule(true, Some(B), None, None, "m")?, // b *:* m
        dev_rule(true, Some(C), Some(1), Some(3), "rwm")?, // /dev/null
        dev_rule(true, Some(C), Some(1), Some(5), "rwm")?, // /dev/zero
        dev_rule(true, Some(C), Some(1), Some(7), "rwm")?, // /dev/full
        dev_rule(true, Some(C), Some(1), Some(8), "rwm")?, // /dev/random
        dev_rule(true, Some(C), Some(1), Some(9), "rwm")?, // /dev/urandom
        dev_rule(true, Some(C), Some(5), Some(0), "rwm")?, // /dev/tty
        dev_rule(true, Some(C), Some(5), Some(1), "rwm")?, // /dev/console
        dev_rule(true, Some(C), Some(5), Some(2), "rwm")?, // /dev/ptmx
        dev_rule(true, Some(C), Some(136), None, "rwm")?, // /dev/pts/*
    ])
}

/// Docker's default mounts, in order.
pub fn default_mounts(opts: &SpecOptions) -> Result<Vec<Mount>, SpecError> {
    let sys_ro = if opts.privileged { "rw" } else { "ro" };
    let shm = format!("size={}", opts.shm_size);
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_ro],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_ro],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm],
        )?,
    ])
}

/// A tmpfs at `dest` (`--tmpfs /run:size=64m`, `--mount type=tmpfs`): Docker's defaults
/// `nosuid`, `nodev`, `noexec`, then the options given (`exec`, `suid`, `dev` undo a default).
pub fn tmpfs_mount(dest: &str, options: &str) -> Result<Mount, SpecError> {
    let given: Vec<&str> = options.split(',').filter(|o| !o.is_empty()).collect();
    let mut opts: Vec<String> = ["nosuid", "nodev", "noexec"]
        .iter()
        .filter(|d| !given.contains(&&d[2..]))
        .map(|d| d.to_string())
        .collect();
    opts.extend(
        given
            .iter()
            .filter(|o| !matches!(**o, "exec" | "suid" | "dev"))
            .map(|o| o.to_string()),
    );
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("tmpfs")
        .source("tmpfs")
        .options(opts)
        .build()?)
}

fn bind_mount(b: &BindMount) -> Result<Mount, SpecError> {
    let mut options = vec!["rbind".to_string()];
    if !b
        .options
        .iter()
        .any(|o| o.ends_with("private") || o.ends_with("shared") || o.ends_with("slave"))
    {
        options.push("rprivate".into());
    }
    options.extend(b.options.iter().cloned());
    if b.readonly && !options.iter().any(|o| o == "ro") {
        options.push("ro".into());
    }
    Ok(MountBuilder::default()
        .destination(&b.destination)
        .typ("bind")
        .source(&b.source)
        .options(options)
        .build()?)
}

fn namespace(typ: LinuxNamespaceType, path: Option<PathBuf>) -> Result<LinuxNamespace, SpecError> {
    let mut b = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(p) = path {
        b = b.path(p);
    }
    Ok(b.build()?)
}

/// The cgroups path for a container: `/<parent>/<id>`.
pub fn cgroups_path(parent: &str, id: &str) -> PathBuf {
    let parent = parent.trim_matches('/');
    if parent.is_empty() {
        PathBuf::from(format!("/{id}"))
    } else {
        PathBuf::from(format!("/{parent}/{id}"))
    }
}

/// The environment of a container's process, as Docker makes it (moby's
/// `CreateDaemonEnvironment` and `ReplaceOrAppendEnvValues`, then runc's): `PATH`, `HOSTNAME`,
/// `TERM=xterm` with a terminal, then `env` in order, each variable replacing one of the same
/// name where it is (runc keeps the last of a name); a name without `=` unsets one of those
/// defaults and is otherwise ignored; `home` (the user's `HOME=...`) last when `env` sets none.
pub fn process_env(hostname: &str, tty: bool, env: &[String], home: &str) -> Vec<String> {
    let mut out: Vec<Option<String>> = vec![
        Some(DEFAULT_PATH_ENV.to_string()),
        Some(format!("HOSTNAME={hostname}")),
    ];
    if tty {
        out.push(Some("TERM=xterm".into()));
    }
    let defaults = out.len();
    fn name(e: &str) -> &str {
        e.split_once('=').map_or(e, |(k, _)| k)
    }
    for e in env {
        let key = name(e);
        if !e.contains('=') {
            if let Some(slot) = out[..defaults]
                .iter_mut()
                .find(|o| o.as_deref().is_some_and(|o| name(o) == key))
            {
                *slot = None;
            }
            continue;
        }
        match out
            .iter_mut()
            .find(|o| o.as_deref().is_some_and(|o| name(o) == key))
        {
            Some(slot) => *slot = Some(e.clone()),
            None => out.push(Some(e.clone())),
        }
    }
    let mut out: Vec<String> = out.into_iter().flatten().collect();
    if !out.iter().any(|e| e.starts_with("HOME=")) {
        out.push(home.to_string());
    }
    out
}

/// Build the runtime spec for a container.
pub fn build(opts: &SpecOptions) -> Result<Spec, SpecError> {
    let caps: Capabilities = effective_capabilities(opts)?
        .iter()
        .map(|c| parse_cap(c))
        .collect::<Result<_, _>>()?;
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()?;
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);

    let env = process_env(&opts.hostname, opts.tty, &opts.env, &opts.user.home_env());
    let mut user = UserBuilder::default().uid(opts.user.uid).gid(opts.user.gid);
    if !opts.user.additional_gids.is_empty() {
        user = user.additional_gids(opts.user.additional_gids.clone());
    }
    let mut process = ProcessBuilder::default()
        .terminal(opts.tty)
        .args(opts.args.clone())
        .env(env)
        .cwd(if opts.cwd.is_empty() {
            "/"
        } else {
            opts.cwd.as_str()
        })
        .user(user.build()?)
        .capabilities(capabilities)
        .build()?;
    // Only `true` is written: libcontainer treats any `noNewPrivileges` value, even `false`, as
    // set, and then loads seccomp after dropping CAP_SYS_ADMIN, which fails.
    process.set_no_new_privileges(opts.no_new_privileges.then_some(true));
    process.set_rlimits((!opts.rlimits.is_empty()).then(|| opts.rlimits.clone()));
    process.set_apparmor_profile(None);
    process.set_oom_score_adj(opts.oom_score_adj);

    let mut mounts = default_mounts(opts)?;
    for b in &opts.binds {
        mounts.push(bind_mount(b)?);
    }
    mounts.extend(opts.extra_mounts.iter().cloned());

    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Pid, None)?,
        namespace(LinuxNamespaceType::Ipc, None)?,
        namespace(LinuxNamespaceType::Uts, None)?,
        namespace(LinuxNamespaceType::Mount, None)?,
        namespace(LinuxNamespaceType::Cgroup, None)?,
    ];
    match &opts.network {
        NetworkMode::Loopback => namespaces.push(namespace(LinuxNamespaceType::Network, None)?),
        NetworkMode::Host => {}
        NetworkMode::Join(p) => {
            namespaces.push(namespace(LinuxNamespaceType::Network, Some(p.clone()))?)
        }
    }

    let mut resources = match &opts.resources {
        Some(r) => r.clone(),
        None => LinuxResourcesBuilder::default().build()?,
    };
    if resources.devices().is_none() {
        let mut rules = if opts.privileged {
            vec![dev_rule(true, None, None, None, "rwm")?]
        } else {
            default_device_rules()?
        };
        for (d, perms) in &opts.devices {
            rules.push(dev_rule(
                true,
                Some(d.typ()),
                Some(d.major()),
                Some(d.minor()),
                perms,
            )?);
        }
        resources.set_devices(Some(rules));
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(cgroups_path(&opts.cgroup_parent, &opts.id))
        .resources(resources)
        .build()?;
    if !opts.sysctls.is_empty() {
        linux.set_sysctl(Some(opts.sysctls.clone()));
    }
    if !opts.devices.is_empty() {
        linux.set_devices(Some(opts.devices.iter().map(|(d, _)| d.clone()).collect()));
    }
    if opts.privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        linux.set_seccomp(None);
    } else {
        linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
        linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
        linux.set_seccomp(match &opts.seccomp {
            SeccompMode::Default => {
                let names = effective_capabilities(opts)?;
                Some(crate::seccomp::default_profile(&names)?)
            }
            SeccompMode::Unconfined => None,
            SeccompMode::Custom(p) => Some(p.clone()),
        });
    }

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(
            RootBuilder::default()
                .path(&opts.rootfs)
                .readonly(opts.readonly_rootfs)
                .build()?,
        )
        .hostname(opts.hostname.clone())
        .mounts(mounts)
        .linux(linux)
        .build()?;
    spec.set_domainname(opts.domainname.clone());
    spec.set_hooks(None);
    if !opts.annotations.is_empty() {
        spec.set_annotations(Some(opts.annotations.clone()));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompOperator};

    fn opts() -> SpecOptions {
        SpecOptions {
            id: "abc123".into(),
            args: vec!["/bin/echo".into(), "hello".into()],
            env: vec!["FOO=bar".into()],
            hostname: "abc123".into(),
            user: ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 20],
                home: "/home/u".into(),
            },
            ..Default::default()
        }
    }

    fn cap_names(set: &Option<Capabilities>) -> Vec<String> {
        let mut v: Vec<String> = set
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn process_env_is_dockers() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            process_env("h1", false, &[], "HOME=/root"),
            s(&[DEFAULT_PATH_ENV, "HOSTNAME=h1", "HOME=/root"])
        );
        // Variables of the same name replace the defaults where they are (and earlier ones:
        // runc keeps a name's last value); a bare name unsets a default, nothing else.
        assert_eq!(
            process_env(
                "h1",
                true,
                &s(&[
                    "A=1",
                    "PATH=/bin",
                    "TERM",
                    "A=2",
                    "HOSTNAME=mine",
                    "NOPE",
                    "A"
                ]),
                "HOME=/"
            ),
            s(&["PATH=/bin", "HOSTNAME=mine", "A=2", "HOME=/"])
        );
        // The environment's own HOME wins.
        assert_eq!(
            process_env("h1", true, &s(&["X=a=b", "HOME=/h"]), "HOME=/root"),
            s(&[
                DEFAULT_PATH_ENV,
                "HOSTNAME=h1",
                "TERM=xterm",
                "X=a=b",
                "HOME=/h"
            ])
        );
        let u = ResolvedUser::default();
        assert_eq!(u.home_env(), "HOME=/");
    }

    #[test]
    fn process_fields() {
        let spec = build(&opts()).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["/bin/echo", "hello"]);
        let env = p.env().as_ref().unwrap();
        assert_eq!(env[0], DEFAULT_PATH_ENV);
        assert_eq!(env[1], "HOSTNAME=abc123");
        assert_eq!(env.last().map(String::as_str), Some("HOME=/home/u"));
        assert!(env.contains(&"FOO=bar".to_string()));
        assert_eq!(p.cwd().to_str(), Some("/"));
        assert_eq!(p.user().uid(), 1000);
        assert_eq!(p.user().gid(), 1000);
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &[10, 20]);
        assert!(!p.terminal().unwrap());
        assert_eq!(p.no_new_privileges(), None);
        assert!(p.rlimits().is_none());
        assert_eq!(spec.hostname().as_deref(), Some("abc123"));
        assert_eq!(
            spec.root().as_ref().unwrap().path().to_str(),
            Some("rootfs")
        );
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));
    }

    #[test]
    fn default_capabilities() {
        let spec = build(&opts()).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        let mut want: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(cap_names(caps.bounding()), want);
        assert_eq!(cap_names(caps.effective()), want);
        assert_eq!(cap_names(caps.permitted()), want);
        assert!(caps.inheritable().is_none());
        assert!(caps.ambient().is_none());
    }

    #[test]
    fn cap_add_and_drop() {
        let mut o = opts();
        o.cap_add = vec!["sys_admin".into(), "CAP_NET_ADMIN".into()];
        o.cap_drop = vec!["CHOWN".into()];
        let caps = effective_capabilities(&o).unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        o.cap_drop = vec!["ALL".into()];
        o.cap_add = vec!["KILL".into()];
        assert_eq!(effective_capabilities(&o).unwrap(), vec!["CAP_KILL"]);
        o.cap_add = vec!["NOPE".into()];
        assert!(matches!(build(&o), Err(SpecError::UnknownCapability(_))));
    }

    #[test]
    fn namespaces_and_cgroups_path() {
        let spec = build(&opts()).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let mut types: Vec<String> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| format!("{:?}", n.typ()))
            .collect();
        types.sort();
        assert_eq!(types, ["Cgroup", "Ipc", "Mount", "Network", "Pid", "Uts"]);
        assert_eq!(
            linux.cgroups_path().as_ref().unwrap().to_str(),
            Some("/berth/abc123")
        );
        let mut o = opts();
        o.cgroup_parent = "/custom/parent/".into();
        o.network = NetworkMode::Host;
        let spec = build(&o).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_ref().unwrap().to_str(),
            Some("/custom/parent/abc123")
        );
        assert!(!linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network));
    }

    #[test]
    fn mounts() {
        let mut o = opts();
        o.binds.push(BindMount {
            source: "/data/hosts".into(),
            destination: "/etc/hosts".into(),
            readonly: false,
            options: vec![],
        });
        let spec = build(&o).unwrap();
        let ms = spec.mounts().as_ref().unwrap();
        let find = |d: &str| {
            ms.iter()
                .find(|m| m.destination().to_str() == Some(d))
                .unwrap_or_else(|| panic!("no mount at {d}"))
        };
        let dev = find("/dev");
        assert!(dev.options().as_ref().unwrap().contains(&"mode=755".into()));
        assert!(dev
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=65536k".into()));
        let pts = find("/dev/pts");
        for o in ["newinstance", "ptmxmode=0666", "gid=5", "mode=0620"] {
            assert!(
                pts.options().as_ref().unwrap().contains(&o.to_string()),
                "{o}"
            );
        }
        assert!(find("/dev/shm")
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=67108864".into()));
        assert!(find("/sys")
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".into()));
        assert!(find("/sys/fs/cgroup")
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".into()));
        find("/dev/mqueue");
        find("/proc");
        let hosts = find("/etc/hosts");
        assert_eq!(hosts.typ().as_deref(), Some("bind"));
        assert!(hosts.options().as_ref().unwrap().contains(&"rbind".into()));
    }

    #[test]
    fn masked_and_readonly_paths() {
        let spec = build(&opts()).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".into()));
        assert!(linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".into()));
    }

    #[test]
    fn device_rules() {
        let spec = build(&opts()).unwrap();
        let devs = spec
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert!(!devs[0].allow());
        assert_eq!(devs[0].access().as_deref(), Some("rwm"));
        assert!(devs
            .iter()
            .any(|d| d.allow() && d.major() == Some(1) && d.minor() == Some(3)));
        assert!(devs
            .iter()
            .any(|d| d.allow() && d.major() == Some(136) && d.minor().is_none()));
    }

    #[test]
    fn seccomp_default() {
        let spec = build(&opts()).unwrap();
        let sc = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(sc.default_errno_ret(), Some(1));
        let syscalls = sc.syscalls().as_ref().unwrap();
        let allowed = |n: &str| {
            syscalls.iter().any(|s| {
                s.action() == LinuxSeccompAction::ScmpActAllow
                    && s.args().is_none()
                    && s.names().iter().any(|x| x == n)
            })
        };
        assert!(allowed("read"));
        assert!(allowed("execve"));
        assert!(!allowed("mount"));
        assert!(!allowed("clone"));
        let clone = syscalls
            .iter()
            .find(|s| s.names().iter().any(|x| x == "clone"))
            .unwrap();
        let a = &clone.args().as_ref().unwrap()[0];
        assert_eq!(a.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(a.value(), 0x7E02_0000);
        // SYS_ADMIN lifts the clone restriction and allows mount.
        let mut o = opts();
        o.cap_add = vec!["SYS_ADMIN".into()];
        let spec = build(&o).unwrap();
        let sc = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        assert!(sc
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .any(|s| s.args().is_none() && s.names().iter().any(|x| x == "mount")));
    }

    #[test]
    fn privileged() {
        let mut o = opts();
        o.privileged = true;
        let spec = build(&o).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert!(linux.masked_paths().is_none());
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        // Every capability this process may grant (the host's bounding set may be narrower
        // than the kernel's list, as in a sandbox).
        let grantable = ALL_CAPABILITIES.iter().filter(|c| grantable(c)).count();
        assert!(grantable > DEFAULT_CAPABILITIES.len());
        assert_eq!(caps.bounding().as_ref().unwrap().len(), grantable);
    }

    #[test]
    fn serializes_for_runtimes() {
        let spec = build(&opts()).unwrap();
        let j = serde_json::to_value(&spec).unwrap();
        assert_eq!(j["linux"]["cgroupsPath"], "/berth/abc123");
        assert_eq!(j["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(j["process"]["capabilities"].get("inheritable").is_none());
    }
}
