//! clap definitions (docker's commands, flags and usage lines).

use clap::{ArgAction, Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    bin_name = "berth",
    about = "A self-sufficient runtime for containers",
    disable_version_flag = true,
    subcommand_required = false
)]
pub struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Set the logging level
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // each subcommand's arguments built only when it runs
pub enum Cmd {
    #[command(flatten)]
    Container(ContainerCmd),
    /// Manage containers
    #[command(name = "container", subcommand)]
    ContainerGroup(ContainerGroupCmd),
    /// Manage images
    #[command(name = "image", subcommand)]
    ImageGroup(ImageCmd),
    /// Build an image from a Dockerfile
    #[command(override_usage = "berth build [OPTIONS] PATH | URL | -")]
    Build(BuildArgs),
    /// List images
    #[command(override_usage = "berth images [OPTIONS] [REPOSITORY[:TAG]]")]
    Images(ImagesArgs),
    /// Import the contents from a tarball to create a filesystem image
    #[command(override_usage = "berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]")]
    Import(ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    #[command(override_usage = "berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")]
    Tag(TagArgs),
    /// Download an image from a registry
    #[command(override_usage = "berth pull [OPTIONS] NAME[:TAG|@DIGEST]")]
    Pull(PullArgs),
    /// Upload an image to a registry
    #[command(override_usage = "berth push [OPTIONS] NAME[:TAG]")]
    Push(PushArgs),
    /// Log in to a registry
    #[command(override_usage = "berth login [OPTIONS] [SERVER]")]
    Login(LoginArgs),
    /// Search a registry for images
    #[command(override_usage = "berth search [OPTIONS] TERM")]
    Search(SearchArgs),
    /// Log out from a registry
    #[command(override_usage = "berth logout [SERVER]")]
    Logout(LogoutArgs),
    /// Remove one or more images
    #[command(override_usage = "berth rmi [OPTIONS] IMAGE [IMAGE...]")]
    Rmi(RmiArgs),
    /// Show the history of an image
    #[command(override_usage = "berth history [OPTIONS] IMAGE")]
    History(HistoryArgs),
    /// Return low-level information on berth objects
    #[command(override_usage = "berth inspect [OPTIONS] NAME|ID [NAME|ID...]")]
    Inspect(InspectArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    #[command(override_usage = "berth save [OPTIONS] IMAGE [IMAGE...]")]
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    #[command(override_usage = "berth load [OPTIONS]")]
    Load(LoadArgs),
    /// Manage networks
    #[command(name = "network", subcommand)]
    Network(NetworkCmd),
    /// Manage volumes
    #[command(name = "volume", subcommand)]
    Volume(VolumeCmd),
    /// Manage berth
    #[command(name = "system", subcommand)]
    System(SystemCmd),
    /// Manage builds
    #[command(name = "builder", subcommand)]
    Builder(BuilderCmd),
    /// Get real time events from the server
    #[command(override_usage = "berth events [OPTIONS]")]
    Events(EventsArgs),
    /// Show the berth version information
    Version(VersionArgs),
    /// Display system-wide information
    Info(InfoArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // each subcommand's arguments built only when it runs
pub enum SystemCmd {
    /// Show berth disk usage
    #[command(override_usage = "berth system df [OPTIONS]")]
    Df(DfArgs),
    /// Remove unused data
    #[command(override_usage = "berth system prune [OPTIONS]")]
    Prune(SystemPruneArgs),
    /// Verify the store: every blob's digest, every layer's references; report orphans and
    /// corruption
    #[command(override_usage = "berth system check [OPTIONS]")]
    Check(CheckArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Get real time events from the server
    #[command(override_usage = "berth system events [OPTIONS]")]
    Events(EventsArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // each subcommand's arguments built only when it runs
pub enum NetworkCmd {
    /// List networks
    #[command(visible_alias = "list", override_usage = "berth network ls [OPTIONS]")]
    Ls(NetworkLsArgs),
    /// Display detailed information on one or more networks
    #[command(override_usage = "berth network inspect [OPTIONS] NETWORK [NETWORK...]")]
    Inspect(NetworkInspectArgs),
    /// Create a network
    #[command(override_usage = "berth network create [OPTIONS] NETWORK")]
    Create(NetworkCreateArgs),
    /// Remove one or more networks
    #[command(
        visible_alias = "remove",
        override_usage = "berth network rm NETWORK [NETWORK...]"
    )]
    Rm(NetworkRmArgs),
    /// Remove all unused networks
    #[command(override_usage = "berth network prune [OPTIONS]")]
    Prune(NetworkPruneArgs),
    /// Connect a container to a network
    #[command(override_usage = "berth network connect [OPTIONS] NETWORK CONTAINER")]
    Connect(NetworkConnectArgs),
    /// Disconnect a container from a network
    #[command(override_usage = "berth network disconnect [OPTIONS] NETWORK CONTAINER")]
    Disconnect(NetworkDisconnectArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // each subcommand's arguments built only when it runs
pub enum VolumeCmd {
    /// Create a volume
    #[command(override_usage = "berth volume create [OPTIONS] [VOLUME]")]
    Create(VolumeCreateArgs),
    /// Display detailed information on one or more volumes
    #[command(override_usage = "berth volume inspect [OPTIONS] VOLUME [VOLUME...]")]
    Inspect(VolumeInspectArgs),
    /// List volumes
    #[command(visible_alias = "list", override_usage = "berth volume ls [OPTIONS]")]
    Ls(VolumeLsArgs),
    /// Remove one or more volumes
    #[command(
        visible_alias = "remove",
        override_usage = "berth volume rm [OPTIONS] VOLUME [VOLUME...]"
    )]
    Rm(VolumeRmArgs),
    /// Remove all unused local volumes
    #[command(override_usage = "berth volume prune [OPTIONS]")]
    Prune(VolumePruneArgs),
}

#[derive(Args, Debug, Default, Clone)]
pub struct VolumeCreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long, value_parser = crate::opts::validate_label)]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", hide = true)]
    pub name_flag: Option<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct VolumeInspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VolumeLsArgs {
    /// Provide filter values (e.g. 'dangling=true')
    #[arg(short = 'f', long = "filter", value_parser = crate::opts::validate_filter)]
    pub filter: Vec<String>,
    /// Pretty-print volumes using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VolumePruneArgs {
    /// Provide filter values (e.g. 'label=<label>')
    #[arg(long, value_parser = crate::opts::validate_filter)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug, Default, Clone)]
pub struct NetworkCreateArgs {
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address")]
    pub aux_address: Vec<String>,
    /// The network from which to copy the configuration
    #[arg(long = "config-from")]
    pub config_from: Option<String>,
    /// Create a configuration only network
    #[arg(long = "config-only")]
    pub config_only: bool,
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_delimiter = ',')]
    pub gateway: Vec<String>,
    /// Create swarm routing-mesh network
    #[arg(long)]
    pub ingress: bool,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_delimiter = ',')]
    pub ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    pub ipam_opt: Vec<String>,
    /// Enable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long, value_parser = crate::opts::validate_label)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Control the network's scope
    #[arg(long)]
    pub scope: Option<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_delimiter = ',')]
    pub subnet: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct NetworkRmArgs {
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NetworkPruneArgs {
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long, value_parser = crate::opts::validate_filter)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug, Default, Clone)]
pub struct NetworkConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long, value_delimiter = ',')]
    pub alias: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_delimiter = ',')]
    pub driver_opt: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long, value_parser = crate::opts::validate_link)]
    pub link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_delimiter = ',')]
    pub link_local_ip: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug, Default, Clone)]
