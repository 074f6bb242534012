//! OCI runtime spec generation with Docker's defaults, and the shim protocol.
pub mod shim;
