//! What the daemon and the monitor say to each other.
//!
//! - On the monitor's stdin: one line, the [`MonitorSpec`] as JSON; later one line, [`COMMIT`].
//! - On its stdout: one line, the [`Ready`] report.
//! - On its unix socket (one request per connection, newline-delimited JSON): a [`Request`]
//!   `{"v":1,"op":"status"}` and a [`Response`]. The version is checked first so a daemon and a
//!   monitor of different releases fail clearly rather than misread each other.
//!
//! Container ops (version 1 too; a monitor without them answers "unknown or malformed op"):
//! - `{"v":1,"op":"create_container","launch":{ContainerLaunch}}` runs `runtime create` with the
//!   container's stdio held by the monitor; the reply carries `"container":{"pid":..,"start_time":..}`.
//! - `{"v":1,"op":"start_container","container_id":".."}` runs `runtime start`.
//! - `{"v":1,"op":"reopen_log","container_id":".."}` reopens the container's CRI log file.
//! - `{"v":1,"op":"attach","container_id":"..","stdin":..,"stdout":..,"stderr":..}`: after the
//!   reply, the connection carries the frames of [`crate::attach_wire`] both ways.
//!
//! When a container exits the monitor writes its `ContainerExit` to `<run_dir>/exits/<id>`.

use crius_core::ports::MonitorSpec;
use crius_core::ports::container::ContainerLaunch;
use crius_core::sandbox::model::{PodResources, ProcRef};
use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// The line that tells the monitor its pod has been recorded.
pub const COMMIT: &str = "commit";
/// Longest line either side accepts.
pub const MAX_LINE: usize = 64 * 1024;

/// A request on the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Whether the pod init still runs.
    Status,
    /// Kill the pod's containers (recording their exits) and the pod init, unpin the namespaces,
    /// remove the cgroup and the socket, and exit.
    Shutdown,
    /// `runtime create`; the monitor holds the container's stdio and becomes its reaper.
    CreateContainer { launch: ContainerLaunch },
    /// `runtime start`.
    StartContainer { container_id: String },
    /// Reopen the container's log file (the kubelet renamed it).
    ReopenLog { container_id: String },
    /// Attach to the container's stdio: after an ok reply the connection carries
    /// [`crate::attach_wire`] frames until the container's output ends.
    Attach { container_id: String, stdin: bool, stdout: bool, stderr: bool },
}

impl Op {
    /// The op's name on the wire (for messages).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Status => "status",
            Op::Shutdown => "shutdown",
            Op::CreateContainer { .. } => "create_container",
            Op::StartContainer { .. } => "start_container",
            Op::ReopenLog { .. } => "reopen_log",
            Op::Attach { .. } => "attach",
        }
    }
}

impl Request {
    pub fn new(op: Op) -> Self {
        Request { v: PROTOCOL_VERSION, op }
    }
}

/// How the pod init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitExit {
    Code(i32),
    Signal(i32),
}

/// A reply on the socket. Fields that do not apply to the request are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_running: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_exit: Option<InitExit>,
    /// The container's init, in reply to create_container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ProcRef>,
}

impl Response {
    pub fn ok() -> Self {
        Response { v: PROTOCOL_VERSION, ok: true, ..Default::default() }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Response { v: PROTOCOL_VERSION, ok: false, error: Some(message.into()), ..Default::default() }
    }
}

/// Only the version, read before anything else.
#[derive(Deserialize)]
struct Envelope {
    v: Option<u32>,
}

/// Parses a request line; the error is the message to send back.
pub fn decode_request(line: &str) -> Result<Op, String> {
    let envelope: Envelope = serde_json::from_str(line).map_err(|e| format!("request is not a JSON object: {e}"))?;
    match envelope.v {
        Some(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(format!("protocol version {v} is not supported; this monitor speaks {PROTOCOL_VERSION}"));
        }
        None => return Err(format!("request has no protocol version (\"v\"); this monitor speaks {PROTOCOL_VERSION}")),
    }
    serde_json::from_str::<Request>(line).map(|r| r.op).map_err(|e| format!("unknown or malformed op: {e}"))
}

