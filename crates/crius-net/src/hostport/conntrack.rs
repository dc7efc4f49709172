//! Stale UDP flows. Conntrack picks a flow's NAT at its first packet, so a UDP flow that reached
//! a host port before the port's DNAT existed (or that went to the pod the port served before)
//! keeps bypassing the new rules until its entry expires, and a client that keeps sending never
//! reaches the pod. The portmap plugin and kube-proxy delete such entries when a UDP port is
//! mapped; so does crius, with conntrack(8) from conntrack-tools.

use std::collections::BTreeSet;
use std::process::Command;

use super::plan::{Family, Forward, ProtocolKey};

const CONNTRACK: &str = "conntrack";

/// The arguments that delete the UDP flows to `host_port` in `family`.
pub(crate) fn delete_argv(family: Family, host_port: u16) -> Vec<String> {
    let f = match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    ["-D", "-f", f, "-p", "udp", "--orig-port-dst", &host_port.to_string()].map(str::to_string).to_vec()
}

/// Deletes the flows to every UDP host port of `forwards`. Failures are logged, not returned:
/// the mapping works for new flows either way.
pub(crate) fn forget_udp_flows(pod_id: &str, forwards: &[Forward]) {
    let ports: BTreeSet<(Family, u16)> =
        forwards.iter().filter(|f| f.protocol == ProtocolKey::Udp).map(|f| (f.family, f.host_port)).collect();
    for (family, port) in ports {
        let argv = delete_argv(family, port);
        match Command::new(CONNTRACK).args(&argv).output() {
            Ok(out) if out.status.success() => {
                tracing::debug!(pod_id, port, "deleted stale UDP conntrack entries");
            }
            // Nothing matched: conntrack says so and exits 1.
            Ok(out) if String::from_utf8_lossy(&out.stderr).contains("0 flow entries") => {}
            Ok(out) => tracing::warn!(
                pod_id,
                port,
                error = %String::from_utf8_lossy(&out.stderr).trim(),
                "deleting stale UDP conntrack entries failed; old flows to this port may miss the pod until they expire"
            ),
            Err(e) => tracing::warn!(
                pod_id,
                port,
                error = %e,
                "cannot run conntrack (install conntrack); old UDP flows to this port may miss the pod until they expire"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_per_family() {
        assert_eq!(delete_argv(Family::V4, 53), ["-D", "-f", "ipv4", "-p", "udp", "--orig-port-dst", "53"]);
        assert_eq!(delete_argv(Family::V6, 8053)[2], "ipv6");
    }
}
