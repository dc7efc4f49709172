//! An image's STOPSIGNAL ("SIGTERM", "TERM", "15", "SIGRTMIN+3") as a Linux signal number.
//! The numbers are the generic Linux ones (x86_64 and aarch64 share them); crius-core has no
//! libc to ask.

use crate::error::{Error, Result};

pub const SIGTERM: i32 = 15;
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// The stop signal of an image: SIGTERM when it names none. An unknown one is refused, as Docker
/// refuses to create such a container: it could never be stopped gracefully.
pub fn stop_signal(value: &str, image_name: &str) -> Result<i32> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(SIGTERM);
    }
    parse_signal(value).ok_or_else(|| {
        Error::invalid(format!(
            "image {image_name} has an unknown STOPSIGNAL {value:?}: expected a signal name (SIGTERM, \
             SIGRTMIN+3) or a number from 1 to {SIGRTMAX}"
        ))
    })
}

fn parse_signal(value: &str) -> Option<i32> {
    if let Ok(n) = value.parse::<i32>() {
        return (1..=SIGRTMAX).contains(&n).then_some(n);
    }
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(s, _)| *s == name) {
        return Some(n);
    }
    let offset = |rest: &str| -> Option<i32> { if rest.is_empty() { Some(0) } else { rest.parse::<i32>().ok() } };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        SIGRTMIN + rest.strip_prefix('+').map_or_else(|| offset(rest), offset)?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        SIGRTMAX - rest.strip_prefix('-').map_or_else(|| offset(rest), offset)?
    } else {
        return None;
    };
    (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(stop_signal("", "i").unwrap(), 15);
        assert_eq!(stop_signal("SIGTERM", "i").unwrap(), 15);
        assert_eq!(stop_signal("sigquit", "i").unwrap(), 3);
        assert_eq!(stop_signal("INT", "i").unwrap(), 2);
        assert_eq!(stop_signal("9", "i").unwrap(), 9);
        assert_eq!(stop_signal("SIGWINCH", "i").unwrap(), 28);
        assert_eq!(stop_signal("SIGRTMIN", "i").unwrap(), 34);
        assert_eq!(stop_signal("SIGRTMIN+3", "i").unwrap(), 37);
        assert_eq!(stop_signal("RTMAX-1", "i").unwrap(), 63);
    }

    #[test]
    fn unknown_signals_are_invalid() {
        for bad in ["SIGFOO", "0", "65", "-1", "SIGRTMIN+40", "RTMINX"] {
            let err = stop_signal(bad, "example/img").unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
            assert!(err.to_string().contains("example/img"), "{err}");
        }
    }
}
