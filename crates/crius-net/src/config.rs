//! `[network]` of crius.toml. Every key has a default, so the section can be left out.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Who forwards host ports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostPortManagerKind {
    /// crius's own manager: nftables DNAT in its own tables, host ports held by open sockets.
    #[default]
    Crius,
    /// The CNI chain's portmap plugin, given the mappings as the portMappings capability.
    Cni,
}

/// Which of a dual-stack pod's IPs is its primary one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpPreference {
    /// The first IPv4 address (what containerd does by default), else the first one.
    #[default]
    Ipv4,
    /// The first IPv6 address, else the first one.
    Ipv6,
    /// The first address of the CNI result, whatever its family.
    Cni,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Where network configs (.conflist, .conf, .json) are read from, in order; within a
    /// directory the lexically first usable file wins.
    pub conf_dirs: Vec<PathBuf>,
    /// Where plugin executables are looked up, in order (Debian installs them in /usr/lib/cni).
    pub bin_dirs: Vec<PathBuf>,
    /// Use the network with this name instead of the first one found; "" for the first.
    pub network_name: String,
    /// The interface created in the pod (CNI_IFNAME).
    pub interface: String,
    /// A plugin still running after this many seconds is killed (with its children).
    pub plugin_timeout_secs: u64,
    /// How many times DEL is tried before teardown fails (with backoff in between).
    pub del_attempts: u32,
    pub hostport_manager: HostPortManagerKind,
    /// Name of crius's nftables tables (one per family: `ip <name>` and `ip6 <name>`).
    pub hostport_table: String,
    /// Packet mark bit used to pick connections to masquerade (localhost and hairpin).
    pub masquerade_mark: u32,
    pub ip_preference: IpPreference,
    /// The network written by `crius_net::default_network` when no config exists.
    pub default_network: DefaultNetworkConfig,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            conf_dirs: vec!["/etc/cni/net.d".into()],
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            network_name: String::new(),
            interface: "eth0".into(),
            plugin_timeout_secs: 60,
            del_attempts: 3,
            hostport_manager: HostPortManagerKind::Crius,
            hostport_table: "crius".into(),
            masquerade_mark: 0x2000,
            ip_preference: IpPreference::Ipv4,
            default_network: DefaultNetworkConfig::default(),
        }
    }
}

/// The bridge network crius writes when the node has none (`make run`'s setup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultNetworkConfig {
    pub name: String,
    pub bridge: String,
    /// Pod subnets, one per family at most. The IPv6 one is left out where the host has IPv6
    /// turned off.
    pub subnets: Vec<String>,
    /// Masquerade pod traffic leaving the node (the bridge plugin's ipMasq).
    pub ip_masq: bool,
    /// host-local's allocation directory; "" for its default (/var/lib/cni/networks).
    pub data_dir: String,
    /// The file written in the first of `conf_dirs`.
    pub file_name: String,
}

impl Default for DefaultNetworkConfig {
    fn default() -> Self {
        DefaultNetworkConfig {
            name: "crius".into(),
            bridge: "crius0".into(),
            subnets: vec!["10.88.0.0/16".into(), "fd8e:8a11:88::/64".into()],
            ip_masq: true,
            data_dir: String::new(),
            file_name: "10-crius-bridge.conflist".into(),
        }
    }
}

impl NetworkConfig {
    /// Refuses values the adapters cannot work with, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.conf_dirs.is_empty() {
            return Err("network.conf_dirs: give at least one directory".into());
        }
        if self.bin_dirs.is_empty() {
            return Err("network.bin_dirs: give at least one directory".into());
        }
        for dir in self.conf_dirs.iter().chain(&self.bin_dirs) {
            if !dir.is_absolute() {
                return Err(format!("network: {:?} must be an absolute path", dir.display()));
            }
        }
        let name = &self.interface;
        if name.is_empty() || name.len() > 15 || name.contains(['/', ':']) || name.contains(char::is_whitespace) {
            return Err(format!("network.interface = {name:?}: not a valid interface name"));
        }
        if self.plugin_timeout_secs == 0 {
            return Err("network.plugin_timeout_secs: must be at least 1".into());
        }
        if self.del_attempts == 0 {
            return Err("network.del_attempts: must be at least 1".into());
        }
        let table = &self.hostport_table;
        if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("network.hostport_table = {table:?}: use letters, digits, '-' and '_'"));
        }
        if self.masquerade_mark.count_ones() != 1 {
            return Err(format!("network.masquerade_mark = {:#x}: must be a single bit", self.masquerade_mark));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_parse_from_json() {
        NetworkConfig::default().validate().unwrap();
        let c: NetworkConfig = serde_json::from_str(r#"{"hostport_manager":"cni","ip_preference":"ipv6"}"#).unwrap();
        assert_eq!(c.hostport_manager, HostPortManagerKind::Cni);
        assert_eq!(c.ip_preference, IpPreference::Ipv6);
        assert_eq!(c.interface, "eth0");
        assert!(serde_json::from_str::<NetworkConfig>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = NetworkConfig { masquerade_mark: 3, ..Default::default() };
        assert!(c.validate().unwrap_err().contains("masquerade_mark"));
        let c = NetworkConfig { hostport_table: "a b".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().contains("hostport_table"));
        let c = NetworkConfig { interface: "x".repeat(16), ..Default::default() };
        assert!(c.validate().unwrap_err().contains("interface"));
    }
}
