//! Which entry of a manifest list or image index this host runs: linux, this CPU's
//! architecture by Go's names (what registries use), and the variant where it matters.

use crate::manifest::{Descriptor, Platform};

/// This host's platform in OCI terms.
pub fn host() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", ""),
        "x86" => ("386", ""),
        "aarch64" => ("arm64", "v8"),
        "arm" => ("arm", "v7"),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", ""),
        "loongarch64" => ("loong64", ""),
        other => (other, ""),
    };
    Platform { architecture: architecture.into(), os: "linux".into(), variant: variant.into() }
}

/// The best entry for `want`: same OS and architecture, the same variant preferred, then an
/// entry without a variant (arm64's "v8" is its only variant, so the two are the same).
pub fn select<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let same_variant = |p: &Platform| {
        p.variant == want.variant
            || (p.architecture == "arm64"
                && matches!(p.variant.as_str(), "" | "v8")
                && matches!(want.variant.as_str(), "" | "v8"))
    };
    let candidates = || {
        entries
            .iter()
            .filter(|e| e.platform.as_ref().is_some_and(|p| p.os == want.os && p.architecture == want.architecture))
    };
    candidates()
        .find(|e| e.platform.as_ref().is_some_and(same_variant))
        .or_else(|| candidates().find(|e| e.platform.as_ref().is_some_and(|p| p.variant.is_empty())))
}

/// "linux/amd64, linux/arm64/v8" for an error message.
pub fn describe(entries: &[Descriptor]) -> String {
    let names: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .map(|p| {
            if p.variant.is_empty() {
                format!("{}/{}", p.os, p.architecture)
            } else {
                format!("{}/{}/{}", p.os, p.architecture, p.variant)
            }
        })
        .collect();
    if names.is_empty() { "no platform entries".into() } else { names.join(", ") }
}

pub fn name(p: &Platform) -> String {
    if p.variant.is_empty() {
        format!("{}/{}", p.os, p.architecture)
    } else {
        format!("{}/{}/{}", p.os, p.architecture, p.variant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, os: &str, arch: &str, variant: &str) -> Descriptor {
        Descriptor {
            media_type: String::new(),
            digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            size: 1,
            platform: Some(Platform { architecture: arch.into(), os: os.into(), variant: variant.into() }),
            annotations: Default::default(),
        }
    }

    fn plat(arch: &str, variant: &str) -> Platform {
        Platform { architecture: arch.into(), os: "linux".into(), variant: variant.into() }
    }

    #[test]
    fn picks_os_arch_and_variant() {
        let list = vec![
            entry(1, "windows", "amd64", ""),
            entry(2, "linux", "arm", "v6"),
            entry(3, "linux", "arm", "v7"),
            entry(4, "linux", "arm64", "v8"),
            entry(5, "linux", "amd64", ""),
            entry(6, "unknown", "unknown", ""),
        ];
        assert_eq!(select(&list, &plat("amd64", "")).unwrap().digest, list[4].digest);
        assert_eq!(select(&list, &plat("arm", "v7")).unwrap().digest, list[2].digest);
        assert_eq!(select(&list, &plat("arm64", "")).unwrap().digest, list[3].digest);
        assert!(select(&list, &plat("s390x", "")).is_none());
        assert!(select(&list, &plat("arm", "v5")).is_none(), "no variant-less arm entry to fall back on");
        assert!(describe(&list).contains("linux/arm/v7"));
    }

    #[test]
    fn arm64_without_variant_matches_v8() {
        let list = vec![entry(1, "linux", "arm64", "")];
        assert!(select(&list, &plat("arm64", "v8")).is_some());
    }

    #[test]
    fn this_host_is_linux() {
        let h = host();
        assert_eq!(h.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(h.architecture, "amd64");
        }
    }
}
