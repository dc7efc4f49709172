//! oci-client's errors as crius's, each naming the registry, the reference and what the
//! registry answered.

use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};

use super::client::RegistryClient;
use crate::error::ImageError;

/// The hint of a refusal by the token service (after the registry's 401 challenge).
pub(super) const TOKEN_REFUSED: &str = " (refused by the token service)";

impl RegistryClient {
    /// `what` is what was asked for: "manifest ...", "blob ...", "layer ..." or "token".
    pub(super) fn fault(&self, e: OciDistributionError, what: &str) -> ImageError {
        match e {
            OciDistributionError::UnauthorizedError { .. } => self.status(401, what, String::new()),
            // oci-client met a Bearer challenge (the registry's 401) and the token request failed.
            OciDistributionError::AuthenticationFailure(_) => self.unauthorized(401, TOKEN_REFUSED),
            OciDistributionError::RequestError(source) => self.unreachable(source),
            OciDistributionError::ServerError { code, message, .. } => self.status(code, what, message),
            // oci-client keeps the error code of the body, not the status: the spec pairs them.
            OciDistributionError::RegistryError { envelope, .. } => {
                let status = envelope.errors.first().map_or(400, |e| status_of(&e.code));
                self.status(status, what, envelope.to_string())
            }
            OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
                ImageError::DigestMismatch {
                    what: format!("{what} of {} from {}", self.shown, self.registry()),
                    expected,
                    actual,
                }
            }
            OciDistributionError::RegistryTokenDecodeError(why) => ImageError::TokenRefused {
                realm: format!("the token service of {}", self.registry()),
                reference: self.shown.clone(),
                status: 200,
                body: format!("not a token response: {why}"),
            },
            source => ImageError::Protocol {
                registry: self.registry().to_string(),
                reference: self.shown.clone(),
                what: what.to_string(),
                source: Box::new(source),
            },
        }
    }

    /// An error in a blob's stream: reqwest's (the connection), or oci-client's digest check
    /// at its end.
    pub(crate) fn stream_fault(&self, e: std::io::Error, what: &str) -> ImageError {
        if e.get_ref().is_none() {
            return self.fault(OciDistributionError::IoError(e), what);
        }
        match e.into_inner().map(|inner| inner.downcast::<reqwest::Error>()) {
            Some(Ok(source)) => self.unreachable(*source),
            Some(Err(inner)) => match inner.downcast::<DigestError>() {
                Ok(digest) => self.fault(OciDistributionError::DigestError(*digest), what),
                Err(other) => self.fault(OciDistributionError::IoError(std::io::Error::other(other)), what),
            },
            None => self.fault(OciDistributionError::GenericError(None), what),
        }
    }

    fn status(&self, status: u16, what: &str, body: String) -> ImageError {
        let (registry, reference) = (self.registry().to_string(), self.shown.clone());
        match status {
            401 | 403 => self.unauthorized(
                status,
                if self.endpoint.credentials.is_none() { " (no credentials were given)" } else { "" },
            ),
            404 => ImageError::NotFound {
                registry,
                reference,
                what: if what.starts_with("manifest") { "manifest" } else { "blob" },
            },
            _ => ImageError::RegistryStatus {
                registry,
                reference,
                what: what.to_string(),
                status,
                body: body.chars().take(300).collect(),
            },
        }
    }

    pub(super) fn unauthorized(&self, status: u16, hint: &'static str) -> ImageError {
        ImageError::Unauthorized { registry: self.registry().to_string(), reference: self.shown.clone(), status, hint }
    }

    pub(super) fn unreachable(&self, source: reqwest::Error) -> ImageError {
        ImageError::Unreachable { registry: self.registry().to_string(), reference: self.shown.clone(), source }
    }
}

/// The HTTP status the distribution spec gives an error code.
fn status_of(code: &OciErrorCode) -> u16 {
    match code {
        OciErrorCode::BlobUnknown
        | OciErrorCode::BlobUploadUnknown
        | OciErrorCode::ManifestBlobUnknown
        | OciErrorCode::ManifestUnknown
        | OciErrorCode::NameUnknown
        | OciErrorCode::NotFound => 404,
        OciErrorCode::Unauthorized => 401,
        OciErrorCode::Denied => 403,
        OciErrorCode::Unsupported => 405,
        OciErrorCode::Toomanyrequests => 429,
        _ => 400,
    }
}

#[cfg(test)]
mod tests {
    use crius_core::ErrorKind;

    use super::*;
    use crate::config::PullConfig;
    use crate::registry::auth::Credentials;
    use crate::registry::{Clients, Endpoint};

