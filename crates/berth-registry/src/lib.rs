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
//! - [`config`]: the YAML configuration (flavors, `_env:` values, distribution's keys).

pub mod config;
pub mod digest;
pub mod error;
pub mod http;
pub mod manifests;
pub mod names;
pub mod paths;
pub mod registry;
pub mod storage;

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
    #[error("storage: {0}")]
    Storage(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
    if settings.tls.is_some() {
        return Err(ServeError::NotYet("TLS (http.tls)"));
    }
    if settings.auth.is_some() {
        return Err(ServeError::NotYet("authentication (auth)"));
    }
    if settings.proxy.is_some() {
        return Err(ServeError::NotYet("the pull-through cache (proxy)"));
    }
    match &settings.storage {
        config::Storage::Local { path } => {
            let driver = storage::fs::FsDriver::new(path).map_err(ServeError::Storage)?;
            run(driver, settings, shutdown).await
        }
        config::Storage::S3 {
            bucket,
            region,
            endpoint,
            access_key,
            secret_key,
            root,
        } => {
            let driver = storage::object::ObjectDriver::s3(
                bucket,
                region.as_deref(),
                endpoint.as_deref(),
                access_key.as_deref(),
                secret_key.as_deref(),
                root.as_deref(),
            )
            .map_err(ServeError::Storage)?;
            driver.check().await.map_err(ServeError::Storage)?;
            run(driver, settings, shutdown).await
        }
    }
}

/// Serve over one driver.
async fn run<D: storage::Driver>(
    driver: D,
    settings: &config::Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let reg = Arc::new(Registry::new(
        driver,
        Options {
            delete_enabled: settings.delete,
            readonly: settings.readonly,
        },
    ));
    let addr = listen_addr(&settings.addr);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.clone(),
            source,
        })?;
    tracing::info!(
        "registry listening on {}",
        listener.local_addr().map(|a| a.to_string()).unwrap_or(addr)
    );
    axum::serve(listener, http::router(reg))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
