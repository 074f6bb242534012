//! Command implementations, one module per command group.

mod attach;
mod build;
mod build_context;
mod build_progress;
mod container;
mod cp;
mod events;
mod image;
mod images;
mod inspect;
mod login;
mod logs;
mod network;
mod prune;
mod ps;
mod run;
mod stats;
mod system;
mod transfer;
mod update;
mod volume;

use crate::cli::{
    BuilderCmd, Cmd, ContainerCmd, ContainerGroupCmd, ImageCmd, NetworkCmd, SystemCmd, VolumeCmd,
};
use crate::client::Client;
use crate::error::Result;

pub async fn dispatch(host: Option<String>, cmd: Cmd) -> Result<i32> {
    if let Cmd::Version(a) = &cmd {
        return system::version(host, a).await;
    }
    // build checks its flags and reads its context before it contacts the daemon, as docker.
    let cmd = match cmd {
        Cmd::Build(a) | Cmd::ImageGroup(ImageCmd::Build(a)) => return build::build(host, a).await,
        cmd => cmd,
    };
    // update refuses no flags before it contacts the daemon, as docker.
    if let Cmd::Container(ContainerCmd::Update(a))
    | Cmd::ContainerGroup(ContainerGroupCmd::Common(ContainerCmd::Update(a))) = &cmd
    {
        update::check_flags(a)?;
    }
    let c = Client::connect_lazy(host)?;
    match cmd {
        Cmd::Container(cc) | Cmd::ContainerGroup(ContainerGroupCmd::Common(cc)) => {
            container_cmd(&c, cc).await
        }
        Cmd::ContainerGroup(ContainerGroupCmd::Prune(a)) => prune::container_prune(&c, a).await,
        Cmd::ImageGroup(ic) => match ic {
            ImageCmd::Build(_) => unreachable!("handled above"),
            ImageCmd::Ls(a) => images::images(&c, a).await,
            ImageCmd::Rm(a) => image::rmi(&c, a).await,
            ImageCmd::Inspect(a) => inspect::image_inspect(&c, a).await,
            ImageCmd::History(a) => images::history(&c, a).await,
            ImageCmd::Import(a) => image::import(&c, a).await,
            ImageCmd::Tag(a) => image::tag(&c, a).await,
            ImageCmd::Pull(a) => image::pull_cmd(&c, a).await,
            ImageCmd::Push(a) => image::push(&c, a).await,
            ImageCmd::Save(a) => transfer::save(&c, a).await,
            ImageCmd::Load(a) => transfer::load(&c, a).await,
            ImageCmd::Prune(a) => prune::image_prune(&c, a).await,
        },
        Cmd::Save(a) => transfer::save(&c, a).await,
        Cmd::Load(a) => transfer::load(&c, a).await,
        Cmd::Builder(BuilderCmd::Prune(a)) => prune::builder_prune(&c, a).await,
        Cmd::System(sc) => match sc {
            SystemCmd::Df(a) => prune::df(&c, a).await,
            SystemCmd::Prune(a) => prune::system_prune(&c, a).await,
            SystemCmd::Check(a) => prune::check(&c, a).await,
            SystemCmd::Info(a) => system::info(&c, a).await,
            SystemCmd::Events(a) => events::events(&c, a).await,
        },
        Cmd::Build(_) => unreachable!("handled above"),
        Cmd::Images(a) => images::images(&c, a).await,
        Cmd::Network(nc) => match nc {
            NetworkCmd::Ls(a) => network::ls(&c, a).await,
            NetworkCmd::Inspect(a) => inspect::network_inspect(&c, a).await,
            NetworkCmd::Create(a) => network::create(&c, a).await,
            NetworkCmd::Rm(a) => network::rm(&c, a).await,
            NetworkCmd::Prune(a) => network::prune(&c, a).await,
            NetworkCmd::Connect(a) => network::connect(&c, a).await,
            NetworkCmd::Disconnect(a) => network::disconnect(&c, a).await,
        },
        Cmd::Volume(vc) => match vc {
            VolumeCmd::Create(a) => volume::create(&c, a).await,
            VolumeCmd::Inspect(a) => inspect::volume_inspect(&c, a).await,
            VolumeCmd::Ls(a) => volume::ls(&c, a).await,
            VolumeCmd::Rm(a) => volume::rm(&c, a).await,
            VolumeCmd::Prune(a) => volume::prune(&c, a).await,
        },
        Cmd::Import(a) => image::import(&c, a).await,
        Cmd::Tag(a) => image::tag(&c, a).await,
        Cmd::Pull(a) => image::pull_cmd(&c, a).await,
        Cmd::Push(a) => image::push(&c, a).await,
        Cmd::Login(a) => login::login(&c, a).await,
        Cmd::Logout(a) => login::logout(a).await,
        Cmd::Search(a) => login::search(&c, a).await,
        Cmd::Rmi(a) => image::rmi(&c, a).await,
        Cmd::History(a) => images::history(&c, a).await,
        Cmd::Inspect(a) => inspect::inspect(&c, a).await,
        Cmd::Info(a) => system::info(&c, a).await,
        Cmd::Events(a) => events::events(&c, a).await,
        Cmd::Version(_) => unreachable!("handled above"),
    }
}

async fn container_cmd(c: &Client, cmd: ContainerCmd) -> Result<i32> {
    match cmd {
        ContainerCmd::Run(a) => run::run(c, a).await,
        ContainerCmd::Create(a) => run::create(c, a).await,
        ContainerCmd::Start(a) => attach::start(c, a).await,
        ContainerCmd::Stop(a) => container::stop(c, a, false).await,
        ContainerCmd::Restart(a) => container::stop(c, a, true).await,
        ContainerCmd::Kill(a) => container::kill(c, a).await,
        ContainerCmd::Rm(a) => container::rm(c, a).await,
        ContainerCmd::Ps(a) => ps::ps(c, a).await,
        ContainerCmd::Logs(a) => logs::logs(c, a).await,
        ContainerCmd::Wait(a) => container::wait(c, a).await,
        ContainerCmd::Attach(a) => attach::attach(c, a).await,
        ContainerCmd::Exec(a) => attach::exec(c, a).await,
        ContainerCmd::Top(a) => container::top(c, a).await,
        ContainerCmd::Port(a) => container::port(c, a).await,
        ContainerCmd::Rename(a) => container::rename(c, a).await,
        ContainerCmd::Pause(a) => container::simple(c, a, "pause").await,
        ContainerCmd::Unpause(a) => container::simple(c, a, "unpause").await,
        ContainerCmd::Export(a) => transfer::export(c, a).await,
        ContainerCmd::Commit(a) => transfer::commit(c, a).await,
        ContainerCmd::Diff(a) => transfer::diff(c, a).await,
        ContainerCmd::Update(a) => update::update(c, a).await,
        ContainerCmd::Stats(a) => stats::stats(c, a).await,
        ContainerCmd::Cp(a) => cp::cp(c, a).await,
    }
}

/// Run `f` for each name; print errors to stderr as they happen; exit 1 if any failed.
pub(crate) async fn for_each<F, Fut>(names: &[String], mut f: F) -> Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut failed = false;
    for n in names {
        if let Err(e) = f(n.clone()).await {
            eprintln!("{e}");
            failed = true;
        }
    }
    Ok(if failed { 1 } else { 0 })
}
