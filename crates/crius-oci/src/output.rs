//! What runtimes print: their error messages (JSON log lines, logrus text lines, or plain text)
//! and the JSON of `state`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Longest message kept from a runtime's plain stderr.
const MAX_PLAIN: usize = 2048;

/// The runtime's own error message: the last error in its JSON log (`--log FILE --log-format
/// json`), else the last error line on stderr (logrus `level=error msg="..."`, or JSON), else
/// the last lines of plain stderr (crun prints plain text). Empty when it said nothing.
pub fn error_message(log: &[u8], stderr: &[u8]) -> String {
    let log = String::from_utf8_lossy(log);
    let stderr = String::from_utf8_lossy(stderr);
    if let Some(message) = last_error(&log) {
        return message;
    }
    if let Some(message) = last_error(&stderr) {
        return message;
    }
    plain_tail(&stderr)
}

/// The message of the last line at level error (or fatal/panic), in JSON or logfmt.
fn last_error(text: &str) -> Option<String> {
    text.lines().rev().find_map(|line| json_error(line).or_else(|| logfmt_error(line)))
}

fn is_error_level(level: &str) -> bool {
    matches!(level, "error" | "fatal" | "panic")
}

#[derive(Deserialize)]
struct JsonLine {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

fn json_error(line: &str) -> Option<String> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    let parsed: JsonLine = serde_json::from_str(line).ok()?;
    (is_error_level(&parsed.level) && !parsed.msg.is_empty()).then_some(parsed.msg)
}

/// `time="..." level=error msg="container does not exist"`: logrus's text format, values quoted
/// Go-style when they hold spaces or quotes.
fn logfmt_error(line: &str) -> Option<String> {
    let fields = logfmt_fields(line);
    let level = fields.iter().find(|(k, _)| k == "level")?;
    if !is_error_level(&level.1) {
        return None;
    }
    fields.into_iter().find(|(k, v)| k == "msg" && !v.is_empty()).map(|(_, v)| v)
}

fn logfmt_fields(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_string();
        if key.is_empty() || key.contains(' ') {
            // Not logfmt.
            return Vec::new();
        }
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let (value, after) = unquote(quoted);
            rest = after;
            value
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let value = rest[..end].to_string();
            rest = &rest[end..];
            value
        };
        fields.push((key, value));
        rest = rest.trim_start();
    }
    fields
}

/// Reads a Go-quoted string body up to its closing quote; returns it and what follows.
fn unquote(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, other)) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    (out, "")
}

fn plain_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("; ");
    if tail.len() <= MAX_PLAIN {
        return tail;
    }
    let mut start = tail.len() - MAX_PLAIN;
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &tail[start..])
}

/// Whether a runtime's message says the container is unknown to it. runc: "container does not
/// exist"; crun: "error opening file `<root>/<id>/status`: No such file or directory".
pub fn says_not_found(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("container does not exist")
        || (lower.contains("container") && lower.contains("does not exist"))
        || (lower.contains("/status`") && lower.contains("no such file or directory"))
}

/// `state`'s output (the OCI runtime spec's State, plus what runc and crun add).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContainerState {
    #[serde(rename = "ociVersion", default)]
    pub oci_version: String,
    pub id: String,
    pub status: ContainerStatus,
    /// The init's pid (host view); 0 once stopped.
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub bundle: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
    #[serde(other)]
    Unknown,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

pub fn parse_state(stdout: &[u8]) -> Result<ContainerState, String> {
    serde_json::from_slice(stdout).map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_log_wins() {
        let log = br#"{"level":"warning","msg":"something minor","time":"2024-01-01T00:00:00Z"}
{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"2024-01-01T00:00:00Z"}
"#;
        let stderr = b"plain noise\n";
        assert_eq!(
            error_message(log, stderr),
            "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );
    }

    #[test]
    fn crun_json_log_has_msg_first() {
        let log = br#"{"msg":"cgroups in hybrid mode not supported, drop all controllers from cgroupv2","level":"error","time":"2026-11-23T08:35:37.471321Z"}"#;
        assert_eq!(error_message(log, b""), "cgroups in hybrid mode not supported, drop all controllers from cgroupv2");
    }

    #[test]
    fn logrus_text_on_stderr() {
        let stderr = b"time=\"2026-11-23T08:35:39Z\" level=warning msg=\"ignored\"\n\
                       time=\"2026-11-23T08:35:39Z\" level=error msg=\"container does not exist\"\n";
        let message = error_message(b"", stderr);
        assert_eq!(message, "container does not exist");
        assert!(says_not_found(&message));
        let escaped = b"level=error msg=\"exec: \\\"x\\\": not found\\nmore\" time=now\n";
        assert_eq!(error_message(b"", escaped), "exec: \"x\": not found\nmore");
        assert_eq!(error_message(b"", b"level=fatal msg=boom"), "boom");
    }

    #[test]
    fn json_lines_on_stderr() {
        let stderr = br#"{"level":"error","msg":"container does not exist","time":"2026-11-23T08:35:39Z"}"#;
        assert_eq!(error_message(b"", stderr), "container does not exist");
    }

    #[test]
    fn plain_stderr_tail() {
        let stderr = b"\nerror opening file `/r/nope/status`: No such file or directory\n\n";
        let message = error_message(b"", stderr);
        assert_eq!(message, "error opening file `/r/nope/status`: No such file or directory");
        assert!(says_not_found(&message));
        assert_eq!(error_message(b"", b"a\nb\nc\nd\n"), "b; c; d");
        assert_eq!(error_message(b"", b""), "");
        let long = "é".repeat(3000);
        let message = error_message(b"", long.as_bytes());
        assert!(message.starts_with("...") && message.len() <= MAX_PLAIN + 3, "{}", message.len());
        // Info lines are not errors: the plain tail is used instead.
        assert_eq!(error_message(b"{\"level\":\"info\",\"msg\":\"hi\"}\n", b"real trouble"), "real trouble");
    }

    #[test]
    fn not_found_is_not_any_missing_thing() {
        assert!(!says_not_found("exec: \"x\": executable file not found in $PATH"));
        assert!(!says_not_found("open /b/config.json: no such file or directory"));
        assert!(says_not_found("container `c1` does not exist"));
    }

    #[test]
    fn runc_state() {
        let out = br#"{
  "ociVersion": "1.0.2-dev",
  "id": "c1",
  "pid": 4242,
  "status": "running",
  "bundle": "/b",
  "rootfs": "/b/rootfs",
  "created": "2026-11-23T08:35:39.123456789Z",
  "owner": "",
  "annotations": null
}"#;
        let state = parse_state(out).unwrap();
        assert_eq!(state.id, "c1");
        assert_eq!(state.pid, 4242);
        assert_eq!(state.status, ContainerStatus::Running);
        assert!(state.annotations.is_empty());
        let other = parse_state(br#"{"id":"c","status":"hibernating","annotations":{"a":"b"}}"#).unwrap();
        assert_eq!(other.status, ContainerStatus::Unknown);
        assert_eq!(other.annotations["a"], "b");
        assert!(parse_state(b"garbage").is_err());
    }
}