    const SHOWN: &str = "r.example:5000/team/app:v1";

    fn client(credentials: Credentials) -> RegistryClient {
        let clients = Clients::new(&PullConfig::default()).unwrap();
        let host = "r.example:5000".to_string();
        let endpoint = Endpoint { host: host.clone(), api_host: host, scheme: "https", mirror: false, credentials };
        RegistryClient::new(&clients, endpoint, "team/app", SHOWN).unwrap()
    }

    fn envelope(code: &str) -> oci_client::errors::OciEnvelope {
        serde_json::from_str(&format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#)).unwrap()
    }

    fn registry_error(code: &str) -> OciDistributionError {
        OciDistributionError::RegistryError { envelope: envelope(code), url: "u".into() }
    }

    #[test]
    fn error_codes_map_to_the_spec_statuses() {
        for (code, status) in [
            ("MANIFEST_UNKNOWN", 404),
            ("BLOB_UNKNOWN", 404),
            ("NAME_UNKNOWN", 404),
            ("DENIED", 403),
            ("TOOMANYREQUESTS", 429),
            ("NAME_INVALID", 400),
            ("SOMETHING_ELSE", 400),
        ] {
            assert_eq!(status_of(&envelope(code).errors[0].code), status, "{code}");
        }
    }

    #[test]
    fn registry_answers_name_the_registry_the_reference_and_the_status() {
        let anonymous = client(Credentials::None);
        let e = anonymous.fault(OciDistributionError::UnauthorizedError { url: "u".into() }, "manifest v1");
        assert_eq!(
            e.to_string(),
            format!(
                "registry r.example:5000 refused the credentials for {SHOWN} (HTTP 401) (no credentials were given)"
            )
        );
        let e = anonymous.fault(registry_error("MANIFEST_UNKNOWN"), "manifest v1");
        assert_eq!(e.to_string(), format!("registry r.example:5000 has no manifest for {SHOWN} (HTTP 404)"));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = anonymous.fault(registry_error("BLOB_UNKNOWN"), "layer sha256:ab");
        assert!(matches!(e, ImageError::NotFound { what: "blob", .. }), "{e}");
        let e = anonymous.fault(
            OciDistributionError::ServerError { code: 404, url: "u".into(), message: "nope".into() },
            "blob sha256:ab",
        );
        assert!(matches!(e, ImageError::NotFound { what: "blob", .. }), "{e}");

        let basic = client(Credentials::Basic { username: "u".into(), password: "p".into() });
        let e = basic.fault(registry_error("DENIED"), "manifest v1");
        assert!(matches!(e, ImageError::Unauthorized { status: 403, hint: "", .. }), "{e}");
        let e = basic.fault(OciDistributionError::AuthenticationFailure("bad".into()), "token");
        assert!(matches!(e, ImageError::Unauthorized { status: 401, .. }), "{e}");
        assert!(e.to_string().ends_with("(HTTP 401) (refused by the token service)"), "{e}");

        let e = basic.fault(
            OciDistributionError::ServerError { code: 503, url: "u".into(), message: "busy".into() },
            "manifest v1",
        );
        assert_eq!(
            e.to_string(),
            format!("registry r.example:5000 answered HTTP 503 for manifest v1 of {SHOWN}: busy")
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = basic.fault(registry_error("TOOMANYREQUESTS"), "blob sha256:ab");
        assert!(matches!(e, ImageError::RegistryStatus { status: 429, .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::Unavailable);

        let e = basic.fault(OciDistributionError::SpecViolationError("206".into()), "manifest v1");
        let full = crius_core::Error::from(e);
        assert!(format!("{full:#}").contains("206"), "the cause is kept: {full:#}");
    }

    #[test]
    fn a_digest_mismatch_at_the_end_of_a_stream_names_the_blob_and_where_it_came_from() {
        let c = client(Credentials::None);
        let mismatch = DigestError::VerificationError { expected: "sha256:aa".into(), actual: "sha256:bb".into() };
        let e = c.stream_fault(std::io::Error::other(mismatch), "layer sha256:aa");
        assert_eq!(
            e.to_string(),
            format!(
                "layer sha256:aa of {SHOWN} from r.example:5000 failed verification: expected digest sha256:aa, got \
                 sha256:bb; nothing was kept"
            )
        );
        let e = c.stream_fault(std::io::Error::other("odd"), "layer sha256:aa");
        assert!(matches!(e, ImageError::Protocol { .. }), "{e}");
    }
}
