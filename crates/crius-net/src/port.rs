//! crius-net's adapters as crius-core ports, and the mapping of its errors to domain kinds.
//!
//! Kinds: a bad mapping or request is InvalidArgument; a host port already held or in use is
//! FailedPrecondition (the request is fine, the node is not in a state to grant it: the port is
//! freed elsewhere, not by changing the request — AlreadyExists would say the pod itself exists);
//! no network config or a missing plugin is FailedPrecondition (the node is not set up); a
//! plugin's failure, timeout or bad result, nft and I/O failures are Internal, with the plugin's
//! own message and code in the text.

use std::net::IpAddr;

use crius_core::ports::network::{
    HostPortPod, HostPortResyncReport, HostPorts, NetworkReadiness, NetworkRequest, NetworkStatus, PodNetwork,
};
use crius_core::sandbox::model::PortMapping;
use crius_core::{Error, ErrorKind};

use crate::cni::CniNetwork;
use crate::error::NetError;
use crate::hostport::HostPortManager;

impl NetError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetError::InvalidRequest { .. } | NetError::BadMapping { .. } => ErrorKind::InvalidArgument,
            NetError::PortInUse { .. } | NetError::NoNetworkConfig { .. } | NetError::PluginNotFound { .. } => {
                ErrorKind::FailedPrecondition
            }
            NetError::BadConfig { .. } | NetError::ReadConfig { .. } => ErrorKind::FailedPrecondition,
            NetError::Spawn { .. }
            | NetError::Plugin { .. }
            | NetError::PluginTimeout { .. }
            | NetError::BadResult { .. }
            | NetError::Cache { .. }
            | NetError::BadCache { .. }
            | NetError::HoldSocket { .. }
            | NetError::Tool { .. }
            | NetError::Nft { .. }
            | NetError::NftOutput { .. }
            | NetError::Write { .. } => ErrorKind::Internal,
        }
    }
}

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        match e.kind() {
            ErrorKind::Internal => Error::internal("pod network", e),
            kind => Error::new(kind, e.to_string()),
        }
    }
}

impl PodNetwork for CniNetwork {
    fn setup(&self, request: &NetworkRequest) -> crius_core::Result<NetworkStatus> {
        CniNetwork::setup(self, request)
            .map_err(|e| Error::from(e).context(format!("setting up the network of pod sandbox {}", request.pod_id)))
    }

    fn check(&self, request: &NetworkRequest) -> crius_core::Result<()> {
        CniNetwork::check(self, request)
            .map_err(|e| Error::from(e).context(format!("checking the network of pod sandbox {}", request.pod_id)))
    }

    fn teardown(&self, request: &NetworkRequest) -> crius_core::Result<()> {
        CniNetwork::teardown(self, request)
            .map_err(|e| Error::from(e).context(format!("tearing down the network of pod sandbox {}", request.pod_id)))
    }

    fn teardown_unknown(&self, known: &[String]) -> crius_core::Result<Vec<String>> {
        CniNetwork::teardown_unknown(self, known)
            .map_err(|e| Error::from(e).context("tearing down the networks of pods crius has no record of"))
    }

    fn status(&self) -> NetworkReadiness {
        CniNetwork::status(self)
    }
}

impl HostPorts for HostPortManager {
    fn add(&self, pod_id: &str, mappings: &[PortMapping], pod_ips: &[IpAddr]) -> crius_core::Result<()> {
        HostPortManager::add(self, pod_id, mappings, pod_ips)
            .map_err(|e| Error::from(e).context(format!("forwarding the host ports of pod sandbox {pod_id}")))
    }

    fn remove(&self, pod_id: &str, _mappings: &[PortMapping]) -> crius_core::Result<()> {
        HostPortManager::remove(self, pod_id)
            .map_err(|e| Error::from(e).context(format!("removing the host ports of pod sandbox {pod_id}")))
    }

    fn resync(&self, live: &[HostPortPod]) -> crius_core::Result<HostPortResyncReport> {
        HostPortManager::resync(self, live).map_err(|e| Error::from(e).context("resyncing host ports"))
    }
}

/// Host ports when the CNI chain's portmap plugin forwards them (`hostport_manager = "cni"`):
/// nothing to do here, so the domain calls the same port either way.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHostPorts;

impl HostPorts for NoHostPorts {
    fn add(&self, _pod_id: &str, _mappings: &[PortMapping], _pod_ips: &[IpAddr]) -> crius_core::Result<()> {
        Ok(())
    }

    fn remove(&self, _pod_id: &str, _mappings: &[PortMapping]) -> crius_core::Result<()> {
        Ok(())
    }

    fn resync(&self, _live: &[HostPortPod]) -> crius_core::Result<HostPortResyncReport> {
        Ok(HostPortResyncReport::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let in_use = NetError::PortInUse { port: 80, protocol: "tcp", address: "0.0.0.0".into() };
        let err = Error::from(in_use);
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(err.to_string(), "host port 80/tcp on 0.0.0.0 is already in use (held by another pod or process)");
        let bad = NetError::BadMapping { mapping: "80->0/tcp".into(), reason: "x".into() };
        assert_eq!(Error::from(bad).kind(), ErrorKind::InvalidArgument);
        let plugin = NetError::Plugin {
            plugin: "bridge".into(),
            command: "ADD",
            code: 11,
            msg: "boom".into(),
            details: String::new(),
        };
        let err = Error::from(plugin).context("setting up the network of pod sandbox p");
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(
            err.to_string(),
            "setting up the network of pod sandbox p: pod network: CNI plugin bridge ADD failed (code 11): boom"
        );
        let none = NetError::NoNetworkConfig { dirs: "/etc/cni/net.d".into(), detail: String::new() };
        assert_eq!(Error::from(none).kind(), ErrorKind::FailedPrecondition);
    }

    #[test]
    fn no_host_ports_is_a_no_op() {
        let ports: &dyn HostPorts = &NoHostPorts;
        ports.add("p", &[], &[]).unwrap();
        ports.remove("p", &[]).unwrap();
        assert_eq!(ports.resync(&[]).unwrap(), HostPortResyncReport::default());
    }
}
