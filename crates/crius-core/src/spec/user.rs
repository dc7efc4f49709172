//! The identity a container's process runs with, resolved the way containerd's `WithUser`,
//! `WithAdditionalGIDs` and `WithSupplementalGroups` do, against the container's own
//! /etc/passwd and /etc/group.

use crate::container::model::{ResolvedUser, SecurityContext};
use crate::error::{Error, Result};

use super::passwd::{GroupEntry, parse_group, parse_passwd};

/// A user or group as written in a USER string: a number, or a name to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Id {
    Num(u32),
    Name(String),
}

impl Id {
    fn parse(s: &str) -> Id {
        match s.parse::<u32>() {
            Ok(n) => Id::Num(n),
            Err(_) => Id::Name(s.to_string()),
        }
    }
}

/// Resolves the user of a container. Precedence as in containerd: `run_as_username`, then
/// `run_as_user` (each with `run_as_group`), then the image's USER, then root.
pub fn resolve_user(
    security: &SecurityContext,
    image_user: &str,
    image_name: &str,
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);

    let explicit_group = security.run_as_group.map(|g| to_id("run_as_group", g)).transpose()?.map(Id::Num);
    let (user, group_id, source) = if !security.run_as_username.is_empty() {
        (Id::Name(security.run_as_username.clone()), explicit_group, "run_as_username")
    } else if let Some(uid) = security.run_as_user {
        (Id::Num(to_id("run_as_user", uid)?), explicit_group, "run_as_user")
    } else if explicit_group.is_some() {
        // containerd: "user group is specified without user".
        return Err(Error::invalid(
            "security context: run_as_group needs run_as_user or run_as_username (a group alone names no user)",
        ));
    } else if image_user.is_empty() {
        (Id::Num(0), None, "the default user")
    } else {
        let (u, g) = split_image_user(image_user, image_name)?;
        (u, g, "the image's USER")
    };

    let (uid, mut gid, username) = match &user {
        Id::Name(name) => {
            let entry = users.iter().find(|e| &e.name == name).ok_or_else(|| {
                Error::invalid(format!(
                    "user {name:?} (from {source}) is not in /etc/passwd of image {image_name}; \
                     use a numeric uid or a user the image defines"
                ))
            })?;
            (entry.uid, entry.gid, Some(entry.name.clone()))
        }
        // A numeric uid need not exist in /etc/passwd: it then runs with gid 0, as in containerd.
        Id::Num(uid) => match users.iter().find(|e| e.uid == *uid) {
            Some(entry) => (*uid, entry.gid, Some(entry.name.clone())),
            None => (*uid, 0, None),
        },
    };
    match group_id {
        Some(Id::Num(g)) => gid = g,
        Some(Id::Name(name)) => {
            gid = groups.iter().find(|g| g.name == name).map(|g| g.gid).ok_or_else(|| {
                Error::invalid(format!(
                    "group {name:?} (from {source}) is not in /etc/group of image {image_name}; \
                     use a numeric gid or a group the image defines"
                ))
            })?
        }
        None => {}
    }

    let mut additional_gids = vec![gid];
    if let Some(name) = &username {
        additional_gids.extend(member_groups(&groups, name));
    }
    for g in &security.supplemental_groups {
        additional_gids.push(to_id("supplemental_groups", *g)?);
    }
    dedup_in_order(&mut additional_gids);

    Ok(ResolvedUser { uid, gid, additional_gids, username })
}

/// The image's USER: `user` or `user:group`, each a number or a name.
fn split_image_user(user: &str, image_name: &str) -> Result<(Id, Option<Id>)> {
    let parts: Vec<&str> = user.split(':').collect();
    let invalid = || {
        Error::invalid(format!(
            "image {image_name} has an invalid USER {user:?}: expected user, uid, user:group or uid:gid"
        ))
    };
    match parts.as_slice() {
        [u] if !u.is_empty() => Ok((Id::parse(u), None)),
        [u, g] if !u.is_empty() && !g.is_empty() => Ok((Id::parse(u), Some(Id::parse(g)))),
        // "uid:" and ":gid" are malformed; Docker rejects them too.
        _ => Err(invalid()),
    }
}

/// The groups that list `username` as a member, except the one named like the user (its own
/// group is the primary one; containerd skips it too).
fn member_groups<'a>(groups: &'a [GroupEntry], username: &'a str) -> impl Iterator<Item = u32> + 'a {
    groups.iter().filter(move |g| g.name != username && g.members.iter().any(|m| m == username)).map(|g| g.gid)
}

fn to_id(field: &str, value: i64) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|v| *v != u32::MAX)
        .ok_or_else(|| Error::invalid(format!("security context: {field} {value} is out of range (0..=4294967294)")))
}

