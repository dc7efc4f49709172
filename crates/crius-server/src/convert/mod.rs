//! CRI messages <-> domain types. Missing required messages are InvalidArgument here.

pub mod container;
pub mod container_view;
pub mod image;
pub mod sandbox;
pub mod stats;
