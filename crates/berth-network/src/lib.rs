//! berth's container networking (issue 5): address management and links.
pub mod ipam;
pub mod link;
pub mod nat;
