//! The container's process: what it runs, its environment and working directory, as containerd's
//! `WithProcessArgs`, `WithDefaultPathEnv`, `WithEnv` and `WithProcessCwd` build them.

use crate::container::model::ContainerConfig;
use crate::error::{Error, Result};
use crate::image::ImageConfigInfo;

/// The PATH a container gets when neither its image nor its config sets one (containerd's and
/// Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The argv: `command` replaces the image's ENTRYPOINT and drops its CMD; `args` replace CMD.
pub fn args(config: &ContainerConfig, image: &ImageConfigInfo, image_name: &str) -> Result<Vec<String>> {
    let mut command = config.command.clone();
    let mut args = config.args.clone();
    if command.is_empty() {
        if args.is_empty() {
            args = image.cmd.clone();
        }
        // `ENTRYPOINT [""]` is how a Dockerfile clears an inherited entrypoint.
        if !(image.entrypoint.len() == 1 && image.entrypoint[0].is_empty()) {
            command = image.entrypoint.clone();
        }
    }
    command.extend(args);
    if command.is_empty() {
        return Err(Error::invalid(format!(
            "container {:?}: nothing to run: the config has no command or args and image {image_name} \
             has no ENTRYPOINT or CMD",
            config.metadata.name
        )));
    }
    Ok(command)
}

/// The environment: a default PATH and HOSTNAME, then the image's, then the config's; a later
/// value of the same key replaces the earlier one in place, and an image entry without '=' unsets
/// the key (containerd's `replaceOrAppendEnvValues`).
pub fn env(config: &ContainerConfig, image: &ImageConfigInfo, hostname: &str) -> Vec<String> {
    let mut env: Vec<Option<String>> = vec![Some(format!("PATH={DEFAULT_PATH}"))];
    // containerd falls back to the node's hostname; a pure builder has none, and a pod without
    // a hostname is one the kubelet never sends (it fills in the node name for host network).
    if !hostname.is_empty() {
        env.push(Some(format!("HOSTNAME={hostname}")));
    }
    let mut index: std::collections::HashMap<String, usize> =
        env.iter().enumerate().filter_map(|(i, e)| e.as_deref().map(|e| (key(e).to_string(), i))).collect();
    let overrides = image.env.iter().cloned().chain(config.envs.iter().map(|(k, v)| format!("{k}={v}")));
    for entry in overrides {
        let k = key(&entry).to_string();
        if !entry.contains('=') {
            if let Some(&i) = index.get(&k) {
                env[i] = None;
            }
            continue;
        }
        match index.get(&k) {
            Some(&i) => env[i] = Some(entry),
            None => {
                index.insert(k, env.len());
                env.push(Some(entry));
            }
        }
    }
    env.into_iter().flatten().collect()
}

fn key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// The working directory: the config's, else the image's WORKDIR, else "/". runc wants it
/// absolute, so a relative one is refused here with the field named.
pub fn cwd(config: &ContainerConfig, image: &ImageConfigInfo, image_name: &str) -> Result<String> {
    let (dir, source) = if !config.working_dir.is_empty() {
        (config.working_dir.as_str(), "working_dir".to_string())
    } else if !image.working_dir.is_empty() {
        (image.working_dir.as_str(), format!("the WORKDIR of image {image_name}"))
    } else {
        return Ok("/".to_string());
    };
    if !dir.starts_with('/') {
        return Err(Error::invalid(format!("{source} {dir:?} must be an absolute path")));
    }
    Ok(dir.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfigInfo {
        ImageConfigInfo {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/opt/bin:/bin".into(), "LANG=C".into()],
            working_dir: "/srv".into(),
            ..Default::default()
        }
    }

    #[test]
    fn args_rules() {
        let c = ContainerConfig::default();
        assert_eq!(args(&c, &image(), "i").unwrap(), ["/entry", "serve", "--port=80"]);
        let c = ContainerConfig { args: vec!["x".into()], ..Default::default() };
        assert_eq!(args(&c, &image(), "i").unwrap(), ["/entry", "x"]);
        let c = ContainerConfig { command: vec!["/bin/sh".into()], ..Default::default() };
        assert_eq!(args(&c, &image(), "i").unwrap(), ["/bin/sh"]);
        let c = ContainerConfig { command: vec!["/bin/sh".into()], args: vec!["-c".into()], ..Default::default() };
        assert_eq!(args(&c, &image(), "i").unwrap(), ["/bin/sh", "-c"]);
        let cleared =
            ImageConfigInfo { entrypoint: vec![String::new()], cmd: vec!["run".into()], ..Default::default() };
        assert_eq!(args(&ContainerConfig::default(), &cleared, "i").unwrap(), ["run"]);
        let err = args(&ContainerConfig::default(), &ImageConfigInfo::default(), "busybox").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("busybox"), "{err}");
    }

    #[test]
    fn env_order_and_overrides() {
        let c = ContainerConfig {
            envs: vec![("LANG".into(), "en".into()), ("A".into(), "1".into()), ("A".into(), "2".into())],
            ..Default::default()
        };
        assert_eq!(env(&c, &image(), "web-0"), ["PATH=/opt/bin:/bin", "HOSTNAME=web-0", "LANG=en", "A=2"]);
        let bare = ImageConfigInfo { env: vec!["HOSTNAME".into()], ..Default::default() };
        assert_eq!(env(&ContainerConfig::default(), &bare, "web-0"), [format!("PATH={DEFAULT_PATH}")]);
        assert_eq!(env(&ContainerConfig::default(), &ImageConfigInfo::default(), ""), [format!("PATH={DEFAULT_PATH}")]);
    }

    #[test]
    fn cwd_rules() {
        assert_eq!(cwd(&ContainerConfig::default(), &ImageConfigInfo::default(), "i").unwrap(), "/");
        assert_eq!(cwd(&ContainerConfig::default(), &image(), "i").unwrap(), "/srv");
        let c = ContainerConfig { working_dir: "/work".into(), ..Default::default() };
        assert_eq!(cwd(&c, &image(), "i").unwrap(), "/work");
        let c = ContainerConfig { working_dir: "rel".into(), ..Default::default() };
        assert!(cwd(&c, &image(), "i").unwrap_err().to_string().contains("working_dir"));
    }
}
