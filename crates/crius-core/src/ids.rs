//! Object ids: 64 lowercase hex characters, like containerd's and CRI-O's, so tools that shorten
//! ids to 12 or 13 characters work the same way.

use crate::error::{Error, Result};

pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal("generating an id", e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Ids end up in paths: only accept what crius itself makes (or a prefix of it).
pub fn is_valid_id_or_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_distinct() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(is_valid_id_or_prefix(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn prefixes_must_be_lowercase_hex() {
        assert!(is_valid_id_or_prefix("abc123"));
        assert!(!is_valid_id_or_prefix(""));
        assert!(!is_valid_id_or_prefix("../etc"));
        assert!(!is_valid_id_or_prefix("ABC"));
    }
}