pub struct NetworkDisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct NetworkLsArgs {
    /// Provide filter values (e.g. 'driver=bridge')
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print networks using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct NetworkInspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // each subcommand's arguments built only when it runs
pub enum BuilderCmd {
    /// Remove build cache
    #[command(override_usage = "berth builder prune [OPTIONS]")]
    Prune(BuilderPruneArgs),
}

#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `berth container …`: every container command, and the ones only the group has.
#[derive(Subcommand, Debug)]
#[command(defer = true)] // each subcommand's arguments built only when it runs
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum ContainerGroupCmd {
    #[command(flatten)]
    Common(ContainerCmd),
    /// Remove all stopped containers
    #[command(override_usage = "berth container prune [OPTIONS]")]
    Prune(ContainerPruneArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // each subcommand's arguments built only when it runs
pub enum ContainerCmd {
    /// Run a command in a new container
    #[command(
        disable_help_flag = true,
        override_usage = "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]"
    )]
    Run(RunArgs),
    /// Create a new container
    #[command(
        disable_help_flag = true,
        override_usage = "berth create [OPTIONS] IMAGE [COMMAND] [ARG...]"
    )]
    Create(CreateArgs),
    /// Start one or more stopped containers
    #[command(override_usage = "berth start [OPTIONS] CONTAINER [CONTAINER...]")]
    Start(StartArgs),
    /// Stop one or more running containers
    #[command(override_usage = "berth stop [OPTIONS] CONTAINER [CONTAINER...]")]
    Stop(StopArgs),
    /// Kill one or more running containers
    #[command(override_usage = "berth kill [OPTIONS] CONTAINER [CONTAINER...]")]
    Kill(KillArgs),
    /// Restart one or more containers
    #[command(override_usage = "berth restart [OPTIONS] CONTAINER [CONTAINER...]")]
    Restart(StopArgs),
    /// Remove one or more containers
    #[command(override_usage = "berth rm [OPTIONS] CONTAINER [CONTAINER...]")]
    Rm(RmArgs),
    /// List containers
    #[command(
        visible_alias = "ls",
        alias = "list",
        override_usage = "berth ps [OPTIONS]"
    )]
    Ps(PsArgs),
    /// Fetch the logs of a container
    #[command(override_usage = "berth logs [OPTIONS] CONTAINER")]
    Logs(LogsArgs),
    /// Block until one or more containers stop, then print their exit codes
    #[command(override_usage = "berth wait CONTAINER [CONTAINER...]")]
    Wait(NamesArgs),
    /// Attach local standard input, output, and error streams to a running container
    #[command(override_usage = "berth attach [OPTIONS] CONTAINER")]
    Attach(AttachArgs),
    /// Run a command in a running container
    #[command(override_usage = "berth exec [OPTIONS] CONTAINER COMMAND [ARG...]")]
    Exec(ExecArgs),
    /// Display the running processes of a container
    #[command(override_usage = "berth top CONTAINER [ps OPTIONS]")]
    Top(TopArgs),
    /// Rename a container
    #[command(override_usage = "berth rename CONTAINER NEW_NAME")]
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container
    #[command(override_usage = "berth port CONTAINER [PRIVATE_PORT[/PROTO]]")]
    Port(PortArgs),
    /// Pause all processes within one or more containers
    #[command(override_usage = "berth pause CONTAINER [CONTAINER...]")]
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers
    #[command(override_usage = "berth unpause CONTAINER [CONTAINER...]")]
    Unpause(NamesArgs),
    /// Export a container's filesystem as a tar archive
    #[command(override_usage = "berth export [OPTIONS] CONTAINER")]
    Export(ExportArgs),
    /// Create a new image from a container's changes
    #[command(override_usage = "berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]")]
    Commit(CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem
    #[command(override_usage = "berth diff CONTAINER")]
    Diff(DiffArgs),
    /// Update configuration of one or more containers
    #[command(override_usage = "berth update [OPTIONS] CONTAINER [CONTAINER...]")]
    Update(UpdateArgs),
    /// Display a live stream of container(s) resource usage statistics
    #[command(override_usage = "berth stats [OPTIONS] [CONTAINER...]")]
    Stats(StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(
        override_usage = "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
    )]
    Cp(CpArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // each subcommand's arguments built only when it runs
pub enum ImageCmd {
    /// Build an image from a Dockerfile
    #[command(override_usage = "berth image build [OPTIONS] PATH | URL | -")]
    Build(BuildArgs),
    /// List images
    #[command(
        visible_alias = "list",
        override_usage = "berth image ls [OPTIONS] [REPOSITORY[:TAG]]"
    )]
    Ls(ImagesArgs),
    /// Remove one or more images
    #[command(
        visible_alias = "remove",
        override_usage = "berth image rm [OPTIONS] IMAGE [IMAGE...]"
    )]
    Rm(RmiArgs),
    /// Display detailed information on one or more images
    #[command(override_usage = "berth image inspect [OPTIONS] IMAGE [IMAGE...]")]
    Inspect(ImageInspectArgs),
    /// Show the history of an image
    #[command(override_usage = "berth image history [OPTIONS] IMAGE")]
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    #[command(override_usage = "berth image import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]")]
    Import(ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    #[command(override_usage = "berth image tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")]
    Tag(TagArgs),
    /// Download an image from a registry
    #[command(override_usage = "berth image pull [OPTIONS] NAME[:TAG|@DIGEST]")]
    Pull(PullArgs),
    /// Upload an image to a registry
    #[command(override_usage = "berth image push [OPTIONS] NAME[:TAG]")]
    Push(PushArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    #[command(override_usage = "berth image save [OPTIONS] IMAGE [IMAGE...]")]
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    #[command(override_usage = "berth image load [OPTIONS]")]
    Load(LoadArgs),
    /// Remove unused images
    #[command(override_usage = "berth image prune [OPTIONS]")]
    Prune(ImagePruneArgs),
}

// Flags shared by `run` and `create` (not a doc comment: it would become their `about`, the
// subcommands' arguments being added after their own attributes: `defer`).
#[derive(Args, Debug, Default, Clone)]
pub struct ContainerOpts {
    /// Print usage
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long, value_parser = crate::opts::validate_mount)]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Optional volume driver for the container
    #[arg(long = "volume-driver")]
    pub volume_driver: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Connect a container to a network
    #[arg(long, alias = "net", value_parser = crate::opts::validate_network_opt)]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long, value_parser = crate::opts::validate_link)]
    pub link: Vec<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Runtime to use for this container (an OCI runtime binary such as runc)
    #[arg(long)]
    pub runtime: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Run an init inside the container
    #[arg(long)]
    pub init: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Memory limit
    #[arg(short = 'm', long, value_parser = crate::opts::parse_mem_bytes)]
    pub memory: Option<i64>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true, value_parser = crate::opts::parse_mem_swap_bytes)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_parser = crate::opts::parse_mem_bytes)]
    pub memory_reservation: Option<i64>,
    /// Tune container memory swappiness (0 to 100) (default -1)
    #[arg(long = "memory-swappiness", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub memory_swappiness: Option<i64>,
    /// Kernel memory limit
    #[arg(long = "kernel-memory", value_parser = crate::opts::parse_mem_bytes)]
    pub kernel_memory: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub oom_score_adj: Option<i64>,
    /// Number of CPUs
    #[arg(long, allow_hyphen_values = true, value_parser = crate::opts::parse_nano_cpus)]
    pub cpus: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_rt_period: Option<i64>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight", value_parser = crate::opts::go_parse_uint16)]
    pub blkio_weight: Option<u16>,
    /// Ulimit options
    #[arg(long, value_parser = crate::opts::validate_ulimit)]
    pub ulimit: Vec<String>,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule", value_parser = crate::opts::validate_device_cgroup_rule)]
    pub device_cgroup_rule: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_parser = crate::opts::parse_mem_bytes)]
    pub shm_size: Option<i64>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Sysctl options
    #[arg(long, value_parser = crate::opts::validate_sysctl)]
    pub sysctl: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", allow_hyphen_values = true, value_parser = crate::opts::parse_go_duration_ns)]
    pub health_interval: Option<i64>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub health_retries: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", allow_hyphen_values = true, value_parser = crate::opts::parse_go_duration_ns)]
    pub health_timeout: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", allow_hyphen_values = true, value_parser = crate::opts::parse_go_duration_ns)]
    pub health_start_period: Option<i64>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(required = true, trailing_var_arg = true, value_name = "IMAGE")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = clap::value_parser!(bool))]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub opts: ContainerOpts,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time")]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long = "link")]
    pub link: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Pretty-print containers using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs since timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = clap::value_parser!(bool))]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ps OPTIONS"
    )]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub private_port: Option<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Pretty-print images using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Set metadata for an image
    #[arg(long)]
    pub label: Vec<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Set type of progress output (auto, plain, tty, quiet)
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Remove intermediate containers after a successful build
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = clap::value_parser!(bool), action = ArgAction::Set)]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// Images to consider as cache sources
    #[arg(long = "cache-from", value_delimiter = ',')]
    pub cache_from: Vec<String>,
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
    /// Download all tagged images in the repository
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Max number of search results
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(value_name = "TERM")]
    pub term: String,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long = "human", num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = clap::value_parser!(bool))]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Pretty-print images using a Go template
    #[arg(long)]
    pub format: Option<String>,
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Return JSON for specified type
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImageInspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Archive format: docker (Docker's `docker save` layout) or oci (an OCI image layout)
    #[arg(long, default_value = "docker")]
    pub format: String,
    /// Layer compression of an OCI archive: gzip, zstd or none
    #[arg(long)]
    pub compression: Option<String>,
    /// Save only the given platform variant
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Load only the given platform variant
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = clap::value_parser!(bool), action = ArgAction::Set)]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "SRC")]
    pub src: String,
    #[arg(value_name = "DEST")]
    pub dest: String,
}

#[derive(Args, Debug)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Remove orphans and mark broken images
    #[arg(long)]
    pub repair: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Default)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight", value_parser = crate::opts::go_parse_uint16)]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_quota: Option<i64>,
    /// Limit the CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_rt_period: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, allow_hyphen_values = true, value_parser = crate::opts::parse_nano_cpus)]
    pub cpus: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit
    #[arg(long = "kernel-memory", value_parser = crate::opts::parse_mem_bytes)]
    pub kernel_memory: Option<i64>,
    /// Memory limit
    #[arg(short = 'm', long, value_parser = crate::opts::parse_mem_bytes)]
    pub memory: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_parser = crate::opts::parse_mem_bytes)]
    pub memory_reservation: Option<i64>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true, value_parser = crate::opts::parse_mem_swap_bytes)]
    pub memory_swap: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true, value_parser = crate::opts::go_parse_int)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Pretty-print images using a Go template
    #[arg(long)]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_parser = crate::opts::validate_filter)]
    pub filter: Vec<String>,
    /// Format the output using the given Go template
    #[arg(long)]
    pub format: Option<String>,
}
