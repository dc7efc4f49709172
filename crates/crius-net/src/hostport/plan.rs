//! From a pod's port mappings and IPs to what the hostport manager makes: DNAT rules per IP
//! family, and the host sockets that hold the ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crius_core::sandbox::model::{PortMapping, Protocol};

use crate::cni::args::protocol_name;
use crate::error::NetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The nftables family keyword.
    pub fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }

    pub const ALL: [Family; 2] = [Family::V4, Family::V6];
}

/// hostPort on `host_ip` (every local address when None) to pod_ip:container_port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Forward {
    pub family: Family,
    pub protocol: ProtocolKey,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub pod_ip: IpAddr,
    pub container_port: u16,
}

/// Protocol with an order, for sorting and de-duplicating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolKey {
    Tcp,
    Udp,
    Sctp,
}

impl From<Protocol> for ProtocolKey {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => ProtocolKey::Tcp,
            Protocol::Udp => ProtocolKey::Udp,
            Protocol::Sctp => ProtocolKey::Sctp,
        }
    }
}

impl ProtocolKey {
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKey::Tcp => "tcp",
            ProtocolKey::Udp => "udp",
            ProtocolKey::Sctp => "sctp",
        }
    }
}

/// A socket to hold: `address` is the hostIP, or the family's unspecified address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hold {
    pub protocol: ProtocolKey,
    pub address: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodPlan {
    pub forwards: Vec<Forward>,
    pub holds: Vec<Hold>,
}

impl PodPlan {
    pub fn is_empty(&self) -> bool {
        self.forwards.is_empty()
    }

    pub fn forwards_of(&self, family: Family) -> impl Iterator<Item = &Forward> {
        self.forwards.iter().filter(move |f| f.family == family)
    }
}

fn describe(m: &PortMapping) -> String {
    let host = if m.host_ip.is_empty() { String::new() } else { format!("{}:", m.host_ip) };
    format!("{host}{}->{}/{}", m.host_port, m.container_port, protocol_name(m.protocol))
}

