//! Container ids end up in argv (after the runtime's flags), in paths and in cgroup names: one
//! safe path component that cannot be read as a flag.

use crate::error::{OciError, Result};

pub fn validate_container_id(id: &str) -> Result<()> {
    let invalid = |reason| Err(OciError::InvalidId { id: id.to_string(), reason });
    if id.is_empty() || id.len() > 128 {
        return invalid("it must have 1 to 128 characters");
    }
    if id.starts_with('.') || id.starts_with('-') {
        return invalid("it cannot start with '.' or '-'");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return invalid("only letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["abc", &"f".repeat(64), "a-b_c.d"] {
            validate_container_id(ok).unwrap();
        }
        for bad in ["", "-rf", "--root", ".", "..", "a/b", "a b", &"x".repeat(129)] {
            assert!(validate_container_id(bad).is_err(), "{bad:?}");
        }
    }
}
