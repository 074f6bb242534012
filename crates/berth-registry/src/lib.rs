//! berth's registry: the OCI Distribution Specification v1.1 served over HTTP, with storage
//! behind one driver trait.
//!
//! - [`registry::Registry`]: blobs and uploads; [`manifests`]: manifests, tags, the catalog
//!   and referrers. Written once against [`storage::Driver`].
//! - [`storage`]: the driver trait, its shared test suite, and the drivers
//!   ([`storage::fs::FsDriver`], [`storage::object::ObjectDriver`] for S3).
//! - [`paths`]: the storage layout, drawn in one place.
//! - [`http`]: the routes, parsed at the edge into typed calls.
//! - [`error`]: the spec's error codes and their statuses.
//! - [`auth`]: htpasswd and bearer-token authentication, scopes per repository and action.
//! - [`metrics`]: the Prometheus counters of `/metrics`.
//! - [`tls`]: HTTPS with rustls, HTTP/2 by ALPN.
//! - [`proxy`]: the pull-through cache of an upstream registry.
//! - [`gc`]: garbage collection, safe while serving; [`cache`]: what is remembered.
//! - [`config`]: the YAML configuration (flavors, `_env:` values, distribution's keys).

pub mod auth;
mod batched;
pub mod cache;
pub mod config;
pub mod digest;
pub mod error;
pub mod gc;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod names;
pub mod paths;
pub mod proxy;
pub mod registry;
pub mod storage;
pub mod tls;

pub use registry::{Options, Registry};

use std::sync::Arc;

/// Why the registry could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{0} is not supported yet")]
    NotYet(&'static str),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("auth: {0}")]
    Auth(String),
    #[error("proxy: {0}")]
    Proxy(String),
    #[error("storage: {0}")]
    Storage(std::io::Error),
    #[error(transparent)]
    Registry(#[from] error::RegistryError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Collect garbage in the storage the settings describe (while a registry serves it, or not).
pub async fn collect(
    settings: &config::Settings,
    opts: &gc::GcOptions,
) -> Result<gc::GcReport, ServeError> {
    match &settings.storage {
        config::Storage::Local { path } => {
            let driver = storage::fs::FsDriver::new(path).map_err(ServeError::Storage)?;
            collect_with(driver, opts).await
        }
        config::Storage::S3 { .. } | config::Storage::Azure { .. } => {
            collect_with(object_driver(settings).await?, opts).await
        }
    }
}

async fn collect_with<D: storage::Driver>(
    driver: D,
    opts: &gc::GcOptions,
) -> Result<gc::GcReport, ServeError> {
    let reg = Registry::new(
        driver,
        Options {
            delete_enabled: true,
            readonly: false,
        },
    );
    Ok(reg.gc(opts).await?)
}

/// The authenticator the settings ask for.
fn authenticator(settings: &config::Settings) -> Result<Option<auth::Authenticator>, ServeError> {
    let a = match &settings.auth {
        None => return Ok(None),
        Some(config::Auth::Htpasswd { realm, path }) => auth::Authenticator::htpasswd(realm, path),
        Some(config::Auth::Token {
            realm,
            service,
            issuer,
            rootcertbundle,
            ..
        }) => auth::Authenticator::token(realm, service, issuer, rootcertbundle),
    };
    a.map(Some).map_err(ServeError::Auth)
}

/// `:5000` → `0.0.0.0:5000`; `host:port` as written.
pub fn listen_addr(addr: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_string(),
    }
}

/// Serve the registry the settings describe until `shutdown` resolves.
pub async fn serve(
    settings: &config::Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    match &settings.storage {
        config::Storage::Local { path } => {
            let driver = storage::fs::FsDriver::new(path).map_err(ServeError::Storage)?;
            run(driver, settings, shutdown).await
        }
        config::Storage::S3 { .. } | config::Storage::Azure { .. } => {
            run(object_driver(settings).await?, settings, shutdown).await
        }
    }
}

/// The object-store driver of the settings (S3 or Azure), checked: the bucket or container
/// must answer.
async fn object_driver(
    settings: &config::Settings,
) -> Result<storage::object::ObjectDriver, ServeError> {
    let driver = match &settings.storage {
        config::Storage::S3 {
            bucket,
            region,
            endpoint,
            access_key,
            secret_key,
            root,
        } => storage::object::ObjectDriver::s3(
            bucket,
            region.as_deref(),
            endpoint.as_deref(),
            access_key.as_deref(),
            secret_key.as_deref(),
            root.as_deref(),
        ),
        config::Storage::Azure {
            account,
            container,
            key,
            endpoint,
            root,
        } => storage::object::ObjectDriver::azure(
            account,
            container,
            key.as_deref(),
            endpoint.as_deref(),
            root.as_deref(),
        ),
        config::Storage::Local { .. } => return Err(ServeError::NotYet("this storage")),
    }
    .map_err(ServeError::Storage)?;
    driver.check().await.map_err(ServeError::Storage)?;
    Ok(driver)
}

/// Serve over one driver.
async fn run<D: storage::Driver>(
    driver: D,
    settings: &config::Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let auth = authenticator(settings)?;
    let issuer = match &settings.auth {
        Some(config::Auth::Token {
            service,
            issuer,
            signingkey: Some(key),
            htpasswd: Some(users),
            ..
        }) => Some(auth::TokenIssuer::load(key, users, issuer, service).map_err(ServeError::Auth)?),
        _ => None,
    };
    let mut app = http::App::new(
        Registry::new(
            driver,
            Options {
                delete_enabled: settings.delete,
                readonly: settings.readonly,
            },
        ),
        auth,
        issuer,
    );
    if let Some(p) = &settings.proxy {
        app.upstream = Some(
            proxy::Upstream::new(&p.remoteurl, p.username.as_deref(), p.password.as_deref())
                .map_err(ServeError::Proxy)?,
        );
    }
    let reg = Arc::new(app);
    let tls_cfg = match &settings.tls {
        Some((cert, key)) => Some(tls::server_config(cert, key).map_err(ServeError::Tls)?),
        None => None,
    };
    let addr = listen_addr(&settings.addr);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.clone(),
            source,
        })?;
    tracing::info!(
        "registry listening on {} ({})",
        listener.local_addr().map(|a| a.to_string()).unwrap_or(addr),
        if tls_cfg.is_some() { "https" } else { "http" }
    );
    let router = http::router(reg);
    match tls_cfg {
        Some(cfg) => tls::serve(listener, cfg, router, shutdown).await?,
        None => {
            axum::serve(batched::BatchedListener(listener), router)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    Ok(())
}