/// Parses the monitor's reply line (without its newline), checking its protocol version.
pub fn decode_response(line: &[u8]) -> Result<Response, String> {
    if line.is_empty() {
        return Err("the monitor closed the connection without a reply".into());
    }
    let text = String::from_utf8_lossy(line);
    let response: Response =
        serde_json::from_str(&text).map_err(|e| format!("the monitor's reply is not valid ({e}): {text:?}"))?;
    if response.v != PROTOCOL_VERSION {
        return Err(format!("the monitor speaks protocol version {}, crius speaks {PROTOCOL_VERSION}", response.v));
    }
    Ok(response)
}

/// One line of JSON, newline included.
pub fn encode_line<T: Serialize>(message: &T) -> String {
    // Serializing these plain structs cannot fail; an empty object keeps the line well-formed
    // if it ever did.
    let mut line = serde_json::to_string(message).unwrap_or_else(|_| "{}".to_string());
    line.push('\n');
    line
}

/// The monitor's report on stdout once it is set up (or has given up and undone everything).
/// On the wire: `{"ok":true,"monitor":..,"init":..,"namespaces":..,"cgroup":..}` (the
/// [`PodResources`] fields next to "ok") or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    Ok(PodResources),
    Failed(String),
}

#[derive(Serialize)]
struct ReadyOk<'a> {
    ok: bool,
    #[serde(flatten)]
    resources: &'a PodResources,
}

#[derive(Serialize)]
struct ReadyFailed<'a> {
    ok: bool,
    error: &'a str,
}

pub fn encode_ready(ready: &Ready) -> String {
    match ready {
        Ready::Ok(resources) => encode_line(&ReadyOk { ok: true, resources }),
        Ready::Failed(error) => encode_line(&ReadyFailed { ok: false, error }),
    }
}

pub fn decode_ready(line: &str) -> Result<Ready, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("the ready line is not JSON ({e}): {line:?}"))?;
    match value.get("ok").and_then(serde_json::Value::as_bool) {
        Some(true) => serde_json::from_value(value).map(Ready::Ok).map_err(|e| format!("the ready line: {e}")),
        Some(false) => {
            let error = value.get("error").and_then(serde_json::Value::as_str).unwrap_or("no reason given");
            Ok(Ready::Failed(error.to_string()))
        }
        None => Err(format!("the ready line has no \"ok\": {line:?}")),
    }
}

pub fn encode_spec(spec: &MonitorSpec) -> String {
    encode_line(spec)
}

