//! CRI messages <-> domain types. Missing required messages are InvalidArgument here.

pub mod image;
pub mod sandbox;
pub mod container;
pub mod container_view;
