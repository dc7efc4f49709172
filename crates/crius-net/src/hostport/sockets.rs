//! Host ports held by open sockets: bound (and listening, for TCP) for as long as the pod
//! exists, so no other process can take a port whose traffic is forwarded to a pod.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use super::plan::{Hold, ProtocolKey};
use crate::error::NetError;

/// IPPROTO_SCTP.
const SCTP: i32 = 132;

/// An open socket holding one host port; closing it (drop) releases the port.
#[derive(Debug)]
pub struct HeldPort {
    pub hold: Hold,
    /// None where the kernel has no SCTP: the rules still forward, nothing holds the port.
    _socket: Option<Socket>,
}

/// Opens the socket for `hold`. The port in use (by another pod or process) is PortInUse; an
/// address that is not the node's is a BadMapping.
pub fn hold(h: Hold) -> Result<HeldPort, NetError> {
    let domain = if h.address.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let (ty, protocol) = match h.protocol {
        ProtocolKey::Tcp => (Type::STREAM, Protocol::TCP),
        ProtocolKey::Udp => (Type::DGRAM, Protocol::UDP),
        ProtocolKey::Sctp => (Type::STREAM, Protocol::from(SCTP)),
    };
    let address = h.address.to_string();
    let fail = |source: io::Error| NetError::HoldSocket {
        port: h.port,
        protocol: h.protocol.name(),
        address: address.clone(),
        source,
    };
    // socket2 opens with CLOEXEC: plugins and runtimes crius starts do not inherit the hold.
    let socket = match Socket::new(domain, ty, Some(protocol)) {
        Ok(s) => s,
        Err(e) if h.protocol == ProtocolKey::Sctp && is_unsupported(&e) => {
            tracing::warn!(port = h.port, address = %address, "the kernel has no SCTP: the SCTP host port is forwarded but not held");
            return Ok(HeldPort { hold: h, _socket: None });
        }
        Err(e) => return Err(fail(e)),
    };
    if h.address.is_ipv6() {
        // [::] must not also take the IPv4 port: that one is held (or not) on its own.
        socket.set_only_v6(true).map_err(fail)?;
    }
    // No SO_REUSEADDR: a port anybody has bound must be refused, not shared.
    match socket.bind(&SocketAddr::new(h.address, h.port).into()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            return Err(NetError::PortInUse { port: h.port, protocol: h.protocol.name(), address });
        }
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
            return Err(NetError::BadMapping {
                mapping: format!("{address}:{}/{}", h.port, h.protocol.name()),
                reason: format!("hostIP {address} is not an address of this node"),
            });
        }
        Err(e) => return Err(fail(e)),
    }
    if ty == Type::STREAM {
        // Connections never reach it (the DNAT comes first); a backlog of one is plenty.
        socket.listen(1).map_err(fail)?;
    }
    Ok(HeldPort { hold: h, _socket: Some(socket) })
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(nix::libc::EPROTONOSUPPORT | nix::libc::ESOCKTNOSUPPORT | nix::libc::EAFNOSUPPORT))
}

/// Holds every port or none.
pub fn hold_all(holds: &[Hold]) -> Result<Vec<HeldPort>, NetError> {
    // On an error the ports held so far are dropped (closed) with the vector.
    holds.iter().map(|h| hold(*h)).collect()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener, UdpSocket};

    use super::*;

    fn hold_of(protocol: ProtocolKey, address: &str, port: u16) -> Hold {
        Hold { protocol, address: address.parse().unwrap(), port }
    }

    #[test]
    fn held_tcp_port_refuses_others_until_released() {
        let held = hold(hold_of(ProtocolKey::Tcp, "127.0.0.1", 0)).unwrap();
        // Port 0 picks one: read it back to try to take it.
        let port = held._socket.as_ref().unwrap().local_addr().unwrap().as_socket().unwrap().port();
        assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err());
        let err = hold(hold_of(ProtocolKey::Tcp, "0.0.0.0", port)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("host port {port}/tcp on 0.0.0.0 is already in use (held by another pod or process)")
        );
        drop(held);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn udp_port_in_use_by_another_process_is_refused() {
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = other.local_addr().unwrap().port();
        let err = hold(hold_of(ProtocolKey::Udp, "127.0.0.1", port)).unwrap_err();
        assert!(matches!(err, NetError::PortInUse { protocol: "udp", .. }), "{err:?}");
    }

    #[test]
    fn a_foreign_host_ip_is_a_bad_mapping() {
        // TEST-NET-3, never an address of this node; bind fails locally, no traffic is sent.
        let err = hold(hold_of(ProtocolKey::Tcp, "203.0.113.77", 18080)).unwrap_err();
        assert!(err.to_string().contains("not an address of this node"), "{err}");
    }

    #[test]
    fn all_or_none() {
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = other.local_addr().unwrap().port();
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let holds = [hold_of(ProtocolKey::Tcp, "127.0.0.1", free_port), hold_of(ProtocolKey::Tcp, "127.0.0.1", taken)];
        assert!(hold_all(&holds).is_err());
        // The first one was released again.
        TcpListener::bind(("127.0.0.1", free_port)).unwrap();
    }
}