pub fn decode_spec(line: &str) -> Result<MonitorSpec, String> {
    serde_json::from_str(line).map_err(|e| format!("the monitor spec is not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use crius_core::sandbox::model::{NamespacePaths, NewNamespaces, ProcRef};

    use super::*;

    #[test]
    fn requests_on_the_wire() {
        assert_eq!(encode_line(&Request::new(Op::Status)), "{\"v\":1,\"op\":\"status\"}\n");
        assert_eq!(encode_line(&Request::new(Op::Shutdown)), "{\"v\":1,\"op\":\"shutdown\"}\n");
        assert_eq!(decode_request("{\"v\":1,\"op\":\"status\"}"), Ok(Op::Status));
        assert_eq!(decode_request("{\"op\":\"shutdown\",\"v\":1,\"extra\":true}"), Ok(Op::Shutdown));
    }

    #[test]
    fn container_requests_on_the_wire() {
        let launch = ContainerLaunch {
            container_id: "c1".into(),
            bundle: "/b".into(),
            log_path: Some("/l/0.log".into()),
            stdin: true,
            ..Default::default()
        };
        let line = encode_line(&Request::new(Op::CreateContainer { launch: launch.clone() }));
        assert!(line.starts_with("{\"v\":1,\"op\":\"create_container\",\"launch\":{\"container_id\":\"c1\""), "{line}");
        assert_eq!(decode_request(line.trim()), Ok(Op::CreateContainer { launch }));
        assert_eq!(
            encode_line(&Request::new(Op::StartContainer { container_id: "c1".into() })),
            "{\"v\":1,\"op\":\"start_container\",\"container_id\":\"c1\"}\n"
        );
        assert_eq!(
            decode_request("{\"v\":1,\"op\":\"reopen_log\",\"container_id\":\"c1\"}"),
            Ok(Op::ReopenLog { container_id: "c1".into() })
        );
        assert!(decode_request("{\"v\":1,\"op\":\"start_container\"}").unwrap_err().contains("container_id"));
        let reply = Response { container: Some(ProcRef { pid: 7, start_time: 9 }), ..Response::ok() };
        assert_eq!(encode_line(&reply), "{\"v\":1,\"ok\":true,\"container\":{\"pid\":7,\"start_time\":9}}\n");
        assert_eq!(Op::ReopenLog { container_id: String::new() }.name(), "reopen_log");
    }

    #[test]
    fn bad_requests_say_why() {
        let e = decode_request("{\"v\":2,\"op\":\"status\"}").unwrap_err();
        assert!(e.contains("version 2") && e.contains("speaks 1"), "{e}");
        let e = decode_request("{\"op\":\"status\"}").unwrap_err();
        assert!(e.contains("no protocol version"), "{e}");
        let e = decode_request("{\"v\":1,\"op\":\"dance\"}").unwrap_err();
        assert!(e.contains("unknown"), "{e}");
        assert!(decode_request("not json").unwrap_err().contains("not a JSON"));
        assert!(decode_request("{\"v\":1}").is_err());
    }

    #[test]
    fn responses_on_the_wire() {
        let status = Response { init_pid: Some(42), init_running: Some(true), ..Response::ok() };
        assert_eq!(encode_line(&status), "{\"v\":1,\"ok\":true,\"init_pid\":42,\"init_running\":true}\n");
        let exited = Response { init_exit: Some(InitExit::Signal(9)), ..Response::ok() };
        assert_eq!(encode_line(&exited), "{\"v\":1,\"ok\":true,\"init_exit\":{\"signal\":9}}\n");
        let err = Response::error("nope");
        assert_eq!(encode_line(&err), "{\"v\":1,\"ok\":false,\"error\":\"nope\"}\n");
        let back: Response = serde_json::from_str(encode_line(&status).trim()).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn ready_lines_round_trip() {
        let resources = PodResources {
            monitor: Some(ProcRef { pid: 10, start_time: 100 }),
            init: Some(ProcRef { pid: 11, start_time: 101 }),
            namespaces: NamespacePaths { net: Some("/run/crius/ns/net/p".into()), ..Default::default() },
            cgroup: Some("/kubepods/p".into()),
        };
        let line = encode_ready(&Ready::Ok(resources.clone()));
        assert!(
            line.starts_with("{\"ok\":true,\"monitor\":{")
                && line.ends_with("}\n")
                && !line[..line.len() - 1].contains('\n')
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["ok"], true);
        assert_eq!(value["init"]["pid"], 11);
        assert_eq!(value["cgroup"], "/kubepods/p");
        assert_eq!(decode_ready(&line), Ok(Ready::Ok(resources)));

        let failed = encode_ready(&Ready::Failed("boom".into()));
        assert_eq!(failed, "{\"ok\":false,\"error\":\"boom\"}\n");
        assert_eq!(decode_ready(&failed), Ok(Ready::Failed("boom".into())));
        assert!(decode_ready("{}").is_err());
        assert!(decode_ready("garbage").is_err());
    }

    #[test]
    fn spec_round_trips() {
        let spec = MonitorSpec {
            pod_id: "p".into(),
            namespaces: NewNamespaces { net: true, ipc: true, uts: true, pid: true },
            hostname: Some("h".into()),
            sysctls: vec![("net/ipv4/ip_forward".into(), "1".into())],
            cgroup_parent: "/kubepods".into(),
            ipv6_dad: false,
        };
        let line = encode_spec(&spec);
        assert!(line.ends_with('\n'));
        assert_eq!(decode_spec(&line).unwrap(), spec);
    }
}
