//! The validated requests the CRI Exec, Attach and PortForward calls hand to the server, kept
//! behind a token until the client connects.

use std::path::PathBuf;

use crate::error::RequestError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardRequest {
    pub pod_sandbox_id: String,
    /// The pod's network namespace (None: the host's, for a host-network pod), resolved by the
    /// CRI call from the sandbox.
    pub netns: Option<PathBuf>,
    /// The ports of the CRI request; WebSocket clients forward exactly these (SPDY clients name
    /// a port per stream).
    pub ports: Vec<u16>,
}

/// The streams a remote command session wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

fn check_streams(kind: &str, container_id: &str, o: StreamOptions) -> Result<(), RequestError> {
    if container_id.is_empty() {
        return Err(RequestError::Invalid(format!("{kind}: missing required container_id")));
    }
    if o.tty && o.stderr {
        // The kubelet's rule: a terminal multiplexes stderr into stdout.
        return Err(RequestError::Invalid(format!("{kind}: tty and stderr cannot both be true")));
    }
    if !o.stdin && !o.stdout && !o.stderr {
        return Err(RequestError::Invalid(format!("{kind}: one of stdin, stdout, or stderr must be set")));
    }
    Ok(())
}

impl ExecRequest {
    pub fn options(&self) -> StreamOptions {
        StreamOptions { tty: self.tty, stdin: self.stdin, stdout: self.stdout, stderr: self.stderr }
    }

    pub fn validate(&self) -> Result<(), RequestError> {
        check_streams("Exec", &self.container_id, self.options())?;
        if self.cmd.is_empty() {
            return Err(RequestError::Invalid("Exec: cmd must not be empty".into()));
        }
        Ok(())
    }
}

impl AttachRequest {
    pub fn options(&self) -> StreamOptions {
        StreamOptions { tty: self.tty, stdin: self.stdin, stdout: self.stdout, stderr: self.stderr }
    }

    pub fn validate(&self) -> Result<(), RequestError> {
        check_streams("Attach", &self.container_id, self.options())
    }
}

impl PortForwardRequest {
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.pod_sandbox_id.is_empty() {
            return Err(RequestError::Invalid("PortForward: missing required pod_sandbox_id".into()));
        }
        if self.ports.contains(&0) {
            return Err(RequestError::Invalid("PortForward: port 0 cannot be forwarded".into()));
        }
        Ok(())
    }

    /// CRI ports (int32) as TCP ports.
    pub fn ports_from_cri(ports: &[i32]) -> Result<Vec<u16>, RequestError> {
        ports
            .iter()
            .map(|p| {
                u16::try_from(*p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| RequestError::Invalid(format!("PortForward: {p} is not a TCP port (1-65535)")))
            })
            .collect()
    }
}

/// A request waiting behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

impl Pending {
    /// The URL path segment for this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> ExecRequest {
        ExecRequest {
            container_id: "c1".into(),
            cmd: vec!["sh".into()],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        }
    }

    #[test]
    fn exec_rules() {
        assert!(exec().validate().is_ok());
        assert!(ExecRequest { container_id: String::new(), ..exec() }.validate().is_err());
        assert!(ExecRequest { cmd: vec![], ..exec() }.validate().is_err());
        assert!(ExecRequest { tty: true, ..exec() }.validate().is_err());
        assert!(ExecRequest { stdin: false, stdout: false, stderr: false, ..exec() }.validate().is_err());
        let attach = AttachRequest { container_id: "c".into(), tty: true, stdin: true, stdout: true, stderr: false };
        assert!(attach.validate().is_ok());
    }

    #[test]
    fn port_rules() {
        assert_eq!(PortForwardRequest::ports_from_cri(&[80, 65535]), Ok(vec![80, 65535]));
        assert!(PortForwardRequest::ports_from_cri(&[0]).is_err());
        assert!(PortForwardRequest::ports_from_cri(&[70000]).is_err());
        assert!(PortForwardRequest::ports_from_cri(&[-1]).is_err());
        let pf = PortForwardRequest { pod_sandbox_id: String::new(), netns: None, ports: vec![] };
        assert!(pf.validate().is_err());
    }
}