/// The plan for one pod. Mappings with hostPort <= 0 are skipped (not host ports). For each
/// mapping: with a hostIP, only that address and the pod's first IP of its family; with none
/// (or 0.0.0.0 / ::), every local address of each family the pod has an IP of, to its first IP
/// of that family.
pub fn plan(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<PodPlan, NetError> {
    let first_ip = |family: Family| pod_ips.iter().find(|ip| Family::of(ip) == family).copied();
    let mut plan = PodPlan::default();
    for m in mappings.iter().filter(|m| m.host_port > 0) {
        let bad = |reason: String| NetError::BadMapping { mapping: describe(m), reason };
        let host_port = u16::try_from(m.host_port).map_err(|_| bad("hostPort must be at most 65535".into()))?;
        let container_port = u16::try_from(m.container_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("containerPort must be between 1 and 65535".into()))?;
        let host_ip: Option<IpAddr> = match m.host_ip.trim() {
            "" => None,
            text => Some(text.parse().map_err(|_| bad(format!("hostIP {text:?} is not an IP address")))?),
        };
        let (families, host_ip) = match host_ip {
            Some(ip) if ip.is_ipv6() && ip.is_loopback() => {
                return Err(bad(format!(
                    "hostIP {ip} cannot be forwarded to a pod: the kernel routes IPv6 loopback traffic only on lo \
                     (IPv4 has route_localnet, IPv6 has nothing like it); use 127.0.0.1, or no hostIP"
                )));
            }
            None => (Family::ALL.to_vec(), None),
            Some(ip) if ip.is_unspecified() => (vec![Family::of(&ip)], None),
            Some(ip) => (vec![Family::of(&ip)], Some(ip)),
        };
        let protocol = ProtocolKey::from(m.protocol);
        let mut mapped = false;
        for family in families {
            let Some(pod_ip) = first_ip(family) else { continue };
            mapped = true;
            let forward = Forward { family, protocol, host_ip, host_port, pod_ip, container_port };
            let clash = plan.forwards.iter().find(|f| {
                f.family == family && f.protocol == protocol && f.host_port == host_port && overlaps(f.host_ip, host_ip)
            });
            match clash {
                Some(f) if *f == forward => continue,
                Some(_) => return Err(bad(format!("host port {host_port}/{} is mapped twice", protocol.name()))),
                None => {}
            }
            plan.forwards.push(forward);
            plan.holds.push(Hold {
                protocol,
                address: host_ip.unwrap_or_else(|| family.unspecified()),
                port: host_port,
            });
        }
        if !mapped {
            let reason = match host_ip {
                Some(ip) => {
                    format!("the pod has no {} address to forward hostIP {ip} to", family_name(Family::of(&ip)))
                }
                None if pod_ips.is_empty() => "the pod has no IP address to forward to".to_string(),
                None => format!("the pod has no {} address", family_name(Family::of(&family_of_text(&m.host_ip)))),
            };
            return Err(bad(reason));
        }
    }
    Ok(plan)
}

fn family_of_text(text: &str) -> IpAddr {
    text.trim().parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// Two host addresses of one family catch the same traffic when either is "every address".
fn overlaps(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(protocol: Protocol, host_port: i32, container_port: i32, host_ip: &str) -> PortMapping {
        PortMapping { protocol, container_port, host_port, host_ip: host_ip.into() }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn dual_stack_without_host_ip_maps_each_family_to_its_first_ip() {
        let p = plan(&[m(Protocol::Tcp, 8080, 80, "")], &ips(&["10.0.0.5", "fd00::5", "10.0.0.6"])).unwrap();
        assert_eq!(p.forwards.len(), 2);
        assert_eq!(p.forwards[0].pod_ip.to_string(), "10.0.0.5");
        assert_eq!(p.forwards[1].pod_ip.to_string(), "fd00::5");
        assert_eq!(p.holds.iter().map(|h| h.address.to_string()).collect::<Vec<_>>(), ["0.0.0.0", "::"]);
    }

    #[test]
    fn host_ip_picks_the_family_and_only_that_address() {
        let pod = ips(&["10.0.0.5", "fd00::5"]);
        let p = plan(&[m(Protocol::Udp, 53, 5353, "fd00::1")], &pod).unwrap();
        assert_eq!(p.forwards.len(), 1);
        assert_eq!(p.forwards[0].family, Family::V6);
        assert_eq!(p.forwards[0].host_ip, Some("fd00::1".parse().unwrap()));
        assert_eq!(p.holds[0].address.to_string(), "fd00::1");
        let p = plan(&[m(Protocol::Sctp, 9, 9, "0.0.0.0")], &pod).unwrap();
        assert_eq!(p.forwards.len(), 1);
        assert_eq!(p.forwards[0].host_ip, None);
        assert_eq!(p.forwards[0].family, Family::V4);
    }

    #[test]
    fn single_stack_pod_maps_only_its_family() {
        let p = plan(&[m(Protocol::Tcp, 80, 80, "")], &ips(&["10.0.0.5"])).unwrap();
        assert_eq!(p.forwards.len(), 1);
        assert_eq!(p.holds.len(), 1);
    }

    #[test]
    fn non_host_ports_and_duplicates() {
        let pod = ips(&["10.0.0.5"]);
        let p = plan(&[m(Protocol::Tcp, 0, 80, ""), m(Protocol::Tcp, -1, 80, "")], &pod).unwrap();
        assert!(p.is_empty());
        let p = plan(&[m(Protocol::Tcp, 81, 80, ""), m(Protocol::Tcp, 81, 80, "")], &pod).unwrap();
        assert_eq!(p.forwards.len(), 1);
        // Same port, different protocols: two forwards.
        let p = plan(&[m(Protocol::Tcp, 81, 80, ""), m(Protocol::Udp, 81, 80, "")], &pod).unwrap();
        assert_eq!(p.forwards.len(), 2);
        // Two specific addresses on one port are fine; a wildcard and a specific one clash.
        let two = [m(Protocol::Tcp, 81, 80, "127.0.0.1"), m(Protocol::Tcp, 81, 80, "127.0.0.2")];
        assert_eq!(plan(&two, &pod).unwrap().forwards.len(), 2);
        let err = plan(&[m(Protocol::Tcp, 81, 80, ""), m(Protocol::Tcp, 81, 90, "127.0.0.1")], &pod).unwrap_err();
        assert!(err.to_string().contains("mapped twice"), "{err}");
    }

    #[test]
    fn bad_mappings_say_what_is_wrong() {
        let pod = ips(&["10.0.0.5"]);
        let cases = [
            (m(Protocol::Tcp, 70000, 80, ""), "at most 65535"),
            (m(Protocol::Tcp, 80, 0, ""), "containerPort"),
            (m(Protocol::Tcp, 80, 70000, ""), "containerPort"),
            (m(Protocol::Tcp, 80, 80, "nope"), "not an IP address"),
            (m(Protocol::Tcp, 80, 80, "fd00::1"), "no IPv6 address"),
            (m(Protocol::Tcp, 80, 80, "::1"), "use 127.0.0.1"),
        ];
        for (mapping, want) in cases {
            let err = plan(std::slice::from_ref(&mapping), &pod).unwrap_err().to_string();
            assert!(err.contains(want), "{mapping:?}: {err}");
        }
        let err = plan(&[m(Protocol::Tcp, 80, 80, "")], &[]).unwrap_err().to_string();
        assert!(err.contains("no IP address"), "{err}");
        assert!(err.starts_with("port mapping 80->80/tcp"), "{err}");
    }
}
