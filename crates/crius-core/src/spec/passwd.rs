//! Parsers for a container's /etc/passwd and /etc/group (the files as read from its rootfs).
//!
//! Lenient like libc and runc's `user` package: comments, blank and malformed lines are skipped,
//! because an image with one odd line must still run as its other users.

/// One /etc/passwd entry (only the fields crius uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses `name:password:uid:gid:gecos:home:shell` lines.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields = fields(line)?;
            if fields.len() < 4 || fields[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: fields[0].to_string(),
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
            })
        })
        .collect()
}

/// Parses `name:password:gid:member,member` lines.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields = fields(line)?;
            if fields.len() < 3 || fields[0].is_empty() {
                return None;
            }
            let members = fields
                .get(3)
                .map(|m| m.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect())
                .unwrap_or_default();
            Some(GroupEntry { name: fields[0].to_string(), gid: fields[2].parse().ok()?, members })
        })
        .collect()
}

fn fields(line: &str) -> Option<Vec<&str>> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return None;
    }
    Some(line.split(':').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_entries_and_junk() {
        let text = "root:x:0:0:root:/root:/bin/sh\n\
                    # a comment\n\
                    \n\
                    broken line\n\
                    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                    baduid:x:abc:1::/:/bin/sh\n\
                    short:x:5\n\
                    app:x:1000:1001\r\n";
        let entries = parse_passwd(text);
        assert_eq!(
            entries,
            vec![
                PasswdEntry { name: "root".into(), uid: 0, gid: 0 },
                PasswdEntry { name: "nobody".into(), uid: 65534, gid: 65534 },
                PasswdEntry { name: "app".into(), uid: 1000, gid: 1001 },
            ]
        );
    }

    #[test]
    fn group_entries_with_members() {
        let text = "root:x:0:\nwheel:x:10:root, app\naudio:x:29\nusers:*:100:app,,other\n#x:x:1:\nbad:x:-1:a\n";
        let groups = parse_group(text);
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0], GroupEntry { name: "root".into(), gid: 0, members: vec![] });
        assert_eq!(groups[1].members, ["root", "app"]);
        assert_eq!(groups[2], GroupEntry { name: "audio".into(), gid: 29, members: vec![] });
        assert_eq!(groups[3].members, ["app", "other"]);
    }

    #[test]
    fn empty_files_have_no_entries() {
        assert!(parse_passwd("").is_empty());
        assert!(parse_group("").is_empty());
    }
}
