//! AppArmor and SELinux at CreateContainer: what the host must have before a spec names it.
//! The spec builder picks the profile and labels; this makes sure the profile is loaded.

use super::ContainerService;
use super::model::SecurityContext;
use crate::error::{Error, Result};
use crate::spec::apparmor::{self, AppArmorProfile};

impl ContainerService {
    /// Loads crius's default AppArmor profile where AppArmor is enabled and the profile is not
    /// loaded yet; false where AppArmor is not enabled. Called at start; CreateContainer loads
    /// it again should it have gone (an `aa-teardown`, say), as containerd does.
    pub fn load_default_apparmor_profile(&self) -> Result<bool> {
        if !self.options.host.apparmor {
            return Ok(false);
        }
        self.ensure_apparmor(&AppArmorProfile::Default)?;
        Ok(true)
    }

    /// What the container's security context needs of the host's LSMs, checked before its spec
    /// is built: a runtime asked for an AppArmor profile that is not loaded fails at start with
    /// a message less clear than this one.
    pub(super) fn check_lsm(&self, container: &str, security: &SecurityContext) -> Result<()> {
        let host = &self.options.host;
        if let Some(profile) = apparmor::select(&security.apparmor, security.privileged, host.apparmor)? {
            self.ensure_apparmor(&profile)?;
        }
        if !host.selinux && crate::spec::selinux::asks_for_something(security.selinux.as_ref()) {
            tracing::debug!(
                container,
                "SELinux is not enabled on this host: the container's selinux_options are ignored"
            );
        }
        Ok(())
    }

    fn ensure_apparmor(&self, profile: &AppArmorProfile) -> Result<()> {
        let port = &self.ports.apparmor;
        let name = profile.name();
        if port
            .is_loaded(name)
            .map_err(|e| e.context(format!("checking whether AppArmor profile {name:?} is loaded")))?
        {
            return Ok(());
        }
        match profile {
            AppArmorProfile::Localhost(_) => Err(Error::precondition(format!(
                "AppArmor profile {name:?} (Localhost) is not loaded on this node: load it first \
                 (apparmor_parser -r /etc/apparmor.d/<file>), or ask for RuntimeDefault"
            ))),
            AppArmorProfile::Default => port.load_default(name).map_err(|e| {
                Error::precondition(format!(
                    "AppArmor RuntimeDefault: crius's default profile {name:?} could not be loaded ({e}); install \
                     the apparmor package (apparmor_parser) on the node, or ask for Unconfined or a Localhost profile"
                ))
            }),
        }
    }
}
