//! AppArmor on the host: which profiles the kernel has loaded, and loading crius's default
//! profile with `apparmor_parser` (as containerd and CRI-O do: `-K` skips the profile cache,
//! which would otherwise keep a stale copy of a generated profile; `-r` replaces one of that
//! name). The profile text comes from the domain's pure generator.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crius_core::ports::apparmor::AppArmor;
use crius_core::spec::apparmor::{PolicyEnv, default_profile};
use crius_core::{Error, Result};

pub struct HostAppArmor {
    /// The kernel's list of loaded profiles, one "name (mode)" a line.
    profiles: PathBuf,
    /// The distribution's policy (abi/, tunables/, abstractions/).
    policy_dir: PathBuf,
    parser: PathBuf,
}

impl Default for HostAppArmor {
    fn default() -> Self {
        HostAppArmor {
            profiles: "/sys/kernel/security/apparmor/profiles".into(),
            policy_dir: "/etc/apparmor.d".into(),
            parser: "apparmor_parser".into(),
        }
    }
}

impl AppArmor for HostAppArmor {
    fn is_loaded(&self, profile: &str) -> Result<bool> {
        let listed = fs::read_to_string(&self.profiles)
            .map_err(|e| Error::internal(format!("reading {}", self.profiles.display()), e))?;
        Ok(lists(&listed, profile))
    }

    fn load_default(&self, profile: &str) -> Result<()> {
        let text = default_profile(profile, &self.policy_env());
        let parser = self.parser.display();
        let what = || format!("loading AppArmor profile {profile:?} with {parser} -Kr");
        let mut child = Command::new(&self.parser)
            .arg("-Kr")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::internal(format!("{parser} is not installed (Debian's apparmor package has it)"), e)
                }
                _ => Error::internal(what(), e),
            })?;
        // The profile goes in on stdin: no file to leave behind. A few KiB, so the write cannot
        // block on a parser that is itself blocked writing stderr.
        let written = child.stdin.take().map(|mut stdin| stdin.write_all(text.as_bytes()));
        let output = child.wait_with_output().map_err(|e| Error::internal(what(), e))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(Error::internal(what(), format!("{}: {stderr}", output.status)));
        }
        if let Some(Err(e)) = written {
            return Err(Error::internal(what(), e));
        }
        Ok(())
    }
}

impl HostAppArmor {
    /// The same, with other paths (for tests).
    #[cfg(test)]
    fn at(profiles: &std::path::Path, policy_dir: &std::path::Path, parser: &std::path::Path) -> Self {
        HostAppArmor { profiles: profiles.into(), policy_dir: policy_dir.into(), parser: parser.into() }
    }

    fn policy_env(&self) -> PolicyEnv {
        let has = |p: &str| self.policy_dir.join(p).exists();
        // The AppArmor-specific file first: where LSMs are stacked, attr/current may be another's.
        let current = ["/proc/self/attr/apparmor/current", "/proc/self/attr/current"]
            .iter()
            .find_map(|p| fs::read_to_string(p).ok())
            .unwrap_or_default();
        PolicyEnv {
            abi_3: has("abi/3.0"),
            tunables_global: has("tunables/global"),
            abstractions_base: has("abstractions/base"),
            daemon_profile: profile_name(&current),
        }
    }
}

/// Whether the kernel's profile list ("name (mode)" lines) has `name`. Names may hold spaces,
/// so the mode is cut at the last " (".
fn lists(profiles: &str, name: &str) -> bool {
    profiles.lines().any(|l| l.rsplit_once(" (").map_or(l, |(n, _)| n) == name)
}

/// A process's profile from its attr/current ("name (enforce)\n", or "unconfined").
fn profile_name(current: &str) -> String {
    let current = current.trim_end_matches(['\n', '\0']).trim();
    let name = current.rsplit_once(" (").map_or(current, |(n, _)| n);
    if name.is_empty() { "unconfined".into() } else { name.to_string() }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    #[test]
    fn profile_list_lookup() {
        let listed = "crius-default (enforce)\nk8s nginx (complain)\n/usr/bin/man (enforce)\n";
        assert!(lists(listed, "crius-default"));
        assert!(lists(listed, "k8s nginx"));
        assert!(lists(listed, "/usr/bin/man"));
        assert!(!lists(listed, "crius"));
        assert!(!lists("", "crius-default"));
    }

    #[test]
    fn own_profile_names() {
        assert_eq!(profile_name("unconfined\n"), "unconfined");
        assert_eq!(profile_name("crius (enforce)\n"), "crius");
        assert_eq!(profile_name(""), "unconfined");
    }

    /// A stand-in parser: records its arguments and the profile it was given.
    fn fake_parser(dir: &Path, exit: i32) -> PathBuf {
        let path = dir.join("apparmor_parser");
        let script = format!(
            "#!/bin/sh\necho \"$@\" > {0}/args\ncat > {0}/profile\necho oops >&2\nexit {exit}\n",
            dir.display()
        );
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn loading_pipes_the_generated_profile_to_the_parser() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("apparmor.d");
        fs::create_dir_all(policy.join("tunables")).unwrap();
        fs::write(policy.join("tunables/global"), "").unwrap();
        let listed = dir.path().join("profiles");
        fs::write(&listed, "crius-default (enforce)\n").unwrap();
        let aa = HostAppArmor::at(&listed, &policy, &fake_parser(dir.path(), 0));
        aa.load_default("crius-default").unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("args")).unwrap().trim(), "-Kr");
        let profile = fs::read_to_string(dir.path().join("profile")).unwrap();
        assert!(profile.contains("profile crius-default flags="), "{profile}");
        assert!(profile.contains("#include <tunables/global>") && !profile.contains("abstractions/base"));
        assert!(aa.is_loaded("crius-default").unwrap());
        assert!(!aa.is_loaded("other").unwrap());
    }

    #[test]
    fn a_failing_or_missing_parser_is_an_error_that_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let failing = HostAppArmor::at(Path::new("/nonexistent"), dir.path(), &fake_parser(dir.path(), 1));
        let err = failing.load_default("crius-default").unwrap_err().to_string();
        assert!(err.contains("crius-default") && err.contains("oops"), "{err}");
        let missing = HostAppArmor::at(Path::new("/nonexistent"), dir.path(), &dir.path().join("no-parser"));
        let err = missing.load_default("crius-default").unwrap_err().to_string();
        assert!(err.contains("apparmor package"), "{err}");
        let err = missing.is_loaded("crius-default").unwrap_err().to_string();
        assert!(err.contains("/nonexistent"), "{err}");
    }
}
