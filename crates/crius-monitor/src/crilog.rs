//! The CRI log format the kubelet reads: one line per line of output,
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n`. `F` ends a line of the
//! container's output; `P` is a piece of a longer one (split at [`MAX_LINE`]) or output that
//! ended without a newline; the kubelet joins P pieces with the F that follows.

use std::time::{SystemTime, UNIX_EPOCH};

/// Longest content of one log line; longer output lines are split into P pieces.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Splits one stream's output into log lines. Holds at most `max_line` bytes of an unfinished
/// line between reads.
#[derive(Debug)]
pub struct Encoder {
    stream: Stream,
    max_line: usize,
    partial: Vec<u8>,
}

impl Encoder {
    pub fn new(stream: Stream) -> Self {
        Self::with_max_line(stream, MAX_LINE)
    }

    pub fn with_max_line(stream: Stream, max_line: usize) -> Self {
        Encoder { stream, max_line: max_line.max(1), partial: Vec::new() }
    }

    /// Appends the log lines for `data` (read at `timestamp`) to `out`. A line without its
    /// newline yet is kept until it ends, or until it reaches the limit.
    pub fn feed(&mut self, data: &[u8], timestamp: &str, out: &mut Vec<u8>) {
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = (&rest[..end], &rest[end + 1..]);
            if self.partial.is_empty() {
                self.emit_line(line, timestamp, out);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.emit_line(&whole, timestamp, out);
                // Keep the buffer's capacity small: most lines are short.
                whole.clear();
                whole.shrink_to(256);
                self.partial = whole;
            }
            rest = after;
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() > self.max_line {
            let piece: Vec<u8> = self.partial.drain(..self.max_line).collect();
            self.push(b'P', &piece, timestamp, out);
        }
    }

    /// The stream ended: an unfinished line is logged as P.
    pub fn finish(&mut self, timestamp: &str, out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            let piece = std::mem::take(&mut self.partial);
            self.push(b'P', &piece, timestamp, out);
        }
    }

    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// A whole line: P pieces while more than the limit is left, then F.
    fn emit_line(&self, line: &[u8], timestamp: &str, out: &mut Vec<u8>) {
        let mut rest = line;
        while rest.len() > self.max_line {
            self.push(b'P', &rest[..self.max_line], timestamp, out);
            rest = &rest[self.max_line..];
        }
        self.push(b'F', rest, timestamp, out);
    }

    fn push(&self, tag: u8, content: &[u8], timestamp: &str, out: &mut Vec<u8>) {
        out.reserve(timestamp.len() + content.len() + 12);
        out.extend_from_slice(timestamp.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.stream.name().as_bytes());
        out.push(b' ');
        out.push(tag);
        out.push(b' ');
        out.extend_from_slice(content);
        out.push(b'\n');
    }
}

/// `now` as RFC 3339 in UTC with nanoseconds, e.g. `2016-10-06T00:17:09.669794202Z` (what Go's
/// RFC3339Nano layout parses; nine digits always, so lines sort as text).
pub fn timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    format_unix(since.as_secs(), since.subsec_nanos())
}

fn format_unix(secs: u64, nanos: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One parsed log line (for tests and tools): (timestamp, stream, partial, content).
pub fn parse_line(line: &str) -> Option<(&str, &str, bool, &str)> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?;
    let stream = parts.next()?;
    let partial = match parts.next()? {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    Some((timestamp, stream, partial, parts.next().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TS: &str = "2024-01-02T03:04:05.000000006Z";

    fn encode(enc: &mut Encoder, chunks: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for chunk in chunks {
            enc.feed(chunk, TS, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn whole_lines() {
        let mut enc = Encoder::new(Stream::Stdout);
        assert_eq!(
            encode(&mut enc, &[b"hello\nworld\n\n"]),
            format!("{TS} stdout F hello\n{TS} stdout F world\n{TS} stdout F \n")
        );
        assert!(!enc.has_partial());
    }

    #[test]
    fn a_line_across_reads_is_one_line() {
        let mut enc = Encoder::new(Stream::Stderr);
        assert_eq!(encode(&mut enc, &[b"hel", b"lo", b" there\nnext"]), format!("{TS} stderr F hello there\n"));
        assert!(enc.has_partial());
        let mut out = Vec::new();
        enc.feed(b" one\n", "T2", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "T2 stderr F next one\n");
    }

    #[test]
    fn long_lines_are_split_into_pieces() {
        let mut enc = Encoder::with_max_line(Stream::Stdout, 4);
        assert_eq!(
            encode(&mut enc, &[b"abcdefghij\n"]),
            format!("{TS} stdout P abcd\n{TS} stdout P efgh\n{TS} stdout F ij\n")
        );
        // Exactly the limit: one F, no empty piece.
        assert_eq!(encode(&mut enc, &[b"wxyz\n"]), format!("{TS} stdout F wxyz\n"));
        // Without a newline: pieces as soon as the limit is passed, the rest kept.
        assert_eq!(encode(&mut enc, &[b"0123", b"45678"]), format!("{TS} stdout P 0123\n{TS} stdout P 4567\n"));
        assert_eq!(encode(&mut enc, &[b"9\n"]), format!("{TS} stdout F 89\n"));
    }

    #[test]
    fn default_limit_is_16k() {
        let mut enc = Encoder::new(Stream::Stdout);
        let mut data = vec![b'x'; MAX_LINE * 2 + 10];
        data.push(b'\n');
        let text = encode(&mut enc, &[&data]);
        let tags: Vec<_> = text.lines().map(|l| parse_line(l).unwrap().2).collect();
        assert_eq!(tags, [true, true, false]);
        assert_eq!(parse_line(text.lines().last().unwrap()).unwrap().3.len(), 10);
    }

    #[test]
    fn output_that_ends_without_a_newline_is_partial() {
        let mut enc = Encoder::new(Stream::Stdout);
        assert_eq!(encode(&mut enc, &[b"done\nno newline"]), format!("{TS} stdout F done\n"));
        let mut out = Vec::new();
        enc.finish(TS, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), format!("{TS} stdout P no newline\n"));
        let mut out = Vec::new();
        enc.finish(TS, &mut out);
        assert!(out.is_empty(), "finish twice logs once");
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_unix(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_unix(1_475_713_029, 669_794_202), "2016-10-06T00:17:09.669794202Z");
        // A leap day and the end of a leap year.
        assert_eq!(format_unix(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(format_unix(1_735_689_599, 999_999_999), "2024-12-31T23:59:59.999999999Z");
        assert_eq!(format_unix(4_102_444_800, 0), "2100-01-01T00:00:00.000000000Z");
        let ts = timestamp(UNIX_EPOCH + Duration::new(1_700_000_000, 5));
        assert_eq!(ts, "2023-11-14T22:13:20.000000005Z");
        assert_eq!(ts.len(), 30);
    }

    #[test]
    fn parses_lines() {
        assert_eq!(parse_line("T stdout F a b c"), Some(("T", "stdout", false, "a b c")));
        assert_eq!(parse_line("T stderr P "), Some(("T", "stderr", true, "")));
        assert_eq!(parse_line("T stderr X y"), None);
    }
}
