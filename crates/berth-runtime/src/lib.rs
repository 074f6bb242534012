//! OCI runtime spec generation with Docker's defaults, and the shim protocol.
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod user;
