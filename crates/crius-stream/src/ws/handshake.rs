//! The opening handshake's computations: `Sec-WebSocket-Accept` and the subprotocol choice.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455, 4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// The subprotocols a client offers, from every `Sec-WebSocket-Protocol` header, in its order.
pub fn offered<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    headers
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The first offered subprotocol the server supports, as k8s' wsstream picks it (the client's
/// order wins); a client that offers none gets "" (the pre-v4 binary protocol) if supported.
pub fn negotiate(offered: &[String], supported: &[&str]) -> Option<String> {
    if offered.is_empty() {
        return supported.contains(&"").then(String::new);
    }
    offered.iter().find(|p| supported.contains(&p.as_str())).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_key() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn negotiation_follows_the_client_order() {
        let supported = ["", "v4.channel.k8s.io", "v5.channel.k8s.io", "channel.k8s.io"];
        let offer = offered(["v5.channel.k8s.io, v4.channel.k8s.io", "channel.k8s.io"]);
        assert_eq!(offer, ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]);
        assert_eq!(negotiate(&offer, &supported).as_deref(), Some("v5.channel.k8s.io"));
        let offer = offered(["base64.channel.k8s.io,v4.channel.k8s.io"]);
        assert_eq!(negotiate(&offer, &supported).as_deref(), Some("v4.channel.k8s.io"));
        assert_eq!(negotiate(&offered(["nope"]), &supported), None);
        assert_eq!(negotiate(&[], &supported).as_deref(), Some(""));
        assert_eq!(negotiate(&[], &["v4.channel.k8s.io"]), None);
    }
}
