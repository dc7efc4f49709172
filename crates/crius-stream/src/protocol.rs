//! Names on the wire shared by the SPDY and WebSocket flavours (k8s.io/api core/v1 and
//! k8s.io/apimachinery/pkg/util/remotecommand).

/// The SPDY stream header naming a stream's role.
pub const STREAM_TYPE: &str = "streamType";
pub const STREAM_STDIN: &str = "stdin";
pub const STREAM_STDOUT: &str = "stdout";
pub const STREAM_STDERR: &str = "stderr";
pub const STREAM_ERROR: &str = "error";
pub const STREAM_RESIZE: &str = "resize";
pub const STREAM_DATA: &str = "data";
/// Port-forward stream headers.
pub const PORT_HEADER: &str = "port";
pub const REQUEST_ID_HEADER: &str = "requestID";

/// The HTTP headers of the SPDY upgrade's protocol negotiation.
pub const PROTOCOL_VERSION_HEADER: &str = "X-Stream-Protocol-Version";
pub const ACCEPTED_VERSIONS_HEADER: &str = "X-Accepted-Stream-Protocol-Versions";
pub const SPDY_31: &str = "SPDY/3.1";

/// The one port-forward protocol over SPDY.
pub const PORT_FORWARD_V1: &str = "portforward.k8s.io";

/// Remote command protocol versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RcVersion {
    /// channel.k8s.io: plain-text errors, no resize.
    V1,
    /// v2.channel.k8s.io: as v1 (the kubelet fixed a v1 stream bug).
    V2,
    /// v3.channel.k8s.io: terminal resize.
    V3,
    /// v4.channel.k8s.io: the error stream carries a JSON metav1.Status with the exit code.
    V4,
    /// v5.channel.k8s.io: v4 plus, over WebSocket, the close signal for stdin.
    V5,
}

impl RcVersion {
    pub fn name(self) -> &'static str {
        match self {
            RcVersion::V1 => "channel.k8s.io",
            RcVersion::V2 => "v2.channel.k8s.io",
            RcVersion::V3 => "v3.channel.k8s.io",
            RcVersion::V4 => "v4.channel.k8s.io",
            RcVersion::V5 => "v5.channel.k8s.io",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [RcVersion::V5, RcVersion::V4, RcVersion::V3, RcVersion::V2, RcVersion::V1]
            .into_iter()
            .find(|v| v.name() == name)
    }

    pub fn supports_resize(self) -> bool {
        self >= RcVersion::V3
    }

    /// The error stream carries a JSON Status (v4 on), not plain text.
    pub fn json_status(self) -> bool {
        self >= RcVersion::V4
    }
}

/// The remote command protocols offered over SPDY, in the kubelet's order of preference.
pub const SPDY_RC_PROTOCOLS: [&str; 5] =
    ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];

/// What SPDY protocol negotiation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiated {
    /// The first protocol of the client's list the server supports.
    Chosen(String),
    /// The client offered none (a kube 1.0 client; it gets the oldest protocol).
    NotOffered,
    /// Nothing in common: the kubelet answers 403 with the protocols it accepts.
    NoMatch,
}

/// k8s' httpstream.Handshake: the client's list comes in `X-Stream-Protocol-Version` headers
/// (possibly several, possibly comma-separated) and the client's order wins.
pub fn negotiate_spdy<'a>(offered: impl IntoIterator<Item = &'a str>, supported: &[&str]) -> Negotiated {
    let offered: Vec<&str> =
        offered.into_iter().flat_map(|h| h.split(',')).map(str::trim).filter(|p| !p.is_empty()).collect();
    if offered.is_empty() {
        return Negotiated::NotOffered;
    }
    match offered.iter().find(|p| supported.contains(p)) {
        Some(p) => Negotiated::Chosen(p.to_string()),
        None => Negotiated::NoMatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdy_negotiation() {
        let sup = &SPDY_RC_PROTOCOLS;
        assert_eq!(
            negotiate_spdy(["v4.channel.k8s.io,v3.channel.k8s.io"], sup),
            Negotiated::Chosen("v4.channel.k8s.io".into())
        );
        assert_eq!(
            negotiate_spdy(["v9.channel.k8s.io", "v2.channel.k8s.io, channel.k8s.io"], sup),
            Negotiated::Chosen("v2.channel.k8s.io".into())
        );
        assert_eq!(negotiate_spdy([], sup), Negotiated::NotOffered);
        assert_eq!(negotiate_spdy(["nope"], sup), Negotiated::NoMatch);
        assert_eq!(RcVersion::from_name("v3.channel.k8s.io"), Some(RcVersion::V3));
        assert!(RcVersion::V3.supports_resize() && !RcVersion::V2.supports_resize());
        assert!(RcVersion::V5.json_status() && !RcVersion::V3.json_status());
    }
}
