//! What the error stream carries at the end of a remote command session: from v4 on a
//! metav1.Status as JSON (client-go reads the exit code from it), before v4 only a failure's
//! message as text.

use serde::Serialize;

use crate::protocol::RcVersion;

/// metav1.Status, with Go's field order and omissions (`metadata` is always present).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub metadata: Empty,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Details {
    pub causes: Vec<Cause>,
}

/// metav1.StatusCause: its Go field `Type` is `reason` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    pub message: String,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

impl Status {
    pub fn success() -> Self {
        Status { metadata: Empty {}, status: "Success", message: String::new(), reason: "", details: None, code: 0 }
    }

    /// A command that exited non-zero, as the kubelet reports it (reason NonZeroExitCode, the
    /// code in the ExitCode cause).
    pub fn exit_code(cmd: &[String], code: i32) -> Self {
        Status {
            metadata: Empty {},
            status: "Failure",
            message: format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            ),
            reason: "NonZeroExitCode",
            details: Some(Details { causes: vec![Cause { reason: "ExitCode", message: code.to_string() }] }),
            code: 0,
        }
    }

    /// apierrors.NewInternalError.
    pub fn internal_error(message: &str) -> Self {
        Status {
            metadata: Empty {},
            status: "Failure",
            message: format!("Internal error occurred: {message}"),
            reason: "InternalError",
            details: Some(Details { causes: vec![Cause { reason: "", message: message.to_string() }] }),
            code: 500,
        }
    }

    pub fn is_success(&self) -> bool {
        self.status == "Success"
    }

    /// The bytes written on the error stream for `version`; empty: nothing to write.
    pub fn encode(&self, version: RcVersion) -> Vec<u8> {
        if version.json_status() {
            serde_json::to_vec(self).unwrap_or_else(|_| b"{\"metadata\":{},\"status\":\"Failure\"}".to_vec())
        } else if self.is_success() {
            Vec::new()
        } else {
            self.message.clone().into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_as_the_kubelet_writes_it() {
        assert_eq!(Status::success().encode(RcVersion::V4), br#"{"metadata":{},"status":"Success"}"#);
        let s = Status::exit_code(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(
            String::from_utf8(s.encode(RcVersion::V4)).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let e = Status::internal_error("boom");
        assert_eq!(
            String::from_utf8(e.encode(RcVersion::V5)).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: boom","reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500}"#
        );
    }

    #[test]
    fn text_before_v4() {
        assert!(Status::success().encode(RcVersion::V3).is_empty());
        assert_eq!(Status::internal_error("x").encode(RcVersion::V1), b"Internal error occurred: x");
    }
}
