//! CNI spec versions: which ones crius speaks and what each allows.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CniVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl CniVersion {
    pub const V0_3_0: CniVersion = CniVersion::new(0, 3, 0);
    pub const V0_4_0: CniVersion = CniVersion::new(0, 4, 0);
    pub const V1_0_0: CniVersion = CniVersion::new(1, 0, 0);
    /// The newest version whose result format crius reads (1.1 keeps 1.0's result).
    pub const NEWEST: CniVersion = CniVersion::new(1, 1, 0);

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        CniVersion { major, minor, patch }
    }

    /// "1.0.0", "0.4.0", "0.3.1"; a missing patch ("0.3") reads as 0.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(CniVersion { major, minor, patch })
    }

    /// 0.3.0 introduced the result with interfaces and chaining; older results (ip4/ip6
    /// objects) are not read.
    pub fn is_supported(self) -> bool {
        self >= Self::V0_3_0 && self <= Self::NEWEST
    }

    /// CHECK and prevResult on DEL came with 0.4.0.
    pub fn has_check(self) -> bool {
        self >= Self::V0_4_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(CniVersion::parse("1.0.0"), Some(CniVersion::V1_0_0));
        assert_eq!(CniVersion::parse("0.3"), Some(CniVersion::V0_3_0));
        assert_eq!(CniVersion::parse("1.x.0"), None);
        assert_eq!(CniVersion::parse("1.0.0.1"), None);
        assert!(CniVersion::parse("0.3.1").unwrap() < CniVersion::V0_4_0);
        assert_eq!(CniVersion::V0_4_0.to_string(), "0.4.0");
    }

    #[test]
    fn support_and_check() {
        assert!(!CniVersion::parse("0.2.0").unwrap().is_supported());
        assert!(CniVersion::parse("0.3.1").unwrap().is_supported());
        assert!(CniVersion::parse("1.1.0").unwrap().is_supported());
        assert!(!CniVersion::parse("2.0.0").unwrap().is_supported());
        assert!(!CniVersion::parse("0.3.1").unwrap().has_check());
        assert!(CniVersion::V1_0_0.has_check());
    }
}
