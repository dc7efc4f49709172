//! The kernel's AppArmor policy, as far as containers need it.

use crate::error::Result;

pub trait AppArmor: Send + Sync {
    /// Whether a profile of this name is loaded (`/sys/kernel/security/apparmor/profiles`).
    fn is_loaded(&self, profile: &str) -> Result<bool>;
    /// Generates crius's default profile under `profile` for this node's policy
    /// (`spec::apparmor::default_profile`) and loads it, replacing one of that name
    /// (`apparmor_parser -Kr`).
    fn load_default(&self, profile: &str) -> Result<()>;
}
