//! Image references as people write them ("busybox", "127.0.0.1:5000/app:v1",
//! "repo@sha256:...") normalised the way Docker and containerd do, so that every spelling of one
//! image names the same index entry.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The registry of names without a domain.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag of names with neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// A content digest, `sha256:<64 lowercase hex>`: the only algorithm crius verifies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(Error::invalid(format!(
                "digest {s:?} is not supported: crius verifies sha256 digests only (sha256:<64 hex>)"
            )));
        };
        if !is_sha256_hex(hex) {
            return Err(Error::invalid(format!("digest {s:?} is malformed: expected sha256:<64 lowercase hex>")));
        }
        Ok(Digest(s.to_string()))
    }

    /// From the 64 hex characters of a sha256 sum.
    pub fn from_sha256_hex(hex: &str) -> Result<Digest> {
        Digest::parse(&format!("sha256:{hex}"))
    }

    /// The 64 hex characters (a safe file name: checked at parse).
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Digest {
    type Error = Error;
    fn try_from(s: String) -> Result<Digest> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

/// A normalised image reference: registry, repository, and a tag, a digest or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    /// "docker.io", "127.0.0.1:5000", "quay.io".
    pub registry: String,
    /// "library/busybox", "team/app".
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalises: a missing domain is docker.io, a one-part Docker Hub name gets
    /// "library/", and a name with neither tag nor digest gets ":latest".
    pub fn parse(input: &str) -> Result<ImageRef> {
        let bad = |why: &str| Error::invalid(format!("image reference {input:?} is invalid: {why}"));
        if input.is_empty() {
            return Err(bad("it is empty"));
        }
        if input.len() > 4096 || input.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(bad("it has whitespace or control characters, or is too long"));
        }
        let (name, digest) = match input.split_once('@') {
            Some((name, d)) => (name, Some(Digest::parse(d).map_err(|e| e.context(format!("in {input:?}")))?)),
            None => (input, None),
        };
        // A tag is what follows the last ':' after the last '/' ("host:5000/app" has no tag).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return Err(bad(&format!("tag {tag:?} must be 1-128 of [A-Za-z0-9_.-], not starting with . or -")));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if is_domain(first) => (first.to_string(), rest.to_string()),
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" { DEFAULT_REGISTRY.to_string() } else { registry };
        if !is_valid_domain(&registry) {
            return Err(bad(&format!("registry {registry:?} is not a host name or host:port")));
        }
        let repository =
            if registry == DEFAULT_REGISTRY && !path.contains('/') { format!("library/{path}") } else { path };
        if repository.is_empty() || !repository.split('/').all(is_valid_path_component) {
            return Err(bad(
                "the repository must be lowercase letters, digits and . _ - separators, in /-separated parts",
            ));
        }
        if registry.len() + 1 + repository.len() > 255 {
            return Err(bad("the name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef { registry, repository, tag, digest })
    }

    /// "registry/repository".
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// "registry/repository:tag", when there is a tag.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// "registry/repository@digest" for the given digest.
    pub fn digested_name(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.name())
    }

    /// What to ask the registry for: the digest when there is one (a tag next to a digest is only
    /// informative, as in Docker), else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The repo tag this pull records: none for a pull by digest, since the tag may have moved
    /// since the digest was written down (containerd drops it too).
    pub fn recorded_tag(&self) -> Option<String> {
        if self.digest.is_some() { None } else { self.tagged_name() }
    }

    /// The same repository and tag or digest on another registry (a mirror).
    pub fn on_registry(&self, registry: &str) -> ImageRef {
        ImageRef { registry: registry.to_string(), ..self.clone() }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first part is a domain when it has a '.' or a ':' or is "localhost".
fn is_domain(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn is_valid_domain(d: &str) -> bool {
    // An IPv6 literal in brackets, or a host name with an optional port.
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || (d.starts_with('[') && b == b':'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn is_valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && !t.starts_with(['.', '-'])
}

/// [a-z0-9]+ joined by '.', '_', '__' or runs of '-'.
fn is_valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn short_docker_hub_names_are_normalised() {
        assert_eq!(p("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(p("busybox:1.36").to_string(), "docker.io/library/busybox:1.36");
        assert_eq!(p("team/app").to_string(), "docker.io/team/app:latest");
        assert_eq!(p("index.docker.io/library/busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(p("docker.io/busybox").repository, "library/busybox");
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        let r = p("127.0.0.1:5000/app");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "app", Some("latest"))
        );
        let r = p("localhost/a/b:v1");
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("localhost", "a/b", Some("v1")));
        assert_eq!(p("[::1]:5000/app:x").registry, "[::1]:5000");
        assert_eq!(p("quay.io/org/app").repository, "org/app");
    }

    #[test]
    fn digests_and_tags() {
        let r = p(&format!("127.0.0.1:5000/app@{D}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().map(Digest::as_str), Some(D));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.recorded_tag(), None);
        let both = p(&format!("127.0.0.1:5000/app:v2@{D}"));
        assert_eq!(both.tag.as_deref(), Some("v2"));
        assert_eq!(both.manifest_reference(), D, "the digest wins");
        assert_eq!(both.recorded_tag(), None);
        assert_eq!(both.to_string(), format!("127.0.0.1:5000/app:v2@{D}"));
        assert_eq!(p("app:v1").recorded_tag().as_deref(), Some("docker.io/library/app:v1"));
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "app:",
            "app:-x",
            "app@sha256:abc",
            "app@md5:0123",
            "a b",
            "app//x",
            "app/",
            "-app",
            "app..x",
            "host:port/app",
            &format!("app@{}", D.to_uppercase()),
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn mirrors_keep_repository_and_reference() {
        let r = p("busybox:1").on_registry("127.0.0.1:6000");
        assert_eq!(r.to_string(), "127.0.0.1:6000/library/busybox:1");
    }

    #[test]
    fn digest_hex_is_a_safe_name() {
        let d = Digest::parse(D).unwrap();
        assert_eq!(d.hex().len(), 64);
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
