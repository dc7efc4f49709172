//! CRI messages <-> domain types. Missing required messages are InvalidArgument here.

pub mod sandbox;