fn dedup_in_order(ids: &mut Vec<u32>) {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          daemon:x:1:1::/:/bin/false\n\
                          app:x:1000:1000::/home/app:/bin/sh\n\
                          web:x:1001:1002::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
                         daemon:x:1:\n\
                         wheel:x:10:root,app\n\
                         app:x:1000:app\n\
                         webgrp:x:1002:\n\
                         audio:x:29:app,web\n";

    fn resolve(sc: &SecurityContext, image_user: &str) -> Result<ResolvedUser> {
        resolve_user(sc, image_user, "example.com/img:1", PASSWD, GROUP)
    }

    #[test]
    fn default_is_root_with_its_groups() {
        let u = resolve(&SecurityContext::default(), "").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.additional_gids, [0, 10]);
        assert_eq!(u.username.as_deref(), Some("root"));
    }

    #[test]
    fn image_user_forms() {
        let u = resolve(&SecurityContext::default(), "app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        // wheel and audio list app; the group named "app" is its own (primary) one.
        assert_eq!(u.additional_gids, [1000, 10, 29]);

        let u = resolve(&SecurityContext::default(), "1001").unwrap();
        assert_eq!((u.uid, u.gid, u.username.as_deref()), (1001, 1002, Some("web")));

        let u = resolve(&SecurityContext::default(), "1001:5").unwrap();
        assert_eq!((u.uid, u.gid), (1001, 5));
        assert_eq!(u.additional_gids, [5, 29]);

        let u = resolve(&SecurityContext::default(), "app:webgrp").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1002));

        let u = resolve(&SecurityContext::default(), "1000:audio").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 29));

        // A uid the image does not know runs with gid 0 and no name.
        let u = resolve(&SecurityContext::default(), "4242").unwrap();
        assert_eq!((u.uid, u.gid, u.username), (4242, 0, None));
        assert_eq!(u.additional_gids, [0]);
    }

    #[test]
    fn bad_image_user_is_invalid() {
        for user in ["a:b:c", ":5", "5:"] {
            let err = resolve(&SecurityContext::default(), user).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{user}");
            assert!(err.to_string().contains("invalid USER"), "{err}");
        }
        let err = resolve(&SecurityContext::default(), "ghost").unwrap_err();
        assert!(err.to_string().contains("\"ghost\"") && err.to_string().contains("example.com/img:1"), "{err}");
        let err = resolve(&SecurityContext::default(), "app:nogroup").unwrap_err();
        assert!(err.to_string().contains("\"nogroup\""), "{err}");
    }

    #[test]
    fn security_context_overrides_image() {
        let sc = SecurityContext { run_as_user: Some(1000), ..Default::default() };
        let u = resolve(&sc, "web").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));

        let sc = SecurityContext { run_as_user: Some(1000), run_as_group: Some(7), ..Default::default() };
        let u = resolve(&sc, "").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 7));
        assert_eq!(u.additional_gids, [7, 10, 29]);

        // The user name wins over the uid, as in containerd.
        let sc = SecurityContext { run_as_user: Some(0), run_as_username: "web".into(), ..Default::default() };
        let u = resolve(&sc, "").unwrap();
        assert_eq!((u.uid, u.gid), (1001, 1002));
    }

    #[test]
    fn unknown_run_as_username_names_user_and_image() {
        let sc = SecurityContext { run_as_username: "ghost".into(), ..Default::default() };
        let err = resolve(&sc, "").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let msg = err.to_string();
        assert!(msg.contains("ghost") && msg.contains("run_as_username") && msg.contains("example.com/img:1"), "{msg}");
    }

    #[test]
    fn group_without_user_is_invalid() {
        let sc = SecurityContext { run_as_group: Some(5), ..Default::default() };
        let err = resolve(&sc, "app").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("run_as_group"), "{err}");
    }

    #[test]
    fn supplemental_groups_are_appended_once() {
        let sc = SecurityContext { run_as_user: Some(1000), supplemental_groups: vec![29, 3000], ..Default::default() };
        let u = resolve(&sc, "").unwrap();
        assert_eq!(u.additional_gids, [1000, 10, 29, 3000]);
    }

    #[test]
    fn out_of_range_ids_are_invalid() {
        let sc = SecurityContext { run_as_user: Some(-1), ..Default::default() };
        assert!(resolve(&sc, "").unwrap_err().to_string().contains("run_as_user -1"));
        let sc = SecurityContext { run_as_user: Some(0), supplemental_groups: vec![1 << 40], ..Default::default() };
        assert!(resolve(&sc, "").unwrap_err().to_string().contains("supplemental_groups"));
    }

    #[test]
    fn no_passwd_file_still_resolves_numeric_users() {
        let u = resolve_user(&SecurityContext::default(), "", "img", "", "").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.as_slice()), (0, 0, &[0][..]));
        let err = resolve_user(&SecurityContext::default(), "app", "img", "", "").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}
